//! From API objects to the placement engine's [`Snapshot`]: the SyncTargets and GPUPools of
//! provider workspaces, the ModelDeployments of tenant workspaces, and the Placements the hub
//! wrote (which say where each deployment runs now). Names follow [`super::keys`].
//!
//! Rules chosen where the API and the engine meet:
//! - Targets: `Ready` is the `Ready` condition being `True`; the heartbeat is
//!   `lastHeartbeatTime` (none: never, so stale). The inventory's reading time is the heartbeat
//!   time, because the syncer writes both in one status update; a target that never reported
//!   has no inventory (never assumed to have room). `gpus[]` become whole-GPU products; DRA
//!   pools listed in `incompletePools` are already left out of `gpus` by the syncer, so the
//!   reading undercounts and is used as is. MIG `partitions` become products of their own
//!   (`ProductId::mig`) with each available slice counted as if alone on a node, since the API
//!   reports no per-node spread for them: one-slice replicas fit exactly, larger ones never
//!   overbook. A histogram that cannot be real (negative counts, more than 1024 free on a node)
//!   drops that product, with a warning: capacity unknown is capacity zero.
//! - Taints: each `NoExecute` taint also keeps new replicas off the target, as an engine-only
//!   `NoSchedule` twin. Deployments carry no tolerations of their own; the engine gets one
//!   toleration per deployment, of every `NoExecute` taint for `failover.tolerationSeconds`, so
//!   running replicas leave a tainted target exactly when their grace runs out, while the twin
//!   keeps new ones from landing there. An effect the API does not know counts as
//!   `NoSchedule`.
//! - Selectors: an operator the API does not know makes its term select nothing.
//! - Placements give `existing`: one share per (deployment uid, target) from `spec.replicas`
//!   and the GPU product. Placements being deleted, or retiring (annotation
//!   `trellis.dev/retiring-since`, see `render`), are on their way out and not counted.
//! - Deployments being deleted are left out (the controller removes their Placements).
//!   Deployments the engine cannot take become [`FleetSnapshot::refused`] decisions that keep
//!   what runs: a malformed pool reference is `PoolNotFound`; a GPU count below one, a
//!   `maxTargets` below one or a missing uid is `NoTargetFits` (no target can take such a
//!   replica); the message names the field.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::num::NonZeroU32;

use k8s_openapi::api::core::v1::Taint as ApiTaint;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as ApiSelector;
use trellis_apis::compute::placement::conditions as placement_conditions;
use trellis_apis::compute::placement::reasons as placement_reasons;
use trellis_apis::compute::placement::{target_of_namespace, RETIRING_SINCE_ANNOTATION};
use trellis_apis::compute::sync_target::conditions as target_conditions;
use trellis_apis::compute::{GPUInventory, GPUPool, Placement, SyncTarget, SyncTargetStatus};
use trellis_apis::serving::{ModelDeployment, PlacementStrategy};
use trellis_placement::{
    Assignments, Charge, Decision, Deployment, FreeByNode, GpuClass, GpuPool, GpuProduct,
    HealthPolicy, Inventory, LabelSelector, Operator, Outcome, PlacementKey, ProductId,
    ProductInventory, Quota, Requirement, Share, Snapshot, Strategy, Taint, TaintEffect, Target,
    Tenant, Toleration, TolerationOperator,
};

use super::keys::{pool_key, target_key, WORKSPACE_LABEL};
use super::time::seconds;

/// The objects one pass decides over, each with the path of the workspace it lives in:
/// provider workspaces for targets, pools and Placements, tenant workspaces for deployments.
#[derive(Debug, Clone, Copy, Default)]
pub struct FleetObjects<'a> {
    pub targets: &'a [(&'a str, &'a SyncTarget)],
    pub pools: &'a [(&'a str, &'a GPUPool)],
    pub deployments: &'a [(&'a str, &'a ModelDeployment)],
    pub placements: &'a [(&'a str, &'a Placement)],
}

/// The engine's snapshot, plus what the engine does not need but the rest of this module does.
#[derive(Debug, Clone, Default)]
pub struct FleetSnapshot {
    /// For [`trellis_placement::place`].
    pub snapshot: Snapshot,
    /// Decisions for the deployments not handed to the engine (see the module notes): what
    /// runs stays, the outcome and message say why nothing else happens.
    pub refused: Vec<Decision>,
    /// Whole-GPU devices per product on each target (by key), from `totalDevices`: the
    /// engine only knows free ones, a pool's status reports capacity.
    pub totals: BTreeMap<String, Vec<(GpuProduct, u64)>>,
    /// Readings that were skipped or read leniently, for the controller's log.
    pub warnings: Vec<String>,
}

