//! Namespace termination: once a namespace is marked for deletion (phase `Terminating`), delete
//! everything in it, wait for those objects' finalizers, then remove the `kubernetes`
//! finalizer and with it the namespace.
//!
//! Wiring ([`wire`]): the controller reads each shard's namespaces from the shard's namespace
//! cache (one reflector per shard, shared with the create path and the service-account
//! controller); only namespaces being deleted are queued. The reconcile lists the namespace's
//! content in storage (it is not cached: any resource, any size), deletes it, and looks again
//! every second while objects remain. The decisions are [`next_step`] and [`finalized`].

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use trellis_storage::{ListRequest, ListScope, ObjectKey, Preconditions, StorageError, Store};

use super::runtime::committer::{self, parse};
use super::runtime::{Action, Controller, Error, Reconciler, Running};
use crate::machinery::deletion::{self, Deleted};
use crate::registry::Registry;
use crate::tenancy::namespace_cache::NamespaceState;
use crate::tenancy::shards::{Shard, ShardMap};

/// How soon a namespace still emptying is looked at again.
const RETRY: Duration = Duration::from_secs(1);
/// How often every namespace being deleted is queued, whatever the triggers said.
const RESYNC: Duration = Duration::from_secs(60);
/// The finalizer of `spec.finalizers` this controller owns.
const FINALIZER: &str = "kubernetes";

pub fn wire(running: &mut Running, shards: Arc<ShardMap>, registry: Arc<Registry>) {
    let mut controller = Controller::new("namespace").workers(4);
    for shard in shards.iter() {
        controller = controller.watches(shard.namespaces.reflector(), |change| {
            change
                .new
                .as_ref()
                .filter(|n| n.deleting)
                .map(|_| change.key.clone())
        });
    }
    let all = shards.clone();
    let controller = controller.resync(RESYNC, move || {
        all.iter()
            .flat_map(|shard| {
                let namespaces = shard.namespaces.reflector();
                namespaces
                    .keys()
                    .into_iter()
                    .filter(|key| namespaces.get(key).is_some_and(|n| n.deleting))
                    .collect::<Vec<_>>()
            })
            .collect()
    });
    let reconciler = NamespaceReconciler { shards, registry };
    running.spawn(controller.run(Arc::new(reconciler), running.token()));
}

struct NamespaceReconciler {
    shards: Arc<ShardMap>,
    registry: Arc<Registry>,
}

/// What to do about a namespace, given its state and what its content came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Not being deleted (or gone): nothing.
    Nothing,
    /// Delete its content.
    Empty,
}

/// The first decision: only a namespace being deleted needs work.
pub fn next_step(namespace: Option<&NamespaceState>) -> Step {
    match namespace {
        Some(NamespaceState { deleting: true }) => Step::Empty,
        _ => Step::Nothing,
    }
}

/// After emptying with `remaining` objects still going: look again, or finalize.
pub fn after_emptying(remaining: usize) -> Option<Action> {
    (remaining > 0).then(|| Action::requeue(RETRY))
}

/// The namespace without this controller's finalizer.
pub fn finalized(namespace: &Value) -> Value {
    let mut namespace = namespace.clone();
    if let Some(finalizers) = namespace
        .pointer_mut("/spec/finalizers")
        .and_then(Value::as_array_mut)
    {
        finalizers.retain(|f| f.as_str() != Some(FINALIZER));
    }
    namespace
}

impl Reconciler for NamespaceReconciler {
    type Key = ObjectKey;

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, Error> {
        let found = self.shards.iter().find_map(|shard| {
            let state = shard.namespaces.reflector().get(key)?;
            Some((shard.clone(), state))
        });
        let Some((shard, state)) = found else {
            return Ok(Action::await_change());
        };
        if next_step(Some(&state)) == Step::Nothing {
            return Ok(Action::await_change());
        }
        let remaining = self.empty(&shard, key).await?;
        if let Some(again) = after_emptying(remaining) {
            return Ok(again);
        }
        // Empty: drop our finalizer, and the namespace with it if nothing else holds it.
        let store = &shard.store;
        let stored = match store.get(key).await {
            Ok(stored) => stored,
            Err(StorageError::NotFound(_)) => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        };
        let desired = finalized(&parse(&stored)?);
        let rt = committer::builtin(self.registry.scheme(), "", "v1", "namespaces")?;
        committer::update(store, rt, &stored, desired).await?;
        Ok(Action::await_change())
    }
}

impl NamespaceReconciler {
    /// Deletes everything in the namespace; how many objects are still going (finalizers).
    async fn empty(&self, shard: &Shard, key: &ObjectKey) -> Result<usize, Error> {
        let (cluster, name) = (&key.cluster, &key.name);
        let store: &Store = &shard.store;
        let mut remaining = 0usize;
        let resources = self.registry.resources(cluster).await;
        let mut seen = Vec::new();
        for rt in resources.iter().filter(|r| r.namespaced) {
            // Every version of a resource shares its storage: one pass each.
            let storage = rt.storage_resource();
            if seen.contains(&storage) {
                continue;
            }
            let scope = ListScope::namespace(cluster.clone(), storage.clone(), name.clone());
            seen.push(storage);
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
                    Ok(Deleted::Pending(_)) | Err(StorageError::Conflict { .. }) => remaining += 1,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_namespaces_being_deleted_need_work() {
        assert_eq!(next_step(None), Step::Nothing);
        assert_eq!(
            next_step(Some(&NamespaceState { deleting: false })),
            Step::Nothing
        );
        assert_eq!(
            next_step(Some(&NamespaceState { deleting: true })),
            Step::Empty
        );
        assert_eq!(after_emptying(2), Some(Action::requeue(RETRY)));
        assert_eq!(after_emptying(0), None);
    }

    #[test]
    fn finalizing_drops_only_our_finalizer() {
        let namespace = json!({"kind": "Namespace", "metadata": {"name": "team",
            "deletionTimestamp": "t"}, "spec": {"finalizers": ["kubernetes"]}});
        let done = finalized(&namespace);
        assert_eq!(done["spec"]["finalizers"], json!([]));
        assert!(
            deletion::update_completes_deletion(&done),
            "the namespace goes"
        );
        let held = json!({"kind": "Namespace", "metadata": {"name": "team",
            "deletionTimestamp": "t"}, "spec": {"finalizers": ["kubernetes", "example.com/x"]}});
        let still = finalized(&held);
        assert_eq!(still["spec"]["finalizers"], json!(["example.com/x"]));
        assert!(!deletion::update_completes_deletion(&still));
    }
}
