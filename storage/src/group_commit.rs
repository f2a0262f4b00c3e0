//! Group commit: concurrent writes on one shard share transactions.
//!
//! Every write goes through one queue per shard per process. A single task takes whatever has
//! queued (up to a bound), commits it as one transaction, and answers each caller. While one
//! batch commits the next one fills up, so under load one fsync serves many writes, and revision
//! order stays commit order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::backend::Backend;
use crate::error::{Result, StorageError};
use crate::object::StoredObject;
use crate::watch::WatchHub;
use crate::write_plan::WriteOp;

/// Most operations in one transaction.
const MAX_BATCH: usize = 512;
/// How long a batch is retried while the database is unreachable before callers get an error.
const RETRY_FOR: Duration = Duration::from_secs(15);

struct Pending {
    op: WriteOp,
    reply: oneshot::Sender<Result<StoredObject>>,
}

#[derive(Clone)]
pub(crate) struct GroupCommitter {
    queue: mpsc::Sender<Pending>,
}

impl GroupCommitter {
    pub(crate) fn start(backend: Arc<dyn Backend>, hub: Arc<WatchHub>) -> Self {
        let (queue, rx) = mpsc::channel(MAX_BATCH * 8);
        tokio::spawn(run(backend, hub, rx));
        Self { queue }
    }

    pub(crate) async fn write(&self, op: WriteOp) -> Result<StoredObject> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { op, reply })
            .await
            .map_err(|_| StorageError::Unavailable("store is closed".into()))?;
        answer
            .await
            .map_err(|_| StorageError::Unavailable("store is closed".into()))?
    }
}

async fn run(backend: Arc<dyn Backend>, hub: Arc<WatchHub>, mut rx: mpsc::Receiver<Pending>) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let ops: Vec<WriteOp> = batch.iter().map(|p| p.op.clone()).collect();
        match commit_with_retry(backend.as_ref(), &ops).await {
            Ok(plan) => {
                let after = plan.revision - plan.events.len() as u64;
                if !plan.events.is_empty() {
                    hub.publish_local(after, plan.revision, plan.events);
                }
                for (pending, outcome) in batch.drain(..).zip(plan.outcomes) {
                    let _ = pending.reply.send(outcome);
                }
            }
            Err(err) => {
                let message = err.to_string();
                let unknown = matches!(err, StorageError::UnknownOutcome(_));
                for pending in batch.drain(..) {
                    let _ = pending.reply.send(Err(if unknown {
                        StorageError::UnknownOutcome(message.clone())
                    } else {
                        StorageError::Unavailable(message.clone())
                    }));
                }
                // Whatever happened, the log is the truth: let the hub look.
                hub.poke();
            }
        }
    }
}

async fn commit_with_retry(
    backend: &dyn Backend,
    ops: &[WriteOp],
) -> Result<crate::write_plan::WritePlan> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(20);
    loop {
        match backend.commit(ops).await {
            Err(StorageError::Unavailable(why)) if started.elapsed() < RETRY_FOR => {
                tracing::warn!(error = %why, "commit failed before reaching the database; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
            other => return other,
        }
    }
}
