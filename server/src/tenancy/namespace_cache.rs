//! Which namespaces can take new content, as this hub's own watch of them has seen: the check
//! every create of a namespaced object makes (NamespaceLifecycle), without a storage read each
//! time. The same copy of a shard's namespaces feeds the namespace and service-account
//! controllers ([`NamespaceCache::reflector`]), so the shard's namespaces are watched once.
//!
//! It is a [`Reflector`] of the shard's namespaces (of every workspace), keeping one flag per
//! namespace. The cache only answers when it has caught up with every change this process has
//! published ([`Store::delivered_revision`] at the time of the question). Storage publishes a
//! change before the writer hears back, so a namespace deletion this hub has answered is always
//! seen: a create that follows it is refused. When the cache is behind (briefly, or while it
//! relists) or does not know the namespace, the caller reads storage as before. Changes made by
//! other processes reach it as fast as they reach any watch of this hub.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::{CancellationToken, DropGuard};
use trellis_storage::{ListScope, ObjectKey, Store, StoredObject};

use crate::controllers::runtime::Reflector;

pub const NAMESPACES: &str = "core/namespaces";
/// How long a question waits for the cache to catch up before storage is asked instead.
const CATCH_UP_WAIT: Duration = Duration::from_millis(50);
/// The reflector's only source: the shard the cache was made for.
const SOURCE: &str = "shard";

/// What the cache can say about one namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Accepts,
    Terminating,
    /// Not known (absent, unreadable, or the cache is behind): read storage.
    Unknown,
}

/// What is kept of each namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NamespaceState {
    /// It has a deletionTimestamp.
    pub deleting: bool,
}

pub struct NamespaceCache {
    namespaces: Reflector<NamespaceState>,
    /// Stops the reflector when the cache goes.
    _stop: DropGuard,
}

impl NamespaceCache {
    /// Starts the cache and the task keeping it fresh; the task ends with the cache.
    pub fn spawn(store: Store) -> Arc<Self> {
        let namespaces = Reflector::new(
            "namespaces",
            ListScope::all_clusters(NAMESPACES),
            vec![(SOURCE.to_string(), store)],
            state_of,
        );
        let stop = CancellationToken::new();
        namespaces.spawn(stop.clone());
        Arc::new(NamespaceCache {
            namespaces,
            _stop: stop.drop_guard(),
        })
    }

    /// The shard's namespaces, for controllers.
    pub fn reflector(&self) -> &Reflector<NamespaceState> {
        &self.namespaces
    }

    /// What the cache knows of `namespace` in `cluster`, as of every change this process has
    /// published before the call.
    pub async fn admission(&self, store: &Store, cluster: &str, namespace: &str) -> Admission {
        let needed = store.delivered_revision();
        if !self
            .namespaces
            .wait_for_revision(SOURCE, needed, CATCH_UP_WAIT)
            .await
        {
            return Admission::Unknown;
        }
        answer(
            self.namespaces
                .get(&ObjectKey::new(cluster, NAMESPACES, "", namespace))
                .as_deref(),
        )
    }
}

fn answer(state: Option<&NamespaceState>) -> Admission {
    match state {
        Some(NamespaceState { deleting: true }) => Admission::Terminating,
        Some(NamespaceState { deleting: false }) => Admission::Accepts,
        None => Admission::Unknown,
    }
}

/// What is kept of a stored namespace; nothing if it is not JSON (storage answers for it).
fn state_of(stored: &StoredObject) -> Option<NamespaceState> {
    let object: Value = serde_json::from_slice(&stored.value).ok()?;
    Some(NamespaceState {
        deleting: object
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|t| !t.is_null()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use trellis_storage::{Preconditions, StoreOptions};

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
        // Changes to other resources move the cache along too: it still answers at once.
        store
            .create(
                ObjectKey::new("root", "core/configmaps", "default", "c"),
                "u2",
                Bytes::from_static(b"{}"),
            )
            .await
            .unwrap();
        assert_eq!(admission("before").await, Admission::Accepts);
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
        // Never started: it knows nothing and has reached no revision.
        let cache = NamespaceCache {
            namespaces: Reflector::new(
                "namespaces",
                ListScope::all_clusters(NAMESPACES),
                vec![(SOURCE.to_string(), store.clone())],
                state_of,
            ),
            _stop: CancellationToken::new().drop_guard(),
        };
        assert_eq!(
            cache.admission(&store, "root", "a").await,
            Admission::Unknown
        );
        assert_eq!(
            answer(Some(&NamespaceState { deleting: false })),
            Admission::Accepts
        );
    }
}
