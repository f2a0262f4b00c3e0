//! The hub's placement controller: places every ModelDeployment of every tenant workspace on
//! the SyncTargets of the GPUPool it names, as Placement objects in the target's namespace
//! (`target-<name>`) of the provider workspace, where tenants never see them; keeps the
//! targets' health (heartbeat conditions, the unreachable taint), the deployments' and the
//! pools' status; moves replicas off lost targets and removes the old copies once the new ones
//! are available; removes the Placements of deleted deployments.
//!
//! Wiring ([`wire`]): one reflector per resource across every shard (SyncTargets, GPUPools,
//! Placements, ModelDeployments; never one per workspace), each keeping the typed object
//! beside the stored one ([`objects::Kept`]), so a change is parsed once, when it arrives.
//! Logical cluster ids become workspace paths through the workspace index, as the fleet glue
//! works with paths.
//!
//! One key, [`WholeFleet`]: placement is one decision over all deployments (quota is shared
//! within a pool, capacity within a target, older deployments go first, a deployment may move
//! between providers' pools) and the ledger of booked GPUs and its booking ids are global, so
//! per-workspace keys would only split one computation into many that must all see the same
//! ledger. The handlers record what changed ([`Changes`]) beside queuing the key, and each
//! reconcile is one of two passes:
//! - **Whole** ([`pass::pass`]): everything read and decided, linear in the fleet (about
//!   10 ms for the engine alone with 1,000 deployments). It runs when anything but new
//!   deployments changed: a target (but for a heartbeat alone of a target still fresh, see
//!   [`objects::target_changed`]), a pool's or deployment's spec or metadata, someone else's
//!   change of a Placement (a syncer's status, a deletion), a time something is due, a write
//!   that failed or raced, a new leadership term, the resync every [`RESYNC`]. Whole passes
//!   start at least [`MIN_INTERVAL`] apart.
//! - **New deployments only** ([`pass::fast`]), when nothing else changed: the targets and
//!   pools as read, the new deployments, and the quota every other deployment holds as
//!   charges; cost in the new deployments, not the fleet. The engine's property test shows it
//!   decides as a whole pass would; it stands down for a whole pass when a target's health is
//!   due to change or a new deployment does not fit. It leaves the pools' status to a whole
//!   pass [`SETTLE_QUIET`] after the new deployments pause ([`SETTLE_LATEST`] at the latest).
//!
//! Status changes alone of deployments and pools bring no pass (only this controller writes
//! them), nor do the controller's own Placement writes, which it recognises by key and
//! revision when the reflector reports them ([`State::own`]). The work queue holds the key
//! once however many changes come, so a burst of creates is taken in batches as fast as the
//! passes go.
//!
//! Both passes are pure functions ([`pass`]); this module reads the reflectors, calls one and
//! writes with the committer, many writes at once: SyncTarget health as one preconditioned
//! update, statuses as status writes (everything else as read), Placements created, updated
//! or deleted preconditioned on what was read, in namespaces the controller creates once per
//! target and leadership term. After writing, it waits until its reflectors have seen its
//! own writes, so the next pass never decides on a world without them (a Placement it just
//! created would otherwise be placed a second time).
//!
//! The ledger lives in the reconciler, so once per leadership term (every term starts a new
//! controller) it is restored from the Placements; it is also dropped, to be restored by the
//! next pass, when a Placement write does not land, so it never holds GPUs for a Placement
//! that was not written.

pub mod objects;
pub mod pass;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use serde_json::json;
use tokio::time::Instant;
use tracing::Instrument;
use trellis_apis::compute::placement::target_namespace;
use trellis_apis::compute::{GPUPool, Placement, SyncTarget};
use trellis_apis::serving::ModelDeployment;
use trellis_placement::Ledger;
use trellis_storage::{ListScope, ObjectKey, Preconditions, StorageError, Store};

use super::runtime::committer::{self, parse, Committed};
use super::runtime::{every_shard, Action, Controller, Error, Reconciler, Reflector, Running};
use super::ControllerContext;
use crate::fleet::snapshot::{quota_charge, running_replicas};
use crate::machinery::deletion::{self, Deleted, Propagation};
use crate::registry::ResourceType;
use crate::registry::Scheme;
use crate::tenancy::workspaces::ROOT_CLUSTER;
use objects::{keep, spec_or_metadata_changed, target_changed, with_health, with_placement, Kept};
use pass::{At, FleetRead, Pass, PlacementWrite};

