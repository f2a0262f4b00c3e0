//! `Placement`: the work one SyncTarget runs for one ModelDeployment, rendered by the hub's
//! placement controller into the provider workspace, in the target's own namespace
//! (`target-<SyncTarget name>`), where only the platform team and that target's syncer see
//! it. The syncer turns it into a Deployment and Service on its cluster and writes the status
//! back. Also the namespace convention, the labels that find a deployment's Placements, and
//! the condition names the syncer reports.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube_core::NamespaceResourceScope;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{GROUP, VERSION};
use crate::object::{api_object, is_zero};
use crate::serving::{ModelRuntime, ModelSource};

/// The Placements of SyncTarget `<name>` live in namespace `target-<name>` of the provider
/// workspace, so a syncer's credentials can be limited to one namespace.
pub const TARGET_NAMESPACE_PREFIX: &str = "target-";

/// The namespace holding the Placements of the SyncTarget named `target`.
pub fn target_namespace(target: &str) -> String {
    format!("{TARGET_NAMESPACE_PREFIX}{target}")
}

/// The SyncTarget whose Placements a namespace holds, if it is a target namespace.
pub fn target_of_namespace(namespace: &str) -> Option<&str> {
    namespace
        .strip_prefix(TARGET_NAMESPACE_PREFIX)
        .filter(|t| !t.is_empty())
}

/// Label on a Placement: the SyncTarget's name.
pub const SYNC_TARGET_LABEL: &str = "trellis.dev/sync-target";
/// Label on a Placement: the logical cluster id of the ModelDeployment's workspace (a path
/// has `:`, which label values cannot hold).
pub const ORIGIN_CLUSTER_LABEL: &str = "trellis.dev/origin-cluster";
/// Label on a Placement: the ModelDeployment's uid; selects all Placements of one
/// deployment across target namespaces.
pub const ORIGIN_UID_LABEL: &str = "trellis.dev/origin-uid";
/// Label the syncer puts on what it renders on its cluster (Deployment, Service, pods): the
/// Placement's name.
pub const PLACEMENT_LABEL: &str = "trellis.dev/placement";
/// Annotation the hub puts on a Placement whose replicas moved to other targets, with the
/// RFC 3339 time they moved. The Placement keeps running until its replacements are
/// available or the ModelDeployment's `failover.gracePeriodSeconds` have passed since then;
/// the hub then deletes it. It no longer counts as one of the deployment's placements.
pub const RETIRING_SINCE_ANNOTATION: &str = "trellis.dev/retiring-since";

/// Condition types in a Placement's status, as the syncer reports them.
pub mod conditions {
    /// At least one replica is ready to serve.
    pub const AVAILABLE: &str = "Available";
    /// Replicas are being created or updated towards the spec, or cannot be (see reasons).
    pub const PROGRESSING: &str = "Progressing";
}

/// Reasons on a Placement's conditions.
pub mod reasons {
    /// Pods cannot be scheduled on the cluster, e.g. the GPUs went elsewhere
    /// (`Progressing` False).
    pub const UNSCHEDULABLE: &str = "Unschedulable";
    /// The runtime image cannot be pulled (`Progressing` False).
    pub const IMAGE_PULL_BACK_OFF: &str = "ImagePullBackOff";
    /// The runtime keeps crashing, e.g. out of GPU memory (`Progressing` False).
    pub const CRASH_LOOP_BACK_OFF: &str = "CrashLoopBackOff";
    /// The syncer cannot turn the Placement into objects on its cluster, or the cluster
    /// refuses them; the message says why (`Progressing` False).
    pub const RENDER_FAILED: &str = "RenderFailed";
    /// Every replica is ready (`Progressing` True).
    pub const REPLICAS_READY: &str = "ReplicasReady";
    /// Replicas are being created, scheduled or started (`Progressing` True). A replica
    /// that waits for a node longer than the syncer's unschedulable timeout turns this into
    /// `Unschedulable` (`Progressing` False).
    pub const REPLICAS_STARTING: &str = "ReplicasStarting";
    /// At least one replica is ready (`Available` True).
    pub const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
    /// No replica is ready (`Available` False).
    pub const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
}

