//! `GPUPool`: GPUs of a set of SyncTargets, sorted into classes and shared out to tenant
//! workspaces as quotas, in a provider workspace. The platform team writes the spec; the
//! pool accounting controller writes the status (capacity and allocation per class and
//! target, reservation and borrowing per tenant). Also the pool's condition names.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube_core::ClusterResourceScope;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{GROUP, VERSION};
use crate::object::{api_object, is_zero};
use crate::tenancy::WORKSPACE_PATH_PATTERN;

/// What a class name looks like: a DNS label, as deployments name it in
/// `resources.gpu.class`.
const CLASS_NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// Condition types in a GPUPool's status.
pub mod conditions {
    /// The pool is accounted: its targets are selected and its capacity is known.
    pub const READY: &str = "Ready";
}

/// Reasons on a GPUPool's conditions.
pub mod reasons {
    /// The target selector matches no SyncTarget (on `Ready`).
    pub const NO_MATCHING_TARGETS: &str = "NoMatchingTargets";
    /// The target selector matches SyncTargets and their capacity is counted (on `Ready`).
    pub const TARGETS_SELECTED: &str = "TargetsSelected";
}

api_object! {
    /// A pool of GPUs for tenants, published by a platform team in its provider workspace:
    /// the SyncTargets it draws on, the classes its GPUs are sorted into, and how much of
    /// each class every tenant workspace may use. A ModelDeployment names the pool as
    /// `<workspace path>/<pool name>` and asks for GPUs of one class.
    pub struct GPUPool {
        group: GROUP,
        version: VERSION,
        plural: "gpupools",
        scope: ClusterResourceScope,
        schema: "dev.trellis.compute.v1alpha1.GPUPool",
        /// The targets, classes and tenant quotas of the pool.
        #[serde(default)]
        spec: GPUPoolSpec,
        /// Capacity and use of the pool, kept by the hub.
        status: GPUPoolStatus,
    }
}

/// The targets, classes and tenant quotas of the pool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.compute.v1alpha1.GPUPoolSpec")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.tenants) || self.tenants.all(t, !has(t.quotas) || t.quotas.all(q, has(self.classes) && self.classes.exists(c, c.name == q.class)))",
    "message": "every tenant quota must name a class of this pool",
}]))]
pub struct GPUPoolSpec {
    /// Which SyncTargets of this workspace lend their GPUs to the pool, by label (e.g.
    /// `topology.kubernetes.io/region`). Absent or empty selects every SyncTarget here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_selector: Option<LabelSelector>,
    /// The classes GPUs are sorted into; a GPU counts in every class it matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub classes: Vec<GPUClass>,
    /// The workspaces that may use the pool, each with its quotas. Only these workspaces
    /// and their children may use the pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["workspace"]))]
    pub tenants: Vec<GPUPoolTenant>,
}

/// A named kind of GPU deployments ask for, defined by what the hardware must have.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.compute.v1alpha1.GPUClass")]
pub struct GPUClass {
    /// The class name deployments use, e.g. `h100` or `large-memory`.
    #[schemars(pattern(CLASS_NAME_PATTERN), length(max = 63))]
    pub name: String,
    /// What a GPU product must have to belong to the class.
    #[serde(default)]
    pub r#match: GPUClassMatch,
}

/// What a GPU product must have to belong to a class. Every field given must hold; an
/// empty match takes every GPU.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.compute.v1alpha1.GPUClassMatch")]
pub struct GPUClassMatch {
    /// Exactly this product, as in a SyncTarget's `status.gpus[].productName`, e.g.
    /// `NVIDIA-H100-80GB-HBM3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    /// At least this much memory per device, in MiB.
    #[serde(
        default,
        rename = "minMemoryMiB",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 0))]
    pub min_memory_mib: Option<i64>,
    /// Exactly this architecture family, e.g. `hopper`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
}

/// A workspace allowed to use the pool, with its share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.compute.v1alpha1.GPUPoolTenant")]
pub struct GPUPoolTenant {
    /// The tenant's workspace path, e.g. `root:acme`. Its child workspaces are included and
    /// share its quotas.
    #[schemars(pattern(WORKSPACE_PATH_PATTERN))]
    pub workspace: String,
    /// The tenant's share of GPUs that are free to borrow, relative to the other tenants'
    /// weights; 0 never borrows.
    #[serde(default = "default_weight")]
    #[schemars(range(min = 0))]
    pub weight: i32,
    /// What the tenant may use of each class, one entry per class; a class not listed
    /// here can only be borrowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["class"]))]
    pub quotas: Vec<GPUQuota>,
}

fn default_weight() -> i32 {
    1
}

impl Default for GPUPoolTenant {
    fn default() -> Self {
        GPUPoolTenant {
            workspace: String::new(),
            weight: default_weight(),
            quotas: Vec::new(),
        }
    }
}

/// A tenant's quota of one class, in devices.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.compute.v1alpha1.GPUQuota")]
pub struct GPUQuota {
    /// The class, by name.
    pub class: String,
    /// Devices the tenant is guaranteed.
    #[schemars(range(min = 0))]
    pub nominal_quota: i32,
    /// Devices the tenant may borrow beyond its nominal quota from what others leave
    /// unused; no limit when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub borrowing_limit: Option<i32>,
    /// Devices of its unused nominal quota the tenant lends to others; all of them when
    /// absent. Lent devices are not taken back from running replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub lending_limit: Option<i32>,
}