/// Whole passes start at least this far apart: changes arriving meanwhile are taken by the
/// next.
pub const MIN_INTERVAL: Duration = Duration::from_millis(20);
/// After passes over new deployments alone, the whole pass that catches up with everything
/// they leave out (pools' status) comes once they pause this long...
const SETTLE_QUIET: Duration = Duration::from_millis(500);
/// ...or after this long at the latest.
const SETTLE_LATEST: Duration = Duration::from_secs(10);
/// A pass now and then, whatever the triggers said.
pub const RESYNC: Duration = Duration::from_secs(60);
/// Writes of one pass in flight at once: enough for Postgres to commit them in groups (one
/// flush for many), which is what bounds a pass of hundreds of writes.
const CONCURRENT_WRITES: usize = 64;
/// How long a pass waits for its reflectors to see its own writes.
const CATCH_UP: Duration = Duration::from_secs(10);
/// How soon to look again after a write lost a race, or the reflectors were slow to show
/// the pass's own writes.
const RETRY: Duration = Duration::from_secs(2);
/// How soon to look again when objects were left out because their workspace path is not
/// known (a workspace being created or deleted).
const UNRESOLVED_RETRY: Duration = Duration::from_secs(10);

/// The one key of the controller: the whole fleet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WholeFleet;

/// The four resources, as this server serves them.
struct Types {
    targets: ResourceType,
    pools: ResourceType,
    placements: ResourceType,
    deployments: ResourceType,
    namespaces: ResourceType,
}

impl Types {
    fn of(scheme: &Scheme) -> Result<Types, Error> {
        let compute = trellis_apis::compute::GROUP;
        let version = trellis_apis::compute::VERSION;
        let serving = trellis_apis::serving::GROUP;
        Ok(Types {
            targets: committer::builtin(scheme, compute, version, "synctargets")?.clone(),
            pools: committer::builtin(scheme, compute, version, "gpupools")?.clone(),
            placements: committer::builtin(scheme, compute, version, "placements")?.clone(),
            deployments: committer::builtin(
                scheme,
                serving,
                trellis_apis::serving::VERSION,
                "modeldeployments",
            )?
            .clone(),
            namespaces: committer::builtin(scheme, "", "v1", "namespaces")?.clone(),
        })
    }
}

/// Starts the controller, if this server serves the fleet's kinds.
pub fn wire(running: &mut Running, ctx: &ControllerContext) {
    let types = match Types::of(ctx.registry.scheme()) {
        Ok(types) => types,
        Err(e) => {
            tracing::debug!(error = %e, "the fleet's kinds are not served here: no placement controller");
            return;
        }
    };
    let targets = Reflector::new(
        "synctargets",
        ListScope::all_clusters(types.targets.storage_resource()),
        every_shard(&ctx.shards),
        keep::<SyncTarget>,
    );
    let pools = Reflector::new(
        "gpupools",
        ListScope::all_clusters(types.pools.storage_resource()),
        every_shard(&ctx.shards),
        keep::<GPUPool>,
    );
    let placements = Reflector::new(
        "placements",
        ListScope::all_clusters(types.placements.storage_resource()),
        every_shard(&ctx.shards),
        keep::<Placement>,
    );
    let deployments = Reflector::new(
        "modeldeployments",
        ListScope::all_clusters(types.deployments.storage_resource()),
        every_shard(&ctx.shards),
        keep::<ModelDeployment>,
    );
    running.spawn(targets.run(running.token()));
    running.spawn(pools.run(running.token()));
    running.spawn(placements.run(running.token()));
    running.spawn(deployments.run(running.token()));
    let changes: Arc<Mutex<Changes>> = Arc::default();
    let controller = Controller::new("placement")
        .watches(&targets, {
            let changes = changes.clone();
            move |change| {
                let changed = target_changed(change, clock().0);
                changes.lock().unwrap_or_else(|e| e.into_inner()).whole |= changed;
                changed.then_some(WholeFleet)
            }
        })
        .watches(&pools, {
            let changes = changes.clone();
            move |change| {
                let changed = spec_or_metadata_changed(change);
                changes.lock().unwrap_or_else(|e| e.into_inner()).whole |= changed;
                changed.then_some(WholeFleet)
            }
        })
        .watches(&deployments, {
            let changes = changes.clone();
            move |change| {
                let mut changes = changes.lock().unwrap_or_else(|e| e.into_inner());
                if change.old.is_none() && change.new.is_some() {
                    changes.created.push(change.key.clone());
                } else if spec_or_metadata_changed(change) {
                    changes.whole = true;
                } else {
                    return None;
                }
                Some(WholeFleet)
            }
        })
        .watches(&placements, {
            let changes = changes.clone();
            move |change| {
                let revision = change.new.as_ref().map(|kept| kept.stored.revision);
                changes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .placements
                    .push((change.key.clone(), revision));
                Some(WholeFleet)
            }
        })
        .resync(RESYNC, {
            let changes = changes.clone();
            move || {
                changes.lock().unwrap_or_else(|e| e.into_inner()).whole = true;
                vec![WholeFleet]
            }
        });
    let reconciler = PlacementReconciler {
        ctx: ctx.clone(),
        types,
        targets,
        pools,
        placements,
        deployments,
        changes,
        state: tokio::sync::Mutex::new(State::default()),
    };
    running.spawn(controller.run(Arc::new(reconciler), running.token()));
}