impl FleetSnapshot {
    /// The engine's view of a target, by key.
    pub fn target(&self, key: &str) -> Option<&Target> {
        self.snapshot.targets.iter().find(|t| t.name == key)
    }

    /// The engine's view of a deployment, by uid.
    pub fn deployment(&self, uid: &str) -> Option<&Deployment> {
        self.snapshot.deployments.iter().find(|d| d.uid == uid)
    }
}

/// Builds the snapshot of one pass at `now` (seconds since the epoch).
pub fn build_snapshot(objects: &FleetObjects<'_>, now: i64) -> FleetSnapshot {
    let mut fleet = FleetSnapshot {
        snapshot: Snapshot {
            now,
            health: HealthPolicy::default(),
            ..Snapshot::default()
        },
        ..FleetSnapshot::default()
    };
    let placements = PlacementIndex::new(objects.placements, &mut fleet.warnings);

    let mut seen = BTreeSet::new();
    for (workspace, target) in objects.targets {
        let key = target_key(
            workspace,
            target.metadata.name.as_deref().unwrap_or_default(),
        );
        if !seen.insert(key.clone()) {
            continue;
        }
        let (engine_target, totals) =
            convert_target(&key, workspace, target, &placements, &mut fleet.warnings);
        fleet.totals.insert(key, totals);
        fleet.snapshot.targets.push(engine_target);
    }

    for (workspace, pool) in objects.pools {
        fleet
            .snapshot
            .pools
            .push(convert_pool(workspace, pool, &mut fleet.warnings));
    }

    for (workspace, md) in objects.deployments {
        if md.metadata.deletion_timestamp.is_some() {
            continue;
        }
        match convert_deployment(workspace, md, &placements, now, &mut fleet.warnings) {
            Ok(d) => fleet.snapshot.deployments.push(d),
            Err(refused) => fleet.refused.push(*refused),
        }
    }
    fleet
}

/// The Placements that count, by deployment uid, and every Placement's origin by name.
struct PlacementIndex {
    existing: BTreeMap<String, Assignments>,
    /// Deployment uid → the targets whose syncer reports its current replicas unschedulable.
    refused: BTreeMap<String, BTreeSet<String>>,
    /// (target key, Placement name) → deployment uid, for the targets' `accounted` lists.
    origins: BTreeMap<(String, String), String>,
}

impl PlacementIndex {
    fn new(placements: &[(&str, &Placement)], warnings: &mut Vec<String>) -> Self {
        let mut index = Self {
            existing: BTreeMap::new(),
            refused: BTreeMap::new(),
            origins: BTreeMap::new(),
        };
        for (workspace, p) in placements {
            let name = p.metadata.name.as_deref().unwrap_or_default();
            let Some(target) = p
                .metadata
                .namespace
                .as_deref()
                .and_then(target_of_namespace)
            else {
                warnings.push(format!(
                    "Placement {workspace}/{name} is not in a target namespace; ignored"
                ));
                continue;
            };
            let key = target_key(workspace, target);
            let uid = p.spec.origin.uid.clone();
            index
                .origins
                .insert((key.clone(), name.to_string()), uid.clone());
            if p.metadata.deletion_timestamp.is_some() || is_retiring(p) {
                continue;
            }
            if reports_unschedulable(p) {
                index
                    .refused
                    .entry(uid.clone())
                    .or_default()
                    .insert(key.clone());
            }
            let Ok(replicas) = u32::try_from(p.spec.replicas) else {
                warnings.push(format!(
                    "Placement {workspace}/{name} has {} replicas; ignored",
                    p.spec.replicas
                ));
                continue;
            };
            let share = Share {
                product: ProductId::whole(p.spec.resources.gpu.product_name.clone()),
                replicas,
            };
            let shares = index.existing.entry(uid).or_default();
            match shares.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert(share);
                }
                Entry::Occupied(slot) => warnings.push(format!(
                    "a second Placement {workspace}/{name} of one deployment on {}; ignored",
                    slot.key()
                )),
            }
        }
        index
    }

    fn existing(&self, uid: &str) -> Assignments {
        self.existing.get(uid).cloned().unwrap_or_default()
    }

    fn refused(&self, uid: &str) -> BTreeSet<String> {
        self.refused.get(uid).cloned().unwrap_or_default()
    }
}

/// Whether the target's syncer reports that its cluster cannot schedule the Placement's
/// replicas as they now are (`Progressing` False, `Unschedulable`, after the syncer's timeout,
/// about the current generation).
fn reports_unschedulable(p: &Placement) -> bool {
    let Some(status) = &p.status else {
        return false;
    };
    let current =
        status.observed_generation.is_some() && status.observed_generation == p.metadata.generation;
    current
        && status.conditions.iter().any(|c| {
            c.type_ == placement_conditions::PROGRESSING
                && c.status == "False"
                && c.reason == placement_reasons::UNSCHEDULABLE
        })
}

