//! Test objects for the fleet glue, from the real H200 readings in
//! `/work/shared/fixtures/gpu/nvidia-h200` (product `NVIDIA H200` as nvidia-smi and DRA name
//! it, 143771 MiB, Hopper, compute capability 9.0), in nodes of eight: a provider workspace
//! `root:platform` with its targets and GPU pool, a tenant workspace `root:acme:ml` with a
//! vLLM deployment, and the Placements the hub writes for it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use trellis_apis::compute::placement::{
    conditions as placement_conditions, target_namespace, ORIGIN_CLUSTER_LABEL, ORIGIN_UID_LABEL,
    SYNC_TARGET_LABEL,
};
use trellis_apis::compute::sync_target::{conditions, REGION_LABEL, ZONE_LABEL};
use trellis_apis::compute::{
    FreeDevicesOnNodes, GPUClass, GPUClassMatch, GPUInventory, GPUPool, GPUPoolSpec, GPUPoolTenant,
    GPUQuota, Placement, PlacementGPU, PlacementOrigin, PlacementResources, PlacementSpec,
    PlacementStatus, SyncTarget, SyncTargetSpec, SyncTargetStatus,
};
use trellis_apis::serving::{
    GPURequest, ModelDeployment, ModelDeploymentSpec, ModelResources, ModelRuntime, ModelSource,
    PlacementPolicy,
};

use super::render::placement_name;
use super::snapshot::{build_snapshot, FleetObjects, FleetSnapshot};
use super::time::time_at;

/// 2025-06-15T15:06:40Z.
pub const NOW: i64 = 1_750_000_000;
pub const PROVIDER: &str = "root:platform";
pub const TENANT: &str = "root:acme:ml";
/// The tenant workspace's logical cluster id.
pub const CLUSTER: &str = "2cynbfy2m0wtjqcs";
pub const H200: &str = "NVIDIA H200";
pub const H200_MIB: i64 = 143_771;
const GPUS_PER_NODE: i32 = 8;

fn condition(type_: &str, status: &str, reason: &str, at: i64) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: String::new(),
        observed_generation: None,
        last_transition_time: time_at(at),
    }
}

/// A Ready target of 8-GPU H200 nodes in `eu-west-1`, heartbeating 5 s ago, with `free` as
/// its `freeByNode` buckets (free GPUs, nodes).
pub fn h200_target(name: &str, free: &[(i32, i32)]) -> SyncTarget {
    let nodes: i32 = free.iter().map(|(_, n)| n).sum();
    let available: i32 = free.iter().map(|(f, n)| f * n).sum();
    let total = nodes * GPUS_PER_NODE;
    let mut target = SyncTarget::new(name, SyncTargetSpec::default());
    target.metadata.labels = Some(BTreeMap::from([
        (REGION_LABEL.to_string(), "eu-west-1".to_string()),
        (ZONE_LABEL.to_string(), "eu-west-1a".to_string()),
    ]));
    target.status = Some(SyncTargetStatus {
        conditions: vec![
            condition(conditions::READY, "True", "SyncerReady", NOW - 3_600),
            condition(conditions::SYNCER_READY, "True", "Connected", NOW - 3_600),
        ],
        last_heartbeat_time: Some(time_at(NOW - 5)),
        kubernetes_version: Some("v1.33.2".into()),
        gpus: vec![GPUInventory {
            product_name: H200.into(),
            memory_mib: Some(H200_MIB),
            architecture: Some("Hopper".into()),
            cuda_compute_capability: Some("9.0".into()),
            total_devices: total,
            allocated_devices: total - available,
            available_devices: available,
            free_by_node: free
                .iter()
                .filter(|(f, n)| *f > 0 && *n > 0)
                .map(|(f, n)| FreeDevicesOnNodes {
                    free_devices: *f,
                    nodes: *n,
                })
                .collect(),
            partitions: Vec::new(),
        }],
        ..SyncTargetStatus::default()
    });
    target
}

