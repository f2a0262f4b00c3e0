//! `SyncTarget`: one physical Kubernetes cluster registered in a provider workspace. The
//! platform team writes its spec (cordon, taints) and its topology labels; the cluster's
//! syncer writes its status (heartbeat, health conditions, features and the GPU inventory the
//! placement controller sizes replicas against). Also the labels, taint and condition names
//! that belong to a target.

use k8s_openapi::api::core::v1::Taint;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube_core::ClusterResourceScope;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{GROUP, VERSION};
use crate::object::{api_object, is_zero};

/// The region a target runs in, as an ordinary label on the SyncTarget (e.g. `eu-west-1`).
/// Region and zone are labels rather than spec fields so GPUPool and ModelDeployment target
/// selectors pick them with plain label selectors; the keys are Kubernetes' own topology keys.
pub const REGION_LABEL: &str = "topology.kubernetes.io/region";
/// The zone within the region, as an ordinary label on the SyncTarget (e.g. `eu-west-1a`).
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// The taint key the hub puts on a target whose heartbeats stopped, with effect `NoExecute`
/// and `timeAdded` set: a ModelDeployment's replicas leave the target once its
/// `failover.tolerationSeconds` have passed since then.
pub const UNREACHABLE_TAINT: &str = "trellis.dev/unreachable";

/// Condition types in a SyncTarget's status.
pub mod conditions {
    /// The target takes new work: the syncer is connected, heartbeats arrive and the cluster
    /// answers.
    pub const READY: &str = "Ready";
    /// Heartbeats arrive within the expected period.
    pub const HEARTBEAT_HEALTHY: &str = "HeartbeatHealthy";
    /// The syncer runs and reaches both the hub and its cluster.
    pub const SYNCER_READY: &str = "SyncerReady";
}

/// Reasons on a SyncTarget's conditions.
pub mod reasons {
    /// No heartbeat arrived within the expected period (on `HeartbeatHealthy` and `Ready`).
    pub const HEARTBEAT_MISSED: &str = "HeartbeatMissed";
    /// Heartbeats arrive within the expected period (on `HeartbeatHealthy`, and on `Ready`
    /// when the hub lifts a `HeartbeatMissed` it set).
    pub const HEARTBEAT_RECEIVED: &str = "HeartbeatReceived";
}

api_object! {
    /// One physical Kubernetes cluster that runs placed work, registered in a provider
    /// workspace. Its trellis-syncer pulls the Placements of this target and reports health
    /// and GPU inventory here. Label it with `topology.kubernetes.io/region` and
    /// `topology.kubernetes.io/zone` so pools and deployments can select it.
    pub struct SyncTarget {
        group: GROUP,
        version: VERSION,
        plural: "synctargets",
        scope: ClusterResourceScope,
        schema: "dev.trellis.compute.v1alpha1.SyncTarget",
        /// How the platform team wants the target used.
        #[serde(default)]
        spec: SyncTargetSpec,
        /// What the target's syncer last reported.
        status: SyncTargetStatus,
    }
}

/// How the platform team wants the target used.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.compute.v1alpha1.SyncTargetSpec")]
pub struct SyncTargetSpec {
    /// Cordons the target: no new replicas are placed on it; replicas already there stay.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unschedulable: bool,
    /// Taints, as on a Node. `NoSchedule` and `NoExecute` keep new replicas off the target
    /// (deployments carry no tolerations); `NoExecute` also moves the replicas already here
    /// elsewhere once a deployment's `failover.tolerationSeconds` have passed since the
    /// taint's `timeAdded`; `PreferNoSchedule` makes the target a last choice. The hub adds
    /// `trellis.dev/unreachable` (NoExecute) itself when heartbeats stop.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
}

