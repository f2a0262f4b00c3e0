//! The reflector: a shared, in-memory copy of one resource (optionally of one logical cluster),
//! on one shard or across several, fed by one list and one watch, as client-go's informers and
//! kube-runtime's `reflector` keep theirs.
//!
//! One task per reflector lists each shard (in pages), then follows storage's [`ShardsWatch`]
//! from the listed revision. A shard whose watch fails resumes from the last revision reached;
//! one whose revision was compacted away (`410 Expired`) is listed again and the difference
//! reported as changes; a shard that cannot be reached is retried with exponential backoff
//! while the others go on. Never one watch per workspace: a scope names a resource across every
//! logical cluster of a shard (or one cluster), never a list of clusters.
//!
//! What is kept of each object is the caller's choice, a *projection* of the stored object
//! computed once per change: the whole [`StoredObject`] (key, uid, revisions, bytes) for a
//! controller that commits changes to it, a few fields for a cache, or nothing at all for
//! objects a reader does not need (a projection returning `None` keeps the key out of memory).
//! With 10,000 workspaces, that choice is most of a hub's memory.
//!
//! Readers ask synchronously ([`Reflector::get`], [`Reflector::list_cluster`], …) and may wait
//! for the first listing of every shard ([`Reflector::wait_synced`]) or for a shard's revision
//! ([`Reflector::wait_for_revision`]: the watch carries progress, so the revision moves even
//! when nothing of the scope changes). Subscribers ([`Reflector::subscribe`]) are called with
//! every change after it is applied: controllers map changes to work-queue keys there.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use trellis_storage::{
    Event, EventType, ListRequest, ListScope, ObjectKey, StorageError, Store, StoredObject,
    WatchItem,
};

use super::backoff::Backoff;
use crate::tenancy::shards::ShardMap;

/// Objects read per page of a listing: bounds the memory of a listing beyond what is kept.
const PAGE: usize = 500;

/// How a reflector retries a shard it cannot read.
const RETRY: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));

/// What a reflector keeps of a stored object; `None` keeps nothing (not even the key).
pub type Projection<T> = Arc<dyn Fn(&StoredObject) -> Option<T> + Send + Sync>;

/// One change, as subscribers see it: after the reflector has applied it.
pub struct Change<'a, T> {
    pub key: &'a ObjectKey,
    /// The object's uid, when the change came from the watch (not from a relisting).
    pub uid: Option<&'a str>,
    /// What was kept before (`None`: not kept).
    pub old: Option<Arc<T>>,
    /// What is kept now (`None`: deleted, or not kept).
    pub new: Option<Arc<T>>,
    /// The object was deleted (whether or not it was kept).
    pub deleted: bool,
}

type Handler<T> = Arc<dyn Fn(&Change<'_, T>) + Send + Sync>;

struct Entry<T> {
    /// Index of the shard the object is on.
    source: usize,
    revision: u64,
    object: Arc<T>,
}

struct Source {
    name: String,
    store: Store,
    /// Every change of the scope at or below this revision is applied; 0 until listed.
    reached: watch::Sender<u64>,
}

struct Shared<T> {
    name: String,
    scope: ListScope,
    sources: Vec<Source>,
    project: Projection<T>,
    objects: RwLock<BTreeMap<ObjectKey, Entry<T>>>,
    handlers: RwLock<Vec<(u64, Handler<T>)>>,
    next_handler: std::sync::atomic::AtomicU64,
    synced: watch::Sender<bool>,
    /// Held while a change is applied and handed to the handlers, and while a new handler is
    /// given what is kept: so it never gets an older state after a newer one.
    delivery: Mutex<()>,
}

/// A shared cache of one resource; cheap to clone (every clone is the same cache).
pub struct Reflector<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Reflector<T> {
    fn clone(&self) -> Self {
        Reflector {
            shared: self.shared.clone(),
        }
    }
}

/// Keeps a subscriber registered; dropping it unsubscribes.
pub struct Subscription {
    cancel: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(cancel) = self.cancel.take() {
            cancel();
        }
    }
}

/// The shards of `shards` as reflector sources: a reflector across every shard.
pub fn every_shard(shards: &ShardMap) -> Vec<(String, Store)> {
    shards
        .iter()
        .map(|s| (s.name.clone(), s.store.clone()))
        .collect()
}

