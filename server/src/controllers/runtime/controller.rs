//! The controller loop, as kube-runtime's `Controller`: triggers map changes seen by reflectors
//! to keys, a [`WorkQueue`] hands each key to one of N workers at a time, and the reconciler's
//! answer ([`Action`]) or error decides when the key comes back.
//!
//! - Level-triggered: a key says *what* to look at, never what changed; the reconciler reads
//!   the current state (from reflectors) and moves it one step. Missed or duplicated triggers
//!   only cost time.
//! - Workers start once every reflector the controller watches has listed its shards, so no
//!   decision is taken on a half-read world (a CRD whose rival is not listed yet).
//! - Errors are retried per key with exponential backoff, reset by the first success. A
//!   storage conflict (someone wrote first) is no error: the key is requeued at once (backing
//!   off only if conflicts repeat), and logged at debug level only.
//! - Everything the controller spawns (workers, the delay timer, the resync ticker) lives in one
//!   `JoinSet` and ends when the stop token is cancelled.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use trellis_storage::{ObjectKey, StorageError};

use super::backoff::Backoff;
use super::reflector::{Change, Reflector, Subscription};
use crate::controllers::work_queue::WorkQueue;

/// What a reconcile asks for next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Look at the key again after this long (also when nothing changes: waiting on
    /// something no trigger reports).
    Requeue(Duration),
    /// Nothing to do until a trigger fires for the key (or the next resync).
    AwaitChange,
}

impl Action {
    pub fn requeue(after: Duration) -> Action {
        Action::Requeue(after)
    }

    pub fn await_change() -> Action {
        Action::AwaitChange
    }
}

/// Why a reconcile did not finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Storage failed; a [`StorageError::Conflict`] is handled as a requeue, not an error.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A stored object is not what the controller can work with.
    #[error("{0}")]
    Invalid(String),
    /// Something the step needs is not available here yet (a shard, a workspace path).
    #[error("{0}")]
    Unavailable(String),
}

impl Error {
    /// Someone else wrote first: try again on the newer state.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Storage(StorageError::Conflict { .. }))
    }
}

/// A controller's decisions about one key.
pub trait Reconciler: Send + Sync + 'static {
    type Key: Clone + Eq + Hash + Debug + Send + Sync + 'static;

    /// Moves the state of `key` one step towards the desired one; safe to repeat.
    fn reconcile(&self, key: &Self::Key) -> impl Future<Output = Result<Action, Error>> + Send;

    /// What to do after `error` (the `failures`-th in a row for `key`; conflicts excepted).
    fn error_policy(&self, _key: &Self::Key, _error: &Error, failures: u32) -> Action {
        Action::Requeue(ERRORS.delay(failures))
    }
}

/// The default retry of a failing key: 250 ms, doubling, at most 10 s.
pub const ERRORS: Backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(10));
/// Repeated conflicts on one key: at once the first time, then 10 ms doubling up to 1 s.
const CONFLICTS: Backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));

type KeyLister<K> = Arc<dyn Fn() -> Vec<K> + Send + Sync>;

/// A controller being assembled: its triggers, workers and resync; [`Controller::run`] runs
/// it with a [`Reconciler`].
pub struct Controller<K> {
    name: &'static str,
    queue: Arc<WorkQueue<K>>,
    subscriptions: Vec<Subscription>,
    synced: Vec<BoxFuture<'static, ()>>,
    workers: usize,
    resync: Option<(Duration, KeyLister<K>)>,
}

