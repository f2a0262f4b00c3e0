//! Which namespaces can take new content, as this hub's own watch of them has seen: the check
//! every create of a namespaced object makes (NamespaceLifecycle), without a storage read each
//! time.
//!
//! The cache only answers when it has caught up with every change this process has published
//! ([`Store::delivered_revision`] at the time of the question). Storage publishes a change
//! before the writer hears back, so a namespace deletion this hub has answered is always seen:
//! a create that follows it is refused. When the cache is behind (briefly, or while it relists)
//! or does not know the namespace, the caller reads storage as before. Changes made by other
//! processes reach it as fast as they reach any watch of this hub.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use serde_json::Value;
use tokio::sync::watch;
use trellis_storage::{Event, EventType, ListRequest, ListScope, StorageError, Store, WatchStream};

use crate::deletion;

const NAMESPACES: &str = "core/namespaces";
/// How long a question waits for the cache to catch up before storage is asked instead.
const CATCH_UP_WAIT: Duration = Duration::from_millis(50);
/// Pause before relisting after the watch failed.
const RETRY: Duration = Duration::from_secs(1);

/// What the cache can say about one namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Accepts,
    Terminating,
    /// Not known (absent, unreadable, or the cache is behind): read storage.
    Unknown,
}

pub struct NamespaceCache {
    /// cluster → namespace → being deleted.
    namespaces: Mutex<HashMap<String, HashMap<String, bool>>>,
    /// Every namespace change at or below this revision is in `namespaces`; 0 while (re)listing.
    seen: watch::Sender<u64>,
}

impl NamespaceCache {
    /// Starts the cache and the task keeping it fresh; the task ends with the store.
    pub fn spawn(store: Store) -> Arc<Self> {
        let cache = Arc::new(NamespaceCache {
            namespaces: Mutex::new(HashMap::new()),
            seen: watch::channel(0).0,
        });
        let weak = Arc::downgrade(&cache);
        tokio::spawn(async move {
            loop {
                let Some(cache) = weak.upgrade() else { return };
                match cache.follow(&store).await {
                    Ok(()) => return,
                    Err(err) => {
                        tracing::debug!(error = %err, "namespace cache: relisting");
                    }
                }
                cache.seen.send_replace(0);
                drop(cache);
                tokio::time::sleep(RETRY).await;
            }
        });
        cache
    }

    /// What the cache knows of `namespace` in `cluster`, as of every change this process has
    /// published before the call.
    pub async fn admission(&self, store: &Store, cluster: &str, namespace: &str) -> Admission {
        let needed = store.delivered_revision();
        let mut seen = self.seen.subscribe();
        if *seen.borrow_and_update() < needed {
            let caught_up = tokio::time::timeout(CATCH_UP_WAIT, seen.wait_for(|s| *s >= needed))
                .await
                .is_ok_and(|r| r.is_ok());
            if !caught_up {
                return Admission::Unknown;
            }
        }
        let namespaces = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        match namespaces.get(cluster).and_then(|c| c.get(namespace)) {
            Some(true) => Admission::Terminating,
            Some(false) => Admission::Accepts,
            None => Admission::Unknown,
        }
    }

    /// Lists the namespaces, then applies their changes; returns when the store closes.
    async fn follow(&self, store: &Store) -> Result<(), StorageError> {
        let mut delivered = store.subscribe_delivered();
        let scope = ListScope::all_clusters(NAMESPACES);
        let listed = store.list(ListRequest::new(scope.clone())).await?;
        let mut watch = store.watch(scope, Some(listed.revision)).await?;
        {
            let mut namespaces = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
            namespaces.clear();
            for stored in &listed.items {
                if let Some(deleting) = being_deleted(&stored.value) {
                    namespaces
                        .entry(stored.key.cluster.clone())
                        .or_default()
                        .insert(stored.key.name.clone(), deleting);
                }
            }
        }
        self.seen.send_replace(listed.revision);
        loop {
            tokio::select! {
                event = watch.next() => match event {
                    None => return Ok(()),
                    Some(event) => self.apply(&event?),
                },
                // Something was published, maybe not a namespace: look at what the watch has.
                changed = delivered.changed() => if changed.is_err() {
                    return Ok(());
                },
            }
            self.drain(&mut watch)?;
            // Nothing is pending in the watch: every change through its revision is applied.
            self.seen.send_if_modified(|seen| {
                let reached = watch.revision();
                let moved = reached > *seen;
                *seen = (*seen).max(reached);
                moved
            });
        }
    }