impl Reflector<StoredObject> {
    /// A reflector keeping the stored objects whole.
    pub fn whole(
        name: impl Into<String>,
        scope: ListScope,
        sources: Vec<(String, Store)>,
    ) -> Reflector<StoredObject> {
        Reflector::new(name, scope, sources, |stored| Some(stored.clone()))
    }
}

impl<T: Send + Sync + 'static> Reflector<T> {
    /// A reflector of `scope` on `sources` (shard name, store), keeping `project` of each
    /// object. Not started: see [`Reflector::spawn`].
    pub fn new(
        name: impl Into<String>,
        scope: ListScope,
        sources: Vec<(String, Store)>,
        project: impl Fn(&StoredObject) -> Option<T> + Send + Sync + 'static,
    ) -> Reflector<T> {
        let sources = sources
            .into_iter()
            .map(|(name, store)| Source {
                name,
                store,
                reached: watch::channel(0).0,
            })
            .collect();
        Reflector {
            shared: Arc::new(Shared {
                name: name.into(),
                scope,
                sources,
                project: Arc::new(project),
                objects: RwLock::new(BTreeMap::new()),
                handlers: RwLock::new(Vec::new()),
                next_handler: Default::default(),
                synced: watch::channel(false).0,
                delivery: Mutex::new(()),
            }),
        }
    }

    /// The list-and-watch loop, to be spawned; it ends when `stop` is cancelled.
    pub fn run(&self, stop: CancellationToken) -> impl std::future::Future<Output = ()> + Send {
        feed(self.shared.clone(), stop)
    }

    /// Spawns [`Reflector::run`].
    pub fn spawn(&self, stop: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(self.run(stop))
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    fn objects(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<ObjectKey, Entry<T>>> {
        self.shared
            .objects
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// What is kept of the object at `key`.
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<T>> {
        self.objects().get(key).map(|e| e.object.clone())
    }

    /// Whether anything is kept of `key`.
    pub fn contains(&self, key: &ObjectKey) -> bool {
        self.objects().contains_key(key)
    }

    /// Everything kept, in key order.
    pub fn list(&self) -> Vec<Arc<T>> {
        self.objects().values().map(|e| e.object.clone()).collect()
    }

    /// Every key kept, in order.
    pub fn keys(&self) -> Vec<ObjectKey> {
        self.objects().keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.objects().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What is kept of the objects of one logical cluster, in key order.
    pub fn list_cluster(&self, cluster: &str) -> Vec<(ObjectKey, Arc<T>)> {
        let start = ObjectKey::new(cluster, "", "", "");
        self.objects()
            .range(start..)
            .take_while(|(k, _)| k.cluster == cluster)
            .map(|(k, e)| (k.clone(), e.object.clone()))
            .collect()
    }

    /// What is kept of the objects of one namespace of one logical cluster, in key order.
    pub fn list_namespace(&self, cluster: &str, namespace: &str) -> Vec<(ObjectKey, Arc<T>)> {
        let start = ObjectKey::new(cluster, self.shared.scope.resource.as_str(), namespace, "");
        self.objects()
            .range(start..)
            .take_while(|(k, _)| k.cluster == cluster && k.namespace == namespace)
            .map(|(k, e)| (k.clone(), e.object.clone()))
            .collect()
    }

    /// The shard (name and store) the object at `key` was read from.
    pub fn shard_of(&self, key: &ObjectKey) -> Option<(&str, &Store)> {
        let source = self.objects().get(key)?.source;
        let source = self.shared.sources.get(source)?;
        Some((source.name.as_str(), &source.store))
    }

    /// The revision at which what is kept of `key` was read.
    pub fn revision_of(&self, key: &ObjectKey) -> Option<u64> {
        self.objects().get(key).map(|e| e.revision)
    }

    /// Whether every shard has been listed once.
    pub fn is_synced(&self) -> bool {
        *self.shared.synced.borrow()
    }

    /// Waits until every shard has been listed once.
    pub async fn wait_synced(&self) {
        let mut synced = self.shared.synced.subscribe();
        // The sender lives as long as `self`: the wait cannot fail.
        let _ = synced.wait_for(|s| *s).await;
    }

    /// The revision of shard `shard` every change up to which is applied (0: not listed).
    pub fn revision(&self, shard: &str) -> u64 {
        self.source(shard).map_or(0, |s| self.shared.reached(s))
    }

    fn source(&self, shard: &str) -> Option<&Source> {
        self.shared.sources.iter().find(|s| s.name == shard)
    }

    /// Waits (at most `timeout`) until every change of shard `shard` up to `revision` is
    /// applied; whether it is.
    pub async fn wait_for_revision(&self, shard: &str, revision: u64, timeout: Duration) -> bool {
        let Some(source) = self.source(shard) else {
            return false;
        };
        // Caught up already: the usual case, asked before every namespaced write.
        if self.shared.reached(source) >= revision {
            return true;
        }
        let mut reached = source.reached.subscribe();
        let mut delivered = source.store.subscribe_delivered();
        let caught_up = async {
            loop {
                reached.borrow_and_update();
                delivered.borrow_and_update();
                if self.shared.reached(source) >= revision {
                    return true;
                }
                // What the watch applies moves it; so does a change of another resource being
                // delivered, which it reaches without hearing of it.
                let moved = tokio::select! {
                    r = reached.changed() => r.is_ok(),
                    d = delivered.changed() => d.is_ok(),
                };
                if !moved {
                    return false;
                }
            }
        };
        tokio::time::timeout(timeout, caught_up)
            .await
            .unwrap_or(false)
    }

    /// [`Reflector::subscribe`] for a handler that keeps `target` current, which usually
    /// holds the subscription itself: `target` is held weakly (no cycle), and must exist
    /// before it subscribes, since what the reflector already keeps is handed over at once (a
    /// target still under construction, as inside `Arc::new_cyclic`, would drop it).
    pub fn subscribe_into<S: Send + Sync + 'static>(
        &self,
        target: &Arc<S>,
        apply: impl Fn(&S, &Change<'_, T>) + Send + Sync + 'static,
    ) -> Subscription {
        let target = Arc::downgrade(target);
        self.subscribe(move |change| {
            if let Some(target) = target.upgrade() {
                apply(&target, change);
            }
        })
    }

    /// Calls `handler` with every change from now on, after it is applied, and first with
    /// every object already kept (as if just added). Handlers run on the reflector's task:
    /// they must be quick and must not block (queue work, update an index).
    pub fn subscribe(
        &self,
        handler: impl Fn(&Change<'_, T>) + Send + Sync + 'static,
    ) -> Subscription {
        let handler: Handler<T> = Arc::new(handler);
        let _delivering = self.shared.delivering();
        let id = self
            .shared
            .next_handler
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.shared
            .handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push((id, handler.clone()));
        // Changes applied from here on reach the handler; what was there before is replayed,
        // with no change applied in between (`delivering`).
        let existing: Vec<(ObjectKey, Arc<T>)> = self
            .objects()
            .iter()
            .map(|(k, e)| (k.clone(), e.object.clone()))
            .collect();
        for (key, object) in existing {
            handler(&Change {
                key: &key,
                uid: None,
                old: None,
                new: Some(object),
                deleted: false,
            });
        }
        let shared: Weak<Shared<T>> = Arc::downgrade(&self.shared);
        Subscription {
            cancel: Some(Box::new(move || {
                if let Some(shared) = shared.upgrade() {
                    shared
                        .handlers
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .retain(|(h, _)| *h != id);
                }
            })),
        }
    }
}

impl<T: Send + Sync + 'static> Shared<T> {
    fn delivering(&self) -> std::sync::MutexGuard<'_, ()> {
        self.delivery.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn handlers(&self) -> Vec<Handler<T>> {
        self.handlers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(_, h)| h.clone())
            .collect()
    }

    fn notify(&self, change: &Change<'_, T>) {
        for handler in self.handlers() {
            handler(change);
        }
    }

    /// The revision of `source` every change up to which is applied: what its watch
    /// reported, or past it while none of the resource's changes were published since.
    fn reached(&self, source: &Source) -> u64 {
        match *source.reached.borrow() {
            0 => 0,
            seen => source.store.watch_reached(&self.scope.resource, seen),
        }
    }

    /// Applies one watch event of shard `source`, hands it to the handlers, and only then
    /// reports its revision reached: whoever waits for that revision finds what the handlers
    /// keep (the RBAC cache's rules, say) up to date.
    fn apply_event(&self, source: usize, event: &Event) {
        let _delivering = self.delivering();
        let key = &event.object.key;
        let revision = event.revision();
        let new = match event.kind {
            EventType::Deleted => None,
            EventType::Added | EventType::Modified => (self.project)(&event.object).map(Arc::new),
        };
        let old = {
            let mut objects = self.objects.write().unwrap_or_else(|e| e.into_inner());
            match &new {
                Some(object) => {
                    let entry = Entry {
                        source,
                        revision,
                        object: object.clone(),
                    };
                    match objects.get_mut(key) {
                        Some(existing) => Some(std::mem::replace(existing, entry).object),
                        None => objects.insert(key.clone(), entry).map(|e| e.object),
                    }
                }
                None => objects.remove(key).map(|e| e.object),
            }
        };
        let deleted = event.kind == EventType::Deleted;
        if old.is_some() || new.is_some() || deleted {
            self.notify(&Change {
                key,
                uid: Some(&event.object.uid),
                old,
                new,
                deleted,
            });
        }
        self.sources[source].reached.send_replace(revision);
    }

    /// Replaces what is kept of shard `source` by a fresh listing at `revision`; reports the
    /// difference as changes, then the revision reached (as [`Shared::apply_event`] does).
    fn replace(&self, source: usize, listed: Vec<(ObjectKey, u64, Option<T>)>, revision: u64) {
        let _delivering = self.delivering();
        // (key, old, new, deleted)
        type Kept<T> = Option<Arc<T>>;
        let mut changes: Vec<(ObjectKey, Kept<T>, Kept<T>, bool)> = Vec::new();
        {
            let mut objects = self.objects.write().unwrap_or_else(|e| e.into_inner());
            let present: HashSet<&ObjectKey> = listed.iter().map(|(k, _, _)| k).collect();
            let gone: Vec<ObjectKey> = objects
                .iter()
                .filter(|(k, e)| e.source == source && !present.contains(k))
                .map(|(k, _)| k.clone())
                .collect();
            for key in gone {
                if let Some(entry) = objects.remove(&key) {
                    changes.push((key, Some(entry.object), None, true));
                }
            }
            for (key, object_revision, object) in listed {
                match object {
                    Some(object) => {
                        if objects
                            .get(&key)
                            .is_some_and(|e| e.revision == object_revision && e.source == source)
                        {
                            continue;
                        }
                        let object = Arc::new(object);
                        let entry = Entry {
                            source,
                            revision: object_revision,
                            object: object.clone(),
                        };
                        let old = objects.insert(key.clone(), entry).map(|e| e.object);
                        changes.push((key, old, Some(object), false));
                    }
                    None => {
                        if let Some(entry) = objects.remove(&key) {
                            changes.push((key, Some(entry.object), None, false));
                        }
                    }
                }
            }
        }
        for (key, old, new, deleted) in changes {
            self.notify(&Change {
                key: &key,
                uid: None,
                old,
                new,
                deleted,
            });
        }
        self.sources[source]
            .reached
            .send_modify(|r| *r = (*r).max(revision));
    }

    /// Lists shard `source` (every page at one revision); what to keep, and the revision.
    async fn list(
        &self,
        source: usize,
    ) -> Result<(Vec<(ObjectKey, u64, Option<T>)>, u64), StorageError> {
        let store = &self.sources[source].store;
        let mut request = ListRequest::new(self.scope.clone());
        request.limit = Some(PAGE);
        let mut kept = Vec::new();
        loop {
            let page = store.list(request.clone()).await?;
            for stored in &page.items {
                kept.push((stored.key.clone(), stored.revision, (self.project)(stored)));
            }
            match page.continue_token {
                Some(token) => request.continue_token = Some(token),
                None => return Ok((kept, page.revision)),
            }
        }
    }
}

/// What to do next about a shard whose watch is not running.
#[derive(Clone, Copy, Debug)]
struct Restart {
    at: Instant,
    failures: u32,
    /// `None`: list it again; `Some(revision)`: watch again from there.
    resume: Option<u64>,
}

impl Restart {
    fn relist_now() -> Restart {
        Restart {
            at: Instant::now(),
            failures: 0,
            resume: None,
        }
    }

    /// After a failure: the same step again, later.
    fn later(self, resume: Option<u64>) -> Restart {
        let failures = self.failures + 1;
        Restart {
            at: Instant::now() + RETRY.delay(failures),
            failures,
            resume,
        }
    }
}

/// The reflector's task: lists and watches every shard until `stop`.
async fn feed<T: Send + Sync + 'static>(shared: Arc<Shared<T>>, stop: CancellationToken) {
    let mut watch = trellis_storage::ShardsWatch::new(true);
    let mut restarts: Vec<Option<Restart>> =
        vec![Some(Restart::relist_now()); shared.sources.len()];
    let mut listed = vec![false; shared.sources.len()];
    // Watch failures in a row per shard (reset by anything read): a watch that fails as soon as
    // it is resumed is resumed later and later, not in a loop.
    let mut failures = vec![0u32; shared.sources.len()];
    loop {
        let now = Instant::now();
        for (source, pending) in restarts.iter_mut().enumerate() {
            let Some(restart) = pending.filter(|r| r.at <= now) else {
                continue;
            };
            let step = start_source(&shared, source, restart, &mut watch, &mut listed);
            *pending = tokio::select! {
                _ = stop.cancelled() => return,
                next = step => next,
            };
        }
        let next_restart = restarts.iter().flatten().map(|r| r.at).min();
        tokio::select! {
            _ = stop.cancelled() => return,
            item = watch.next(), if !watch.is_empty() => {
                let Some((shard, item)) = item else { continue };
                let Some(source) = shared.sources.iter().position(|s| *s.name == *shard) else {
                    continue;
                };
                if item.is_ok() {
                    failures[source] = 0;
                }
                match item {
                    Ok(WatchItem::Event(event)) => shared.apply_event(source, &event),
                    Ok(WatchItem::Progress(revision)) => {
                        shared.sources[source].reached.send_replace(revision);
                    }
                    Err(StorageError::Expired { .. }) => {
                        tracing::debug!(reflector = %shared.name, shard = %shard, "watch expired; relisting");
                        restarts[source] = Some(Restart::relist_now());
                    }
                    Err(err) => {
                        tracing::debug!(reflector = %shared.name, shard = %shard, error = %err, "watch failed; resuming");
                        let from = watch.reached().0.get(&*shard).copied().unwrap_or(0);
                        failures[source] += 1;
                        let at = Instant::now() + RETRY.delay(failures[source] - 1);
                        restarts[source] = Some(Restart { at, failures: 0, resume: Some(from) });
                    }
                }
            }
            _ = sleep_until(next_restart), if next_restart.is_some() => {}
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Lists (or resumes watching) one shard; what to try next if that failed.
async fn start_source<T: Send + Sync + 'static>(
    shared: &Shared<T>,
    source: usize,
    restart: Restart,
    watch: &mut trellis_storage::ShardsWatch,
    listed: &mut [bool],
) -> Option<Restart> {
    let Source { name, store, .. } = &shared.sources[source];
    let from = match restart.resume {
        Some(from) => from,
        None => match shared.list(source).await {
            Ok((objects, revision)) => {
                shared.replace(source, objects, revision);
                listed[source] = true;
                if listed.iter().all(|l| *l) {
                    shared.synced.send_replace(true);
                }
                revision
            }
            Err(err) => {
                tracing::warn!(reflector = %shared.name, shard = %name, error = %err, "cannot list; will retry");
                return Some(restart.later(None));
            }
        },
    };
    match watch.add(name, store, shared.scope.clone(), from).await {
        Ok(()) => None,
        Err(StorageError::Expired { .. }) => Some(Restart::relist_now()),
        Err(err) => {
            tracing::warn!(reflector = %shared.name, shard = %name, error = %err, "cannot watch; will retry");
            Some(restart.later(Some(from)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::sync::Mutex;
    use trellis_storage::{Preconditions, StoreOptions};

    const RESOURCE: &str = "core/configmaps";

    fn key(cluster: &str, namespace: &str, name: &str) -> ObjectKey {
        ObjectKey::new(cluster, RESOURCE, namespace, name)
    }

    fn value(label: &str) -> Bytes {
        Bytes::from(format!(r#"{{"metadata":{{"labels":{{"l":"{label}"}}}}}}"#))
    }

    fn label(stored: &StoredObject) -> Option<String> {
        let object: serde_json::Value = serde_json::from_slice(&stored.value).ok()?;
        object
            .pointer("/metadata/labels/l")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
    }

    async fn store(dir: &tempfile::TempDir, name: &str) -> Store {
        Store::open_sqlite(dir.path().join(name), StoreOptions::default())
            .await
            .unwrap()
    }

    /// A reflector of the labels of every ConfigMap in `a`, its one shard (named "a").
    fn one_shard(a: &Store) -> Reflector<String> {
        Reflector::new(
            "test",
            ListScope::all_clusters(RESOURCE),
            vec![("a".into(), a.clone())],
            label,
        )
    }

    async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Two shards: what each holds is listed, then followed; lookups by key, cluster and
    /// namespace answer from memory, and know each object's shard.
    #[tokio::test]
    async fn lists_then_follows_every_shard() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (store(&dir, "a.db").await, store(&dir, "b.db").await);
        a.create(key("c1", "ns", "x"), "u1", value("one"))
            .await
            .unwrap();
        let reflector = Reflector::new(
            "test",
            ListScope::all_clusters(RESOURCE),
            vec![("a".into(), a.clone()), ("b".into(), b.clone())],
            label,
        );
        let stop = CancellationToken::new();
        let task = reflector.spawn(stop.clone());
        tokio::time::timeout(Duration::from_secs(10), reflector.wait_synced())
            .await
            .unwrap();
        assert_eq!(
            reflector.get(&key("c1", "ns", "x")).as_deref(),
            Some(&"one".to_string())
        );
        b.create(key("c2", "ns", "y"), "u2", value("two"))
            .await
            .unwrap();
        b.create(key("c2", "other", "z"), "u3", value("three"))
            .await
            .unwrap();
        a.update(key("c1", "ns", "x"), value("uno"), Preconditions::none())
            .await
            .unwrap();
        eventually("both shards' changes", || reflector.len() == 3).await;
        eventually("the update", || {
            reflector.get(&key("c1", "ns", "x")).as_deref() == Some(&"uno".to_string())
        })
        .await;
        assert_eq!(reflector.list_cluster("c2").len(), 2);
        assert_eq!(reflector.list_namespace("c2", "other").len(), 1);
        assert_eq!(reflector.list_cluster("c3").len(), 0);
        assert_eq!(reflector.shard_of(&key("c2", "ns", "y")).unwrap().0, "b");
        b.delete(key("c2", "ns", "y"), Preconditions::none())
            .await
            .unwrap();
        eventually("the deletion", || reflector.len() == 2).await;
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the task stops when asked")
            .unwrap();
    }

    /// A revision is reported reached only once its change is in the handlers' hands, on the
    /// first listing as on every watch event: whoever waits for it (the RBAC cache's questions)
    /// finds what the handlers keep up to date.
    #[tokio::test]
    async fn a_revision_is_reached_only_after_the_handlers_had_its_change() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(&dir, "a.db").await;
        a.create(key("c1", "", "listed"), "u1", value("yes"))
            .await
            .unwrap();
        let reflector = one_shard(&a);
        // (object, its revision, the revision reported reached while the handler ran)
        let seen: Arc<Mutex<Vec<(String, u64, u64)>>> = Arc::default();
        let _subscription = {
            let (seen, cache) = (seen.clone(), reflector.clone());
            reflector.subscribe(move |change| {
                let revision = cache.revision_of(change.key).unwrap_or_default();
                seen.lock()
                    .unwrap()
                    .push((change.key.name.clone(), revision, cache.revision("a")));
            })
        };
        let stop = CancellationToken::new();
        reflector.spawn(stop.clone());
        reflector.wait_synced().await;
        for name in ["one", "two", "three"] {
            a.create(key("c1", "", name), "u", value("yes"))
                .await
                .unwrap();
        }
        eventually("every change", || seen.lock().unwrap().len() == 4).await;
        for (name, revision, reached) in seen.lock().unwrap().iter() {
            assert!(
                reached < revision,
                "{name} (revision {revision}) was reported reached ({reached}) before its handler ran"
            );
        }
        stop.cancel();
    }

    /// Subscribers see what was there when they subscribed, then each change once applied;
    /// an object the projection drops is not kept, but its deletion is still reported.
    #[tokio::test]
    async fn subscribers_see_existing_objects_then_changes() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(&dir, "a.db").await;
        a.create(key("c1", "", "kept"), "u1", value("yes"))
            .await
            .unwrap();
        let dropped = a
            .create(key("c1", "", "dropped"), "u2", Bytes::from_static(b"{}"))
            .await
            .unwrap();
        let reflector = one_shard(&a);
        let stop = CancellationToken::new();
        reflector.spawn(stop.clone());
        reflector.wait_synced().await;
        assert_eq!(reflector.len(), 1, "the projection drops one object");
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let subscription = {
            let seen = seen.clone();
            reflector.subscribe(move |change| {
                let what = match (&change.new, change.deleted) {
                    (_, true) => "deleted",
                    (Some(_), false) => "applied",
                    (None, false) => "dropped",
                };
                seen.lock()
                    .unwrap()
                    .push(format!("{what} {}", change.key.name));
            })
        };
        a.create(key("c1", "", "new"), "u3", value("yes"))
            .await
            .unwrap();
        a.delete(dropped.key, Preconditions::none()).await.unwrap();
        eventually("two changes", || seen.lock().unwrap().len() == 3).await;
        assert_eq!(
            *seen.lock().unwrap(),
            ["applied kept", "applied new", "deleted dropped"]
        );
        drop(subscription);
        a.create(key("c1", "", "unseen"), "u4", value("yes"))
            .await
            .unwrap();
        eventually("the last object", || reflector.len() == 3).await;
        assert_eq!(seen.lock().unwrap().len(), 3, "unsubscribed");
        stop.cancel();
    }

    /// A watch whose revision was compacted away relists, and the difference (here: an object
    /// deleted while the reflector was not watching) is reported as a change.
    #[tokio::test]
    async fn a_relisting_reports_what_changed_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(&dir, "a.db").await;
        a.create(key("c1", "", "x"), "u1", value("1"))
            .await
            .unwrap();
        a.create(key("c1", "", "y"), "u2", value("1"))
            .await
            .unwrap();
        let reflector = one_shard(&a);
        let shared = reflector.shared.clone();
        let (objects, revision) = shared.list(0).await.unwrap();
        shared.replace(0, objects, revision);
        assert_eq!(reflector.len(), 2);
        let seen: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
        let _subscription = {
            let seen = seen.clone();
            reflector.subscribe(move |change| {
                seen.lock()
                    .unwrap()
                    .push((change.key.name.clone(), change.deleted));
            })
        };
        seen.lock().unwrap().clear();
        a.delete(key("c1", "", "x"), Preconditions::none())
            .await
            .unwrap();
        let (objects, revision) = shared.list(0).await.unwrap();
        shared.replace(0, objects, revision);
        assert_eq!(*seen.lock().unwrap(), [("x".to_string(), true)]);
        assert_eq!(reflector.revision("a"), revision);
        // Nothing changed: a second relisting reports nothing.
        let (objects, revision) = shared.list(0).await.unwrap();
        shared.replace(0, objects, revision);
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    /// The revision moves with changes outside the scope too, so a reader can wait for it.
    #[tokio::test]
    async fn the_revision_follows_the_shard_not_only_the_scope() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(&dir, "a.db").await;
        let reflector = Reflector::new(
            "test",
            ListScope::cluster("c1", RESOURCE),
            vec![("a".into(), a.clone())],
            label,
        );
        let stop = CancellationToken::new();
        reflector.spawn(stop.clone());
        reflector.wait_synced().await;
        let other = a
            .create(key("c2", "", "elsewhere"), "u1", value("1"))
            .await
            .unwrap();
        assert!(
            reflector
                .wait_for_revision("a", other.revision, Duration::from_secs(10))
                .await
        );
        assert!(reflector.is_empty());
        assert!(
            !reflector
                .wait_for_revision("nope", 1, Duration::from_millis(10))
                .await
        );
        stop.cancel();
    }
}