api_object! {
    /// The replicas of one ModelDeployment that one SyncTarget runs, written by the hub in
    /// namespace `target-<SyncTarget name>` of the provider workspace. The target's syncer
    /// runs them as a Deployment and Service on its cluster and reports back in the status.
    /// Not written by hand.
    pub struct Placement {
        group: GROUP,
        version: VERSION,
        plural: "placements",
        scope: NamespaceResourceScope,
        schema: "dev.trellis.compute.v1alpha1.Placement",
        /// What the target runs, fully rendered.
        spec: PlacementSpec,
        /// What the target's syncer last reported.
        status: PlacementStatus,
    }
}

/// What the target runs, fully rendered: nothing in it needs the tenant's workspace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.compute.v1alpha1.PlacementSpec")]
pub struct PlacementSpec {
    /// The ModelDeployment this work is for.
    pub origin: PlacementOrigin,
    /// The model, as the deployment names it.
    pub model: ModelSource,
    /// The inference server, as the deployment names it.
    pub runtime: ModelRuntime,
    /// What one replica needs, with the GPU class resolved to a product on this target.
    pub resources: PlacementResources,
    /// Replicas to run on this target.
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// The hub's booking id for the last change of `replicas`: GPUs the hub counts as taken
    /// on this target until the target's inventory shows them. Once every replica of this
    /// spec is bound to a node, the syncer reports this id for this Placement in its
    /// SyncTarget's `status.accounted`, and the hub stops counting them twice. Ids grow with
    /// every change; 0 when the hub booked nothing.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0))]
    pub booking: i64,
}

/// The ModelDeployment a Placement is for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.compute.v1alpha1.PlacementOrigin")]
pub struct PlacementOrigin {
    /// The tenant workspace's path, e.g. `root:acme:ml`.
    pub workspace: String,
    /// The tenant workspace's logical cluster id, which stays the same if the workspace
    /// is renamed or moved.
    pub cluster: String,
    /// The ModelDeployment's namespace.
    pub namespace: String,
    /// The ModelDeployment's name.
    pub name: String,
    /// The ModelDeployment's uid.
    pub uid: String,
    /// The ModelDeployment's generation this Placement was rendered from.
    #[schemars(range(min = 0))]
    pub generation: i64,
}

/// What one replica needs on this target.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.compute.v1alpha1.PlacementResources")]
pub struct PlacementResources {
    /// GPUs per replica, all on one node.
    pub gpu: PlacementGPU,
    /// CPU per replica; the runtime's own request when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,
    /// Memory per replica; the runtime's own request when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
}

/// GPUs per replica, by product.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.compute.v1alpha1.PlacementGPU")]
pub struct PlacementGPU {
    /// The product, as in the SyncTarget's `status.gpus[].productName`; the syncer selects
    /// nodes by it (`nvidia.com/gpu.product`).
    pub product_name: String,
    /// GPUs per replica, all on one node (`nvidia.com/gpu` limit, or the devices of one
    /// resource claim).
    #[serde(default = "default_gpu_count")]
    #[schemars(range(min = 1))]
    pub count: i32,
}

fn default_gpu_count() -> i32 {
    1
}

impl Default for PlacementGPU {
    fn default() -> Self {
        PlacementGPU {
            product_name: String::new(),
            count: default_gpu_count(),
        }
    }
}

