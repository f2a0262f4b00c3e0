//! The objects of Trellis' own API groups, typed: what the hub serves under
//! `tenancy.trellis.dev` and `core.trellis.dev`, with serde for the wire format and JSON
//! schemas (schemars) for OpenAPI, `kubectl explain` and field validation. Also the
//! well-known labels and annotations.

pub mod core;
pub mod tenancy;

/// Set on objects of a wildcard (`/clusters/*`) list or watch: the workspace path.
pub const CLUSTER_ANNOTATION: &str = "trellis.dev/cluster";
/// The path of a logical cluster, on its `LogicalCluster` object.
pub const PATH_ANNOTATION: &str = "trellis.dev/path";

/// A reference to a WorkspaceType: its name and the workspace path it is defined in.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.tenancy.v1alpha1.WorkspaceTypeReference")]
pub struct WorkspaceTypeReference {
    /// The WorkspaceType's name, e.g. `universal`.
    pub name: String,
    /// The workspace the type is defined in; `root` when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
}
