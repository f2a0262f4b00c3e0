//! `core.trellis.dev/v1alpha1`: LogicalClusters (one per workspace, its identity) and Shards
//! (the databases workspaces are spread over). Stored in the root shard.

mod logical_cluster;
mod shard;

pub use logical_cluster::LogicalCluster;
pub use shard::Shard;

use super::SchemeBuilder;

pub const GROUP: &str = trellis_apis::core::GROUP;

pub fn install(scheme: &mut SchemeBuilder) {
    scheme.add(LogicalCluster);
    scheme.add(Shard);
}