/// What the target's syncer last reported.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.compute.v1alpha1.SyncTargetStatus")]
pub struct SyncTargetStatus {
    /// `Ready`, `HeartbeatHealthy` and `SyncerReady`, one entry per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// When the syncer last reported in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_time: Option<Time>,
    /// The cluster's Kubernetes version, e.g. `v1.33.2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// Optional Kubernetes features the cluster has turned on.
    #[serde(default, skip_serializing_if = "SyncTargetFeatures::is_empty")]
    pub features: SyncTargetFeatures,
    /// The GPUs on the cluster's schedulable, Ready nodes, one entry per product.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["productName"]))]
    pub gpus: Vec<GPUInventory>,
    /// Dynamic Resource Allocation pools whose ResourceSlices are not all published yet.
    /// Kubernetes allocates nothing from an incomplete pool, so their devices are left out
    /// of `gpus` until the pool is complete; empty means the inventory is complete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub incomplete_pools: Vec<String>,
    /// Placements of this target whose replicas are all bound to nodes, so `gpus` already
    /// counts their GPUs as allocated: each with the `spec.booking` the syncer had applied
    /// when it read this inventory. Written in the same update as `gpus`; the hub stops
    /// holding those GPUs itself up to that booking.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["placement"]))]
    pub accounted: Vec<AccountedPlacement>,
}

/// A Placement whose replicas the target's inventory already counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.compute.v1alpha1.AccountedPlacement")]
pub struct AccountedPlacement {
    /// The Placement's name, in the target's namespace `target-<SyncTarget name>`.
    pub placement: String,
    /// The Placement's `spec.booking` whose replicas are all bound to nodes.
    #[schemars(range(min = 0))]
    pub booking: i64,
}

impl SyncTargetStatus {
    /// Whether every GPU the cluster has is counted in `gpus` (no DRA pool is incomplete).
    pub fn inventory_complete(&self) -> bool {
        self.incomplete_pools.is_empty()
    }
}

/// Optional Kubernetes features the cluster has turned on; false when not reported.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.compute.v1alpha1.SyncTargetFeatures")]
pub struct SyncTargetFeatures {
    /// Dynamic Resource Allocation (`resource.k8s.io`): GPUs are published as
    /// ResourceSlices and claimed per pod instead of counted by a device plugin.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dra: bool,
    /// Image volumes: a model packaged as an OCI artifact (`oci://`) is mounted straight
    /// into the runtime container instead of copied by an init container.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub image_volume: bool,
}

impl SyncTargetFeatures {
    /// No feature reported.
    pub fn is_empty(&self) -> bool {
        !self.dra && !self.image_volume
    }
}

/// The GPUs of one product on a target.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.compute.v1alpha1.GPUInventory")]
pub struct GPUInventory {
    /// The product as the node reports it (the `nvidia.com/gpu.product` node label, or the
    /// DRA device's `productName` attribute), e.g. `NVIDIA-H100-80GB-HBM3`.
    pub product_name: String,
    /// Memory per device, in MiB.
    #[serde(default, rename = "memoryMiB", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub memory_mib: Option<i64>,
    /// The GPU architecture family, e.g. `hopper` or `ampere`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// The CUDA compute capability, e.g. `9.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda_compute_capability: Option<String>,
    /// Devices of this product on schedulable, Ready nodes.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0))]
    pub total_devices: i32,
    /// Devices held by pods, Trellis' or anyone else's.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0))]
    pub allocated_devices: i32,
    /// Devices a new pod could get now; the sum over `freeByNode`.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0))]
    pub available_devices: i32,
    /// How free devices are spread over nodes: one entry per distinct number of free
    /// devices on a node, with the number of nodes that have exactly that many free (nodes
    /// with none free are left out). A replica needs all its GPUs on one node, so capacity is
    /// counted from this, never from `availableDevices` alone: with entries `{4, 1}` and
    /// `{2, 3}`, two replicas of 4 GPUs do not fit, but one of 4 and three of 2 do.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["freeDevices"]))]
    pub free_by_node: Vec<FreeDevicesOnNodes>,
    /// MIG partitions of this product, one entry per partition type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub partitions: Vec<GPUPartition>,
}

/// Nodes that have the same number of free devices of one product.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.compute.v1alpha1.FreeDevicesOnNodes")]
pub struct FreeDevicesOnNodes {
    /// Free devices on each of these nodes.
    #[schemars(range(min = 1))]
    pub free_devices: i32,
    /// How many nodes have exactly `freeDevices` free.
    #[schemars(range(min = 1))]
    pub nodes: i32,
}

