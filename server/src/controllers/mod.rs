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
//! with their unit tests. Each is one value ([`Wire`]); a server runs the list it is assembled with (`serving::hub::CONTROLLERS` for the hub).

pub mod crd;
pub mod garbage_collector;
pub mod leader_election;
pub mod namespace;
pub mod placement;
pub mod rbac_aggregation;
pub mod runtime;
pub mod service_account;
pub mod shard;
pub mod work_queue;
pub mod workspace;

use std::sync::Arc;

use trellis_storage::ListScope;

use crate::registry::Registry;
use crate::tenancy::shards::{ShardMap, ROOT_SHARD};
use crate::tenancy::workspaces::index::WORKSPACES;
use crate::tenancy::workspaces::WorkspaceIndex;
use runtime::{Reflector, Running};

/// What every controller of a server may use.
#[derive(Clone)]
pub struct ControllerContext {
    pub shards: Arc<ShardMap>,
    pub registry: Arc<Registry>,
    pub index: Arc<WorkspaceIndex>,
    /// `https://host:port`, for the URLs controllers write (a Workspace's).
    pub external_url: String,
    /// The default ClusterRoles of the server's scheme, which aggregation completes.
    pub default_roles: Arc<crate::security::authz::defaults::DefaultRoles>,
    /// The server's metrics (leadership, placement, the fleet).
    pub metrics: Arc<crate::machinery::metrics::Metrics>,
}

/// A controller as a value: starts it (its reflectors, triggers and workers) into `running`.
pub type Wire = fn(&mut Running, &ControllerContext);

/// The workspace and shard controllers: both follow the Workspaces of the root shard, through
/// one shared reflector.
pub fn tenancy(running: &mut Running, ctx: &ControllerContext) {
    let root = ctx.shards.root().store.clone();
    let workspaces = Reflector::whole(
        "workspaces",
        ListScope::all_clusters(WORKSPACES),
        vec![(ROOT_SHARD.to_string(), root.clone())],
    );
    running.spawn(workspaces.run(running.token()));
    let context = workspace::Context {
        shards: ctx.shards.clone(),
        registry: ctx.registry.clone(),
        index: ctx.index.clone(),
        external_url: ctx.external_url.clone(),
    };
    workspace::wire(running, context, &workspaces);
    shard::wire(running, root, &workspaces, ctx.registry.scheme().clone());
}

/// CustomResourceDefinitions get their names accepted and Established.
pub fn crd_establishing(running: &mut Running, ctx: &ControllerContext) {
    crd::wire(running, &ctx.shards, ctx.registry.clone());
}

/// Terminating namespaces are emptied, then released.
pub fn namespace_finalization(running: &mut Running, ctx: &ControllerContext) {
    namespace::wire(running, ctx.shards.clone(), ctx.registry.clone());
}

/// Objects whose owners are gone are deleted; foreground deletions wait for dependents.
pub fn garbage_collection(running: &mut Running, ctx: &ControllerContext) {
    garbage_collector::wire(running, ctx.shards.clone(), ctx.registry.clone());
}
