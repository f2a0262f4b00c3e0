//! The controller runtime: what every controller of the server is built from, so that each
//! controller file holds its decisions and a few lines of wiring, not its own loops.
//!
//! - [`reflector`]: a shared in-memory copy of one resource, on one shard or across all,
//!   fed by one list and one watch (never one per workspace);
//! - [`controller`]: triggers → work queue → N workers → `reconcile(key) -> Result<Action>`,
//!   with per-key backoff on errors and one conflict policy;
//! - [`committer`]: writes the difference between the object as read and the desired one,
//!   preconditioned on what was read, with the API server's metadata rules;
//! - [`Running`]: everything started, stopped together.
//!
//! A controller, in short:
//!
//! ```text
//! let things = Reflector::whole("things", ListScope::all_clusters(THINGS), every_shard(&shards));
//! running.spawn(things.run(running.token()));
//! let controller = Controller::new("things")
//!     .for_objects(&things, RESYNC)                      // its own objects
//!     .watches(&others, |change| keys_related_to(change)) // related changes
//!     .workers(4);
//! running.spawn(controller.run(Arc::new(ThingReconciler { things, .. }), running.token()));
//! ```
//!
//! where `ThingReconciler::reconcile` reads `things.get(key)`, calls pure functions for the
//! decision, and writes with [`committer::update`].

pub mod backoff;
pub mod committer;
pub mod controller;
pub mod reflector;

use std::future::Future;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use backoff::Backoff;
pub use committer::Committed;
pub use controller::{Action, Controller, Error, Reconciler, Trigger};
pub use reflector::{every_shard, Change, Reflector, Subscription};

/// Tasks started together and stopped together: reflectors and controllers (and whatever
/// else they need). Dropping it stops them as well (without waiting).
pub struct Running {
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Default for Running {
    fn default() -> Self {
        Running::new()
    }
}

impl Running {
    pub fn new() -> Running {
        Running {
            stop: CancellationToken::new(),
            tasks: JoinSet::new(),
        }
    }

    /// The token every task started here must end on.
    pub fn token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Runs `task` until it ends or everything stops (then it is aborted if it has not ended
    /// by itself).
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }

    /// Runs `task`, which knows nothing of stopping, until everything stops: it is dropped at
    /// once then, without waiting for the grace period.
    pub fn spawn_until_stopped(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        let stop = self.stop.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = task => {}
            }
        });
    }

    /// How many tasks are still running.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Asks every task to stop and waits until all have ended (at most `grace`, then the
    /// rest are aborted).
    pub async fn shutdown(mut self, grace: std::time::Duration) {
        self.stop.cancel();
        let drained = tokio::time::timeout(grace, async {
            while let Some(ended) = self.tasks.join_next().await {
                if let Err(err) = ended {
                    if err.is_panic() {
                        tracing::error!(error = %err, "a controller task panicked");
                    }
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                tasks = self.tasks.len(),
                "controller tasks did not stop in time; aborting them"
            );
            self.tasks.shutdown().await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn shutdown_ends_every_task() {
        let mut running = Running::new();
        let token = running.token();
        running.spawn(async move { token.cancelled().await });
        // A task that ignores the token is aborted after the grace period.
        running.spawn(std::future::pending());
        assert_eq!(running.len(), 2);
        tokio::time::timeout(
            Duration::from_secs(5),
            running.shutdown(Duration::from_millis(50)),
        )
        .await
        .expect("shutdown returns");
    }
}
