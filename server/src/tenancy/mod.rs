//! Tenancy: logical workspaces and where they live. The workspace index (path → logical
//! cluster → shard), the shards and their placement, bootstrapping the root workspace, and each
//! shard's namespace cache.

pub mod bootstrap;
pub mod namespace_cache;
pub mod shards;
pub mod workspaces;