/// What the target's syncer last reported.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.compute.v1alpha1.PlacementStatus")]
pub struct PlacementStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Replicas running on the cluster.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// Replicas ready to serve.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0))]
    pub ready_replicas: i32,
    /// Where the cluster serves the model, e.g. `http://10.0.4.17:8000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// `Available` and `Progressing`, one entry per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::tests::{defaults_agree, openapi_definitions, round_trips};

    #[test]
    fn target_namespaces_name_their_target() {
        assert_eq!(target_namespace("eu-1"), "target-eu-1");
        assert_eq!(target_of_namespace("target-eu-1"), Some("eu-1"));
        assert_eq!(target_of_namespace("target-"), None);
        assert_eq!(target_of_namespace("default"), None);
    }

    #[test]
    fn a_placement_round_trips() {
        let placement: Placement = round_trips(json!({
            "apiVersion": "compute.trellis.dev/v1alpha1",
            "kind": "Placement",
            "metadata": {
                "name": "2cynbfy2m0wtjqcs-ml-llama",
                "namespace": "target-eu-1",
                "labels": {
                    "trellis.dev/sync-target": "eu-1",
                    "trellis.dev/origin-cluster": "2cynbfy2m0wtjqcs",
                    "trellis.dev/origin-uid": "0b7f3c1e-58a4-4a4e-9d55-2f7c6a1e9b10",
                },
            },
            "spec": {
                "origin": {"workspace": "root:acme:ml", "cluster": "2cynbfy2m0wtjqcs",
                    "namespace": "ml", "name": "llama",
                    "uid": "0b7f3c1e-58a4-4a4e-9d55-2f7c6a1e9b10", "generation": 3},
                "model": {"uri": "oci://ghcr.io/acme/llama-3.1-8b:v1"},
                "runtime": {"image": "vllm/vllm-openai:v0.9.1", "port": 8000},
                "resources": {"gpu": {"productName": "NVIDIA-H100-80GB-HBM3", "count": 2},
                    "memory": "64Gi"},
                "replicas": 2,
                "booking": 17,
            },
            "status": {
                "observedGeneration": 1,
                "replicas": 2,
                "readyReplicas": 1,
                "endpoint": "http://10.0.4.17:8000",
                "conditions": [{"type": "Progressing", "status": "False",
                    "reason": "ImagePullBackOff", "message": "",
                    "lastTransitionTime": "2025-06-01T10:00:00Z"}],
            },
        }));
        let namespace = placement.metadata.namespace.as_deref().unwrap_or_default();
        assert_eq!(target_of_namespace(namespace), Some("eu-1"));
        assert_eq!(placement.spec.booking, 17);
    }

    #[test]
    fn booking_is_optional_and_stays_off_the_wire_when_zero() {
        let definitions = openapi_definitions::<Placement>();
        let spec = &definitions["dev.trellis.compute.v1alpha1.PlacementSpec"];
        assert_eq!(spec["properties"]["booking"]["minimum"], json!(0));
        assert_eq!(spec["properties"]["booking"]["format"], "int64");
        let required = spec["required"].as_array().cloned().unwrap_or_default();
        assert!(!required.contains(&json!("booking")), "{required:?}");
        let without = json!({"origin": {"workspace": "root:acme:ml", "cluster": "2cynbfy2m0wtjqcs",
                "namespace": "ml", "name": "llama", "uid": "u", "generation": 1},
            "model": {"uri": "hf://meta-llama/Llama-3.1-8B-Instruct"},
            "runtime": {"image": "vllm/vllm-openai:v0.9.1", "port": 8000},
            "resources": {"gpu": {"productName": "NVIDIA H200", "count": 1}},
            "replicas": 1});
        let spec: PlacementSpec = round_trips(without);
        assert_eq!(spec.booking, 0);
    }

    #[test]
    fn spec_is_required_and_gpu_count_defaults_to_one() {
        let definitions = openapi_definitions::<Placement>();
        assert_eq!(
            definitions["dev.trellis.compute.v1alpha1.Placement"]["required"],
            json!(["spec"])
        );
        let origin = &definitions["dev.trellis.compute.v1alpha1.PlacementOrigin"];
        assert_eq!(
            origin["required"],
            json!([
                "workspace",
                "cluster",
                "namespace",
                "name",
                "uid",
                "generation"
            ])
        );
        assert_eq!(
            defaults_agree::<PlacementGPU>(json!({"productName": "x"})),
            1
        );
    }
}