/// What changed since the last pass, as the reflectors' handlers saw it.
#[derive(Default)]
struct Changes {
    /// Something a pass over new deployments alone cannot stand for: the next pass is whole.
    whole: bool,
    /// Deployments seen for the first time.
    created: Vec<ObjectKey>,
    /// Placements changed: the key and the revision kept now (`None`: deleted). The pass
    /// tells its own writes from others'.
    placements: Vec<(ObjectKey, Option<u64>)>,
}

/// What the controller keeps between passes (one leadership term).
#[derive(Default)]
struct State {
    /// `None` until the next (whole) pass restores it.
    ledger: Option<Ledger>,
    /// Target namespaces known to exist: (logical cluster id, namespace).
    namespaces: HashSet<(String, String)>,
    /// The snapshot's warnings of the last pass, so each is logged once, when it appears.
    warnings: HashSet<String>,
    /// When the last whole pass ended.
    last_pass: Option<Instant>,
    /// Placements this controller wrote (key, revision) or deleted (key, `None`) whose
    /// changes the reflector has not reported yet: their reports need no pass.
    own: HashSet<(ObjectKey, Option<u64>)>,
    /// When a whole pass is due: something it found comes due then (a heartbeat going
    /// stale, a failover deadline, a grace period), or it must retry.
    due: Option<Instant>,
    /// After passes over new deployments: a whole pass once they stop for [`SETTLE_QUIET`],
    /// and at the latest at the second instant (pool status, and everything else such
    /// passes leave out).
    settle: Option<(Instant, Instant)>,
}

impl State {
    /// When the next whole pass is due, if any.
    fn next_whole(&self) -> Option<Instant> {
        let settle = self.settle.map(|(quiet, latest)| quiet.min(latest));
        [self.due, settle].into_iter().flatten().min()
    }

    fn action(&self, now: Instant) -> Action {
        match self.next_whole() {
            Some(at) => Action::requeue(at.saturating_duration_since(now)),
            None => Action::await_change(),
        }
    }
}

struct PlacementReconciler {
    ctx: ControllerContext,
    types: Types,
    targets: Reflector<Kept<SyncTarget>>,
    pools: Reflector<Kept<GPUPool>>,
    placements: Reflector<Kept<Placement>>,
    deployments: Reflector<Kept<ModelDeployment>>,
    changes: Arc<Mutex<Changes>>,
    state: tokio::sync::Mutex<State>,
}

impl Reconciler for PlacementReconciler {
    type Key = WholeFleet;

    async fn reconcile(&self, _: &WholeFleet) -> Result<Action, Error> {
        // One pass at a time (the work queue already ensures it for the one key).
        let mut state = self.state.lock().await;
        let changes = std::mem::take(&mut *self.changes.lock().unwrap_or_else(|e| e.into_inner()));
        let now = Instant::now();
        let mut whole = changes.whole
            || state.ledger.is_none()
            || state.next_whole().is_some_and(|at| at <= now);
        for change in changes.placements {
            // Someone else's change of a Placement (a syncer's status, a deletion) may free
            // or take GPUs: only a whole pass sees what.
            whole |= !state.own.remove(&change);
        }
        if !whole && !changes.created.is_empty() {
            match self.new_deployments(&mut state, &changes.created).await {
                Ok(true) => return Ok(state.action(Instant::now())),
                Ok(false) => whole = true,
                Err(e) => return Err(self.again(e)),
            }
        }
        if !whole {
            return Ok(state.action(now));
        }
        if let Some(last) = state.last_pass {
            tokio::time::sleep_until(last + MIN_INTERVAL).await;
        }
        state.own.clear();
        state.settle = None;
        state.due = None;
        let outcome = self.pass(&mut state).await;
        state.last_pass = Some(Instant::now());
        match outcome {
            Ok(action) => {
                if let Action::Requeue(after) = action {
                    state.due = Some(Instant::now() + after);
                }
                Ok(action)
            }
            Err(e) => Err(self.again(e)),
        }
    }
}

impl PlacementReconciler {
    /// A pass that failed is retried whole.
    fn again(&self, e: Error) -> Error {
        self.changes.lock().unwrap_or_else(|e| e.into_inner()).whole = true;
        e
    }
}

/// Where a write landed: the shard and the revision it was written at.
type Landed = Option<(String, u64)>;

