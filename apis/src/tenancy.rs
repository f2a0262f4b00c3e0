//! `tenancy.trellis.dev/v1alpha1`: Workspace and WorkspaceType.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube_core::ClusterResourceScope;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::object::api_object;
use crate::WorkspaceTypeReference;

pub const GROUP: &str = "tenancy.trellis.dev";
pub const VERSION: &str = "v1alpha1";

/// What a workspace path looks like, as a schema `pattern`: workspace names (DNS labels)
/// joined by `:`, e.g. `root:acme:ml`. Fields of other groups that name a workspace by path
/// validate against it.
pub const WORKSPACE_PATH_PATTERN: &str =
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(:[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

api_object! {
    /// A workspace: a Kubernetes API of its own (namespaces, CRDs, RBAC, objects) at
    /// `/clusters/<parent path>:<name>`, created inside its parent workspace.
    pub struct Workspace {
        group: GROUP,
        version: VERSION,
        plural: "workspaces",
        scope: ClusterResourceScope,
        schema: "dev.trellis.tenancy.v1alpha1.Workspace",
        #[serde(default)]
        spec: WorkspaceSpec,
        status: WorkspaceStatus,
    }
}

/// What a workspace should be.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.tenancy.v1alpha1.WorkspaceSpec")]
pub struct WorkspaceSpec {
    /// The workspace's type; the parent type's default child type when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<WorkspaceTypeReference>,
    /// Where the workspace's objects are stored: a selector over Shard labels. The least
    /// loaded matching shard is chosen; any shard when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<WorkspaceLocation>,
    /// The id of the workspace's logical cluster: random, stable, set by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

/// A shard selector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.tenancy.v1alpha1.WorkspaceLocation")]
pub struct WorkspaceLocation {
    /// Shards whose labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// What a workspace is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.tenancy.v1alpha1.WorkspaceStatus")]
pub struct WorkspaceStatus {
    /// Scheduling, Initializing, Ready or Terminating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Where the workspace's API is served: `https://<hub>/clusters/<path>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The shard holding the workspace's objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

api_object! {
    /// A kind of workspace: where it may be created, what it may contain, and what it starts
    /// with.
    pub struct WorkspaceType {
        group: GROUP,
        version: VERSION,
        plural: "workspacetypes",
        scope: ClusterResourceScope,
        schema: "dev.trellis.tenancy.v1alpha1.WorkspaceType",
        #[serde(default)]
        spec: WorkspaceTypeSpec,
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.tenancy.v1alpha1.WorkspaceTypeSpec")]
pub struct WorkspaceTypeSpec {
    /// The type of children created without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_child_workspace_type: Option<WorkspaceTypeReference>,
    /// The types a child may have; any when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_allowed_children: Option<WorkspaceTypeSelector>,
    /// The types a parent may have; any when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_allowed_parents: Option<WorkspaceTypeSelector>,
    /// Namespaces every new workspace of this type starts with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub initial_namespaces: Vec<String>,
}

/// A set of workspace types.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.tenancy.v1alpha1.WorkspaceTypeSelector")]
pub struct WorkspaceTypeSelector {
    /// No type at all.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub none: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<WorkspaceTypeReference>,
}
