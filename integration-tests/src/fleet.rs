//! What the fleet tests write as syncers would, from the real H200 reading
//! (`/work/shared/fixtures/gpu/nvidia-h200`: `NVIDIA H200`, 143771 MiB, Hopper, compute
//! capability 9.0, nodes of eight): a SyncTarget's status, and a Placement's once its replicas
//! serve.

use serde_json::{json, Value};

pub const H200: &str = "NVIDIA H200";
pub const H200_MIB: i64 = 143_771;
pub const GPUS_PER_NODE: i64 = 8;

/// Now, as an RFC 3339 time to the second.
pub fn now_rfc3339() -> String {
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    k8s_openapi::jiff::Timestamp::from_second(now)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// A target's status as its syncer reports it on start: Ready, a heartbeat, and its H200s as
/// (free devices, nodes) buckets over nodes of eight.
pub fn sync_target_status(free: &[(i64, i64)]) -> Value {
    let nodes: i64 = free.iter().map(|(_, n)| n).sum();
    let available: i64 = free.iter().map(|(f, n)| f * n).sum();
    let now = now_rfc3339();
    json!({"status": {
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "SyncerReady", "message": "",
                "lastTransitionTime": now},
            {"type": "SyncerReady", "status": "True", "reason": "Connected", "message": "",
                "lastTransitionTime": now},
        ],
        "lastHeartbeatTime": now,
        "kubernetesVersion": "v1.33.2",
        "gpus": [{
            "productName": H200, "memoryMiB": H200_MIB, "architecture": "Hopper",
            "cudaComputeCapability": "9.0",
            "totalDevices": nodes * GPUS_PER_NODE,
            "allocatedDevices": nodes * GPUS_PER_NODE - available,
            "availableDevices": available,
            "freeByNode": free.iter()
                .filter(|(f, _)| *f > 0)
                .map(|(f, n)| json!({"freeDevices": f, "nodes": n}))
                .collect::<Vec<_>>(),
        }],
    }})
}

/// A Placement's status once its one replica serves at `endpoint`.
pub fn placement_available(generation: i64, endpoint: &str) -> Value {
    json!({"status": {
        "observedGeneration": generation,
        "replicas": 1,
        "readyReplicas": 1,
        "endpoint": endpoint,
        "conditions": [{"type": "Available", "status": "True",
            "reason": "MinimumReplicasAvailable", "message": "",
            "lastTransitionTime": now_rfc3339()}],
    }})
}
