//! Every namespace has a ServiceAccount `default`, as Kubernetes' service account controller
//! keeps it: created with the namespace, created again if deleted.

use std::collections::HashSet;
use std::time::Duration;

use futures::FutureExt;
use serde_json::{json, Value};
use trellis_storage::{Event, EventType, ListRequest, ListScope, ObjectKey, StorageError, Store};

use crate::bootstrap::create_missing;
use crate::deletion;

const NAMESPACES: &str = "core/namespaces";
const SERVICE_ACCOUNTS: &str = "core/serviceaccounts";
const DEFAULT: &str = "default";
const RETRY: Duration = Duration::from_secs(1);

pub async fn run(store: Store) {
    loop {
        if let Err(err) = follow(&store).await {
            tracing::warn!(error = %err, "service account controller: relisting");
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Creates the missing `default` accounts, then follows namespaces (new ones get theirs) and
/// accounts (a deleted `default` comes back while its namespace lives).
async fn follow(store: &Store) -> Result<(), StorageError> {
    let namespaces = store
        .list(ListRequest::new(ListScope::all_clusters(NAMESPACES)))
        .await?;
    let accounts = store
        .list(ListRequest::new(ListScope::all_clusters(SERVICE_ACCOUNTS)))
        .await?;
    let have: HashSet<(&str, &str)> = accounts
        .items
        .iter()
        .filter(|a| a.key.name == DEFAULT)
        .map(|a| (a.key.cluster.as_str(), a.key.namespace.as_str()))
        .collect();
    for namespace in &namespaces.items {
        let key = &namespace.key;
        if !have.contains(&(key.cluster.as_str(), key.name.as_str())) && active(&namespace.value) {
            ensure(store, &key.cluster, &key.name).await?;
        }
    }
    let mut namespace_events = store
        .watch(
            ListScope::all_clusters(NAMESPACES),
            Some(namespaces.revision),
        )
        .await?;
    let mut account_events = store
        .watch(
            ListScope::all_clusters(SERVICE_ACCOUNTS),
            Some(accounts.revision),
        )
        .await?;
    loop {
        tokio::select! {
            event = namespace_events.next() => {
                let Some(event) = event else { return Ok(()) };
                on_namespace(store, &event?).await?;
                while let Some(Some(event)) = namespace_events.next().now_or_never() {
                    on_namespace(store, &event?).await?;
                }
            }
            event = account_events.next() => {
                let Some(event) = event else { return Ok(()) };
                on_account(store, &event?).await?;
            }
        }
    }
}

async fn on_namespace(store: &Store, event: &Event) -> Result<(), StorageError> {
    let key = &event.object.key;
    if event.kind == EventType::Added && active(&event.object.value) {
        ensure(store, &key.cluster, &key.name).await?;
    }
    Ok(())
}

async fn on_account(store: &Store, event: &Event) -> Result<(), StorageError> {
    let key = &event.object.key;
    if event.kind != EventType::Deleted || key.name != DEFAULT {
        return Ok(());
    }
    let namespace = ObjectKey::new(key.cluster.clone(), NAMESPACES, "", key.namespace.clone());
    match store.get(&namespace).await {
        Ok(stored) if active(&stored.value) => ensure(store, &key.cluster, &key.namespace).await,
        Ok(_) | Err(StorageError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// A namespace that is not being deleted.
fn active(value: &[u8]) -> bool {
    serde_json::from_slice::<Value>(value).is_ok_and(|n| !deletion::is_deleting(&n))
}

async fn ensure(store: &Store, cluster: &str, namespace: &str) -> Result<(), StorageError> {
    let object = json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": DEFAULT, "namespace": namespace},
    });
    let key = ObjectKey::new(cluster, SERVICE_ACCOUNTS, namespace, DEFAULT);
    create_missing(store, key, object).await
}
