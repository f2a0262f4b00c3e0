//! Controllers that run inside the server, written as level-triggered reconcilers: each
//! `reconcile` reads the current state and moves it one step towards the desired one, and is
//! safe to repeat, so a missed event or a crash only delays the work.
//!
//! They run on one replica at a time, the leader (`leader_election`); their writes use
//! preconditions all the same, so a step repeated by a new leader does not clash.
//!
//! Every controller is built from [`runtime`] (shared reflectors, the work queue, `Action`s
//! and backoff, the committer) and split the same way: a `wire` function that picks the
//! reflectors and triggers, a reconciler that reads and writes, and pure decision functions
//! with their unit tests. [`spawn_all`] is the assembly of them all.

pub mod crd;
pub mod garbage_collector;
pub mod namespace;
pub mod rbac_aggregation;
pub mod runtime;
pub mod service_account;
pub mod shard;
pub mod work_queue;
pub mod workspace;

use std::sync::Arc;

use trellis_storage::ListScope;

use crate::registry::Registry;
use crate::shards::{ShardMap, ROOT_SHARD};
use crate::workspaces::index::WORKSPACES;
use crate::workspaces::WorkspaceIndex;
use runtime::{Reflector, Running};

/// Starts every controller (and the reflectors they read); the returned [`Running`] stops them
/// all. The workspace and shard controllers follow the root shard (Workspaces are there); the
/// others follow every shard.
pub fn spawn_all(
    shards: Arc<ShardMap>,
    registry: Arc<Registry>,
    index: Arc<WorkspaceIndex>,
    external_url: String,
) -> Running {
    let mut running = Running::new();
    let root = shards.root().store.clone();
    // Workspaces live in the root shard; the workspace and shard controllers share one copy.
    let workspaces = Reflector::whole(
        "workspaces",
        ListScope::all_clusters(WORKSPACES),
        vec![(ROOT_SHARD.to_string(), root.clone())],
    );
    running.spawn(workspaces.run(running.token()));
    let context = workspace::Context {
        shards: shards.clone(),
        registry: registry.clone(),
        index,
        external_url,
    };
    workspace::wire(&mut running, context, &workspaces);
    shard::wire(&mut running, root, &workspaces);
    rbac_aggregation::wire(&mut running, &shards);
    crd::wire(&mut running, &shards, registry.clone());
    namespace::wire(&mut running, shards.clone(), registry.clone());
    service_account::wire(&mut running, shards.clone());
    garbage_collector::wire(&mut running, shards, registry);
    running
}
