//! The state every request shares.

use std::sync::Arc;

use trellis_storage::Store;

use crate::registry::Registry;
use crate::shards::ShardMap;
use crate::workspaces::WorkspaceIndex;

/// The logical cluster id of the root workspace (also its path). Keys never contain
/// workspace paths, only logical cluster ids.
pub const ROOT_CLUSTER: &str = "root";

pub struct AppState {
    /// The databases, and which one holds each logical cluster.
    pub shards: Arc<ShardMap>,
    pub registry: Arc<Registry>,
    pub workspaces: Arc<WorkspaceIndex>,
    /// RBAC of every workspace, for the authorization step of dispatch.
    pub authorizer: Arc<crate::authz::Authorizer>,
}

impl AppState {
    /// The store holding a logical cluster's objects (its shard's).
    pub async fn store_for(&self, cluster: &str) -> Result<Store, crate::workspaces::Unroutable> {
        Ok(self.shards.shard_for(cluster).await?.store.clone())
    }
}
