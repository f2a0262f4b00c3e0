//! `serving.trellis.dev/v1alpha1`: ModelDeployment, what a tenant writes in its workspace to
//! serve a model on the GPU fleet: the model, the inference runtime, GPUs per replica, how
//! many replicas, which pool to draw on and how to fail over. The hub writes its status
//! (admission, placement per target, readiness). Also its condition types and reasons, and
//! the model URI schemes it accepts.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube_core::NamespaceResourceScope;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::object::{api_object, is_zero};

pub const GROUP: &str = "serving.trellis.dev";
pub const VERSION: &str = "v1alpha1";

/// Condition types in a ModelDeployment's status, in the order a deployment passes them.
pub mod conditions {
    /// The pool admitted the deployment: the tenant's quota (with what it may borrow) covers
    /// at least `minReplicas`.
    pub const QUOTA_RESERVED: &str = "QuotaReserved";
    /// Replicas are assigned to targets; `status.placements` lists them.
    pub const SCHEDULED: &str = "Scheduled";
    /// Every target's syncer has the current spec.
    pub const SYNCED: &str = "Synced";
    /// At least `minReplicas` replicas are ready to serve.
    pub const AVAILABLE: &str = "Available";
    /// All wanted replicas are ready to serve.
    pub const READY: &str = "Ready";
    /// Replicas are lost or stuck and could not be replaced; the message says which.
    pub const DEGRADED: &str = "Degraded";
}

/// Reasons on a ModelDeployment's conditions.
pub mod reasons {
    /// `QuotaReserved` is False: the tenant's quota of the class, with what it may borrow,
    /// does not cover `minReplicas`.
    pub const QUOTA_EXCEEDED: &str = "QuotaExceeded";
    /// `QuotaReserved` is False: `placement.pool` names no GPUPool.
    pub const POOL_NOT_FOUND: &str = "PoolNotFound";
    /// `QuotaReserved` is False: the pool has no class named by `resources.gpu.class`.
    pub const CLASS_NOT_FOUND: &str = "ClassNotFound";
    /// `QuotaReserved` is False: this workspace is not among the pool's tenants.
    pub const NOT_ALLOWED: &str = "NotAllowed";
    /// `Scheduled` is False: no Ready, untainted target selected by the pool and the
    /// deployment has free GPUs of the class.
    pub const NO_TARGET_FITS: &str = "NoTargetFits";
    /// `Scheduled` is False: enough GPUs are free in total, but not enough of them on a
    /// single node for one replica.
    pub const INSUFFICIENT_CONTIGUOUS_GPUS: &str = "InsufficientContiguousGPUs";
    /// `Degraded` is True: a target running replicas stopped reporting.
    pub const TARGET_LOST: &str = "TargetLost";
    /// `Degraded` is True: replicas must move but no other target has room; they are left
    /// where they are.
    pub const NO_ALTERNATIVE_CAPACITY: &str = "NoAlternativeCapacity";
    /// `Degraded` is True: a target's replicas cannot start or keep running (the message
    /// carries the target's own reason, e.g. `ImagePullBackOff`).
    pub const REPLICAS_FAILING: &str = "ReplicasFailing";

    // Reasons of conditions that hold, and of the conditions that wait on nothing in
    // particular: a condition always carries a reason.

    /// `QuotaReserved` is True.
    pub const QUOTA_RESERVED: &str = "QuotaReserved";
    /// `Scheduled` is True.
    pub const SCHEDULED: &str = "Scheduled";
    /// `Synced` is True: every target's Placement has the current spec and its syncer has
    /// reported on it.
    pub const SYNCED: &str = "Synced";
    /// `Synced` is False: a Placement was just written or its syncer has not reported yet.
    pub const SYNC_PENDING: &str = "SyncPending";
    /// `Available` is True.
    pub const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
    /// `Available` is False.
    pub const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
    /// `Ready` is True.
    pub const ALL_REPLICAS_READY: &str = "AllReplicasReady";
    /// `Ready` is False.
    pub const REPLICAS_NOT_READY: &str = "ReplicasNotReady";
    /// `Degraded` is False.
    pub const AS_EXPECTED: &str = "AsExpected";
}

