//! Group commit: concurrent writes on one shard share transactions.
//!
//! Every write goes through one queue per shard per process. A single committer takes whatever
//! has queued (up to a bound) as one batch, commits it as one transaction, publishes it to
//! watchers and answers each caller. While one batch commits the next one fills up, so under
//! load one fsync serves many writes. Revision order is commit order because every transaction
//! takes the shard's revision lock. (Two batches in flight were measured: the writers split
//! between them and each fsync served half as many writes, 0.53x the baseline at 16 writers
//! instead of 0.64x.)
//!
//! The committer has a thread of its own (with a single-threaded runtime, and on Postgres
//! connections of its own, driven there): every write of the shard waits on it, and as a task
//! among the server's it waited behind request handling and watch delivery each time its
//! database answered. Hub creates from 16 writers on two cores, the two builds taking turns:
//! 6,112–6,355/s as a task, 7,203–8,274/s on its own thread (BENCHMARKS.md, session 11).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use crate::backend::Backend;
use crate::error::{Result, StorageError};
use crate::object::StoredObject;
use crate::watch::WatchHub;
use crate::write_plan::WriteOp;

/// Most operations in one transaction.
const MAX_BATCH: usize = 512;
/// A filling batch stops waiting once no write arrived for this long...
const FILL_GAP: Duration = Duration::from_micros(30);
/// ...or once it has waited this long after its first.
const FILL_CAP: Duration = Duration::from_micros(300);
/// How long a batch is retried while the database is unreachable before callers get an error.
const RETRY_FOR: Duration = Duration::from_secs(15);

struct Pending {
    op: WriteOp,
    reply: oneshot::Sender<Result<StoredObject>>,
    /// The writer's span: a batch's span is a child of its first writer's and follows from
    /// the others'.
    span: tracing::Span,
}

/// What the committer has done since the store was opened, for metrics.
#[derive(Default)]
pub(crate) struct CommitCounters {
    batches: AtomicU64,
    writes: AtomicU64,
}

/// Committed batches (transactions) and the writes they carried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    pub batches: u64,
    pub writes: u64,
}

#[derive(Clone)]
pub(crate) struct GroupCommitter {
    queue: mpsc::Sender<Pending>,
    counters: Arc<CommitCounters>,
}

impl GroupCommitter {
    pub(crate) fn start(backend: Arc<dyn Backend>, hub: Arc<WatchHub>) -> Self {
        let (queue, rx) = mpsc::channel(MAX_BATCH * 8);
        let counters = Arc::new(CommitCounters::default());
        let runs = run(backend, hub, rx, counters.clone());
        std::thread::Builder::new()
            .name("trellis-commit".into())
            .spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("committer runtime")
                    .block_on(runs)
            })
            .expect("committer thread");
        Self { queue, counters }
    }

    pub(crate) fn stats(&self) -> CommitStats {
        CommitStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            writes: self.counters.writes.load(Ordering::Relaxed),
        }
    }

    pub(crate) async fn write(&self, op: WriteOp) -> Result<StoredObject> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending {
                op,
                reply,
                span: tracing::Span::current(),
            })
            .await
            .map_err(|_| StorageError::Unavailable("store is closed".into()))?;
        answer
            .await
            .map_err(|_| StorageError::Unavailable("store is closed".into()))?
    }
}

async fn run(
    backend: Arc<dyn Backend>,
    hub: Arc<WatchHub>,
    mut rx: mpsc::Receiver<Pending>,
    counters: Arc<CommitCounters>,
) {
    let mut expected = 1;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        fill(&mut rx, &mut batch, expected);
        // The largest recent batch: one that came out short does not lower the next one's aim
        // by more than a write.
        expected = batch.len().max(expected.saturating_sub(1));
        let ops: Vec<WriteOp> = batch.iter().map(|p| p.op.clone()).collect();
        let span = tracing::info_span!(parent: batch[0].span.id(), "storage.group_commit", writes = batch.len());
        for other in &batch[1..] {
            span.follows_from(other.span.id());
        }
        let outcome = commit_with_retry(backend.as_ref(), &ops)
            .instrument(span)
            .await;
        if outcome.is_ok() {
            counters.batches.fetch_add(1, Ordering::Relaxed);
            counters
                .writes
                .fetch_add(ops.len() as u64, Ordering::Relaxed);
        }
        finish(&hub, batch, outcome);
    }
}

/// Publishes a committed batch to watchers, then answers its writers.
fn finish(hub: &WatchHub, batch: Vec<Pending>, outcome: Result<crate::write_plan::WritePlan>) {
    match outcome {
        Ok(plan) => {
            if !plan.events.is_empty() {
                let after = plan.revision - plan.events.len() as u64;
                hub.publish_local(after, plan.revision, plan.events);
            }
            for (pending, outcome) in batch.into_iter().zip(plan.outcomes) {
                let _ = pending.reply.send(outcome);
            }
        }
        Err(err) => {
            let message = err.to_string();
            let unknown = matches!(err, StorageError::UnknownOutcome(_));
            for pending in batch {
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

/// Takes what has queued behind the first write. Writers answered by the previous batch come
/// back within microseconds of each other, and one that misses this batch waits a whole
/// commit: so until as many writes have come as the previous batch carried, it keeps looking
/// while they keep arriving (none for `FILL_GAP` ends the wait, as does `FILL_CAP`). Between
/// looks the thread yields its CPU to whoever is runnable; it never sleeps, which under load
/// could cost a timer's wake-up latency. A lone write after a lone write is committed at once.
fn fill(rx: &mut mpsc::Receiver<Pending>, batch: &mut Vec<Pending>, expected: usize) {
    let started = Instant::now();
    let mut last = started;
    loop {
        let before = batch.len();
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let now = Instant::now();
        if batch.len() > before {
            last = now;
        }
        if batch.len() >= expected.min(MAX_BATCH)
            || now - last >= FILL_GAP
            || now - started >= FILL_CAP
        {
            return;
        }
        std::thread::yield_now();
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
            Err(StorageError::Unavailable(why))
                if started.elapsed() < RETRY_FOR && !backend.known_unreachable() =>
            {
                tracing::warn!(error = %why, "commit failed before reaching the database; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
            other => return other,
        }
    }
}