    /// Applies the changes the watch already holds, without waiting for more.
    fn drain(&self, watch: &mut WatchStream) -> Result<(), StorageError> {
        while let Some(Some(event)) = watch.next().now_or_never() {
            self.apply(&event?);
        }
        Ok(())
    }

    fn apply(&self, event: &Event) {
        let key = &event.object.key;
        let mut namespaces = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        let state = match event.kind {
            EventType::Deleted => None,
            EventType::Added | EventType::Modified => being_deleted(&event.object.value),
        };
        match state {
            Some(deleting) => {
                namespaces
                    .entry(key.cluster.clone())
                    .or_default()
                    .insert(key.name.clone(), deleting);
            }
            // Gone, or unreadable: storage answers for it.
            None => {
                if let Some(cluster) = namespaces.get_mut(&key.cluster) {
                    cluster.remove(&key.name);
                }
            }
        }
    }
}

/// Whether a stored namespace is being deleted; `None` if it is not JSON.
fn being_deleted(value: &[u8]) -> Option<bool> {
    let object: Value = serde_json::from_slice(value).ok()?;
    Some(deletion::is_deleting(&object))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use trellis_storage::{ObjectKey, Preconditions, StoreOptions};

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new("root", NAMESPACES, "", name)
    }

    /// Every answer comes right after the write, with no waiting in between: a namespace this
    /// process marked for deletion is refused at once, one it never saw is left to storage.
    #[tokio::test]
    async fn answers_reflect_every_write_already_answered() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path().join("store.db"), StoreOptions::default())
            .await
            .unwrap();
        let live = br#"{"metadata":{"name":"a"}}"#;
        store
            .create(
                key("before"),
                "u0",
                Bytes::from_static(br#"{"metadata":{"name":"before"}}"#),
            )
            .await
            .unwrap();
        let cache = NamespaceCache::spawn(store.clone());
        let admission = |name: &'static str| {
            let (cache, store) = (cache.clone(), store.clone());
            async move { cache.admission(&store, "root", name).await }
        };
        // Until its first listing the cache cannot answer.
        let listed = async {
            while admission("before").await != Admission::Accepts {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), listed)
            .await
            .expect("the cache lists the namespaces");
        assert_eq!(admission("a").await, Admission::Unknown);
        store
            .create(key("a"), "u1", Bytes::from_static(live))
            .await
            .unwrap();
        assert_eq!(admission("a").await, Admission::Accepts);
        let deleting = br#"{"metadata":{"deletionTimestamp":"2026-01-01T00:00:00Z","name":"a"}}"#;
        store
            .update(
                key("a"),
                Bytes::from_static(deleting),
                Preconditions::none(),
            )
            .await
            .unwrap();
        assert_eq!(admission("a").await, Admission::Terminating);
        store.delete(key("a"), Preconditions::none()).await.unwrap();
        assert_eq!(admission("a").await, Admission::Unknown);
        assert_eq!(
            cache.admission(&store, "other-cluster", "before").await,
            Admission::Unknown
        );
    }

    /// A cache that has not caught up with what this process published does not answer, even
    /// if it holds an entry: the entry may predate a deletion.
    #[tokio::test]
    async fn a_cache_behind_the_store_leaves_the_answer_to_storage() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path().join("store.db"), StoreOptions::default())
            .await
            .unwrap();
        store
            .create(
                key("a"),
                "u1",
                Bytes::from_static(br#"{"metadata":{"name":"a"}}"#),
            )
            .await
            .unwrap();
        let cache = NamespaceCache {
            namespaces: Mutex::new(HashMap::from([(
                "root".to_string(),
                HashMap::from([("a".to_string(), false)]),
            )])),
            seen: watch::channel(0).0,
        };
        assert_eq!(
            cache.admission(&store, "root", "a").await,
            Admission::Unknown
        );
        cache.seen.send_replace(store.delivered_revision());
        assert_eq!(
            cache.admission(&store, "root", "a").await,
            Admission::Accepts
        );
    }
}
