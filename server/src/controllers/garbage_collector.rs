//! Garbage collection by `ownerReferences`, as kube-controller-manager's collector does:
//! - an object whose owners are all gone is deleted (after checking each owner live, so an
//!   owner created after our snapshot is not mistaken for a missing one);
//! - a dependent of an owner in foreground deletion (`foregroundDeletion` finalizer) is
//!   deleted, and the owner's finalizer is removed once no dependents remain;
//! - a dependent of an owner being orphaned (`orphan` finalizer) loses that reference, then the
//!   owner's finalizer is removed.
//!
//! Level-triggered: every pass looks at the whole state; each step is safe to repeat. Passes run
//! when a change can matter (a deletion, owner references, a deletionTimestamp) and every 30 s.
//! A pass still reads every object: an owner index is the next step before kcp scale.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use trellis_storage::{
    EventType, ListRequest, ListScope, ObjectKey, Preconditions, StorageError, Store, StoredObject,
};

use crate::deletion::{self, Propagation, FOREGROUND, ORPHAN};
use crate::registry::custom::{resource_types, CRD_RESOURCE};
use crate::registry::{Registry, ResourceType};

/// A full pass even without a hint (a missed event only delays work).
const FULL_RESYNC: Duration = Duration::from_secs(30);
const DEBOUNCE: Duration = Duration::from_millis(100);

struct Item {
    rt: Arc<ResourceType>,
    stored: StoredObject,
    object: Value,
}

impl Item {
    fn uid(&self) -> &str {
        &self.stored.uid
    }

    fn owner_uids(&self) -> Vec<String> {
        owner_refs(&self.object)
            .iter()
            .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_string))
            .collect()
    }

    fn has_finalizer(&self, name: &str) -> bool {
        deletion::is_deleting(&self.object)
            && self
                .object
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| f.iter().any(|x| x.as_str() == Some(name)))
    }
}

fn owner_refs(object: &Value) -> Vec<Value> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

pub async fn run(store: Store, registry: Arc<Registry>) {
    // Woken by changes that can matter to it; a full pass every FULL_RESYNC regardless.
    let (wake, mut woken) = tokio::sync::mpsc::channel::<()>(1);
    // Owned here, so they stop with the collector (when this replica stops leading).
    let mut watchers = tokio::task::JoinSet::new();
    for rt in registry
        .scheme()
        .resources()
        .iter()
        .filter(|rt| rt.stored_as.is_none() && rt.is_stored())
    {
        watchers.spawn(watch_for_work(store.clone(), rt.clone(), wake.clone()));
    }
    loop {
        match pass(&store, &registry).await {
            // A step may enable the next one (dependents gone, then the owner's finalizer):
            // look again soon instead of waiting for a hint.
            Ok(true) => {
                tokio::time::sleep(DEBOUNCE).await;
                continue;
            }
            Ok(false) => {}
            Err(err) => tracing::warn!(error = %err, "garbage collector: will retry"),
        }
        tokio::select! {
            _ = woken.recv() => {
                // Let a burst of changes (a cascade) settle into one pass.
                tokio::time::sleep(DEBOUNCE).await;
                while woken.try_recv().is_ok() {}
            }
            _ = tokio::time::sleep(FULL_RESYNC) => {}
        }
    }
}