/// Whether a Placement's replicas moved elsewhere and it only waits to be deleted.
pub fn is_retiring(placement: &Placement) -> bool {
    placement
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(RETIRING_SINCE_ANNOTATION))
}

fn convert_target(
    key: &str,
    workspace: &str,
    target: &SyncTarget,
    placements: &PlacementIndex,
    warnings: &mut Vec<String>,
) -> (Target, Vec<(GpuProduct, u64)>) {
    let mut labels: BTreeMap<String, String> = target.metadata.labels.clone().unwrap_or_default();
    labels.insert(WORKSPACE_LABEL.to_string(), workspace.to_string());
    let status = target.status.as_ref();
    let ready = status.is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == target_conditions::READY && c.status == "True")
    });
    let heartbeat = status
        .and_then(|s| s.last_heartbeat_time.as_ref())
        .map(seconds);
    let (inventory, totals) = match (status, heartbeat) {
        (Some(status), Some(at)) => {
            let (inventory, totals) = convert_inventory(key, status, at, placements, warnings);
            (Some(inventory), totals)
        }
        _ => (None, Vec::new()),
    };
    let engine_target = Target {
        name: key.to_string(),
        labels,
        taints: convert_taints(key, &target.spec.taints, warnings),
        ready,
        unschedulable: target.spec.unschedulable,
        last_heartbeat: heartbeat.unwrap_or(0),
        inventory,
    };
    (engine_target, totals)
}

/// The engine's taints of a target: the API's, plus a `NoSchedule` twin of each `NoExecute`.
fn convert_taints(key: &str, taints: &[ApiTaint], warnings: &mut Vec<String>) -> Vec<Taint> {
    let mut out: Vec<Taint> = Vec::with_capacity(taints.len() * 2);
    for t in taints {
        let effect = match t.effect.as_str() {
            "NoSchedule" => TaintEffect::NoSchedule,
            "PreferNoSchedule" => TaintEffect::PreferNoSchedule,
            "NoExecute" => TaintEffect::NoExecute,
            other => {
                warnings.push(format!(
                    "target {key}: taint {} has unknown effect {other:?}; treated as NoSchedule",
                    t.key
                ));
                TaintEffect::NoSchedule
            }
        };
        let taint = Taint {
            key: t.key.clone(),
            value: t.value.clone().unwrap_or_default(),
            effect,
            time_added: t.time_added.as_ref().map(seconds),
        };
        if effect == TaintEffect::NoExecute {
            out.push(Taint {
                effect: TaintEffect::NoSchedule,
                ..taint.clone()
            });
        }
        out.push(taint);
    }
    out
}

