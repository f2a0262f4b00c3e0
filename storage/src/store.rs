//! [`Store`]: one shard's object store, whatever the backend.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tracing::Instrument;

use crate::backend::{Backend, PageQuery, Revisions, Snapshot};
use crate::continue_token::ContinueToken;
use crate::error::{Result, StorageError};
use crate::group_commit::GroupCommitter;
use crate::key::{ListScope, ObjectKey};
use crate::object::{validate_value, StoredObject};
use crate::watch::{WatchHub, WatchStream};
use crate::write_plan::{describe, Preconditions, WriteOp};

/// Which revision a list reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadRevision {
    /// The latest committed state (a consistent read).
    #[default]
    Latest,
    /// Any state at or after this revision (waits briefly if the shard is behind).
    NotOlderThan(u64),
    /// Exactly this revision: `Expired` if compacted, `TooLargeRevision` if ahead of the shard.
    Exact(u64),
}

#[derive(Clone, Debug)]
pub struct ListRequest {
    pub scope: ListScope,
    pub revision: ReadRevision,
    /// At most this many items per page; `None` returns everything.
    pub limit: Option<usize>,
    /// The token of the previous page; the page is read at that page's revision.
    pub continue_token: Option<String>,
}

impl ListRequest {
    pub fn new(scope: ListScope) -> Self {
        Self {
            scope,
            revision: ReadRevision::Latest,
            limit: None,
            continue_token: None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct ListResult {
    pub items: Vec<StoredObject>,
    /// The revision the list was read at (the same for every page of one list).
    pub revision: u64,
    /// Present when more items follow.
    pub continue_token: Option<String>,
}

/// Tunables of a store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// How long a read at a revision ahead of the shard waits before `TooLargeRevision`.
    pub fresh_wait: Duration,
    /// Background compaction; `None` leaves compaction to explicit calls.
    pub compaction: Option<CompactionPolicy>,
    /// Postgres connections per store (readers plus the group committer).
    pub max_connections: usize,
    /// Committed batches buffered per watcher; a watcher further behind reads the log instead.
    pub watch_buffer: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            fresh_wait: Duration::from_secs(3),
            compaction: Some(CompactionPolicy::default()),
            max_connections: 32,
            watch_buffer: 4096,
        }
    }
}

/// Keeps the event log to a time window, as kube-apiserver's periodic etcd compaction does.
#[derive(Clone, Debug)]
pub struct CompactionPolicy {
    /// Changes younger than this stay watchable and usable by continue tokens.
    pub retention: Duration,
    /// How often compaction runs.
    pub interval: Duration,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(300),
            interval: Duration::from_secs(60),
        }
    }
}

