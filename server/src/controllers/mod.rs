//! Controllers that run inside the server, written as level-triggered reconcilers: each
//! `reconcile` reads the current state and moves it one step towards the desired one, and is
//! safe to repeat, so a missed event or a crash only delays the work.
//!
//! Until leader election arrives (workspaces issue), every server process runs them; their
//! writes use preconditions, so two replicas doing the same step do not clash.

pub mod garbage_collector;
pub mod namespace;

use trellis_storage::Store;

/// Starts every controller; they stop when the process does.
pub fn spawn_all(store: Store) {
    tokio::spawn(namespace::run(store.clone()));
    tokio::spawn(garbage_collector::run(store));
}