impl<K: Clone + Eq + Hash + Debug + Send + Sync + 'static> Controller<K> {
    pub fn new(name: &'static str) -> Controller<K> {
        Controller {
            name,
            queue: WorkQueue::new(),
            subscriptions: Vec::new(),
            synced: Vec::new(),
            workers: 1,
            resync: None,
        }
    }

    /// Queues the keys `map` derives from each change `reflector` sees (and from each object
    /// it holds when the controller starts). Workers wait for `reflector` to be synced.
    pub fn watches<T, I>(
        mut self,
        reflector: &Reflector<T>,
        map: impl Fn(&Change<'_, T>) -> I + Send + Sync + 'static,
    ) -> Self
    where
        T: Send + Sync + 'static,
        I: IntoIterator<Item = K>,
    {
        let subscription = self.trigger().watch(reflector, map);
        self.subscriptions.push(subscription);
        self.waits_for(reflector)
    }

    /// Workers start only once `reflector` is synced (a reflector the reconciler reads
    /// without taking triggers from it).
    pub fn waits_for<T: Send + Sync + 'static>(mut self, reflector: &Reflector<T>) -> Self {
        let reflector = reflector.clone();
        self.synced
            .push(Box::pin(async move { reflector.wait_synced().await }));
        self
    }

    /// A handle that queues keys for this controller, also once it runs: for triggers that
    /// come and go while it runs (reflectors started later).
    pub fn trigger(&self) -> Trigger<K> {
        Trigger {
            queue: self.queue.clone(),
        }
    }

    /// How many keys are reconciled at once (never the same key twice at once).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// Queues every key `keys` lists every `period`: a safety net for changes no trigger
    /// reports.
    pub fn resync(
        mut self,
        period: Duration,
        keys: impl Fn() -> Vec<K> + Send + Sync + 'static,
    ) -> Self {
        self.resync = Some((period, Arc::new(keys)));
        self
    }

    /// Runs until `stop`: waits for the reflectors, then reconciles. Every task it started has
    /// ended when it returns.
    pub async fn run<R: Reconciler<Key = K>>(self, reconciler: Arc<R>, stop: CancellationToken) {
        let Controller {
            name,
            queue,
            subscriptions,
            synced,
            workers,
            resync,
        } = self;
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = futures::future::join_all(synced) => {}
        }
        tracing::debug!(controller = name, "caches synced; starting workers");
        let delays = Arc::new(Delays::default());
        let failures: Arc<Mutex<HashMap<K, u32>>> = Arc::default();
        let mut tasks = JoinSet::new();
        tasks.spawn(delays.clone().run(queue.clone()));
        if let Some((period, keys)) = resync {
            let queue = queue.clone();
            tasks.spawn(async move {
                let mut tick = tokio::time::interval_at(Instant::now() + period, period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    for key in keys() {
                        queue.add(key);
                    }
                }
            });
        }
        for _ in 0..workers {
            tasks.spawn(work(
                name,
                reconciler.clone(),
                queue.clone(),
                delays.clone(),
                failures.clone(),
            ));
        }
        stop.cancelled().await;
        tasks.shutdown().await;
        drop(subscriptions);
        tracing::debug!(controller = name, "stopped");
    }
}

/// Queues keys for a controller (see [`Controller::trigger`]).
pub struct Trigger<K> {
    queue: Arc<WorkQueue<K>>,
}

impl<K> Clone for Trigger<K> {
    fn clone(&self) -> Self {
        Trigger {
            queue: self.queue.clone(),
        }
    }
}

impl<K: Clone + Eq + Hash + Send + Sync + 'static> Trigger<K> {
    pub fn add(&self, key: K) {
        self.queue.add(key);
    }

    /// Queues the keys `map` derives from each change `reflector` sees (and from each object
    /// it holds now), for as long as the subscription is kept.
    pub fn watch<T, I>(
        &self,
        reflector: &Reflector<T>,
        map: impl Fn(&Change<'_, T>) -> I + Send + Sync + 'static,
    ) -> Subscription
    where
        T: Send + Sync + 'static,
        I: IntoIterator<Item = K>,
    {
        let queue = self.queue.clone();
        reflector.subscribe(move |change| {
            for key in map(change) {
                queue.add(key);
            }
        })
    }
}

impl Controller<ObjectKey> {
    /// The controller's own objects: every change `reflector` sees queues the object's key,
    /// and a resync every `period` queues every key it holds.
    pub fn for_objects<T: Send + Sync + 'static>(
        self,
        reflector: &Reflector<T>,
        period: Duration,
    ) -> Self {
        let all = reflector.clone();
        self.watches(reflector, |change| Some(change.key.clone()))
            .resync(period, move || all.keys())
    }
}

