//! Controllers that run inside the server, written as level-triggered reconcilers: each
//! `reconcile` reads the current state and moves it one step towards the desired one, and is
//! safe to repeat, so a missed event or a crash only delays the work.
//!
//! Until leader election arrives (workspaces issue), every server process runs them; their
//! writes use preconditions, so two replicas doing the same step do not clash.

pub mod crd;
pub mod garbage_collector;
pub mod namespace;
pub mod workspace;

use std::sync::Arc;

use trellis_storage::Store;

use crate::registry::Registry;
use crate::workspaces::WorkspaceIndex;

/// Starts every controller; they stop when the process does.
pub fn spawn_all(
    store: Store,
    registry: Arc<Registry>,
    index: Arc<WorkspaceIndex>,
    external_url: String,
) {
    tokio::spawn(workspace::run(workspace::Context {
        store: store.clone(),
        registry: registry.clone(),
        index,
        external_url,
    }));
    tokio::spawn(namespace::run(store.clone(), registry.clone()));
    tokio::spawn(crd::run(store.clone(), registry.clone()));
    tokio::spawn(garbage_collector::run(store, registry));
}
