//! The state every request shares.

use std::sync::Arc;

use trellis_storage::Store;

use crate::registry::Registry;

/// The logical cluster id of the root workspace. Keys never contain workspace paths; until
/// workspaces arrive the root workspace is the only one.
pub const ROOT_CLUSTER: &str = "root";

pub struct AppState {
    pub store: Store,
    pub registry: Arc<Registry>,
    /// Which namespaces accept new objects, for the create path.
    pub namespaces: Arc<crate::namespace_cache::NamespaceCache>,
}

impl AppState {
    /// The logical cluster id a workspace path or id in a URL names.
    pub fn resolve_workspace(&self, workspace: &str) -> Option<&'static str> {
        (workspace == crate::request_info::ROOT_WORKSPACE || workspace == ROOT_CLUSTER)
            .then_some(ROOT_CLUSTER)
    }
}