/// One shard: a revisioned, watchable store of JSON objects.
///
/// Cheap to clone; every clone shares the connections, the group committer and the watch hub.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Arc<dyn Backend>,
    committer: GroupCommitter,
    hub: Arc<WatchHub>,
    options: StoreOptions,
    /// Dropped with the store: the compactor ends then, not at its next tick.
    _compactor: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Store {
    /// Opens a Postgres shard, applying schema migrations.
    pub async fn open_postgres(url: &str, options: StoreOptions) -> Result<Store> {
        let backend = crate::postgres::PostgresBackend::open(url, options.max_connections).await?;
        Self::with_backend(Arc::new(backend), options).await
    }

    /// Opens (creating if needed) an embedded SQLite store at `path`.
    pub async fn open_sqlite(
        path: impl AsRef<std::path::Path>,
        options: StoreOptions,
    ) -> Result<Store> {
        let backend = crate::sqlite::SqliteBackend::open(path.as_ref()).await?;
        Self::with_backend(Arc::new(backend), options).await
    }

    async fn with_backend(backend: Arc<dyn Backend>, options: StoreOptions) -> Result<Store> {
        let current = backend.revisions().await?.current;
        let hub = WatchHub::new(backend.clone(), current, options.watch_buffer);
        hub.start();
        let committer = GroupCommitter::start(backend.clone(), hub.clone());
        let compactor = options
            .compaction
            .clone()
            .map(|policy| spawn_compactor(Arc::downgrade(&backend), policy));
        Ok(Store {
            inner: Arc::new(Inner {
                backend,
                committer,
                hub,
                options,
                _compactor: compactor,
            }),
        })
    }

    /// The revision of the last committed change, and the compacted revision.
    pub async fn revisions(&self) -> Result<Revisions> {
        self.inner.backend.revisions().await
    }

    /// How many live objects each resource has, across every cluster of the shard: one
    /// aggregate query (for metrics, not for every request).
    pub async fn count_by_resource(&self) -> Result<Vec<(String, u64)>> {
        self.inner.backend.count_by_resource().await
    }

    /// Batches the group committer has committed in this process, and the writes in them.
    pub fn commit_stats(&self) -> crate::group_commit::CommitStats {
        self.inner.committer.stats()
    }

    /// How many watch streams this process's hub for the shard feeds now (its fan-out).
    pub fn watchers(&self) -> usize {
        self.inner.hub.watchers()
    }

    pub async fn current_revision(&self) -> Result<u64> {
        Ok(self.revisions().await?.current)
    }

    /// The latest state of one object.
    pub async fn get(&self, key: &ObjectKey) -> Result<StoredObject> {
        key.validate()?;
        self.inner
            .backend
            .get(key)
            .instrument(tracing::info_span!("storage.get", resource = %key.resource))
            .await?
            .ok_or_else(|| StorageError::NotFound(describe(key)))
    }

    pub async fn create(
        &self,
        key: ObjectKey,
        uid: impl Into<String>,
        value: Bytes,
    ) -> Result<StoredObject> {
        self.write(WriteOp::Create {
            key,
            uid: uid.into(),
            value,
        })
        .await
    }

    pub async fn update(
        &self,
        key: ObjectKey,
        value: Bytes,
        preconditions: Preconditions,
    ) -> Result<StoredObject> {
        self.write(WriteOp::Update {
            key,
            value,
            preconditions,
        })
        .await
    }

    /// Deletes an object; returns its last state with the revision of the deletion.
    pub async fn delete(
        &self,
        key: ObjectKey,
        preconditions: Preconditions,
    ) -> Result<StoredObject> {
        self.write(WriteOp::Delete { key, preconditions }).await
    }

    /// Any single write. Concurrent writes are committed together (group commit).
    pub async fn write(&self, op: WriteOp) -> Result<StoredObject> {
        op.key().validate()?;
        match &op {
            WriteOp::Create { value, .. } | WriteOp::Update { value, .. } => validate_value(value)?,
            WriteOp::Delete { .. } => {}
        }
        let span = tracing::info_span!(
            "storage.write",
            op = op.verb(),
            resource = %op.key().resource
        );
        self.inner.committer.write(op).instrument(span).await
    }

    /// One page of a list. Every page of one list reads the same snapshot.
    pub async fn list(&self, request: ListRequest) -> Result<ListResult> {
        let ListRequest {
            scope,
            revision,
            limit,
            continue_token,
        } = request;
        let token = continue_token
            .filter(|t| !t.is_empty())
            .map(|t| ContinueToken::decode(&t))
            .transpose()?;
        let (snapshot, after) = match token {
            Some(token) => {
                if token.resource != scope.resource {
                    return Err(StorageError::InvalidContinue(
                        "token belongs to another resource".into(),
                    ));
                }
                (Snapshot::At(token.revision), Some(token.after))
            }
            None => match revision {
                ReadRevision::Latest => (Snapshot::Latest, None),
                ReadRevision::NotOlderThan(rev) => {
                    self.wait_for_revision(rev).await?;
                    (Snapshot::Latest, None)
                }
                ReadRevision::Exact(rev) => {
                    self.wait_for_revision(rev).await?;
                    (Snapshot::At(rev), None)
                }
            },
        };
        let limit = limit.filter(|l| *l > 0);
        let mut page = self
            .inner
            .backend
            .list_page(&PageQuery {
                scope: scope.clone(),
                snapshot,
                after,
                limit,
            })
            .instrument(tracing::info_span!("storage.list", resource = %scope.resource))
            .await?;
        let mut continue_token = None;
        if let Some(limit) = limit {
            if page.items.len() > limit {
                page.items.truncate(limit);
                let last = page
                    .items
                    .last()
                    .map(|o| o.key.position())
                    .unwrap_or_default();
                continue_token = Some(
                    ContinueToken {
                        revision: page.revision,
                        resource: scope.resource.clone(),
                        after: last,
                    }
                    .encode(),
                );
            }
        }
        Ok(ListResult {
            items: page.items,
            revision: page.revision,
            continue_token,
        })
    }

    /// Changes in `scope` after revision `from` (`None`: from now on).
    pub async fn watch(&self, scope: ListScope, from: Option<u64>) -> Result<WatchStream> {
        let from = match from {
            None => self.inner.hub.delivered(),
            Some(rev) => {
                let revs = self.revisions().await?;
                if rev < revs.compacted {
                    return Err(StorageError::Expired {
                        requested: rev,
                        compacted: revs.compacted,
                    });
                }
                if rev > revs.current {
                    self.wait_for_revision(rev).await?;
                }
                rev
            }
        };
        WatchStream::start(&self.inner.hub, scope, from).await
    }

    /// The revision through which this process has handed every change to its watch streams.
    /// Every write this process has answered is at or below it (changes are published before
    /// writers hear back), so a cache fed by a watch that has reached it reflects them.
    pub fn delivered_revision(&self) -> u64 {
        self.inner.hub.delivered()
    }

    /// How far a watch of `resource` that has taken every change through `seen` has reached.
    /// Watch streams are woken only by their own resource's changes; what they reach covers
    /// the others too: the delivered revision, once nothing of `resource` was published after
    /// `seen`. (A [`WatchStream`] says it of itself in [`WatchStream::revision`]; this is for
    /// a cache fed by one, which records the `seen` its items carried.)
    pub fn watch_reached(&self, resource: &str, seen: u64) -> u64 {
        self.inner.hub.reached(resource, seen)
    }

    /// Wakes whenever [`Store::delivered_revision`] moves.
    pub fn subscribe_delivered(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.hub.subscribe_delivered()
    }

    /// Waits (up to the store's `fresh_wait`) until the shard has reached `revision`.
    pub async fn wait_for_revision(&self, revision: u64) -> Result<()> {
        let current = self.current_revision().await?;
        if current >= revision {
            return Ok(());
        }
        self.inner.hub.poke();
        let mut delivered = self.inner.hub.subscribe_delivered();
        let reached = tokio::time::timeout(
            self.inner.options.fresh_wait,
            delivered.wait_for(|d| *d >= revision),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        match reached {
            true => Ok(()),
            false => Err(StorageError::TooLargeRevision {
                requested: revision,
                current: self.current_revision().await?,
            }),
        }
    }

    /// Removes every change at or below `revision` from the event log.
    pub async fn compact_to(&self, revision: u64) -> Result<u64> {
        let current = self.current_revision().await?;
        self.inner.backend.compact_to(revision.min(current)).await?;
        Ok(self.revisions().await?.compacted)
    }
}

/// Compacts to the revision that was current `retention` ago, as kube-apiserver does with
/// etcd: every interval the compactor marks the shard's current revision, then compacts to the
/// newest mark at least one retention old. The marks live in the store, not in the process:
/// a restarted process (or another replica) goes on from the marks its predecessors left, so
/// a hub restarting more often than the interval still compacts, starting at once. The task
/// ends when the returned sender is dropped (with the store).
fn spawn_compactor(
    backend: std::sync::Weak<dyn Backend>,
    policy: CompactionPolicy,
) -> tokio::sync::oneshot::Sender<()> {
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        // The first tick is at once: a restart does not wait a whole interval.
        let mut tick = tokio::time::interval(policy.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Marks closer than this add nothing: a revision marked a little earlier by another
        // replica serves as well.
        let spacing = policy.interval.min(policy.retention) / 2;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = &mut stopped => return,
            }
            let Some(backend) = backend.upgrade() else {
                return;
            };
            if let Err(err) = compact_once(backend.as_ref(), &policy, spacing).await {
                tracing::warn!(error = %err, "compaction failed; will retry");
            }
        }
    });
    stop
}

async fn compact_once(
    backend: &dyn Backend,
    policy: &CompactionPolicy,
    spacing: Duration,
) -> Result<()> {
    let revs = backend.revisions().await?;
    let now = unix_millis(std::time::SystemTime::now());
    backend
        .mark_revision(now, revs.current, millis(spacing))
        .await?;
    let horizon = now.saturating_sub(millis(policy.retention));
    if let Some(target) = backend
        .marked_before(horizon)
        .await?
        .filter(|t| *t > revs.compacted)
    {
        let removed = backend.compact_to(target.min(revs.current)).await?;
        tracing::debug!(revision = target, removed, "compacted event log");
    }
    Ok(())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn unix_millis(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0)
}
