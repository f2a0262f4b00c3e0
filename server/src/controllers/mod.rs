//! Controllers that run inside the server, written as level-triggered reconcilers: each
//! `reconcile` reads the current state and moves it one step towards the desired one, and is
//! safe to repeat, so a missed event or a crash only delays the work.
//!
//! They run on one replica at a time, the leader (`leader_election`); their writes use
//! preconditions all the same, so a step repeated by a new leader does not clash.

pub mod crd;
pub mod garbage_collector;
pub mod namespace;
pub mod rbac_aggregation;
pub mod work_queue;
pub mod workspace;

use std::sync::Arc;

use tokio::task::JoinHandle;

use trellis_storage::Store;

use crate::registry::Registry;
use crate::workspaces::WorkspaceIndex;

/// Starts every controller; the handles stop them.
pub fn spawn_all(
    store: Store,
    registry: Arc<Registry>,
    index: Arc<WorkspaceIndex>,
    external_url: String,
) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(workspace::run(workspace::Context {
            store: store.clone(),
            registry: registry.clone(),
            index,
            external_url,
        })),
        tokio::spawn(namespace::run(store.clone(), registry.clone())),
        tokio::spawn(crd::run(store.clone(), registry.clone())),
        tokio::spawn(rbac_aggregation::run(store.clone())),
        tokio::spawn(garbage_collector::run(store, registry)),
    ]
}