/// Pool `h200-eu` of `root:platform`: class `h200` (the H200 by product name), tenant
/// `root:acme` with `nominal` GPUs of it.
pub fn h200_pool(nominal: i32) -> GPUPool {
    let mut pool = GPUPool::new(
        "h200-eu",
        GPUPoolSpec {
            target_selector: None,
            classes: vec![GPUClass {
                name: "h200".into(),
                r#match: GPUClassMatch {
                    product_name: Some(H200.into()),
                    ..GPUClassMatch::default()
                },
            }],
            tenants: vec![GPUPoolTenant {
                workspace: "root:acme".into(),
                weight: 1,
                quotas: vec![GPUQuota {
                    class: "h200".into(),
                    nominal_quota: nominal,
                    ..GPUQuota::default()
                }],
            }],
        },
    );
    pool.metadata.generation = Some(1);
    pool
}

/// ModelDeployment `ml/llama` of `root:acme:ml`: Llama 3.1 8B on vLLM, `replicas` of `gpus`
/// H200s each from `root:platform/h200-eu`, created an hour before [`NOW`].
pub fn llama(replicas: i32, gpus: i32) -> ModelDeployment {
    let mut md = ModelDeployment::new(
        "llama",
        ModelDeploymentSpec {
            model: ModelSource {
                uri: "hf://meta-llama/Llama-3.1-8B-Instruct".into(),
                served_name: Some("llama-8b".into()),
            },
            runtime: ModelRuntime {
                image: "vllm/vllm-openai:v0.9.1".into(),
                args: vec!["--max-model-len".into(), "8192".into()],
                port: 8000,
            },
            resources: ModelResources {
                gpu: GPURequest {
                    class: "h200".into(),
                    count: gpus,
                },
                cpu: None,
                memory: None,
            },
            replicas: Some(replicas),
            placement: PlacementPolicy {
                pool: "root:platform/h200-eu".into(),
                ..PlacementPolicy::default()
            },
            ..ModelDeploymentSpec::default()
        },
    );
    md.metadata.namespace = Some("ml".into());
    md.metadata.uid = Some("uid-llama".into());
    md.metadata.generation = Some(1);
    md.metadata.creation_timestamp = Some(time_at(NOW - 3_600));
    md
}

/// A Placement of deployment `uid` (named like `ml/llama`) on `target`, as stored.
pub fn placement_on(target: &str, uid: &str, replicas: i32, booking: i64) -> Placement {
    let md = llama(replicas, 2);
    let mut p = Placement::new(
        &placement_name(CLUSTER, "ml", "llama", uid),
        PlacementSpec {
            origin: PlacementOrigin {
                workspace: TENANT.into(),
                cluster: CLUSTER.into(),
                namespace: "ml".into(),
                name: "llama".into(),
                uid: uid.into(),
                generation: 1,
            },
            model: md.spec.model,
            runtime: md.spec.runtime,
            resources: PlacementResources {
                gpu: PlacementGPU {
                    product_name: H200.into(),
                    count: 2,
                },
                cpu: None,
                memory: None,
            },
            replicas,
            booking,
        },
    );
    p.metadata.namespace = Some(target_namespace(target));
    p.metadata.generation = Some(1);
    p.metadata.labels = Some(BTreeMap::from([
        (SYNC_TARGET_LABEL.to_string(), target.to_string()),
        (ORIGIN_CLUSTER_LABEL.to_string(), CLUSTER.to_string()),
        (ORIGIN_UID_LABEL.to_string(), uid.to_string()),
    ]));
    p
}

/// A syncer's report of `ready` replicas all up and serving.
pub fn available(ready: i32) -> PlacementStatus {
    PlacementStatus {
        observed_generation: Some(1),
        replicas: ready,
        ready_replicas: ready,
        endpoint: None,
        conditions: vec![condition(
            placement_conditions::AVAILABLE,
            "True",
            "MinimumReplicasAvailable",
            NOW,
        )],
    }
}

/// The snapshot of these targets of `root:platform` alone.
pub fn fleet_of(targets: &[SyncTarget]) -> FleetSnapshot {
    let pairs: Vec<(&str, &SyncTarget)> = targets.iter().map(|t| (PROVIDER, t)).collect();
    build_snapshot(
        &FleetObjects {
            targets: &pairs,
            ..FleetObjects::default()
        },
        NOW,
    )
}
