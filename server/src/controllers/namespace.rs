//! Namespace termination: once a namespace is marked for deletion (phase `Terminating`), delete
//! everything in it, wait for those objects' finalizers, then remove the `kubernetes`
//! finalizer and with it the namespace.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use serde_json::Value;
use trellis_storage::{
    Event, EventType, ListRequest, ListScope, ObjectKey, Preconditions, StorageError, Store,
    StoredObject,
};

use crate::deletion::{self, Deleted};
use crate::registry::Registry;

/// How often namespaces still emptying are looked at again.
const RETRY: Duration = Duration::from_secs(1);
/// How often everything is listed again, in case a change was missed.
const FULL_RESYNC: Duration = Duration::from_secs(60);
const NAMESPACES: &str = "core/namespaces";

/// The outcome of one reconcile.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing (more) to do.
    Done,
    /// Objects are still going away (finalizers); look again later.
    Requeue,
}

pub async fn run(store: Store, registry: Arc<Registry>) {
    loop {
        if let Err(err) = follow(&store, &registry).await {
            tracing::warn!(error = %err, "namespace controller: relisting");
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Lists the namespaces once, then follows their changes: only namespaces being deleted need
/// work, and only they are looked at again (every second while they empty). Returns to be
/// called again after `FULL_RESYNC`, or when the watch fails.
async fn follow(store: &Store, registry: &Registry) -> Result<(), StorageError> {
    let scope = ListScope::all_clusters(NAMESPACES);
    let listed = store.list(ListRequest::new(scope.clone())).await?;
    let mut terminating: HashSet<ObjectKey> = listed
        .items
        .iter()
        .filter(|n| being_deleted(&n.value))
        .map(|n| n.key.clone())
        .collect();
    let mut watch = store.watch(scope, Some(listed.revision)).await?;
    let relist_at = tokio::time::Instant::now() + FULL_RESYNC;
    loop {
        let mut done = Vec::new();
        for key in &terminating {
            match step(store, registry, key).await {
                Ok(Action::Done) => done.push(key.clone()),
                Ok(Action::Requeue) => {}
                Err(err) => {
                    tracing::warn!(namespace = %key.name, cluster = %key.cluster, error = %err, "namespace controller: will retry")
                }
            }
        }
        for key in done {
            terminating.remove(&key);
        }
        let wait = if terminating.is_empty() {
            relist_at.saturating_duration_since(tokio::time::Instant::now())
        } else {
            RETRY
        };
        match tokio::time::timeout(wait, watch.next()).await {
            Ok(Some(event)) => {
                note(&mut terminating, &event?);
                // Take whatever else is already waiting.
                while let Some(Some(event)) = watch.next().now_or_never() {
                    note(&mut terminating, &event?);
                }
            }
            Ok(None) => return Ok(()),
            Err(_) if tokio::time::Instant::now() >= relist_at => return Ok(()),
            Err(_) => {}
        }
    }
}

/// Records whether the namespace an event is about needs emptying.
fn note(terminating: &mut HashSet<ObjectKey>, event: &Event) {
    let key = &event.object.key;
    if event.kind != EventType::Deleted && being_deleted(&event.object.value) {
        terminating.insert(key.clone());
    } else {
        terminating.remove(key);
    }
}

/// Whether a stored namespace has a deletion timestamp (a byte search first: most have not).
fn being_deleted(value: &[u8]) -> bool {
    value.windows(19).any(|w| w == b"\"deletionTimestamp\"")
        && serde_json::from_slice::<Value>(value).is_ok_and(|o| deletion::is_deleting(&o))
}

/// Reads the namespace afresh and takes one step if it is being deleted.
async fn step(store: &Store, registry: &Registry, key: &ObjectKey) -> Result<Action, StorageError> {
    let stored = match store.get(key).await {
        Ok(stored) => stored,
        Err(StorageError::NotFound(_)) => return Ok(Action::Done),
        Err(e) => return Err(e),
    };
    let object: Value = serde_json::from_slice(&stored.value)
        .map_err(|e| StorageError::Internal(format!("stored namespace is not JSON: {e}")))?;
    if !deletion::is_deleting(&object) {
        return Ok(Action::Done);
    }
    reconcile(store, registry, &stored, object).await
}

/// One step for a namespace being deleted.
pub async fn reconcile(
    store: &Store,
    registry: &Registry,
    namespace: &StoredObject,
    mut object: Value,
) -> Result<Action, StorageError> {
    let cluster = &namespace.key.cluster;
    let name = &namespace.key.name;
    let mut remaining = 0usize;
    let resources = registry.resources(cluster).await;
    let mut seen = Vec::new();
    for rt in resources.iter().filter(|r| r.namespaced) {
        // Every version of a resource shares its storage: one pass each.
        let storage = rt.storage_resource();
        if seen.contains(&storage) {
            continue;
        }
        seen.push(storage);
        let scope = ListScope::namespace(cluster.clone(), rt.storage_resource(), name.clone());
        for item in store.list(ListRequest::new(scope)).await?.items {
            let background = deletion::Propagation::Background;
            match deletion::delete(
                store,
                rt,
                item.key.clone(),
                &item,
                Preconditions::none(),
                background,
            )
            .await
            {
                Ok(Deleted::Gone(_)) | Err(StorageError::NotFound(_)) => {}
                Ok(Deleted::Pending(_)) => remaining += 1,
                Err(StorageError::Conflict { .. }) => remaining += 1,
                Err(e) => return Err(e),
            }
        }
    }
    if remaining > 0 {
        return Ok(Action::Requeue);
    }
    // Empty: drop our finalizer, and the namespace with it if nothing else holds it.
    if let Some(finalizers) = object
        .pointer_mut("/spec/finalizers")
        .and_then(Value::as_array_mut)
    {
        finalizers.retain(|f| f.as_str() != Some("kubernetes"));
    }
    let key = ObjectKey::new(cluster.clone(), NAMESPACES, "", name.clone());
    let precondition = Preconditions::revision(namespace.revision);
    let outcome = if deletion::update_completes_deletion(&object) {
        store.delete(key, precondition).await.map(drop)
    } else {
        let bytes = Bytes::from(
            serde_json::to_vec(&object).map_err(|e| StorageError::Internal(e.to_string()))?,
        );
        store.update(key, bytes, precondition).await.map(drop)
    };
    match outcome {
        Ok(()) | Err(StorageError::NotFound(_)) => Ok(Action::Done),
        // Changed meanwhile: the next resync sees the new state.
        Err(StorageError::Conflict { .. }) => Ok(Action::Requeue),
        Err(e) => Err(e),
    }
}
