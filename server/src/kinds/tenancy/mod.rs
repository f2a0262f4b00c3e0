//! `tenancy.trellis.dev/v1alpha1`: Workspaces and WorkspaceTypes, the tree of logical
//! clusters. Stored in the root shard, so routing and placement read one database.

mod workspace;
mod workspace_type;

pub use workspace::Workspace;
pub use workspace_type::WorkspaceType;

use super::SchemeBuilder;

pub const GROUP: &str = trellis_apis::tenancy::GROUP;

pub fn install(scheme: &mut SchemeBuilder) {
    scheme.add(Workspace);
    scheme.add(WorkspaceType);
}
