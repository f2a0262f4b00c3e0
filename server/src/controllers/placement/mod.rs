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
//! One key, [`WholeFleet`]: every pass decides over the whole fleet. Placement is one
//! decision over all deployments (quota is shared within a pool, capacity within a target,
//! older deployments go first, a deployment may move between providers' pools) and the
//! ledger of booked GPUs and its booking ids are global, so per-workspace keys would only
//! split one computation into many that must all see the same ledger. A pass of 1,000
//! deployments places in about 10 ms; the rest is linear in the objects. Any change of the
//! four resources queues the key, but for changes no decision depends on: a ModelDeployment's
//! or GPUPool's status alone (only this controller writes it), and a heartbeat alone of a
//! target that is still fresh (see [`objects::target_changed`]). The work queue holds the key
//! once however many changes come, and passes start at least [`MIN_INTERVAL`] apart, so a
//! burst of changes is one or two passes. The pass asks to run again at the earliest time
//! something is due (a heartbeat going stale, a failover deadline, a grace period), and a
//! resync looks every [`RESYNC`].
//!
//! The pass itself is [`pass::pass`], pure; this module reads the reflectors, calls it and
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
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use serde_json::json;
use tokio::time::Instant;
use trellis_apis::compute::placement::target_namespace;
use trellis_apis::compute::{GPUPool, Placement, SyncTarget};
use trellis_apis::serving::ModelDeployment;
use trellis_placement::Ledger;
use trellis_storage::{ListScope, Preconditions, StorageError, Store};

use super::runtime::committer::{self, parse, Committed};
use super::runtime::{every_shard, Action, Controller, Error, Reconciler, Reflector, Running};
use super::ControllerContext;
use crate::machinery::deletion::{self, Deleted, Propagation};
use crate::registry::ResourceType;
use crate::registry::Scheme;
use crate::tenancy::workspaces::ROOT_CLUSTER;
use objects::{keep, spec_or_metadata_changed, target_changed, with_health, with_placement, Kept};
use pass::{At, FleetRead, Pass, PlacementWrite};

/// Passes start at least this far apart: changes arriving meanwhile are taken by the next.
/// Short, so that a deployment waits for at most the pass in progress: a burst of creates is
/// taken in batches as fast as the passes go.
pub const MIN_INTERVAL: Duration = Duration::from_millis(20);
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
    let controller = Controller::new("placement")
        .watches(&targets, |change| {
            target_changed(change, clock().0).then_some(WholeFleet)
        })
        .watches(&pools, |change| {
            spec_or_metadata_changed(change).then_some(WholeFleet)
        })
        .watches(&deployments, |change| {
            spec_or_metadata_changed(change).then_some(WholeFleet)
        })
        .watches(&placements, |_| Some(WholeFleet))
        .resync(RESYNC, || vec![WholeFleet]);
    let reconciler = PlacementReconciler {
        ctx: ctx.clone(),
        types,
        targets,
        pools,
        placements,
        deployments,
        state: tokio::sync::Mutex::new(State::default()),
    };
    running.spawn(controller.run(Arc::new(reconciler), running.token()));
}

/// What the controller keeps between passes (one leadership term).
#[derive(Default)]
struct State {
    /// `None` until the next pass restores it.
    ledger: Option<Ledger>,
    /// Target namespaces known to exist: (logical cluster id, namespace).
    namespaces: HashSet<(String, String)>,
    /// The snapshot's warnings of the last pass, so each is logged once, when it appears.
    warnings: HashSet<String>,
    last_pass: Option<Instant>,
}

struct PlacementReconciler {
    ctx: ControllerContext,
    types: Types,
    targets: Reflector<Kept<SyncTarget>>,
    pools: Reflector<Kept<GPUPool>>,
    placements: Reflector<Kept<Placement>>,
    deployments: Reflector<Kept<ModelDeployment>>,
    state: tokio::sync::Mutex<State>,
}

impl Reconciler for PlacementReconciler {
    type Key = WholeFleet;

    async fn reconcile(&self, _: &WholeFleet) -> Result<Action, Error> {
        // One pass at a time (the work queue already ensures it for the one key).
        let mut state = self.state.lock().await;
        if let Some(last) = state.last_pass {
            tokio::time::sleep_until(last + MIN_INTERVAL).await;
        }
        let outcome = self.pass(&mut state).await;
        state.last_pass = Some(Instant::now());
        outcome
    }
}

/// Where a write landed: the shard and the revision it was written at.
type Landed = Option<(String, u64)>;

