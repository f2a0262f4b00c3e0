//! The pure glue between the GPU fleet's API objects (`compute.trellis.dev`,
//! `serving.trellis.dev`) and the placement engine ([`trellis_placement`]): what the hub's
//! placement and target-health controllers decide, without their I/O. Every function takes
//! the objects as read plus `now` (seconds since the Unix epoch) and returns what to write;
//! nothing here touches storage, a clock or async code, so each rule is tested beside it.
//!
//! | module | owns |
//! |---|---|
//! | `keys` | engine names of targets and pools (`<provider workspace>/<name>`) |
//! | `time` | API times ↔ epoch seconds |
//! | `conditions` | conditions whose transition time moves only with their status |
//! | [`health`] | heartbeat health, the unreachable taint, when failover is due |
//! | [`snapshot`] | API objects → the engine's `Snapshot` (and refused deployments) |
//! | [`ledger`] | the engine's ledger rebuilt by a new leader, pruned of the gone |
//! | [`render`] | a `Decision` → Placements to write and to delete (the failover rule) |
//! | [`status`] | a ModelDeployment's status |
//! | [`pool_status`] | a GPUPool's status |
//!
//! How a controller calls them, in order, each pass (level-triggered: any change of a
//! SyncTarget, GPUPool, ModelDeployment or Placement, and the requeue times below):
//!
//! ```ignore
//! let now = clock_seconds();
//! // 1. Target health (the health controller): write taints and conditions that changed,
//! //    and use the written targets below. Requeue at `recheck_at`.
//! for target in &mut targets { let h = health::assess(target, now); /* write h.taints, h.conditions */ }
//! // 2. One snapshot of everything; log `fleet.warnings`.
//! let fleet = snapshot::build_snapshot(&FleetObjects { targets, pools, deployments, placements }, now);
//! // 3. The ledger: rebuilt once when this replica becomes leader, pruned on every pass.
//! let ledger = leader_ledger.get_or_insert_with(|| ledger::restore_ledger(&fleet, placements));
//! ledger::prune_ledger(ledger, &fleet);
//! // 4. Decide. `place` also moves replicas off targets whose NoExecute taint outlasted a
//! //    deployment's failover.tolerationSeconds: no separate `fail_over` call is needed.
//! let mut decisions = trellis_placement::place(&fleet.snapshot, ledger);
//! decisions.extend(fleet.refused.iter().cloned());
//! // 5. Per deployment: the plan (write `plan.writes()`, delete `plan.delete`, requeue at
//! //    `plan.requeue_at`), then its status from the Placements as read before the writes.
//! let plan = render::render(&Origin { workspace, cluster, deployment }, decision, previous, now);
//! let status = status::deployment_status(deployment, decision, &plan, previous, &fleet, now);
//! // 6. Per pool: its status from all decisions.
//! let pool_status = pool_status::pool_status(workspace, pool, &fleet, &decisions, now);
//! // 7. Deployments being deleted: delete `render::teardown(their placements)`; Placements
//! //    of deployments that no longer exist: `render::orphans(placements, live_uids)`.
//! //    Requeue each deployment at `health::failover_deadline` of the targets it runs on.
//! ```
//!
//! Writes that fail are simply retried by the next pass: every function here is a function of
//! what is stored, so a pass that finds its own earlier writes decides the same again.

mod conditions;
pub mod health;
mod keys;
pub mod ledger;
pub mod pool_status;
pub mod render;
pub mod snapshot;
pub mod status;
pub mod time;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;