/// One worker: takes a key, reconciles it, decides when it comes back.
async fn work<R: Reconciler>(
    name: &'static str,
    reconciler: Arc<R>,
    queue: Arc<WorkQueue<R::Key>>,
    delays: Arc<Delays<R::Key>>,
    failures: Arc<Mutex<HashMap<R::Key, u32>>>,
) {
    loop {
        let key = queue.next().await;
        let span = tracing::info_span!("reconcile", controller = name, key = ?key);
        let outcome = reconciler.reconcile(&key).instrument(span).await;
        let action = {
            let mut failures = failures.lock().unwrap_or_else(|e| e.into_inner());
            match outcome {
                Ok(action) => {
                    failures.remove(&key);
                    action
                }
                Err(error) => {
                    let count = failures.entry(key.clone()).or_default();
                    *count = count.saturating_add(1);
                    let count = *count;
                    drop(failures);
                    if error.is_conflict() {
                        tracing::debug!(controller = name, key = ?key, %error, "conflict; requeued");
                        Action::Requeue(CONFLICTS.delay(count - 1))
                    } else {
                        tracing::warn!(controller = name, key = ?key, %error, failures = count, "reconcile failed; will retry");
                        reconciler.error_policy(&key, &error, count)
                    }
                }
            }
        };
        queue.done(&key);
        match action {
            Action::Requeue(after) if after.is_zero() => queue.add(key),
            Action::Requeue(after) => delays.add(key, after),
            Action::AwaitChange => {}
        }
    }
}

/// Keys to queue later, each at its earliest requested time.
struct Delays<K> {
    state: Mutex<DelayState<K>>,
    wake: Notify,
}

struct DelayState<K> {
    by_time: BTreeMap<(Instant, u64), K>,
    by_key: HashMap<K, (Instant, u64)>,
    sequence: u64,
}

impl<K> Default for Delays<K> {
    fn default() -> Self {
        Delays {
            state: Mutex::new(DelayState {
                by_time: BTreeMap::new(),
                by_key: HashMap::new(),
                sequence: 0,
            }),
            wake: Notify::new(),
        }
    }
}