/// What a write came to.
enum Written {
    /// Landed (or nothing needed writing).
    Done(Landed),
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
    async fn pass(&self, state: &mut State) -> Result<Action, Error> {
        let started = Instant::now();
        let (now, now_ms) = clock();
        let targets = self.targets.list();
        let pools = self.pools.list();
        let placements = self.placements.list();
        let deployments = self.deployments.list();

        // Workspace paths, each cluster looked up once.
        let mut paths: HashMap<&str, Option<String>> = HashMap::new();
        let clusters = targets
            .iter()
            .map(|k| &k.stored.key.cluster)
            .chain(pools.iter().map(|k| &k.stored.key.cluster))
            .chain(placements.iter().map(|k| &k.stored.key.cluster))
            .chain(deployments.iter().map(|k| &k.stored.key.cluster));
        for cluster in clusters {
            if !paths.contains_key(cluster.as_str()) {
                let path = self.path_of(cluster).await;
                paths.insert(cluster, path);
            }
        }
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
        self.ctx.metrics.set_fleet(&fleet_health(
            targets.iter().map(|k| &k.object),
            pools.iter().map(|k| &k.object),
            now_ms,
        ));
        self.log_warnings(state, &plan);
        if plan.restored_ledger {
            tracing::info!(
                holds = state.ledger.as_ref().map_or(0, |l| l.holds().count()),
                placements = read.placements.len(),
                "placement: ledger restored from the Placements"
            );
        }

        // Every target has its namespace before anything is placed in it.
        for target in &kept_targets {
            self.ensure_namespace(state, target).await?;
        }
        let ops = operations(
            &plan,
            &kept_targets,
            &kept_placements,
            &kept_deployments,
            &kept_pools,
        )?;
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
                Ok(Written::Done(Some((shard, revision)))) => {
                    let at = landed.entry(shard).or_default();
                    *at = (*at).max(revision);
                }
                Ok(Written::Done(None)) => {}
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
        tracing::debug!(
            decided = plan.decided,
            writes = count,
            raced,
            unresolved,
            decided_in = ?decided_in,
            took = ?started.elapsed(),
            "placement pass"
        );
        if let Some(e) = failed {
            return Err(e);
        }
        let wake = plan.wake_at.map(|at| until(at, now_ms));
        let soon = (raced > 0 || !caught_up).then_some(RETRY);
        let later = (unresolved > 0).then_some(UNRESOLVED_RETRY);
        Ok(match [wake, soon, later].into_iter().flatten().min() {
            Some(after) => Action::requeue(after),
            None => Action::await_change(),
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

    fn log_warnings(&self, state: &mut State, plan: &Pass) {
        let now: HashSet<String> = plan.warnings.iter().cloned().collect();
        for warning in now.difference(&state.warnings) {
            tracing::warn!(warning = %warning, "placement: a fleet object was read leniently");
        }
        state.warnings = now;
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
                Ok(landed(shard, committed))
            }
            Op::Create { target, placement } => {
                let (shard, store) = self.store_of(&self.targets, &target.stored)?;
                let object = objects::to_value(placement)?;
                let committed = committer::create(
                    &store,
                    &types.placements,
                    &target.stored.key.cluster,
                    placement.metadata.namespace.as_deref(),
                    object,
                )
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
                Ok(landed(shard, committed))
            }
            Op::Update { current, placement } => {
                let (shard, store) = self.store_of(&self.placements, &current.stored)?;
                let desired = with_placement(&parse(&current.stored)?, placement)?;
                let committed =
                    committer::update(&store, &types.placements, &current.stored, desired).await?;
                Ok(landed(shard, committed))
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
                    Ok(Deleted::Gone(gone)) | Ok(Deleted::Pending(gone)) => {
                        tracing::info!(
                            workspace = %stored.key.cluster,
                            namespace = %stored.key.namespace,
                            placement = %stored.key.name,
                            "placement: deleted"
                        );
                        Ok(Written::Done(Some((shard, gone.revision))))
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
                Ok(landed(shard, committed))
            }
            Op::PoolStatus { current, status } => {
                let (shard, store) = self.store_of(&self.pools, &current.stored)?;
                let committed =
                    committer::update_status(&store, &types.pools, &current.stored, status).await?;
                Ok(landed(shard, committed))
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

fn landed(shard: String, committed: Committed) -> Written {
    match committed {
        Committed::Written(stored) | Committed::Created(stored) => {
            Written::Done(Some((shard, stored.revision)))
        }
        Committed::Unchanged | Committed::Deleted => Written::Done(None),
        Committed::Exists | Committed::Gone => Written::Raced,
    }
}

/// The writes of `plan`, with the objects they write over.
fn operations<'a>(
    plan: &'a Pass,
    targets: &[&'a Kept<SyncTarget>],
    placements: &[&'a Kept<Placement>],
    deployments: &[&'a Kept<ModelDeployment>],
    pools: &[&'a Kept<GPUPool>],
) -> Result<Vec<Op<'a>>, Error> {
    let missing = || Error::Invalid("a pass named an object it was not given".into());
    let mut ops = Vec::new();
    for write in &plan.targets {
        let target = targets.get(write.target).ok_or_else(missing)?;
        ops.push(Op::Health { target, write });
    }
    for write in &plan.placements {
        ops.push(match write {
            PlacementWrite::Create { target, placement } => Op::Create {
                target: targets.get(*target).ok_or_else(missing)?,
                placement,
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