/// Capacity and use of the pool, kept by the hub.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.compute.v1alpha1.GPUPoolStatus")]
pub struct GPUPoolStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, one entry per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Capacity and allocation of each class.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub classes: Vec<GPUClassStatus>,
    /// What each tenant uses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["workspace"]))]
    pub tenants: Vec<GPUPoolTenantStatus>,
}

/// Capacity and allocation of one class, in devices.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.compute.v1alpha1.GPUClassStatus")]
pub struct GPUClassStatus {
    /// The class.
    pub name: String,
    /// Devices of the class on the pool's Ready, schedulable targets.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0))]
    pub capacity: i32,
    /// Devices of the class assigned to deployments through this pool.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0))]
    pub allocated: i32,
    /// The same, per target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["target"]))]
    pub targets: Vec<GPUClassTargetStatus>,
}

/// Capacity and allocation of one class on one target, in devices.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.compute.v1alpha1.GPUClassTargetStatus")]
pub struct GPUClassTargetStatus {
    /// The SyncTarget's name.
    pub target: String,
    /// Devices of the class on the target.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0))]
    pub capacity: i32,
    /// Devices of the class on the target assigned through this pool.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0))]
    pub allocated: i32,
}

/// What one tenant uses of the pool.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.compute.v1alpha1.GPUPoolTenantStatus")]
pub struct GPUPoolTenantStatus {
    /// The tenant's workspace path, as in the spec.
    pub workspace: String,
    /// Use per class, one entry per class the tenant uses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["class"]))]
    pub classes: Vec<GPUTenantClassUsage>,
}

/// What one tenant uses of one class, in devices.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.compute.v1alpha1.GPUTenantClassUsage")]
pub struct GPUTenantClassUsage {
    /// The class.
    pub class: String,
    /// Devices admitted for the tenant's deployments, borrowed ones included.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0))]
    pub reserved: i32,
    /// The part of `reserved` beyond the tenant's nominal quota.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0))]
    pub borrowed: i32,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::tests::{defaults_agree, openapi_definitions, round_trips};

    #[test]
    fn a_pool_round_trips() {
        let pool: GPUPool = round_trips(json!({
            "apiVersion": "compute.trellis.dev/v1alpha1",
            "kind": "GPUPool",
            "metadata": {"name": "h100-eu"},
            "spec": {
                "targetSelector": {"matchLabels": {"topology.kubernetes.io/region": "eu-west-1"}},
                "classes": [
                    {"name": "h100", "match": {"productName": "NVIDIA-H100-80GB-HBM3"}},
                    {"name": "large-memory", "match": {"minMemoryMiB": 80000, "architecture": "hopper"}},
                ],
                "tenants": [
                    {"workspace": "root:acme", "weight": 2, "quotas": [
                        {"class": "h100", "nominalQuota": 8, "borrowingLimit": 4, "lendingLimit": 2},
                    ]},
                    {"workspace": "root:globex", "weight": 1, "quotas": [
                        {"class": "large-memory", "nominalQuota": 4},
                    ]},
                ],
            },
            "status": {
                "observedGeneration": 1,
                "classes": [{"name": "h100", "capacity": 16, "allocated": 10, "targets": [
                    {"target": "eu-1", "capacity": 16, "allocated": 10},
                ]}],
                "tenants": [{"workspace": "root:acme", "classes": [
                    {"class": "h100", "reserved": 10, "borrowed": 2},
                ]}],
            },
        }));
        assert_eq!(pool.spec.classes[1].r#match.min_memory_mib, Some(80000));
    }

    #[test]
    fn weight_and_match_default_in_serde_rust_and_schema_alike() {
        assert_eq!(
            defaults_agree::<GPUPoolTenant>(json!({"workspace": "root:acme"})),
            1
        );
        assert_eq!(defaults_agree::<GPUClass>(json!({"name": "h100"})), 1);
    }

    #[test]
    fn quotas_must_name_a_class_and_lists_are_keyed() {
        let definitions = openapi_definitions::<GPUPool>();
        let spec = &definitions["dev.trellis.compute.v1alpha1.GPUPoolSpec"];
        let rule = spec["x-kubernetes-validations"][0]["rule"]
            .as_str()
            .unwrap_or_default();
        assert!(
            rule.contains("self.classes.exists(c, c.name == q.class)"),
            "{rule}"
        );
        assert_eq!(
            spec["properties"]["classes"]["x-kubernetes-list-map-keys"],
            json!(["name"])
        );
        assert_eq!(
            spec["properties"]["tenants"]["x-kubernetes-list-map-keys"],
            json!(["workspace"])
        );
        let tenant = &definitions["dev.trellis.compute.v1alpha1.GPUPoolTenant"]["properties"];
        assert_eq!(
            tenant["quotas"]["x-kubernetes-list-map-keys"],
            json!(["class"])
        );
        assert_eq!(
            tenant["workspace"]["pattern"],
            crate::tenancy::WORKSPACE_PATH_PATTERN
        );
    }
}