/// What a write came to.
enum Written {
    /// Landed (or nothing needed writing), and for a Placement the change its reflector will
    /// report (see [`State::own`]).
    Done(Landed, Option<(ObjectKey, Option<u64>)>),
    /// Someone else wrote first, or the object was gone or already there: the next pass
    /// decides again on what is stored.
    Raced,
}

/// One write of a pass, with the objects as read.
enum Op<'a> {
    Health {
        target: &'a Kept<SyncTarget>,
        write: &'a pass::TargetWrite,
    },
    Create {
        target: &'a Kept<SyncTarget>,
        placement: &'a Placement,
        trace: Option<&'a str>,
    },
    Update {
        current: &'a Kept<Placement>,
        placement: &'a Placement,
    },
    Delete {
        current: &'a Kept<Placement>,
    },
    DeploymentStatus {
        current: &'a Kept<ModelDeployment>,
        status: serde_json::Value,
    },
    PoolStatus {
        current: &'a Kept<GPUPool>,
        status: serde_json::Value,
    },
}

impl Op<'_> {
    fn is_placement(&self) -> bool {
        matches!(
            self,
            Op::Create { .. } | Op::Update { .. } | Op::Delete { .. }
        )
    }
}

impl PlacementReconciler {
    /// A whole pass: everything read, decided and written.
    async fn pass(&self, state: &mut State) -> Result<Action, Error> {
        let started = Instant::now();
        let (now, now_ms) = clock();
        let targets = self.targets.list();
        let pools = self.pools.list();
        let placements = self.placements.list();
        let deployments = self.deployments.list();

        let paths = self
            .paths(
                targets
                    .iter()
                    .map(|k| &k.stored.key.cluster)
                    .chain(pools.iter().map(|k| &k.stored.key.cluster))
                    .chain(placements.iter().map(|k| &k.stored.key.cluster))
                    .chain(deployments.iter().map(|k| &k.stored.key.cluster)),
            )
            .await;
        let mut unresolved = 0usize;
        let (targets_at, kept_targets) = resolve(&paths, &targets, &mut unresolved);
        let (pools_at, kept_pools) = resolve(&paths, &pools, &mut unresolved);
        let (placements_at, kept_placements) = resolve(&paths, &placements, &mut unresolved);
        let (deployments_at, kept_deployments) = resolve(&paths, &deployments, &mut unresolved);
        let read = FleetRead {
            targets: targets_at,
            pools: pools_at,
            placements: placements_at,
            deployments: deployments_at,
            // Not decided on, but they exist: their Placements are no orphans.
            undecided: deployments
                .iter()
                .filter(|k| !paths_known(&paths, k))
                .map(|k| k.stored.uid.as_str())
                .collect(),
        };

        let plan = pass::pass(&read, &mut state.ledger, now);
        let decided_in = started.elapsed();
        self.record(&plan, decided_in);
        self.ctx.metrics.set_fleet(&fleet_health(
            targets.iter().map(|k| &k.object),
            pools.iter().map(|k| &k.object),
            now_ms,
        ));
        if plan.restored_ledger {
            tracing::info!(
                holds = state.ledger.as_ref().map_or(0, |l| l.holds().count()),
                placements = read.placements.len(),
                "placement: ledger restored from the Placements"
            );
        }
        let kept = KeptRead {
            targets: &kept_targets,
            placements: &kept_placements,
            deployments: &kept_deployments,
            pools: &kept_pools,
        };
        let wrote = self.write(state, &plan, &kept, true).await;
        tracing::debug!(
            whole = true,
            decided = plan.decided,
            unresolved,
            decided_in = ?decided_in,
            took = ?started.elapsed(),
            "placement pass"
        );
        let wrote = wrote?;
        let wake = plan.wake_at.map(|at| until(at, now_ms));
        let soon = wrote.retry.then_some(RETRY);
        let later = (unresolved > 0).then_some(UNRESOLVED_RETRY);
        Ok(match [wake, soon, later].into_iter().flatten().min() {
            Some(after) => Action::requeue(after),
            None => Action::await_change(),
        })
    }

