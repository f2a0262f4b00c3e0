//! The placement passes, pure functions of the objects read, the ledger and `now`: [`pass`]
//! over the whole fleet and [`fast`] over new deployments alone. A whole pass is the fleet
//! glue ([`crate::fleet`]) called in the order its module
//! documents, and its answers gathered into the writes of the pass ([`Pass`]) and the time
//! to look again. No storage, no clock: the controller reads, calls [`pass`], writes.
//!
//! Rules added beside the glue's:
//! - Health first: each SyncTarget is assessed, and the pass decides on the targets as they
//!   will be once the health write lands (tainted, not Ready), not as read.
//! - The ledger is restored from the Placements when the pass finds none (a new leadership
//!   term, or the controller dropped it after a failed Placement write) and pruned on every
//!   pass.
//! - A deployment being deleted has all its Placements deleted; a Placement whose deployment
//!   exists nowhere is an orphan and goes too. A deployment this pass could not decide on (its
//!   workspace path is not known yet, [`FleetRead::undecided`]) still exists: its Placements
//!   stay.
//! - Statuses are written only when they differ from the ones read; a Placement only when
//!   render says it changed. So a pass that reads its own writes writes nothing.
//! - Look again at the earliest future time among: a healthy target's heartbeat going stale,
//!   a retiring Placement's grace period ending, and the failover deadline of a tainted
//!   target a deployment runs on. Times already past are left out (what they trigger has
//!   happened, or could not: a deployment with nowhere to go is looked at again with the
//!   next change).

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::api::core::v1::Taint;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use trellis_apis::compute::placement::target_of_namespace;
use trellis_apis::compute::{GPUPool, GPUPoolStatus, Placement, SyncTarget};
use trellis_apis::serving::{ModelDeployment, ModelDeploymentStatus};
use trellis_placement::{place, Charge, Decision, Ledger, Outcome};

use crate::fleet::health;
use crate::fleet::ledger::{prune_ledger, restore_ledger};
use crate::fleet::pool_status::pool_status;
use crate::fleet::render::{orphans, render, teardown, Origin, PlacementRef};
use crate::fleet::snapshot::{build_snapshot, is_retiring, FleetObjects, FleetSnapshot};
use crate::fleet::status::deployment_status;

/// An object of the fleet with the workspace it lives in.
#[derive(Debug, Clone, Copy)]
pub struct At<'a, K> {
    /// The workspace's path, e.g. `root:platform`.
    pub workspace: &'a str,
    /// The workspace's logical cluster id.
    pub cluster: &'a str,
    pub object: &'a K,
}

/// Everything a pass decides over.
#[derive(Debug, Clone, Default)]
pub struct FleetRead<'a> {
    pub targets: Vec<At<'a, SyncTarget>>,
    pub pools: Vec<At<'a, GPUPool>>,
    pub deployments: Vec<At<'a, ModelDeployment>>,
    pub placements: Vec<At<'a, Placement>>,
    /// Uids of deployments that exist but are not decided on this pass.
    pub undecided: Vec<&'a str>,
}

/// A SyncTarget's health to write (both fields, as [`health::assess`] wants them).
#[derive(Debug, Clone, PartialEq)]
pub struct TargetWrite {
    /// Index into [`FleetRead::targets`].
    pub target: usize,
    pub taints: Vec<Taint>,
    pub conditions: Vec<Condition>,
}

/// A Placement to write.
#[derive(Debug, Clone, PartialEq)]
pub enum PlacementWrite {
    /// A new one, on the target at this index of [`FleetRead::targets`] (its workspace and
    /// namespace).
    Create {
        target: usize,
        placement: Placement,
        /// The deployment's trace context (its create's), for the write to continue.
        trace: Option<String>,
    },
    /// The one at this index of [`FleetRead::placements`], rendered anew.
    Update { index: usize, placement: Placement },
}

