//! Watch: one hub per shard per process fans committed changes out to every watcher.
//!
//! The hub delivers changes in revision order with no gaps, as *chunks* covering revision ranges
//! `(after, through]`. Commits made by this process are published straight from the group
//! committer; commits made by other processes (replicas) are read by tailing the event log,
//! woken by a backend hint (Postgres NOTIFY) or a poll. Because revision order is commit order,
//! reading `rev > last` never skips a change that commits later.
//!
//! A watcher that falls behind (its channel lagged) or sees a gap reads the missing range from
//! the event log itself, so a slow watcher never loses events and never slows the others.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use tokio::sync::{broadcast, watch, Notify};

use crate::backend::Backend;
use crate::error::{Result, StorageError};
use crate::key::ListScope;
use crate::object::Event;

/// Events read from the log per query.
const READ_BATCH: usize = 1000;

/// Every change in `(after, through]`, in order.
#[derive(Debug)]
pub(crate) struct Chunk {
    after: u64,
    through: u64,
    /// Shared, not copied, by every watcher the chunk reaches.
    events: Vec<Arc<Event>>,
}

pub(crate) struct WatchHub {
    backend: Arc<dyn Backend>,
    /// Serializes publishing so chunks go out contiguous and in order.
    publish: Mutex<()>,
    chunks: broadcast::Sender<Arc<Chunk>>,
    delivered: watch::Sender<u64>,
    wake: Arc<Notify>,
}

impl WatchHub {
    pub(crate) fn new(backend: Arc<dyn Backend>, current: u64, buffer: usize) -> Arc<Self> {
        let (chunks, _) = broadcast::channel(buffer.max(1));
        let (delivered, _) = watch::channel(current);
        Arc::new(Self {
            backend,
            publish: Mutex::new(()),
            chunks,
            delivered,
            wake: Arc::new(Notify::new()),
        })
    }

    /// Starts tailing the event log; the task ends when the hub is dropped.
    pub(crate) fn start(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        self.backend.start_wakeups(Arc::new(move |revision| {
            let Some(hub) = weak.upgrade() else {
                return false;
            };
            if revision.is_none_or(|r| r > hub.delivered()) {
                hub.wake.notify_one();
            }
            true
        }));
        let hub = Arc::downgrade(self);
        let wake = self.wake.clone();
        let poll = self.backend.poll_interval();
        tokio::spawn(async move {
            loop {
                let _ = tokio::time::timeout(poll, wake.notified()).await;
                let Some(hub) = hub.upgrade() else { return };
                if let Err(err) = hub.tail().await {
                    tracing::warn!(error = %err, "watch hub could not read the event log; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    hub.wake.notify_one();
                }
            }
        });
    }

    /// The revision through which every change has been published.
    pub(crate) fn delivered(&self) -> u64 {
        *self.delivered.borrow()
    }

    /// How many watch streams this hub feeds now.
    pub(crate) fn watchers(&self) -> usize {
        self.chunks.receiver_count()
    }

    pub(crate) fn subscribe_delivered(&self) -> watch::Receiver<u64> {
        self.delivered.subscribe()
    }

    /// Publishes changes this process just committed, covering `(after, through]`.
    pub(crate) fn publish_local(&self, after: u64, through: u64, events: Vec<Event>) {
        let _guard = self.publish.lock().unwrap_or_else(|e| e.into_inner());
        let delivered = self.delivered();
        if delivered == after {
            self.send(after, through, events);
        } else if through > delivered {
            // Another process committed in between and the tail has not caught up: let it
            // deliver everything from the log, in order.
            self.wake.notify_one();
        }
    }

    /// Asks the hub to read the log now (something may have been committed elsewhere).
    pub(crate) fn poke(&self) {
        self.wake.notify_one();
    }

    fn send(&self, after: u64, through: u64, events: Vec<Event>) {
        let chunk = Arc::new(Chunk {
            after,
            through,
            events: events.into_iter().map(Arc::new).collect(),
        });
        // No receivers is fine: nobody is watching.
        let _ = self.chunks.send(chunk);
        self.delivered.send_replace(through);
    }

    async fn tail(&self) -> Result<()> {
        loop {
            let after = self.delivered();
            let page = match self.backend.events_after(after, None, READ_BATCH).await {
                Ok(page) => page,
                Err(StorageError::Expired { .. }) => {
                    // This process fell behind compaction. Jump ahead: watchers see the gap,
                    // try to read it, and end with Expired so their clients relist.
                    let current = self.backend.revisions().await?.current;
                    let _guard = self.publish.lock().unwrap_or_else(|e| e.into_inner());
                    if current > self.delivered() {
                        self.send(current, current, Vec::new());
                    }
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            let full = page.events.len() >= READ_BATCH;
            {
                let _guard = self.publish.lock().unwrap_or_else(|e| e.into_inner());
                let delivered = self.delivered();
                if page.through > delivered {
                    let events = page
                        .events
                        .into_iter()
                        .filter(|e| e.revision() > delivered)
                        .collect();
                    self.send(delivered, page.through, events);
                }
            }
            if !full {
                return Ok(());
            }
        }
    }
}

/// The changes after a revision to the objects of one scope, in revision order.
///
/// Use [`WatchStream::next`], or [`WatchStream::into_stream`] for a `futures::Stream`.
pub struct WatchStream {
    scope: ListScope,
    /// Every change at or below this revision has been considered.
    seen: u64,
    pending: VecDeque<Arc<Event>>,
    chunks: broadcast::Receiver<Arc<Chunk>>,
    backend: Arc<dyn Backend>,
    finished: bool,
    /// The revision [`WatchStream::next_item`] last reported (an event's, or progress).
    reported: u64,
}

/// What [`WatchStream::next_item`] yields.
#[derive(Clone, Debug)]
pub enum WatchItem {
    /// A change in the watch's scope.
    Event(Arc<Event>),
    /// Every change at or below this revision has been delivered or is outside the scope.
    Progress(u64),
}

impl WatchStream {
    /// Subscribes first, then reads what the log holds after `from`, so nothing falls between.
    pub(crate) async fn start(hub: &WatchHub, scope: ListScope, from: u64) -> Result<Self> {
        let chunks = hub.chunks.subscribe();
        let mut stream = WatchStream {
            scope,
            seen: from,
            pending: VecDeque::new(),
            chunks,
            backend: hub.backend.clone(),
            finished: false,
            reported: from,
        };
        if from < hub.delivered() {
            stream.catch_up().await?;
        }
        Ok(stream)
    }

    /// The revision this watch has reached: every change up to it was delivered or did not
    /// match. Suitable for a bookmark.
    pub fn revision(&self) -> u64 {
        match self.pending.front() {
            Some(e) => e.revision() - 1,
            None => self.seen,
        }
    }

    /// The next change; `None` once the store is closed. After an error the stream ends.
    pub async fn next(&mut self) -> Option<Result<Event>> {
        let event = self.next_shared().await?;
        Some(event.map(Arc::unwrap_or_clone))
    }

    /// Like [`WatchStream::next`], but the event as the hub shares it among its watchers:
    /// a reader that only looks at it saves copying it (its key and uid strings) per watcher.
    pub async fn next_shared(&mut self) -> Option<Result<Arc<Event>>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                self.reported = event.revision();
                return Some(Ok(event));
            }
            if self.finished {
                return None;
            }
            if let Err(err) = self.receive().await {
                return Some(Err(err));
            }
        }
    }