    /// A pass over the deployments created since the last pass alone ([`pass::fast`]), for
    /// when nothing else changed: the other deployments only charge their quota. `false`
    /// when it cannot stand for a whole pass (nothing was decided or written then).
    async fn new_deployments(
        &self,
        state: &mut State,
        created: &[ObjectKey],
    ) -> Result<bool, Error> {
        let started = Instant::now();
        let (now, _) = clock();
        let Some(mut ledger) = state.ledger.take() else {
            return Ok(false);
        };
        let targets = self.targets.list();
        let pools = self.pools.list();
        let placements = self.placements.list();
        let deployments = self.deployments.list();
        let running = running_replicas(placements.iter().map(|k| &k.object));
        // A deployment that already runs was created while the last whole pass read, which
        // placed it.
        let mut seen = HashSet::new();
        let fresh: Vec<Arc<Kept<ModelDeployment>>> = created
            .iter()
            .filter(|key| seen.insert(*key))
            .filter_map(|key| self.deployments.get(key))
            .filter(|k| !running.contains_key(k.stored.uid.as_str()))
            .collect();
        if fresh.is_empty() {
            state.ledger = Some(ledger);
            return Ok(true);
        }
        if fresh
            .iter()
            .any(|k| k.object.metadata.deletion_timestamp.is_some())
        {
            state.ledger = Some(ledger);
            return Ok(false);
        }
        let new: HashSet<&str> = fresh.iter().map(|k| k.stored.uid.as_str()).collect();
        let paths = self
            .paths(
                targets
                    .iter()
                    .map(|k| &k.stored.key.cluster)
                    .chain(pools.iter().map(|k| &k.stored.key.cluster))
                    .chain(deployments.iter().map(|k| &k.stored.key.cluster)),
            )
            .await;
        let mut unresolved = 0usize;
        let (targets_at, kept_targets) = resolve(&paths, &targets, &mut unresolved);
        let (pools_at, kept_pools) = resolve(&paths, &pools, &mut unresolved);
        let mut new_unresolved = 0usize;
        let (fresh_at, kept_fresh) = resolve(&paths, &fresh, &mut new_unresolved);
        if unresolved + new_unresolved > 0 {
            state.ledger = Some(ledger);
            return Ok(false);
        }
        let charged = deployments
            .iter()
            .filter(|k| !new.contains(k.stored.uid.as_str()))
            .filter_map(|k| {
                let Some(Some(workspace)) = paths.get(k.stored.key.cluster.as_str()) else {
                    return None;
                };
                let running = running.get(k.stored.uid.as_str()).copied().unwrap_or(0);
                quota_charge(workspace, &k.object, running)
            })
            .collect();
        let read = FleetRead {
            targets: targets_at,
            pools: pools_at,
            deployments: fresh_at,
            ..FleetRead::default()
        };
        let plan = pass::fast(&read, charged, &mut ledger, now);
        state.ledger = Some(ledger);
        let Some(plan) = plan else {
            return Ok(false);
        };
        let decided_in = started.elapsed();
        self.record(&plan, decided_in);
        let kept = KeptRead {
            targets: &kept_targets,
            placements: &[],
            deployments: &kept_fresh,
            pools: &kept_pools,
        };
        let wrote = self.write(state, &plan, &kept, false).await;
        tracing::debug!(
            whole = false,
            decided = plan.decided,
            decided_in = ?decided_in,
            took = ?started.elapsed(),
            "placement pass"
        );
        let wrote = wrote?;
        let after = Instant::now();
        let latest = state
            .settle
            .map_or(after + SETTLE_LATEST, |(_, latest)| latest);
        state.settle = Some((after + SETTLE_QUIET, latest));
        if wrote.retry {
            state.due = Some(
                state
                    .due
                    .map_or(after + RETRY, |due| due.min(after + RETRY)),
            );
        }
        Ok(true)
    }

    /// A pass's decisions and writes in the metrics.
    fn record(&self, plan: &Pass, decided_in: std::time::Duration) {
        let creates = plan
            .placements
            .iter()
            .filter(|w| matches!(w, pass::PlacementWrite::Create { .. }))
            .count();
        self.ctx.metrics.placement_pass(
            decided_in,
            plan.decided,
            [creates, plan.placements.len() - creates, plan.deletes.len()],
        );
    }

