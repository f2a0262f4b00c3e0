//! The objects of Trellis' own API groups, typed: what the hub serves under
//! `tenancy.trellis.dev`, `core.trellis.dev`, `compute.trellis.dev` and
//! `serving.trellis.dev`, with serde for the wire format and JSON schemas (schemars) for
//! OpenAPI, `kubectl explain` and field validation. Every kind implements [`ApiObject`] and
//! `kube_core::Resource`, so a client (the syncer) uses `kube::Api<K>` on them depending on
//! this crate and kube only. Also the well-known labels and annotations, each beside the
//! kind that owns it.

pub mod compute;
pub mod core;
mod object;
pub mod serving;
pub mod tenancy;

pub use object::ApiObject;

/// Set on objects of a wildcard (`/clusters/*`) list or watch: the workspace path.
pub const CLUSTER_ANNOTATION: &str = "trellis.dev/cluster";
/// The path of a logical cluster, on its `LogicalCluster` object.
pub const PATH_ANNOTATION: &str = "trellis.dev/path";
/// The W3C `traceparent` of the request that created an object (set only while traces are
/// exported), which the controllers and the syncer acting on it continue: one trace from a
/// tenant's ModelDeployment create to the edge's Deployment.
pub const TRACEPARENT_ANNOTATION: &str = "trellis.dev/traceparent";

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

#[cfg(test)]
mod tests;