/// What one pass writes, and when to look again.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pass {
    pub targets: Vec<TargetWrite>,
    pub placements: Vec<PlacementWrite>,
    /// Indexes into [`FleetRead::placements`], each once.
    pub deletes: BTreeSet<usize>,
    /// Index into [`FleetRead::deployments`] and the status it should have.
    pub deployments: Vec<(usize, ModelDeploymentStatus)>,
    /// Index into [`FleetRead::pools`] and the status it should have.
    pub pools: Vec<(usize, GPUPoolStatus)>,
    /// The earliest future time (seconds since the epoch) something is due.
    pub wake_at: Option<i64>,
    /// Readings the snapshot skipped or read leniently.
    pub warnings: Vec<String>,
    /// The ledger was restored from the Placements by this pass.
    pub restored_ledger: bool,
    /// Decisions taken (deployments decided on).
    pub decided: usize,
}

impl Pass {
    /// Whether the pass writes anything.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
            && self.placements.is_empty()
            && self.deletes.is_empty()
            && self.deployments.is_empty()
            && self.pools.is_empty()
    }
}

/// The earliest of several times after `now`.
struct Wake {
    now: i64,
    at: Option<i64>,
}

impl Wake {
    fn at(&mut self, time: Option<i64>) {
        if let Some(time) = time.filter(|t| *t > self.now) {
            self.at = Some(self.at.map_or(time, |at| at.min(time)));
        }
    }
}

/// One pass over `read` at `now` (seconds since the epoch), with the ledger kept between
/// passes (`None`: restore it from the Placements).
pub fn pass(read: &FleetRead<'_>, ledger: &mut Option<Ledger>, now: i64) -> Pass {
    let mut out = Pass::default();
    let mut wake = Wake { now, at: None };

    // 1. Health: the targets as they will be once written.
    let mut assessed: Vec<Option<SyncTarget>> = Vec::with_capacity(read.targets.len());
    for (index, at) in read.targets.iter().enumerate() {
        let health = health::assess(at.object, now);
        wake.at(health.recheck_at);
        if !(health.taints_changed || health.conditions_changed) {
            assessed.push(None);
            continue;
        }
        let mut target = at.object.clone();
        target.spec.taints = health.taints.clone();
        target
            .status
            .get_or_insert_with(Default::default)
            .conditions = health.conditions.clone();
        out.targets.push(TargetWrite {
            target: index,
            taints: health.taints,
            conditions: health.conditions,
        });
        assessed.push(Some(target));
    }
    let targets: Vec<(&str, &SyncTarget)> = read
        .targets
        .iter()
        .zip(&assessed)
        .map(|(at, assessed)| (at.workspace, assessed.as_ref().unwrap_or(at.object)))
        .collect();

    // 2. One snapshot of everything.
    let pools = pairs(&read.pools);
    let deployments = pairs(&read.deployments);
    let placements = pairs(&read.placements);
    let fleet = build_snapshot(
        &FleetObjects {
            targets: &targets,
            pools: &pools,
            deployments: &deployments,
            placements: &placements,
        },
        now,
    );
    out.warnings.clone_from(&fleet.warnings);

    // 3. The ledger.
    let ledger = match ledger {
        Some(ledger) => ledger,
        None => {
            out.restored_ledger = true;
            ledger.insert(restore_ledger(&fleet, &placements))
        }
    };
    prune_ledger(ledger, &fleet);

    // 4. Decide.
    let mut decisions = place(&fleet.snapshot, ledger);
    decisions.extend(fleet.refused.iter().cloned());
    out.decided = decisions.len();

    // 5. Per deployment: its Placements and status.
    let decision_of: HashMap<&str, &Decision> =
        decisions.iter().map(|d| (d.uid.as_str(), d)).collect();
    let lookup = Lookup::new(read, &placements);
    for (index, at) in read.deployments.iter().enumerate() {
        let uid = at.object.metadata.uid.as_deref().unwrap_or_default();
        let decision = decision_of.get(uid).copied();
        lookup.deployment(
            &mut out, &mut wake, index, at, decision, &targets, &fleet, now,
        );
    }

    // 6. Per pool.
    for (index, at) in read.pools.iter().enumerate() {
        let status = pool_status(at.workspace, at.object, &fleet, &decisions, now);
        if at.object.status.as_ref() != Some(&status) {
            out.pools.push((index, status));
        }
    }

    // 7. Placements of deployments that exist nowhere.
    let live: BTreeSet<&str> = read
        .deployments
        .iter()
        .filter_map(|at| at.object.metadata.uid.as_deref())
        .chain(read.undecided.iter().copied())
        .collect();
    out.deletes.extend(
        orphans(&placements, &live)
            .iter()
            .filter_map(|r| lookup.placement_index.get(r).copied()),
    );

    out.wake_at = wake.at;
    out
}