    /// Workspace paths of the clusters, each looked up once (`None`: not known yet).
    async fn paths<'a>(
        &self,
        clusters: impl Iterator<Item = &'a String>,
    ) -> HashMap<&'a str, Option<String>> {
        let mut paths: HashMap<&str, Option<String>> = HashMap::new();
        for cluster in clusters {
            if !paths.contains_key(cluster.as_str()) {
                let path = self.path_of(cluster).await;
                paths.insert(cluster, path);
            }
        }
        paths
    }

    /// Writes what a pass decided, many writes at once, and waits until the reflectors show
    /// them. A Placement write that did not land drops the ledger (the next pass restores it
    /// from what is stored). `whole`: the plan is a whole pass's.
    async fn write(
        &self,
        state: &mut State,
        plan: &Pass,
        kept: &KeptRead<'_, '_>,
        whole: bool,
    ) -> Result<Wrote, Error> {
        self.log_warnings(state, plan, whole);
        // Every target has its namespace before anything is placed in it.
        for target in kept.targets {
            self.ensure_namespace(state, target).await?;
        }
        let ops = operations(plan, kept)?;
        let count = ops.len();
        // (A vector of futures, not a stream over a closure: the reconcile future must be
        // `Send` for every lifetime of the objects written.)
        let writes: Vec<_> = ops.into_iter().map(|op| self.commit_one(op)).collect();
        let results: Vec<(bool, Result<Written, Error>)> = futures::stream::iter(writes)
            .buffer_unordered(CONCURRENT_WRITES)
            .collect()
            .await;

        let mut landed: BTreeMap<String, u64> = BTreeMap::new();
        let mut raced = 0usize;
        let mut failed: Option<Error> = None;
        let mut placement_missed = false;
        for (placement, result) in results {
            match result {
                Ok(Written::Done(at, own)) => {
                    if let Some((shard, revision)) = at {
                        let at = landed.entry(shard).or_default();
                        *at = (*at).max(revision);
                    }
                    if let Some(own) = own {
                        state.own.insert(own);
                    }
                }
                Ok(Written::Raced) => {
                    raced += 1;
                    placement_missed |= placement;
                }
                Err(e) if e.is_conflict() => {
                    raced += 1;
                    placement_missed |= placement;
                }
                Err(e) => {
                    placement_missed |= placement;
                    failed.get_or_insert(e);
                }
            }
        }
        if placement_missed {
            // Holds may stand for Placements that were not written: restore from what is.
            state.ledger = None;
        }
        let caught_up = self.catch_up(&landed).await;
        tracing::debug!(writes = count, raced, caught_up, "placement writes");
        if let Some(e) = failed {
            return Err(e);
        }
        Ok(Wrote {
            retry: raced > 0 || !caught_up,
        })
    }

    /// The path of a logical cluster, from the index's cache or else from storage.
    async fn path_of(&self, cluster: &str) -> Option<String> {
        if cluster == ROOT_CLUSTER {
            return Some(ROOT_CLUSTER.to_string());
        }
        match self.ctx.index.cached_path(cluster) {
            Some(path) => Some(path),
            None => self.ctx.index.path_of(cluster).await,
        }
    }

    /// Logs the warnings not logged before. A whole pass's are all there are (those gone are
    /// forgotten, to be logged again should they return); a pass over new deployments sees
    /// only some, and only adds.
    fn log_warnings(&self, state: &mut State, plan: &Pass, whole: bool) {
        let now: HashSet<String> = plan.warnings.iter().cloned().collect();
        for warning in now.difference(&state.warnings) {
            tracing::warn!(warning = %warning, "placement: a fleet object was read leniently");
        }
        if whole {
            state.warnings = now;
        } else {
            state.warnings.extend(now);
        }
    }

    /// Creates namespace `target-<name>` in the target's workspace, once per term.
    async fn ensure_namespace(
        &self,
        state: &mut State,
        target: &Kept<SyncTarget>,
    ) -> Result<(), Error> {
        let cluster = &target.stored.key.cluster;
        let namespace = target_namespace(&target.stored.key.name);
        let known = (cluster.clone(), namespace);
        if state.namespaces.contains(&known) {
            return Ok(());
        }
        let Some((_, store)) = self.targets.shard_of(&target.stored.key) else {
            return Ok(());
        };
        let object =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": known.1}});
        committer::create(store, &self.types.namespaces, cluster, None, object).await?;
        state.namespaces.insert(known);
        Ok(())
    }

    /// Performs one write; whether it was a Placement's, and what it came to.
    async fn commit_one(&self, op: Op<'_>) -> (bool, Result<Written, Error>) {
        let placement = op.is_placement();
        (placement, self.commit(op).await)
    }

    /// Performs one write.
    async fn commit(&self, op: Op<'_>) -> Result<Written, Error> {
        let types = &self.types;
        match op {
            Op::Health { target, write } => {
                let (shard, store) = self.store_of(&self.targets, &target.stored)?;
                let desired =
                    with_health(&parse(&target.stored)?, &write.taints, &write.conditions)?;
                let committed =
                    committer::update(&store, &types.targets, &target.stored, desired).await?;
                Ok(landed(shard, committed, false))
            }
            Op::Create {
                target,
                placement,
                trace,
            } => {
                let (shard, store) = self.store_of(&self.targets, &target.stored)?;
                // The deployment's trace goes on through this write and, on the Placement,
                // to the syncer.
                let span = tracing::info_span!(
                    "placement.create",
                    deployment = %placement.spec.origin.name,
                    target = %target.stored.key.name,
                );
                if let Some(trace) = trace {
                    trellis_telemetry::continue_from(&span, trace);
                }
                let mut object = objects::to_value(placement)?;
                if let Some(traceparent) = trellis_telemetry::traceparent(&span) {
                    crate::machinery::object_meta::annotate(
                        &mut object,
                        trellis_apis::TRACEPARENT_ANNOTATION,
                        traceparent,
                    );
                }
                let committed = committer::create(
                    &store,
                    &types.placements,
                    &target.stored.key.cluster,
                    placement.metadata.namespace.as_deref(),
                    object,
                )
                .instrument(span)
                .await?;
                if let Committed::Created(created) = &committed {
                    tracing::info!(
                        workspace = %created.key.cluster,
                        namespace = %created.key.namespace,
                        placement = %created.key.name,
                        replicas = placement.spec.replicas,
                        "placement: created"
                    );
                }
                Ok(landed(shard, committed, true))
            }
            Op::Update { current, placement } => {
                let (shard, store) = self.store_of(&self.placements, &current.stored)?;
                let desired = with_placement(&parse(&current.stored)?, placement)?;
                let committed =
                    committer::update(&store, &types.placements, &current.stored, desired).await?;
                Ok(landed(shard, committed, true))
            }
            Op::Delete { current } => {
                let (shard, store) = self.store_of(&self.placements, &current.stored)?;
                let stored = &current.stored;
                let preconditions = Preconditions {
                    revision: Some(stored.revision),
                    uid: Some(stored.uid.clone()),
                };
                match deletion::delete(
                    &store,
                    &types.placements,
                    stored.key.clone(),
                    stored,
                    preconditions,
                    Propagation::Background,
                )
                .await
                {
                    Ok(deleted @ (Deleted::Gone(_) | Deleted::Pending(_))) => {
                        let (Deleted::Gone(gone) | Deleted::Pending(gone)) = &deleted;
                        tracing::info!(
                            workspace = %stored.key.cluster,
                            namespace = %stored.key.namespace,
                            placement = %stored.key.name,
                            "placement: deleted"
                        );
                        // The reflector reports a deletion without its revision, and a
                        // deletion still pending (a finalizer) as an update.
                        let own = match deleted {
                            Deleted::Pending(_) => Some(gone.revision),
                            _ => None,
                        };
                        Ok(Written::Done(
                            Some((shard, gone.revision)),
                            Some((stored.key.clone(), own)),
                        ))
                    }
                    Err(StorageError::NotFound(_)) => Ok(Written::Raced),
                    Err(e) => Err(e.into()),
                }
            }
            Op::DeploymentStatus { current, status } => {
                let (shard, store) = self.store_of(&self.deployments, &current.stored)?;
                let committed =
                    committer::update_status(&store, &types.deployments, &current.stored, status)
                        .await?;
                Ok(landed(shard, committed, false))
            }
            Op::PoolStatus { current, status } => {
                let (shard, store) = self.store_of(&self.pools, &current.stored)?;
                let committed =
                    committer::update_status(&store, &types.pools, &current.stored, status).await?;
                Ok(landed(shard, committed, false))
            }
        }
    }

    /// The shard (name and store) an object was read from.
    fn store_of<K: Send + Sync + 'static>(
        &self,
        reflector: &Reflector<Kept<K>>,
        stored: &trellis_storage::StoredObject,
    ) -> Result<(String, Store), Error> {
        reflector
            .shard_of(&stored.key)
            .map(|(name, store)| (name.to_string(), store.clone()))
            .ok_or_else(|| Error::Unavailable(format!("no shard holds {:?} any more", stored.key)))
    }

    /// Waits until every reflector has seen the writes that landed; whether they all have.
    async fn catch_up(&self, landed: &BTreeMap<String, u64>) -> bool {
        let mut all = true;
        for (shard, revision) in landed {
            all &= self
                .targets
                .wait_for_revision(shard, *revision, CATCH_UP)
                .await;
            all &= self
                .pools
                .wait_for_revision(shard, *revision, CATCH_UP)
                .await;
            all &= self
                .placements
                .wait_for_revision(shard, *revision, CATCH_UP)
                .await;
            all &= self
                .deployments
                .wait_for_revision(shard, *revision, CATCH_UP)
                .await;
        }
        all
    }
}