fn convert_inventory(
    key: &str,
    status: &SyncTargetStatus,
    observed_at: i64,
    placements: &PlacementIndex,
    warnings: &mut Vec<String>,
) -> (Inventory, Vec<(GpuProduct, u64)>) {
    let mut inventory = Inventory {
        observed_at,
        ..Inventory::default()
    };
    let mut totals = Vec::new();
    for gpu in &status.gpus {
        let product = GpuProduct {
            id: ProductId::whole(gpu.product_name.clone()),
            memory_mib: gpu
                .memory_mib
                .and_then(|m| u64::try_from(m).ok())
                .unwrap_or(0),
            architecture: gpu.architecture.clone(),
        };
        if inventory.product(&product.id).is_some() {
            warnings.push(format!(
                "target {key}: GPU product {:?} listed twice; the first counts",
                gpu.product_name
            ));
            continue;
        }
        totals.push((
            product.clone(),
            u64::try_from(gpu.total_devices).unwrap_or(0),
        ));
        match free_by_node(gpu) {
            Ok(free_by_node) => inventory.products.push(ProductInventory {
                product,
                free_by_node,
            }),
            Err(why) => warnings.push(format!(
                "target {key}: GPU product {:?}: {why}; its capacity counts as zero",
                gpu.product_name
            )),
        }
        for partition in &gpu.partitions {
            let Ok(available @ 1..) = u32::try_from(partition.available) else {
                continue;
            };
            let id = ProductId::mig(gpu.product_name.clone(), partition.r#type.clone());
            if inventory.product(&id).is_some() {
                continue;
            }
            // Each free slice as if alone on its node: see the module notes.
            let Ok(free_by_node) = FreeByNode::from_buckets([(1, available)]) else {
                continue;
            };
            inventory.products.push(ProductInventory {
                product: GpuProduct {
                    id,
                    memory_mib: mig_memory_mib(&partition.r#type),
                    architecture: gpu.architecture.clone(),
                },
                free_by_node,
            });
        }
    }
    for entry in &status.accounted {
        let origin = placements
            .origins
            .get(&(key.to_string(), entry.placement.clone()));
        match (origin, u64::try_from(entry.booking)) {
            (Some(uid), Ok(booking)) => {
                inventory
                    .accounted
                    .insert(PlacementKey::new(uid, key), booking);
            }
            // A Placement already deleted: nothing of it is held any more.
            (None, _) => {}
            (Some(_), Err(_)) => warnings.push(format!(
                "target {key}: accounted booking {} of {} is negative; ignored",
                entry.booking, entry.placement
            )),
        }
    }
    (inventory, totals)
}

/// The `freeByNode` histogram of one product, if it can be real.
fn free_by_node(gpu: &GPUInventory) -> Result<FreeByNode, String> {
    let mut buckets = Vec::with_capacity(gpu.free_by_node.len());
    for bucket in &gpu.free_by_node {
        match (
            u32::try_from(bucket.free_devices),
            u32::try_from(bucket.nodes),
        ) {
            (Ok(free), Ok(nodes)) => buckets.push((free, nodes)),
            _ => {
                return Err(format!(
                    "freeByNode entry {{freeDevices: {}, nodes: {}}} is negative",
                    bucket.free_devices, bucket.nodes
                ))
            }
        }
    }
    FreeByNode::from_buckets(buckets).map_err(|e| e.to_string())
}

/// Memory of one slice of a MIG profile such as `1g.18gb` (18 GiB), in MiB; 0 when the
/// profile does not say.
fn mig_memory_mib(profile: &str) -> u64 {
    profile
        .split_once('.')
        .and_then(|(_, memory)| memory.strip_suffix("gb"))
        .and_then(|gb| gb.parse::<u64>().ok())
        .map_or(0, |gb| gb.saturating_mul(1024))
}

fn convert_pool(workspace: &str, pool: &GPUPool, warnings: &mut Vec<String>) -> GpuPool {
    let name = pool_key(workspace, pool.metadata.name.as_deref().unwrap_or_default());
    let mut target_selector = convert_selector(
        pool.spec.target_selector.as_ref(),
        &format!("GPUPool {name}"),
        warnings,
    );
    // Only the pool's own workspace's targets.
    target_selector
        .match_labels
        .insert(WORKSPACE_LABEL.to_string(), workspace.to_string());
    let count = |n: i32| u32::try_from(n).unwrap_or(0);
    GpuPool {
        name,
        target_selector,
        classes: pool
            .spec
            .classes
            .iter()
            .map(|c| GpuClass {
                name: c.name.clone(),
                product: c.r#match.product_name.clone(),
                min_memory_mib: c
                    .r#match
                    .min_memory_mib
                    .map(|m| u64::try_from(m).unwrap_or(0)),
                architecture: c.r#match.architecture.clone(),
                // The API's classes have no MIG profile yet: whole GPUs only.
                partition: None,
            })
            .collect(),
        tenants: pool
            .spec
            .tenants
            .iter()
            .map(|t| Tenant {
                workspace: t.workspace.clone(),
                weight: count(t.weight),
                quotas: t
                    .quotas
                    .iter()
                    .map(|q| Quota {
                        class: q.class.clone(),
                        nominal_quota: count(q.nominal_quota),
                        borrowing_limit: q.borrowing_limit.map(count),
                        lending_limit: q.lending_limit.map(count),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// The engine's form of a Kubernetes label selector; absent selects everything.
fn convert_selector(
    selector: Option<&ApiSelector>,
    whose: &str,
    warnings: &mut Vec<String>,
) -> LabelSelector {
    let Some(selector) = selector else {
        return LabelSelector::everything();
    };
    let match_expressions = selector
        .match_expressions
        .iter()
        .flatten()
        .map(|e| {
            let values = e.values.clone().unwrap_or_default();
            let operator = match e.operator.as_str() {
                "In" => Operator::In(values),
                "NotIn" => Operator::NotIn(values),
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    warnings.push(format!(
                        "{whose}: selector operator {other:?} on {} is unknown; the term selects nothing",
                        e.key
                    ));
                    Operator::In(Vec::new())
                }
            };
            Requirement::new(e.key.clone(), operator)
        })
        .collect();
    LabelSelector {
        match_labels: selector.match_labels.clone().unwrap_or_default(),
        match_expressions,
    }
}

fn convert_deployment(
    workspace: &str,
    md: &ModelDeployment,
    placements: &PlacementIndex,
    now: i64,
    warnings: &mut Vec<String>,
) -> Result<Deployment, Box<Decision>> {
    let uid = md.metadata.uid.clone().unwrap_or_default();
    let namespace = md.metadata.namespace.clone().unwrap_or_default();
    let name = md.metadata.name.clone().unwrap_or_default();
    let existing = placements.existing(&uid);
    let refuse = |outcome: Outcome, message: String| {
        Box::new(Decision {
            uid: uid.clone(),
            outcome,
            message,
            assignments: existing.clone(),
            bookings: BTreeMap::new(),
            tenant: None,
            quota_gpus: 0,
            borrowed_gpus: 0,
        })
    };
    let spec = &md.spec;
    let (gpus_per_replica, max_targets) =
        engine_limits(workspace, md).map_err(|(outcome, message)| refuse(outcome, message))?;
    Ok(Deployment {
        uid: uid.clone(),
        workspace: workspace.to_string(),
        created: md.metadata.creation_timestamp.as_ref().map_or(now, seconds),
        pool: spec.placement.pool.clone(),
        class: spec.resources.gpu.class.clone(),
        gpus_per_replica,
        replicas: u32::try_from(spec.wanted_replicas()).unwrap_or(0),
        strategy: match spec.placement.strategy {
            PlacementStrategy::BinPack => Strategy::BinPack,
            PlacementStrategy::Spread => Strategy::Spread,
        },
        max_targets,
        target_selector: convert_selector(
            spec.placement.target_selector.as_ref(),
            &format!("ModelDeployment {workspace}/{namespace}/{name}"),
            warnings,
        ),
        tolerations: vec![Toleration {
            key: None,
            operator: TolerationOperator::Exists,
            effect: Some(TaintEffect::NoExecute),
            toleration_seconds: Some(spec.failover.toleration_seconds),
        }],
        refused_by: placements.refused(&uid),
        existing,
        namespace,
        name,
    })
}

/// A deployment's GPUs per replica and `maxTargets`, or why the engine cannot take it.
fn engine_limits(
    workspace: &str,
    md: &ModelDeployment,
) -> Result<(NonZeroU32, Option<NonZeroU32>), (Outcome, String)> {
    let spec = &md.spec;
    if md.metadata.uid.as_deref().unwrap_or_default().is_empty() {
        return Err((
            Outcome::NoTargetFits,
            format!(
                "ModelDeployment {workspace}/{}/{} has no metadata.uid",
                md.metadata.namespace.as_deref().unwrap_or_default(),
                md.metadata.name.as_deref().unwrap_or_default()
            ),
        ));
    }
    if spec.placement.pool_reference().is_none() {
        return Err((
            Outcome::PoolNotFound,
            format!(
                "spec.placement.pool {:?} is not <workspace path>/<GPUPool name>, e.g. root:platform/h200-eu",
                spec.placement.pool
            ),
        ));
    }
    let Some(gpus_per_replica) = u32::try_from(spec.resources.gpu.count)
        .ok()
        .and_then(NonZeroU32::new)
    else {
        return Err((
            Outcome::NoTargetFits,
            format!(
                "spec.resources.gpu.count is {}: a replica needs at least one GPU",
                spec.resources.gpu.count
            ),
        ));
    };
    let max_targets = match spec.placement.max_targets {
        None => None,
        Some(m) => match u32::try_from(m).ok().and_then(NonZeroU32::new) {
            Some(m) => Some(m),
            None => {
                return Err((
                    Outcome::NoTargetFits,
                    format!("spec.placement.maxTargets is {m}: no replica may go anywhere"),
                ))
            }
        },
    };
    Ok((gpus_per_replica, max_targets))
}

/// Replicas running per deployment uid, as a whole pass counts them from the Placements:
/// Placements in a target namespace, neither being deleted nor retiring.
pub fn running_replicas<'a>(
    placements: impl IntoIterator<Item = &'a Placement>,
) -> HashMap<&'a str, u64> {
    let mut running: HashMap<&str, u64> = HashMap::new();
    for p in placements {
        let in_target = p
            .metadata
            .namespace
            .as_deref()
            .and_then(target_of_namespace)
            .is_some();
        if !in_target || p.metadata.deletion_timestamp.is_some() || is_retiring(p) {
            continue;
        }
        let replicas = u64::try_from(p.spec.replicas).unwrap_or(0);
        *running.entry(p.spec.origin.uid.as_str()).or_default() += replicas;
    }
    running
}

/// The quota a deployment's running replicas hold, as a whole pass charges it (at most its
/// wanted replicas, of its pool's class), for a pass that leaves the deployment out. `None`
/// for one being deleted or one the engine refuses: a whole pass charges those nothing.
pub fn quota_charge(workspace: &str, md: &ModelDeployment, running: u64) -> Option<Charge> {
    if md.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let (gpus_per_replica, _) = engine_limits(workspace, md).ok()?;
    let wanted = u64::try_from(md.spec.wanted_replicas()).unwrap_or(0);
    Some(Charge {
        pool: md.spec.placement.pool.clone(),
        class: md.spec.resources.gpu.class.clone(),
        workspace: workspace.to_string(),
        gpus: running.min(wanted) * u64::from(gpus_per_replica.get()),
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use trellis_apis::compute::sync_target::UNREACHABLE_TAINT;
    use trellis_apis::compute::{AccountedPlacement, FreeDevicesOnNodes, GPUPartition};

    use super::*;
    use crate::fleet::fixtures::*;
    use crate::fleet::time::time_at;

    fn build(
        targets: &[SyncTarget],
        pools: &[GPUPool],
        deployments: &[ModelDeployment],
        placements: &[Placement],
    ) -> FleetSnapshot {
        let targets: Vec<(&str, &SyncTarget)> = targets.iter().map(|t| (PROVIDER, t)).collect();
        let pools: Vec<(&str, &GPUPool)> = pools.iter().map(|p| (PROVIDER, p)).collect();
        let deployments: Vec<(&str, &ModelDeployment)> =
            deployments.iter().map(|d| (TENANT, d)).collect();
        let placements: Vec<(&str, &Placement)> =
            placements.iter().map(|p| (PROVIDER, p)).collect();
        build_snapshot(
            &FleetObjects {
                targets: &targets,
                pools: &pools,
                deployments: &deployments,
                placements: &placements,
            },
            NOW,
        )
    }

    #[test]
    fn a_reporting_h200_target_becomes_an_engine_target() {
        let mut target = h200_target("eu-1", &[(8, 3), (2, 1)]);
        if let Some(status) = target.status.as_mut() {
            status.incomplete_pools = vec!["gpu-node-9".into()];
        }
        let fleet = build(&[target], &[], &[], &[]);
        let t = &fleet.snapshot.targets[0];
        assert_eq!(t.name, "root:platform/eu-1");
        assert_eq!(t.labels[WORKSPACE_LABEL], PROVIDER);
        assert_eq!(t.labels["topology.kubernetes.io/region"], "eu-west-1");
        assert!(t.ready && !t.unschedulable);
        assert_eq!(t.last_heartbeat, NOW - 5);
        let inventory = t.inventory.as_ref().expect("an inventory");
        assert_eq!(inventory.observed_at, NOW - 5);
        let h200 = &inventory.products[0];
        assert_eq!(h200.product.id, ProductId::whole("NVIDIA H200"));
        assert_eq!(h200.product.memory_mib, 143_771);
        assert_eq!(h200.product.architecture.as_deref(), Some("Hopper"));
        assert_eq!(
            h200.free_by_node.buckets().collect::<Vec<_>>(),
            vec![(2, 1), (8, 3)]
        );
        // An incomplete DRA pool is already left out by the syncer: the target stays usable.
        assert_eq!(fleet.totals["root:platform/eu-1"][0].1, 32);
        assert!(fleet.warnings.is_empty(), "{:?}", fleet.warnings);
    }

    #[test]
    fn silence_cordons_and_taints_carry_over() {
        let mut never = h200_target("eu-2", &[(8, 4)]);
        never.status = None;
        let mut lost = h200_target("eu-3", &[(8, 4)]);
        lost.spec.unschedulable = true;
        lost.spec.taints = vec![ApiTaint {
            key: UNREACHABLE_TAINT.into(),
            effect: "NoExecute".into(),
            time_added: Some(time_at(NOW - 100)),
            value: None,
        }];
        if let Some(status) = lost.status.as_mut() {
            status.conditions[0].status = "False".into();
        }
        let fleet = build(&[never, lost], &[], &[], &[]);
        let never = &fleet.snapshot.targets[0];
        assert!(!never.ready && never.inventory.is_none() && never.last_heartbeat == 0);
        let lost = &fleet.snapshot.targets[1];
        assert!(!lost.ready && lost.unschedulable);
        let taints: Vec<(TaintEffect, Option<i64>)> = lost
            .taints
            .iter()
            .map(|t| (t.effect, t.time_added))
            .collect();
        assert_eq!(
            taints,
            vec![
                (TaintEffect::NoSchedule, Some(NOW - 100)),
                (TaintEffect::NoExecute, Some(NOW - 100))
            ]
        );
    }

    #[test]
    fn a_no_execute_taint_keeps_new_replicas_off_and_moves_running_ones_after_the_toleration() {
        let spare = h200_target("eu-2", &[(8, 2)]);
        let md = llama(3, 2);
        let running = placement_on("eu-1", "uid-llama", 2, 1);
        let pool = h200_pool(64);
        // eu-1 drained (NoExecute) `ago` seconds before now; the deployment tolerates 300.
        let replicas_when_drained_for = |ago: i64| -> Vec<(String, u32)> {
            let mut drained = h200_target("eu-1", &[(8, 3), (0, 1)]);
            drained.spec.taints = vec![ApiTaint {
                key: "example.com/drain".into(),
                effect: "NoExecute".into(),
                time_added: Some(time_at(NOW - ago)),
                value: Some("firmware".into()),
            }];
            let targets = [(PROVIDER, &drained), (PROVIDER, &spare)];
            let pools = [(PROVIDER, &pool)];
            let deployments = [(TENANT, &md)];
            let placements = [(PROVIDER, &running)];
            let fleet = build_snapshot(
                &FleetObjects {
                    targets: &targets,
                    pools: &pools,
                    deployments: &deployments,
                    placements: &placements,
                },
                NOW,
            );
            let decisions =
                trellis_placement::place(&fleet.snapshot, &mut trellis_placement::Ledger::new());
            decisions[0]
                .assignments
                .iter()
                .map(|(k, s)| (k.clone(), s.replicas))
                .collect()
        };
        // Within the toleration: the two running stay, the third goes elsewhere although
        // BinPack would rather grow where the deployment runs.
        assert_eq!(
            replicas_when_drained_for(10),
            vec![
                ("root:platform/eu-1".to_string(), 2),
                ("root:platform/eu-2".to_string(), 1)
            ]
        );
        // Past it: everything leaves.
        assert_eq!(
            replicas_when_drained_for(300),
            vec![("root:platform/eu-2".to_string(), 3)]
        );
    }

    #[test]
    fn partitions_broken_readings_and_accounted_placements() {
        let mut target = h200_target("eu-1", &[(8, 2)]);
        let placement = placement_on("eu-1", "uid-llama", 2, 7);
        if let Some(status) = target.status.as_mut() {
            status.gpus[0].partitions = vec![GPUPartition {
                r#type: "1g.18gb".into(),
                total: 7,
                available: 3,
            }];
            status.gpus.push(GPUInventory {
                product_name: "NVIDIA H100 80GB HBM3".into(),
                free_by_node: vec![FreeDevicesOnNodes {
                    free_devices: -1,
                    nodes: 1,
                }],
                ..GPUInventory::default()
            });
            status.accounted = vec![
                AccountedPlacement {
                    placement: placement.metadata.name.clone().unwrap_or_default(),
                    booking: 7,
                },
                AccountedPlacement {
                    placement: "long-gone".into(),
                    booking: 3,
                },
            ];
        }
        let fleet = build(&[target], &[], &[], &[placement]);
        let inventory = fleet.snapshot.targets[0]
            .inventory
            .clone()
            .unwrap_or_default();
        let ids: Vec<String> = inventory
            .products
            .iter()
            .map(|p| p.product.id.to_string())
            .collect();
        assert_eq!(ids, vec!["NVIDIA H200", "NVIDIA H200 MIG 1g.18gb"]);
        assert_eq!(inventory.products[1].product.memory_mib, 18 * 1024);
        assert_eq!(
            inventory.products[1]
                .free_by_node
                .buckets()
                .collect::<Vec<_>>(),
            vec![(1, 3)]
        );
        assert_eq!(fleet.warnings.len(), 1, "{:?}", fleet.warnings);
        assert!(fleet.warnings[0].contains("NVIDIA H100 80GB HBM3"));
        assert_eq!(
            inventory.accounted,
            BTreeMap::from([(PlacementKey::new("uid-llama", "root:platform/eu-1"), 7)])
        );
    }

    #[test]
    fn pools_select_only_their_own_workspace() {
        let mut pool = h200_pool(64);
        pool.spec.target_selector = Some(ApiSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "topology.kubernetes.io/region".into(),
                operator: "In".into(),
                values: Some(vec!["eu-west-1".into()]),
            }]),
            match_labels: None,
        });
        let ours = h200_target("eu-1", &[(8, 1)]);
        let theirs = h200_target("eu-1", &[(8, 1)]);
        let targets = [(PROVIDER, &ours), ("root:other", &theirs)];
        let pools = [(PROVIDER, &pool)];
        let fleet = build_snapshot(
            &FleetObjects {
                targets: &targets,
                pools: &pools,
                ..FleetObjects::default()
            },
            NOW,
        );
        let engine_pool = &fleet.snapshot.pools[0];
        assert_eq!(engine_pool.name, "root:platform/h200-eu");
        let selected: Vec<&str> = fleet
            .snapshot
            .targets
            .iter()
            .filter(|t| engine_pool.target_selector.matches(&t.labels))
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(selected, vec!["root:platform/eu-1"]);
        assert_eq!(engine_pool.tenants[0].quotas[0].nominal_quota, 64);
        assert_eq!(
            engine_pool.classes[0].product.as_deref(),
            Some("NVIDIA H200")
        );
    }

    #[test]
    fn a_cluster_reporting_replicas_unschedulable_refuses_the_deployment() {
        use trellis_apis::compute::PlacementStatus;
        let report = |generation: i64, observed: i64, reason: &str| {
            let mut p = placement_on("eu-1", "uid-llama", 2, 4);
            p.metadata.generation = Some(generation);
            p.status = Some(PlacementStatus {
                observed_generation: Some(observed),
                conditions: vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
                    type_: placement_conditions::PROGRESSING.into(),
                    status: "False".into(),
                    reason: reason.into(),
                    message: "0/2 nodes are available".into(),
                    last_transition_time: time_at(NOW),
                    observed_generation: None,
                }],
                ..Default::default()
            });
            p
        };
        let refused = |p: Placement| {
            let fleet = build(&[], &[], &[llama(3, 2)], &[p]);
            fleet.snapshot.deployments[0].refused_by.clone()
        };
        assert_eq!(
            refused(report(2, 2, placement_reasons::UNSCHEDULABLE)),
            BTreeSet::from(["root:platform/eu-1".to_string()])
        );
        // About an older spec, or another problem: no refusal.
        assert!(refused(report(3, 2, placement_reasons::UNSCHEDULABLE)).is_empty());
        assert!(refused(report(2, 2, placement_reasons::IMAGE_PULL_BACK_OFF)).is_empty());
    }

    #[test]
    fn deployments_carry_their_wanted_replicas_failover_and_existing_placements() {
        let mut md = llama(3, 2);
        md.spec.max_replicas = Some(2);
        md.spec.failover.toleration_seconds = 120;
        let running = placement_on("eu-1", "uid-llama", 2, 4);
        let mut retiring = placement_on("eu-2", "uid-llama", 1, 3);
        retiring.metadata.annotations = Some(BTreeMap::from([(
            RETIRING_SINCE_ANNOTATION.to_string(),
            "2025-06-15T15:00:00Z".to_string(),
        )]));
        let mut deleting = llama(1, 1);
        deleting.metadata.uid = Some("uid-gone".into());
        deleting.metadata.deletion_timestamp = Some(time_at(NOW));
        let fleet = build(&[], &[], &[md, deleting], &[running, retiring]);
        assert_eq!(fleet.snapshot.deployments.len(), 1);
        let d = &fleet.snapshot.deployments[0];
        assert_eq!(d.uid, "uid-llama");
        assert_eq!(d.workspace, TENANT);
        assert_eq!(d.pool, "root:platform/h200-eu");
        assert_eq!((d.replicas, d.gpus_per_replica.get()), (2, 2));
        assert_eq!(d.created, NOW - 3_600);
        assert_eq!(d.tolerations[0].toleration_seconds, Some(120));
        // The retiring Placement is not counted.
        assert_eq!(
            d.existing,
            BTreeMap::from([(
                "root:platform/eu-1".to_string(),
                Share {
                    product: ProductId::whole("NVIDIA H200"),
                    replicas: 2
                }
            )])
        );
    }

    #[test]
    fn invalid_deployments_become_decisions_that_keep_what_runs() {
        let mut no_slash = llama(1, 1);
        no_slash.spec.placement.pool = "h200-eu".into();
        let mut no_gpus = llama(1, 1);
        no_gpus.metadata.uid = Some("uid-zero".into());
        no_gpus.spec.resources.gpu.count = 0;
        let running = placement_on("eu-1", "uid-llama", 1, 2);
        let fleet = build(&[], &[], &[no_slash, no_gpus], &[running]);
        assert!(fleet.snapshot.deployments.is_empty());
        let outcomes: Vec<(&str, Outcome)> = fleet
            .refused
            .iter()
            .map(|d| (d.uid.as_str(), d.outcome))
            .collect();
        assert_eq!(
            outcomes,
            vec![
                ("uid-llama", Outcome::PoolNotFound),
                ("uid-zero", Outcome::NoTargetFits)
            ]
        );
        assert!(fleet.refused[0]
            .message
            .contains("\"h200-eu\" is not <workspace path>/<GPUPool name>"));
        assert_eq!(fleet.refused[0].replicas(), 1, "what runs stays");
        assert!(fleet.refused[1]
            .message
            .starts_with("spec.resources.gpu.count is 0"));
    }
}