/// A pass over deployments created since the last pass and nothing else: `read` holds every
/// target and pool, the new deployments, and no Placements (none of them has one yet);
/// `charged` is the quota the other deployments use. `None` when the pass cannot stand for a
/// whole one: a target's health is due to change, a new deployment is one the engine refuses,
/// or one of them is not scheduled (older deployments waiting for room or quota might take
/// it first in a whole pass, and the whole pass explains refusals with the full picture).
/// The ledger is left untouched then; otherwise it books what was placed, as [`pass`] would.
///
/// Why the decisions equal a whole pass's (the engine's property test (6) checks it): since
/// the last pass nothing but these deployments changed, so every older deployment keeps what
/// it has (a whole pass over unchanged inputs is stable), and those that were waiting still
/// cannot fit (nothing was freed); the new ones are younger than all of them, so a whole pass
/// would decide them last, against the same free GPUs and quota.
pub fn fast(
    read: &FleetRead<'_>,
    charged: Vec<Charge>,
    ledger: &mut Ledger,
    now: i64,
) -> Option<Pass> {
    let mut out = Pass::default();
    let mut wake = Wake { now, at: None };
    for at in &read.targets {
        let health = health::assess(at.object, now);
        if health.taints_changed || health.conditions_changed {
            return None;
        }
    }
    let targets = pairs(&read.targets);
    let pools = pairs(&read.pools);
    let deployments = pairs(&read.deployments);
    let mut fleet = build_snapshot(
        &FleetObjects {
            targets: &targets,
            pools: &pools,
            deployments: &deployments,
            placements: &[],
        },
        now,
    );
    if !fleet.refused.is_empty() || fleet.snapshot.deployments.len() != read.deployments.len() {
        return None;
    }
    fleet.snapshot.charged = charged;
    let mut trial = ledger.clone();
    let decisions = place(&fleet.snapshot, &mut trial);
    if decisions.iter().any(|d| d.outcome != Outcome::Scheduled) {
        return None;
    }
    *ledger = trial;
    out.warnings.clone_from(&fleet.warnings);
    out.decided = decisions.len();
    let decision_of: HashMap<&str, &Decision> =
        decisions.iter().map(|d| (d.uid.as_str(), d)).collect();
    let lookup = Lookup::new(read, &[]);
    for (index, at) in read.deployments.iter().enumerate() {
        let uid = at.object.metadata.uid.as_deref().unwrap_or_default();
        let decision = decision_of.get(uid).copied();
        lookup.deployment(
            &mut out, &mut wake, index, at, decision, &targets, &fleet, now,
        );
    }
    out.wake_at = wake.at;
    Some(out)
}

/// Objects with their workspace paths, as the fleet glue takes them.
fn pairs<'a, K>(read: &[At<'a, K>]) -> Vec<(&'a str, &'a K)> {
    read.iter().map(|at| (at.workspace, at.object)).collect()
}

/// The indexes step 5 of a pass looks objects up in.
struct Lookup<'a> {
    /// Deployment uid → its Placements.
    placements_of: HashMap<&'a str, Vec<(&'a str, &'a Placement)>>,
    placement_index: HashMap<PlacementRef, usize>,
    /// (workspace, name) → index into [`FleetRead::targets`].
    target_index: HashMap<(&'a str, &'a str), usize>,
}