/// The rule `model.uri` must pass; kept beside [`ModelScheme`], whose prefixes it lists.
const MODEL_URI_RULE: &str = "self.matches('^(oci|hf|s3|pvc)://.+$')";

/// Where a model's weights come from, by the scheme of its URI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelScheme {
    /// `oci://registry/repository:tag`: an OCI artifact, mounted as an image volume where
    /// the target supports it.
    Oci,
    /// `hf://organization/model`: a Hugging Face Hub repository.
    HuggingFace,
    /// `s3://bucket/prefix`: an S3-compatible bucket.
    S3,
    /// `pvc://claim/path`: a PersistentVolumeClaim already on the target.
    Pvc,
}

impl ModelScheme {
    /// Every scheme `model.uri` may have.
    pub const ALL: [ModelScheme; 4] = [
        ModelScheme::Oci,
        ModelScheme::HuggingFace,
        ModelScheme::S3,
        ModelScheme::Pvc,
    ];

    /// The URI prefix, e.g. `oci://`.
    pub fn prefix(self) -> &'static str {
        match self {
            ModelScheme::Oci => "oci://",
            ModelScheme::HuggingFace => "hf://",
            ModelScheme::S3 => "s3://",
            ModelScheme::Pvc => "pvc://",
        }
    }
}

api_object! {
    /// A model served on the GPU fleet: the hub admits it against the workspace's quota in
    /// a GPUPool, places its replicas on the pool's clusters, keeps them there while they are
    /// healthy and moves them when a cluster is lost. Scales like a Deployment
    /// (`kubectl scale` sets `spec.replicas`; `status.replicas` and `status.selector` answer
    /// the scale subresource).
    pub struct ModelDeployment {
        group: GROUP,
        version: VERSION,
        plural: "modeldeployments",
        scope: NamespaceResourceScope,
        schema: "dev.trellis.serving.v1alpha1.ModelDeployment",
        /// The model, its runtime, its GPUs and where it may run.
        spec: ModelDeploymentSpec,
        /// Admission, placement and readiness, kept by the hub.
        status: ModelDeploymentStatus,
    }
}

/// The model, its runtime, its GPUs and where it may run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.serving.v1alpha1.ModelDeploymentSpec")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.maxReplicas) || (has(self.minReplicas) ? self.minReplicas : 1) <= self.maxReplicas",
    "message": "minReplicas must not be greater than maxReplicas",
}]))]
pub struct ModelDeploymentSpec {
    /// The model to serve.
    pub model: ModelSource,
    /// The inference server that serves it.
    pub runtime: ModelRuntime,
    /// What one replica needs.
    pub resources: ModelResources,
    /// The fewest replicas worth running: the deployment is admitted and placed only when
    /// at least this many fit. 0 keeps it admitted without running anything.
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 0))]
    pub min_replicas: i32,
    /// The most replicas `spec.replicas` may ask for; no limit when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_replicas: Option<i32>,
    /// How many replicas to run, kept within `minReplicas` and `maxReplicas`;
    /// `minReplicas` when absent. Set by you, `kubectl scale` or an autoscaler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    /// Which pool to draw GPUs from and how to spread replicas over its clusters.
    pub placement: PlacementPolicy,
    /// What happens to replicas on a cluster that is lost.
    #[serde(default)]
    pub failover: Failover,
}

fn default_min_replicas() -> i32 {
    1
}

impl Default for ModelDeploymentSpec {
    fn default() -> Self {
        ModelDeploymentSpec {
            model: ModelSource::default(),
            runtime: ModelRuntime::default(),
            resources: ModelResources::default(),
            min_replicas: default_min_replicas(),
            max_replicas: None,
            replicas: None,
            placement: PlacementPolicy::default(),
            failover: Failover::default(),
        }
    }
}

