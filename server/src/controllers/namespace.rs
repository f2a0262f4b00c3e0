//! Namespace termination: once a namespace is marked for deletion (phase `Terminating`), delete
//! everything in it, wait for those objects' finalizers, then remove the `kubernetes`
//! finalizer and with it the namespace.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use trellis_storage::{
    ListRequest, ListScope, ObjectKey, Preconditions, StorageError, Store, StoredObject,
};

use crate::deletion::{self, Deleted};
use crate::registry::Registry;

/// How often every namespace is looked at even without a change (retries waiting ones).
const RESYNC: Duration = Duration::from_secs(1);
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
        let mut watch = store
            .watch(ListScope::all_clusters(NAMESPACES), None)
            .await
            .ok();
        if let Err(err) = resync(&store, &registry).await {
            tracing::warn!(error = %err, "namespace controller: resync failed");
        }
        // Wake on any namespace change, or after the resync period.
        match watch.as_mut() {
            Some(w) => {
                let _ = tokio::time::timeout(RESYNC, w.next()).await;
            }
            None => tokio::time::sleep(RESYNC).await,
        }
    }
}

async fn resync(store: &Store, registry: &Registry) -> Result<(), StorageError> {
    let namespaces = store
        .list(ListRequest::new(ListScope::all_clusters(NAMESPACES)))
        .await?;
    for namespace in namespaces.items {
        let object: Value = match serde_json::from_slice(&namespace.value) {
            Ok(object) => object,
            Err(_) => continue,
        };
        if deletion::is_deleting(&object) {
            if let Err(err) = reconcile(store, registry, &namespace, object).await {
                tracing::warn!(namespace = %namespace.key.name, cluster = %namespace.key.cluster, error = %err, "namespace controller: will retry");
            }
        }
    }
    Ok(())
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