impl<'a> Lookup<'a> {
    fn new(read: &FleetRead<'a>, placements: &[(&'a str, &'a Placement)]) -> Self {
        let mut placements_of: HashMap<&str, Vec<(&str, &Placement)>> = HashMap::new();
        for (workspace, p) in placements {
            placements_of
                .entry(p.spec.origin.uid.as_str())
                .or_default()
                .push((workspace, p));
        }
        let placement_index = placements
            .iter()
            .enumerate()
            .map(|(i, (workspace, p))| (PlacementRef::of(workspace, p), i))
            .collect();
        let target_index = read
            .targets
            .iter()
            .enumerate()
            .map(|(i, at)| {
                let name = at.object.metadata.name.as_deref().unwrap_or_default();
                ((at.workspace, name), i)
            })
            .collect();
        Lookup {
            placements_of,
            placement_index,
            target_index,
        }
    }

    /// One deployment's writes: its Placements (or their teardown) and status, and when to
    /// look at it again. `targets` are the targets as they will be after the pass's health
    /// writes, at the indexes of [`FleetRead::targets`].
    #[allow(clippy::too_many_arguments)]
    fn deployment(
        &self,
        out: &mut Pass,
        wake: &mut Wake,
        index: usize,
        at: &At<'_, ModelDeployment>,
        decision: Option<&Decision>,
        targets: &[(&str, &SyncTarget)],
        fleet: &FleetSnapshot,
        now: i64,
    ) {
        let md = at.object;
        let uid = md.metadata.uid.as_deref().unwrap_or_default();
        let previous = self.placements_of.get(uid).map_or(&[][..], Vec::as_slice);
        if md.metadata.deletion_timestamp.is_some() {
            out.deletes.extend(
                teardown(previous)
                    .iter()
                    .filter_map(|r| self.placement_index.get(r).copied()),
            );
            return;
        }
        let Some(decision) = decision else {
            return;
        };
        let origin = Origin {
            workspace: at.workspace,
            cluster: at.cluster,
            deployment: md,
        };
        let plan = render(&origin, decision, previous, now);
        let status = deployment_status(md, decision, &plan, previous, fleet, now);
        if md.status.as_ref() != Some(&status) {
            out.deployments.push((index, status));
        }
        for desired in plan.writes() {
            let at = desired.reference();
            let write = match self.placement_index.get(&at) {
                Some(&index) => PlacementWrite::Update {
                    index,
                    placement: desired.placement.clone(),
                },
                None => {
                    let target = target_of_namespace(&at.namespace)
                        .and_then(|name| self.target_index.get(&(at.workspace.as_str(), name)));
                    let Some(&target) = target else {
                        out.warnings.push(format!(
                            "Placement {}/{}/{} is for a target this pass does not know; not created",
                            at.workspace, at.namespace, at.name
                        ));
                        continue;
                    };
                    PlacementWrite::Create {
                        target,
                        placement: desired.placement.clone(),
                        trace: md
                            .metadata
                            .annotations
                            .as_ref()
                            .and_then(|a| a.get(trellis_apis::TRACEPARENT_ANNOTATION))
                            .cloned(),
                    }
                }
            };
            out.placements.push(write);
        }
        out.deletes.extend(
            plan.delete
                .iter()
                .filter_map(|r| self.placement_index.get(r).copied()),
        );
        wake.at(plan.requeue_at);
        // Replicas on a tainted target move when the deployment's toleration runs out.
        for (workspace, p) in previous {
            if is_retiring(p) || p.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let target = p
                .metadata
                .namespace
                .as_deref()
                .and_then(target_of_namespace)
                .and_then(|name| self.target_index.get(&(*workspace, name)));
            if let Some(&target) = target {
                let spec = &targets[target].1.spec;
                wake.at(health::failover_deadline(spec, &md.spec.failover));
            }
        }
    }
}
