//! Watch: one hub per shard per process fans committed changes out to every watcher.
//!
//! The hub delivers changes in revision order with no gaps, as *chunks* covering revision ranges
//! `(after, through]`. Commits made by this process are published straight from the group
//! committer; commits made by other processes (replicas) are read by tailing the event log,
//! woken by a backend hint (Postgres NOTIFY) or a poll. Because revision order is commit order,
//! reading `rev > last` never skips a change that commits later.
//!
//! Watchers are indexed by resource, as kube-apiserver keeps a watch cache per resource: each
//! resource watched has a channel of its own, and a chunk goes only to the channels of the
//! resources it changed. So a commit of ConfigMaps wakes the ConfigMap watchers, not every
//! controller's. What a watcher has *reached* still covers the other resources' changes: it
//! is derived when asked ([`WatchStream::revision`], [`WatchHub::reached`]) rather than sent.
//!
//! A watcher that falls behind (its channel lagged) or sees a gap reads the missing range from
//! the event log itself, so a slow watcher never loses events and never slows the others.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
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

/// Every change of one resource in `(after, through]`, in order.
#[derive(Debug)]
pub(crate) struct Chunk {
    after: u64,
    through: u64,
    /// Shared, not copied, by every watcher the chunk reaches.
    events: Vec<Arc<Event>>,
}

/// The watchers of one resource.
struct Channel {
    chunks: broadcast::Sender<Arc<Chunk>>,
    /// The `through` of the last chunk sent on it (the delivered revision when it opened): no
    /// change of the resource after it has been delivered yet.
    published: Arc<AtomicU64>,
}

pub(crate) struct WatchHub {
    backend: Arc<dyn Backend>,
    /// Serializes publishing so chunks go out contiguous and in order, and opening a channel
    /// with it, so a channel starts at a delivered revision.
    publish: Mutex<()>,
    /// By resource; a channel nobody listens to any more is closed at the next publish.
    channels: Mutex<HashMap<String, Channel>>,
    buffer: usize,
    delivered: watch::Sender<u64>,
    wake: Arc<Notify>,
}

impl WatchHub {
    pub(crate) fn new(backend: Arc<dyn Backend>, current: u64, buffer: usize) -> Arc<Self> {
        let (delivered, _) = watch::channel(current);
        Arc::new(Self {
            backend,
            publish: Mutex::new(()),
            channels: Mutex::new(HashMap::new()),
            buffer: buffer.max(1),
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
        self.channels()
            .values()
            .map(|c| c.chunks.receiver_count())
            .sum()
    }

    fn channels(&self) -> std::sync::MutexGuard<'_, HashMap<String, Channel>> {
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A receiver of `resource`'s chunks, and where its channel has published through.
    fn subscribe(&self, resource: &str) -> (broadcast::Receiver<Arc<Chunk>>, Arc<AtomicU64>) {
        let _guard = self.publish.lock().unwrap_or_else(|e| e.into_inner());
        let mut channels = self.channels();
        let channel = channels
            .entry(resource.to_string())
            .or_insert_with(|| Channel {
                chunks: broadcast::channel(self.buffer).0,
                published: Arc::new(AtomicU64::new(self.delivered())),
            });
        (channel.chunks.subscribe(), channel.published.clone())
    }

    /// How far a watcher of `resource` that has taken every change through `seen` has
    /// reached: the delivered revision, when nothing of the resource was published after
    /// `seen` (the changes since were all of other resources); else `seen`.
    pub(crate) fn reached(&self, resource: &str, seen: u64) -> u64 {
        let delivered = self.delivered();
        match self.channels().get(resource) {
            Some(channel) => reached(seen, &channel.published, delivered),
            None => seen,
        }
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

    /// Sends each watched resource its changes in `(after, through]`, then marks them
    /// delivered. Called with `publish` held.
    fn send(&self, after: u64, through: u64, events: Vec<Event>) {
        // A jump past what was delivered (the tail fell behind compaction) may hide changes
        // of any resource: every channel gets the gap, which its watchers then try to read.
        let jump = after > self.delivered();
        {
            let mut channels = self.channels();
            channels.retain(|_, c| c.chunks.receiver_count() > 0);
            // Most chunks change one resource: collect by resource, in order.
            let mut by_resource: Vec<(&str, Vec<Arc<Event>>)> = Vec::new();
            for event in events {
                let Some((resource, _)) = channels.get_key_value(&event.object.key.resource) else {
                    continue;
                };
                let resource = resource.as_str();
                let event = Arc::new(event);
                match by_resource.iter_mut().find(|(r, _)| *r == resource) {
                    Some((_, mine)) => mine.push(event),
                    None => by_resource.push((resource, vec![event])),
                }
            }
            if jump {
                for resource in channels.keys() {
                    if !by_resource.iter().any(|(r, _)| r == resource) {
                        by_resource.push((resource, Vec::new()));
                    }
                }
            }
            for (resource, events) in by_resource {
                let Some(channel) = channels.get(resource) else {
                    continue;
                };
                let chunk = Chunk {
                    after: if jump {
                        after
                    } else {
                        channel.published.load(Ordering::Acquire)
                    },
                    through,
                    events,
                };
                // No receivers is fine: the last watcher just left.
                let _ = channel.chunks.send(Arc::new(chunk));
                channel.published.store(through, Ordering::Release);
            }
        }
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

/// How far a watcher that has taken its channel's changes through `seen` has reached: past
/// every change delivered when its channel has published nothing after `seen`.
///
/// The hub stores a channel's `published` before it marks the chunk delivered, so with
/// `delivered` read first (the caller passes it) and `published` second, a delivered revision
/// is never paired with an older `published` that would hide a change still on its way.
fn reached(seen: u64, published: &AtomicU64, delivered: u64) -> u64 {
    if seen >= published.load(Ordering::Acquire) {
        seen.max(delivered)
    } else {
        seen
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
    /// Where the resource's channel has published through, and what the hub has delivered:
    /// how far this watch has reached beyond its own changes.
    published: Arc<AtomicU64>,
    delivered: watch::Receiver<u64>,
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
        let (chunks, published) = hub.subscribe(&scope.resource);
        let mut stream = WatchStream {
            scope,
            seen: from,
            pending: VecDeque::new(),
            chunks,
            published,
            delivered: hub.subscribe_delivered(),
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
    /// match (changes of other resources included). Suitable for a bookmark.
    pub fn revision(&self) -> u64 {
        match self.pending.front() {
            Some(e) => e.revision() - 1,
            None => reached(self.seen, &self.published, *self.delivered.borrow()),
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