/// Wakes the collector on deletions and on objects that carry owner references or are being
/// deleted; cheap byte searches, no parsing, on every other change.
async fn watch_for_work(store: Store, rt: Arc<ResourceType>, wake: tokio::sync::mpsc::Sender<()>) {
    loop {
        match store
            .watch(ListScope::all_clusters(rt.storage_resource()), None)
            .await
        {
            Ok(mut watch) => {
                while let Some(Ok(event)) = watch.next().await {
                    let value = &event.object.value;
                    let matters = event.kind == EventType::Deleted
                        || contains(value, b"\"ownerReferences\"")
                        || contains(value, b"\"deletionTimestamp\"");
                    if matters {
                        let _ = wake.try_send(());
                    }
                }
            }
            Err(err) => tracing::debug!(error = %err, "garbage collector watch failed; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// What a pass reads: every built-in resource across all workspaces, and each workspace's
/// custom resources (one scope per CRD, read through its storage version).
async fn everything(
    store: &Store,
    registry: &Registry,
) -> Result<Vec<(ListScope, Arc<ResourceType>)>, StorageError> {
    let mut scopes: Vec<(ListScope, Arc<ResourceType>)> = registry
        .scheme()
        .resources()
        .iter()
        // Resources stored with another are read through that one.
        .filter(|rt| rt.stored_as.is_none() && rt.is_stored())
        .map(|rt| (ListScope::all_clusters(rt.storage_resource()), rt.clone()))
        .collect();
    let crds = store
        .list(ListRequest::new(ListScope::all_clusters(CRD_RESOURCE)))
        .await?;
    for crd in crds.items {
        let Ok(object) = serde_json::from_slice::<Value>(&crd.value) else {
            continue;
        };
        let types = resource_types(&object);
        let stored_as = types.iter().find(|t| {
            t.custom
                .as_ref()
                .is_some_and(|c| c.storage_version == t.version)
        });
        if let Some(rt) = stored_as.or(types.first()) {
            let scope = ListScope::cluster(crd.key.cluster.clone(), rt.storage_resource());
            scopes.push((scope, Arc::new(rt.clone())));
        }
    }
    Ok(scopes)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// One look at everything; whether it changed anything.
pub async fn pass(store: &Store, registry: &Registry) -> Result<bool, StorageError> {
    let mut items = Vec::new();
    for (scope, rt) in everything(store, registry).await? {
        let listed = store.list(ListRequest::new(scope)).await?;
        for stored in listed.items {
            if let Ok(object) = serde_json::from_slice(&stored.value) {
                items.push(Item {
                    rt: rt.clone(),
                    stored,
                    object,
                });
            }
        }
    }
    let by_uid: HashMap<&str, &Item> = items.iter().map(|i| (i.uid(), i)).collect();
    let mut changed = false;
    let mut referenced: HashSet<String> = HashSet::new();

    for dependent in items.iter().filter(|i| !owner_refs(&i.object).is_empty()) {
        let owners = dependent.owner_uids();
        referenced.extend(owners.iter().cloned());
        let mut delete_now = false;
        let mut drop_refs: Vec<String> = Vec::new();
        let mut absent = 0;
        for uid in &owners {
            match by_uid.get(uid.as_str()) {
                Some(owner) if owner.has_finalizer(FOREGROUND) => delete_now = true,
                Some(owner) if owner.has_finalizer(ORPHAN) => drop_refs.push(uid.clone()),
                Some(_) => {}
                None if owner_is_gone(store, registry, dependent, uid).await? => absent += 1,
                None => {}
            }
        }
        let outcome = if delete_now {
            delete(store, dependent, Propagation::Foreground)
                .await
                .map(|()| true)
        } else if absent == owners.len() && !owners.is_empty() {
            delete(store, dependent, Propagation::Background)
                .await
                .map(|()| true)
        } else if !drop_refs.is_empty() {
            drop_owner_refs(store, dependent, &drop_refs)
                .await
                .map(|()| true)
        } else {
            Ok(false)
        };
        match outcome {
            Ok(true) => changed = true,
            Ok(false) | Err(StorageError::NotFound(_) | StorageError::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
    }

    // Owners waiting on their dependents.
    for owner in &items {
        for finalizer in [FOREGROUND, ORPHAN] {
            if owner.has_finalizer(finalizer) && !referenced.contains(owner.uid()) {
                match deletion::remove_finalizer(store, &owner.stored, finalizer).await {
                    Ok(()) => changed = true,
                    Err(StorageError::NotFound(_) | StorageError::Conflict { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(changed)
}

/// Whether the owner `uid` of `dependent` is really gone: looked up live by the reference's
/// kind and name (an unknown kind is never presumed gone).
async fn owner_is_gone(
    store: &Store,
    registry: &Registry,
    dependent: &Item,
    uid: &str,
) -> Result<bool, StorageError> {
    let Some(reference) = owner_refs(&dependent.object)
        .into_iter()
        .find(|r| r.get("uid").and_then(Value::as_str) == Some(uid))
    else {
        return Ok(false);
    };
    let api_version = reference
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = reference
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = reference
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let cluster = &dependent.stored.key.cluster;
    let Some(owner_rt) = registry
        .resources(cluster)
        .await
        .into_iter()
        .find(|r| r.group == group && r.version == version && r.kind == kind)
    else {
        return Ok(false);
    };
    let namespace = if owner_rt.namespaced {
        dependent.stored.key.namespace.as_str()
    } else {
        ""
    };
    let key = ObjectKey::new(
        dependent.stored.key.cluster.clone(),
        owner_rt.storage_resource(),
        namespace,
        name,
    );
    match store.get(&key).await {
        Ok(owner) => Ok(owner.uid != uid),
        Err(StorageError::NotFound(_)) => Ok(true),
        Err(e) => Err(e),
    }
}

async fn delete(store: &Store, item: &Item, propagation: Propagation) -> Result<(), StorageError> {
    if deletion::is_deleting(&item.object) && propagation == Propagation::Background {
        return Ok(());
    }
    let precondition = Preconditions::revision(item.stored.revision);
    deletion::delete(
        store,
        &item.rt,
        item.stored.key.clone(),
        &item.stored,
        precondition,
        propagation,
    )
    .await
    .map(drop)
}

async fn drop_owner_refs(store: &Store, item: &Item, uids: &[String]) -> Result<(), StorageError> {
    let mut object = item.object.clone();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if let Some(refs) = meta
            .get_mut("ownerReferences")
            .and_then(Value::as_array_mut)
        {
            refs.retain(|r| {
                r.get("uid")
                    .and_then(Value::as_str)
                    .is_none_or(|u| !uids.iter().any(|x| x == u))
            });
            // Kubernetes leaves an empty list out.
            if refs.is_empty() {
                meta.remove("ownerReferences");
            }
        }
    }
    let bytes = Bytes::from(
        serde_json::to_vec(&object).map_err(|e| StorageError::Internal(e.to_string()))?,
    );
    store
        .update(
            item.stored.key.clone(),
            bytes,
            Preconditions::revision(item.stored.revision),
        )
        .await
        .map(drop)
}