/// Now, in seconds and in milliseconds since the epoch.
/// The fleet's health for metrics: SyncTargets by their `Ready` condition, the stalest
/// heartbeat, and each pool class's allocated and total GPUs as its status says.
fn fleet_health<'a>(
    targets: impl Iterator<Item = &'a SyncTarget>,
    pools: impl Iterator<Item = &'a GPUPool>,
    now_ms: i64,
) -> crate::machinery::metrics::FleetHealth {
    let mut health = crate::machinery::metrics::FleetHealth::default();
    for target in targets {
        let status = target.status.as_ref();
        let ready = status.is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        });
        if ready {
            health.ready_targets += 1;
        } else {
            health.unready_targets += 1;
        }
        if let Some(beat) = status.and_then(|s| s.last_heartbeat_time.as_ref()) {
            let age = (now_ms - beat.0.as_millisecond()).max(0) as f64 / 1000.0;
            health.oldest_heartbeat_seconds = health.oldest_heartbeat_seconds.max(age);
        }
    }
    for pool in pools {
        let name = pool.metadata.name.clone().unwrap_or_default();
        for class in pool.status.iter().flat_map(|s| &s.classes) {
            health.pools.insert(
                (name.clone(), class.name.clone()),
                (i64::from(class.allocated), i64::from(class.capacity)),
            );
        }
    }
    health
}