impl ModelDeploymentSpec {
    /// The replicas wanted: `replicas` (or `minReplicas` when absent), kept within
    /// `minReplicas` and `maxReplicas`.
    pub fn wanted_replicas(&self) -> i32 {
        let wanted = self
            .replicas
            .unwrap_or(self.min_replicas)
            .max(self.min_replicas);
        match self.max_replicas {
            Some(max) => wanted.min(max.max(self.min_replicas)),
            None => wanted,
        }
    }
}

/// The model to serve.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.serving.v1alpha1.ModelSource")]
pub struct ModelSource {
    /// Where the weights are: `oci://registry/repository:tag` (an OCI artifact),
    /// `hf://organization/model` (Hugging Face Hub), `s3://bucket/prefix` or
    /// `pvc://claim/path` (a PersistentVolumeClaim present on every target).
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": MODEL_URI_RULE,
        "message": "uri must start with oci://, hf://, s3:// or pvc://",
    }]))]
    pub uri: String,
    /// The model name clients send in requests (OpenAI-style `model`); the
    /// ModelDeployment's name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_name: Option<String>,
}

impl ModelSource {
    /// The scheme of `uri`, or `None` for one this API does not accept.
    pub fn scheme(&self) -> Option<ModelScheme> {
        ModelScheme::ALL
            .into_iter()
            .find(|s| self.uri.starts_with(s.prefix()))
    }
}