    /// Like [`WatchStream::next_shared`], but also says how far the watch has read when the
    /// changes it read did not match (or once the last matching one of a batch is out): a
    /// cache fed by the watch then knows it reflects the store up to that revision even when
    /// nothing of its scope changed (the progress notifications of etcd).
    pub async fn next_item(&mut self) -> Option<Result<WatchItem>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                self.reported = event.revision();
                return Some(Ok(WatchItem::Event(event)));
            }
            if self.seen > self.reported {
                self.reported = self.seen;
                return Some(Ok(WatchItem::Progress(self.seen)));
            }
            if self.finished {
                return None;
            }
            if let Err(err) = self.receive().await {
                return Some(Err(err));
            }
        }
    }

    /// Waits for the hub's next chunk and takes what matches; after an error the stream ends.
    async fn receive(&mut self) -> Result<()> {
        let step = match self.chunks.recv().await {
            Ok(chunk) => self.take(&chunk).await,
            Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up().await,
            Err(broadcast::error::RecvError::Closed) => {
                self.finished = true;
                Ok(())
            }
        };
        if step.is_err() {
            self.finished = true;
            self.pending.clear();
        }
        step
    }

    pub fn into_stream(self) -> impl Stream<Item = Result<Event>> + Send {
        futures::stream::unfold(self, |mut watch| async move {
            watch.next().await.map(|item| (item, watch))
        })
    }

    async fn take(&mut self, chunk: &Chunk) -> Result<()> {
        if chunk.through <= self.seen {
            return Ok(());
        }
        if chunk.after > self.seen {
            // A gap (we lagged, or the hub jumped): read it from the log.
            self.catch_up().await?;
            if chunk.through <= self.seen {
                return Ok(());
            }
            if chunk.after > self.seen {
                return Err(StorageError::Internal(format!(
                    "watch gap between {} and {} could not be read",
                    self.seen, chunk.after
                )));
            }
        }
        let seen = self.seen;
        self.pending.extend(
            chunk
                .events
                .iter()
                .filter(|e| e.revision() > seen && self.scope.contains(&e.object.key))
                .cloned(),
        );
        self.seen = chunk.through;
        Ok(())
    }

    async fn catch_up(&mut self) -> Result<()> {
        loop {
            let page = self
                .backend
                .events_after(self.seen, Some(&self.scope), READ_BATCH)
                .await?;
            let full = page.events.len() >= READ_BATCH;
            self.pending.extend(page.events.into_iter().map(Arc::new));
            self.seen = self.seen.max(page.through);
            if !full {
                return Ok(());
            }
        }
    }
}