fn clock() -> (i64, i64) {
    let ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    (ms.div_euclid(1000), ms)
}

/// How long from `now_ms` until second `at` has begun (a little after, so a pass then reads
/// a clock at or past it).
fn until(at: i64, now_ms: i64) -> Duration {
    let ms = at.saturating_mul(1000).saturating_sub(now_ms).max(0);
    Duration::from_millis(u64::try_from(ms).unwrap_or(0)) + Duration::from_millis(50)
}

fn paths_known<K>(paths: &HashMap<&str, Option<String>>, kept: &Kept<K>) -> bool {
    paths
        .get(kept.stored.key.cluster.as_str())
        .is_some_and(Option::is_some)
}

/// The objects whose workspace path is known, with it, and (at the same indexes) as kept;
/// the others are counted in `unresolved`.
fn resolve<'a, K>(
    paths: &'a HashMap<&str, Option<String>>,
    list: &'a [Arc<Kept<K>>],
    unresolved: &mut usize,
) -> (Vec<At<'a, K>>, Vec<&'a Kept<K>>) {
    let mut read = Vec::with_capacity(list.len());
    let mut kept = Vec::with_capacity(list.len());
    for object in list {
        let cluster = object.stored.key.cluster.as_str();
        match paths.get(cluster) {
            Some(Some(path)) => {
                read.push(At {
                    workspace: path,
                    cluster,
                    object: &object.object,
                });
                kept.push(&**object);
            }
            _ => *unresolved += 1,
        }
    }
    (read, kept)
}

/// What a write came to; `placement`: the object written is a Placement.
fn landed(shard: String, committed: Committed, placement: bool) -> Written {
    match committed {
        Committed::Written(stored) | Committed::Created(stored) => {
            let own = placement.then(|| (stored.key.clone(), Some(stored.revision)));
            Written::Done(Some((shard, stored.revision)), own)
        }
        Committed::Unchanged | Committed::Deleted => Written::Done(None, None),
        Committed::Exists | Committed::Gone => Written::Raced,
    }
}

/// The objects a pass was given, as kept, at the indexes of its [`FleetRead`].
struct KeptRead<'k, 'a> {
    targets: &'k [&'a Kept<SyncTarget>],
    placements: &'k [&'a Kept<Placement>],
    deployments: &'k [&'a Kept<ModelDeployment>],
    pools: &'k [&'a Kept<GPUPool>],
}

/// What writing a pass came to.
struct Wrote {
    /// A write lost a race, or the reflectors were slow to show the writes: look again soon.
    retry: bool,
}

/// The writes of `plan`, with the objects they write over.
fn operations<'a>(plan: &'a Pass, kept: &KeptRead<'_, 'a>) -> Result<Vec<Op<'a>>, Error> {
    let KeptRead {
        targets,
        placements,
        deployments,
        pools,
    } = *kept;
    let missing = || Error::Invalid("a pass named an object it was not given".into());
    let mut ops = Vec::new();
    for write in &plan.targets {
        let target = targets.get(write.target).ok_or_else(missing)?;
        ops.push(Op::Health { target, write });
    }
    for write in &plan.placements {
        ops.push(match write {
            PlacementWrite::Create {
                target,
                placement,
                trace,
            } => Op::Create {
                target: targets.get(*target).ok_or_else(missing)?,
                placement,
                trace: trace.as_deref(),
            },
            PlacementWrite::Update { index, placement } => Op::Update {
                current: placements.get(*index).ok_or_else(missing)?,
                placement,
            },
        });
    }
    for index in &plan.deletes {
        ops.push(Op::Delete {
            current: placements.get(*index).ok_or_else(missing)?,
        });
    }
    for (index, status) in &plan.deployments {
        ops.push(Op::DeploymentStatus {
            current: deployments.get(*index).ok_or_else(missing)?,
            status: objects::to_value(status)?,
        });
    }
    for (index, status) in &plan.pools {
        ops.push(Op::PoolStatus {
            current: pools.get(*index).ok_or_else(missing)?,
            status: objects::to_value(status)?,
        });
    }
    Ok(ops)
}