/// One MIG partition type of a GPU product (Multi-Instance GPU slices one device into
/// several isolated ones).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.compute.v1alpha1.GPUPartition")]
pub struct GPUPartition {
    /// The MIG profile, e.g. `1g.10gb` or `3g.40gb`.
    pub r#type: String,
    /// Partitions of this type on schedulable, Ready nodes.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0))]
    pub total: i32,
    /// Partitions of this type not held by any pod.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0))]
    pub available: i32,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::tests::{openapi_definitions, round_trips};

    #[test]
    fn a_reporting_target_round_trips() {
        let target: SyncTarget = round_trips(json!({
            "apiVersion": "compute.trellis.dev/v1alpha1",
            "kind": "SyncTarget",
            "metadata": {
                "name": "eu-1",
                "labels": {"topology.kubernetes.io/region": "eu-west-1",
                    "topology.kubernetes.io/zone": "eu-west-1a"},
            },
            "spec": {
                "taints": [{"key": "trellis.dev/unreachable", "effect": "NoExecute",
                    "timeAdded": "2025-06-01T10:04:00Z"}],
            },
            "status": {
                "conditions": [{"type": "Ready", "status": "False", "reason": "HeartbeatMissed",
                    "message": "no heartbeat for 45s", "lastTransitionTime": "2025-06-01T10:04:00Z"}],
                "lastHeartbeatTime": "2025-06-01T10:03:15Z",
                "kubernetesVersion": "v1.33.2",
                "features": {"dra": true},
                "gpus": [{
                    "productName": "NVIDIA-H100-80GB-HBM3",
                    "memoryMiB": 81559,
                    "architecture": "hopper",
                    "cudaComputeCapability": "9.0",
                    "totalDevices": 16,
                    "allocatedDevices": 10,
                    "availableDevices": 6,
                    "freeByNode": [{"freeDevices": 4, "nodes": 1}, {"freeDevices": 1, "nodes": 2}],
                    "partitions": [{"type": "1g.10gb", "total": 7, "available": 3}],
                }],
                "incompletePools": ["gpu-node-7"],
                "accounted": [{"placement": "2cynbfy2m0wtjqcs-ml-llama-5c1f0a9e3d", "booking": 17}],
            },
        }));
        assert_eq!(
            target.metadata.labels.map(|l| l[REGION_LABEL].clone()),
            Some("eu-west-1".into())
        );
        let status = target.status.unwrap_or_default();
        assert!(!status.inventory_complete());
        assert!(status.features.dra && !status.features.image_volume);
        assert_eq!(status.accounted[0].booking, 17);
    }

    #[test]
    fn an_empty_status_stays_empty_on_the_wire() {
        let status = SyncTargetStatus::default();
        assert!(status.inventory_complete());
        assert_eq!(serde_json::to_value(&status).ok(), Some(json!({})));
    }

    #[test]
    fn inventory_lists_are_keyed() {
        let definitions = openapi_definitions::<SyncTarget>();
        let status = &definitions["dev.trellis.compute.v1alpha1.SyncTargetStatus"]["properties"];
        assert_eq!(
            status["gpus"]["x-kubernetes-list-map-keys"],
            json!(["productName"])
        );
        assert_eq!(
            status["conditions"]["x-kubernetes-list-map-keys"],
            json!(["type"])
        );
        assert_eq!(status["incompletePools"]["x-kubernetes-list-type"], "set");
        assert_eq!(
            status["accounted"]["x-kubernetes-list-map-keys"],
            json!(["placement"])
        );
        let accounted = &definitions["dev.trellis.compute.v1alpha1.AccountedPlacement"];
        assert_eq!(accounted["required"], json!(["placement", "booking"]));
        assert_eq!(accounted["properties"]["booking"]["minimum"], json!(0));
        let gpu = &definitions["dev.trellis.compute.v1alpha1.GPUInventory"]["properties"];
        assert_eq!(gpu["freeByNode"]["x-kubernetes-list-type"], "map");
        assert_eq!(
            gpu["freeByNode"]["x-kubernetes-list-map-keys"],
            json!(["freeDevices"])
        );
        assert_eq!(
            gpu["partitions"]["x-kubernetes-list-map-keys"],
            json!(["type"])
        );
        let free = &definitions["dev.trellis.compute.v1alpha1.FreeDevicesOnNodes"];
        assert_eq!(free["required"], json!(["freeDevices", "nodes"]));
        assert_eq!(free["properties"]["freeDevices"]["minimum"], json!(1));
    }
}