/// The inference server container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.serving.v1alpha1.ModelRuntime")]
pub struct ModelRuntime {
    /// The container image, e.g. `vllm/vllm-openai:v0.9.1`.
    pub image: String,
    /// Arguments to the image's entrypoint, e.g. `["--max-model-len", "8192"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// The port the server listens on for HTTP; each target's endpoint points to it.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

fn default_port() -> i32 {
    8000
}

impl Default for ModelRuntime {
    fn default() -> Self {
        ModelRuntime {
            image: String::new(),
            args: Vec::new(),
            port: default_port(),
        }
    }
}

/// What one replica needs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.serving.v1alpha1.ModelResources")]
pub struct ModelResources {
    /// GPUs per replica, all on one node.
    pub gpu: GPURequest,
    /// CPU per replica, e.g. `8`; the runtime's own request when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,
    /// Memory per replica, e.g. `64Gi`; the runtime's own request when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
}

/// GPUs per replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.serving.v1alpha1.GPURequest")]
pub struct GPURequest {
    /// The pool's GPU class, by name, e.g. `h100`.
    pub class: String,
    /// GPUs per replica, all on one node.
    #[serde(default = "default_gpu_count")]
    #[schemars(range(min = 1))]
    pub count: i32,
}

fn default_gpu_count() -> i32 {
    1
}

impl Default for GPURequest {
    fn default() -> Self {
        GPURequest {
            class: String::new(),
            count: default_gpu_count(),
        }
    }
}

/// Which pool to draw GPUs from and how to spread replicas over its clusters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.serving.v1alpha1.PlacementPolicy")]
pub struct PlacementPolicy {
    /// The GPUPool, as `<workspace path>/<name>`, e.g. `root:platform/h100-eu`.
    #[schemars(pattern(POOL_REFERENCE_PATTERN))]
    pub pool: String,
    /// `BinPack` (the default) fills the fewest clusters, leaving whole nodes free
    /// elsewhere; `Spread` puts replicas on as many clusters as it can, so losing one
    /// costs less.
    #[serde(default)]
    pub strategy: PlacementStrategy,
    /// The most clusters the replicas may be spread over; no limit when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_targets: Option<i32>,
    /// Narrows the pool's clusters by their labels (e.g. `topology.kubernetes.io/region`);
    /// all of them when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_selector: Option<LabelSelector>,
}

/// A pool reference: a workspace path (see [`crate::tenancy::WORKSPACE_PATH_PATTERN`]),
/// `/`, and a GPUPool name (a DNS subdomain).
const POOL_REFERENCE_PATTERN: &str =
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(:[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$";

impl PlacementPolicy {
    /// The pool's workspace path and name, split at the last `/`.
    pub fn pool_reference(&self) -> Option<(&str, &str)> {
        self.pool
            .rsplit_once('/')
            .filter(|(ws, name)| !ws.is_empty() && !name.is_empty())
    }
}

/// How replicas are spread over a pool's clusters: `BinPack` fills the fewest clusters,
/// `Spread` uses as many as it can.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "dev.trellis.serving.v1alpha1.PlacementStrategy")]
pub enum PlacementStrategy {
    // Variants carry no doc comments: schemars would turn documented variants into a
    // `oneOf`, where a plain string `enum` is what a structural schema wants.
    #[default]
    BinPack,
    Spread,
}

/// What happens to replicas on a cluster that is lost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.serving.v1alpha1.Failover")]
pub struct Failover {
    /// How long replicas stay on a cluster after it was found unreachable before they are
    /// placed elsewhere.
    #[serde(default = "default_toleration_seconds")]
    #[schemars(range(min = 0))]
    pub toleration_seconds: i64,
    /// `Gracefully` (the default) removes the old replicas only once their replacements
    /// are available, or after `gracePeriodSeconds`; `Directly` removes them as soon as
    /// the replacements are placed.
    #[serde(default)]
    pub purge_mode: PurgeMode,
    /// With `Gracefully`: how long old replicas may wait for their replacements to become
    /// available before they are removed anyway.
    #[serde(default = "default_grace_period_seconds")]
    #[schemars(range(min = 0))]
    pub grace_period_seconds: i64,
}

fn default_toleration_seconds() -> i64 {
    300
}

fn default_grace_period_seconds() -> i64 {
    600
}

impl Default for Failover {
    fn default() -> Self {
        Failover {
            toleration_seconds: default_toleration_seconds(),
            purge_mode: PurgeMode::default(),
            grace_period_seconds: default_grace_period_seconds(),
        }
    }
}

/// When old replicas are removed after a move: `Gracefully` once the replacements are
/// available, `Directly` at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "dev.trellis.serving.v1alpha1.PurgeMode")]
pub enum PurgeMode {
    // No variant doc comments: see `PlacementStrategy`.
    #[default]
    Gracefully,
    Directly,
}

/// Admission, placement and readiness, kept by the hub.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.serving.v1alpha1.ModelDeploymentStatus")]
pub struct ModelDeploymentStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Replicas running on all targets together.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// Replicas ready to serve on all targets together.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0))]
    pub ready_replicas: i32,
    /// The replicas' label selector in string form, for the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// `QuotaReserved`, `Scheduled`, `Synced`, `Available`, `Ready` and `Degraded`, one
    /// entry per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Where the replicas run, one entry per target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["target"]))]
    pub placements: Vec<PlacedReplicas>,
}

/// The replicas placed on one target.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.serving.v1alpha1.PlacedReplicas")]
pub struct PlacedReplicas {
    /// The SyncTarget's name, in the pool's workspace.
    pub target: String,
    /// Replicas assigned to the target.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// Of those, replicas ready to serve.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0))]
    pub ready_replicas: i32,
    /// Where the target serves the model, e.g. `http://10.0.4.17:8000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::tests::{defaults_agree, openapi_definitions, resolve, round_trips};

    fn definitions() -> serde_json::Map<String, Value> {
        openapi_definitions::<ModelDeployment>()
    }

    fn definition(name: &str) -> Value {
        definitions()[&format!("dev.trellis.serving.v1alpha1.{name}")].clone()
    }

    #[test]
    fn schema_carries_the_defaults() {
        let spec = definition("ModelDeploymentSpec");
        assert_eq!(spec["properties"]["minReplicas"]["default"], json!(1));
        assert_eq!(
            spec["properties"]["failover"]["default"],
            json!({"tolerationSeconds": 300, "purgeMode": "Gracefully", "gracePeriodSeconds": 600})
        );
        assert_eq!(
            spec["required"],
            json!(["model", "runtime", "resources", "placement"])
        );
        let placement = definition("PlacementPolicy");
        assert_eq!(
            placement["properties"]["strategy"]["default"],
            json!("BinPack")
        );
        assert_eq!(
            definition("ModelRuntime")["properties"]["port"]["default"],
            json!(8000)
        );
        let gpu = definition("GPURequest");
        assert_eq!(gpu["properties"]["count"]["default"], json!(1));
        assert_eq!(gpu["properties"]["count"]["minimum"], json!(1));
    }

    #[test]
    fn serde_and_default_agree_with_the_schema_defaults() {
        let pool = json!({"pool": "root:platform/h100"});
        let spec = json!({
            "model": {"uri": "hf://meta-llama/Llama-3.1-8B-Instruct"},
            "runtime": {"image": "vllm/vllm-openai:v0.9.1"},
            "resources": {"gpu": {"class": "h100"}},
            "placement": pool,
        });
        assert_eq!(defaults_agree::<ModelDeploymentSpec>(spec), 2);
        assert_eq!(defaults_agree::<Failover>(json!({})), 3);
        assert_eq!(defaults_agree::<PlacementPolicy>(pool), 1);
        assert_eq!(defaults_agree::<ModelRuntime>(json!({"image": "i"})), 1);
        assert_eq!(defaults_agree::<GPURequest>(json!({"class": "h100"})), 1);
    }

    #[test]
    fn strategies_and_purge_modes_are_string_enums() {
        assert_eq!(
            definition("PlacementStrategy"),
            json!({
                "type": "string",
                "enum": ["BinPack", "Spread"],
                "description": "How replicas are spread over a pool's clusters: `BinPack` fills the fewest clusters,\n`Spread` uses as many as it can.",
            })
        );
        let purge = definition("PurgeMode");
        assert_eq!(purge["type"], "string");
        assert_eq!(purge["enum"], json!(["Gracefully", "Directly"]));
    }

    #[test]
    fn status_lists_are_maps_keyed_by_type_and_target() {
        let status = definition("ModelDeploymentStatus");
        for (field, key) in [("conditions", "type"), ("placements", "target")] {
            let list = &status["properties"][field];
            assert_eq!(list["x-kubernetes-list-type"], "map", "{field}");
            assert_eq!(list["x-kubernetes-list-map-keys"], json!([key]), "{field}");
        }
    }

    #[test]
    fn rules_guard_replica_bounds_and_uri_schemes() {
        let spec = definition("ModelDeploymentSpec");
        let rule = &spec["x-kubernetes-validations"][0]["rule"];
        assert!(rule
            .as_str()
            .is_some_and(|r| r.contains("self.minReplicas") && r.contains("<= self.maxReplicas")));
        let uri = &definition("ModelSource")["properties"]["uri"];
        assert_eq!(uri["x-kubernetes-validations"][0]["rule"], MODEL_URI_RULE);
        let definitions = definitions();
        let placement = resolve(&definitions, &spec["properties"]["placement"]);
        assert_eq!(
            placement["properties"]["pool"]["pattern"],
            POOL_REFERENCE_PATTERN
        );
    }

    #[test]
    fn the_uri_rule_accepts_exactly_the_schemes() {
        let schemes: Vec<&str> = ModelScheme::ALL
            .iter()
            .map(|s| s.prefix().trim_end_matches("://"))
            .collect();
        assert_eq!(
            MODEL_URI_RULE,
            format!("self.matches('^({})://.+$')", schemes.join("|"))
        );
        let source = |uri: &str| ModelSource {
            uri: uri.into(),
            served_name: None,
        };
        assert_eq!(
            source("oci://ghcr.io/acme/llama:8b").scheme(),
            Some(ModelScheme::Oci)
        );
        assert_eq!(
            source("hf://Qwen/Qwen3-8B").scheme(),
            Some(ModelScheme::HuggingFace)
        );
        assert_eq!(
            source("pvc://weights/llama").scheme(),
            Some(ModelScheme::Pvc)
        );
        assert_eq!(source("https://example.com/model").scheme(), None);
    }

    #[test]
    fn pool_references_are_workspace_path_slash_name() {
        let workspace = crate::tenancy::WORKSPACE_PATH_PATTERN.trim_end_matches('$');
        assert!(POOL_REFERENCE_PATTERN.starts_with(&format!("{workspace}/")));
        let policy = |pool: &str| PlacementPolicy {
            pool: pool.into(),
            ..Default::default()
        };
        assert_eq!(
            policy("root:platform/h100-eu").pool_reference(),
            Some(("root:platform", "h100-eu"))
        );
        assert_eq!(policy("h100-eu").pool_reference(), None);
        assert_eq!(policy("root:platform/").pool_reference(), None);
    }

    #[test]
    fn wanted_replicas_stay_within_the_bounds() {
        let spec = |min, max, replicas| ModelDeploymentSpec {
            min_replicas: min,
            max_replicas: max,
            replicas,
            ..Default::default()
        };
        assert_eq!(spec(1, None, None).wanted_replicas(), 1);
        assert_eq!(spec(2, Some(8), Some(5)).wanted_replicas(), 5);
        assert_eq!(spec(2, Some(8), Some(20)).wanted_replicas(), 8);
        assert_eq!(spec(2, Some(8), Some(0)).wanted_replicas(), 2);
        assert_eq!(spec(0, None, Some(3)).wanted_replicas(), 3);
    }

    #[test]
    fn a_model_deployment_as_the_server_returns_it_round_trips() {
        let md: ModelDeployment = round_trips(json!({
            "apiVersion": "serving.trellis.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": "llama", "namespace": "ml", "generation": 3,
                "uid": "0b7f3c1e-58a4-4a4e-9d55-2f7c6a1e9b10"},
            "spec": {
                "model": {"uri": "oci://ghcr.io/acme/llama-3.1-8b:v1", "servedName": "llama-8b"},
                "runtime": {
                    "image": "vllm/vllm-openai:v0.9.1",
                    "args": ["--max-model-len", "8192"],
                    "port": 8000,
                },
                "resources": {"gpu": {"class": "h100", "count": 2}, "cpu": "8", "memory": "64Gi"},
                "minReplicas": 2,
                "maxReplicas": 6,
                "replicas": 3,
                "placement": {
                    "pool": "root:platform/h100-eu",
                    "strategy": "Spread",
                    "maxTargets": 2,
                    "targetSelector": {"matchLabels": {"topology.kubernetes.io/region": "eu-west-1"}},
                },
                "failover": {"tolerationSeconds": 120, "purgeMode": "Directly", "gracePeriodSeconds": 600},
            },
            "status": {
                "observedGeneration": 3,
                "replicas": 3,
                "readyReplicas": 2,
                "selector": "trellis.dev/origin-uid=0b7f3c1e-58a4-4a4e-9d55-2f7c6a1e9b10",
                "conditions": [{
                    "type": "Degraded", "status": "True", "reason": "TargetLost",
                    "message": "target eu-2 stopped reporting",
                    "lastTransitionTime": "2025-06-01T10:05:00Z", "observedGeneration": 3,
                }],
                "placements": [
                    {"target": "eu-1", "replicas": 2, "readyReplicas": 2,
                        "endpoint": "http://10.0.4.17:8000"},
                    {"target": "eu-2", "replicas": 1},
                ],
            },
        }));
        assert_eq!(md.spec.placement.strategy, PlacementStrategy::Spread);
        assert_eq!(md.spec.failover.purge_mode, PurgeMode::Directly);
        assert_eq!(
            md.spec.resources.memory.map(|q| q.0),
            Some("64Gi".to_string())
        );
    }
}