impl<K: Clone + Eq + Hash + Send + Sync + 'static> Delays<K> {
    fn add(&self, key: K, after: Duration) {
        let at = Instant::now() + after;
        {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(existing) = state.by_key.get(&key).copied() {
                if existing.0 <= at {
                    return;
                }
                state.by_time.remove(&existing);
            }
            state.sequence += 1;
            let slot = (at, state.sequence);
            state.by_time.insert(slot, key.clone());
            state.by_key.insert(key, slot);
        }
        self.wake.notify_one();
    }

    /// Queues each key when its time comes; runs until aborted.
    async fn run(self: Arc<Self>, queue: Arc<WorkQueue<K>>) {
        loop {
            let next = {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                while let Some(entry) = state.by_time.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    let key = entry.remove();
                    state.by_key.remove(&key);
                    queue.add(key);
                }
                state.by_time.keys().next().map(|(at, _)| *at)
            };
            match next {
                Some(at) => {
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => self.wake.notified().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use trellis_storage::{ListScope, Preconditions, Store, StoreOptions, StoredObject};

    const RESOURCE: &str = "core/configmaps";

    /// Counts reconciles per key; fails a key's first `fail` reconciles; asks for a requeue of
    /// keys named `again`.
    struct Counting {
        seen: Mutex<Vec<(String, Instant)>>,
        fail: u32,
    }

    impl Reconciler for Counting {
        type Key = ObjectKey;

        async fn reconcile(&self, key: &ObjectKey) -> Result<Action, Error> {
            let tries = {
                let mut seen = self.seen.lock().unwrap();
                seen.push((key.name.clone(), Instant::now()));
                seen.iter().filter(|(n, _)| *n == key.name).count() as u32
            };
            if tries <= self.fail {
                return Err(Error::Unavailable("not yet".into()));
            }
            if key.name == "again" && tries < self.fail + 3 {
                return Ok(Action::requeue(Duration::from_millis(20)));
            }
            Ok(Action::await_change())
        }

        fn error_policy(&self, _: &ObjectKey, _: &Error, failures: u32) -> Action {
            Action::Requeue(Duration::from_millis(10) * failures)
        }
    }

    impl Counting {
        fn count(&self, name: &str) -> usize {
            self.seen
                .lock()
                .unwrap()
                .iter()
                .filter(|(n, _)| n == name)
                .count()
        }
    }

    async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn setup() -> (tempfile::TempDir, Store, Reflector<StoredObject>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path().join("s.db"), StoreOptions::default())
            .await
            .unwrap();
        let reflector = Reflector::whole(
            "configmaps",
            ListScope::all_clusters(RESOURCE),
            vec![("root".into(), store.clone())],
        );
        (dir, store, reflector)
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new("c1", RESOURCE, "ns", name)
    }

    /// Existing objects are reconciled once the reflector is synced, changed ones again;
    /// `Requeue` brings a key back by itself; stopping ends every task.
    #[tokio::test]
    async fn objects_are_reconciled_on_start_on_change_and_on_request() {
        let (_dir, store, reflector) = setup().await;
        store
            .create(key("a"), "u1", Bytes::from_static(b"{}"))
            .await
            .unwrap();
        let stop = CancellationToken::new();
        let feeding = tokio::spawn(reflector.run(stop.clone()));
        let reconciler = Arc::new(Counting {
            seen: Mutex::default(),
            fail: 0,
        });
        let controller = Controller::new("test")
            .for_objects(&reflector, Duration::from_secs(3600))
            .workers(2);
        let running = tokio::spawn(controller.run(reconciler.clone(), stop.clone()));
        eventually("the existing object", || reconciler.count("a") == 1).await;
        store
            .update(
                key("a"),
                Bytes::from_static(br#"{"x":1}"#),
                Preconditions::none(),
            )
            .await
            .unwrap();
        eventually("the change", || reconciler.count("a") == 2).await;
        store
            .create(key("again"), "u2", Bytes::from_static(b"{}"))
            .await
            .unwrap();
        eventually("the requeues", || reconciler.count("again") == 3).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(reconciler.count("again"), 3, "then it waits for a change");
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), async {
            running.await.unwrap();
            feeding.await.unwrap();
        })
        .await
        .expect("everything stops");
    }

    /// A failing key is retried by the error policy, with growing waits, until it succeeds.
    #[tokio::test]
    async fn errors_are_retried_with_backoff() {
        let (_dir, store, reflector) = setup().await;
        store
            .create(key("flaky"), "u1", Bytes::from_static(b"{}"))
            .await
            .unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(reflector.run(stop.clone()));
        let reconciler = Arc::new(Counting {
            seen: Mutex::default(),
            fail: 3,
        });
        let controller = Controller::new("test").for_objects(&reflector, Duration::from_secs(3600));
        tokio::spawn(controller.run(reconciler.clone(), stop.clone()));
        eventually("three failures and a success", || {
            reconciler.count("flaky") == 4
        })
        .await;
        let times: Vec<Instant> = reconciler
            .seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, t)| *t)
            .collect();
        let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
        for (i, gap) in gaps.iter().enumerate() {
            let policy = Duration::from_millis(10) * (i as u32 + 1);
            assert!(
                *gap >= policy,
                "retry {i} came after {gap:?}, before {policy:?}"
            );
        }
        stop.cancel();
    }

    #[tokio::test]
    async fn delayed_keys_come_once_at_their_earliest_time() {
        let delays: Arc<Delays<&str>> = Arc::default();
        let queue = WorkQueue::new();
        let stop = tokio::spawn(delays.clone().run(queue.clone()));
        delays.add("a", Duration::from_secs(3600));
        delays.add("a", Duration::from_millis(10));
        delays.add("a", Duration::from_secs(60));
        delays.add("b", Duration::from_millis(20));
        assert_eq!(queue.next().await, "a");
        assert_eq!(queue.next().await, "b");
        assert!(delays.state.lock().unwrap().by_key.is_empty());
        stop.abort();
    }
}
