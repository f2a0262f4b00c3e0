//! Namespace termination: once a namespace is marked for deletion (phase `Terminating`), delete
//! everything in it, wait for those objects' finalizers, then remove the `kubernetes`
//! finalizer and with it the namespace.
//!
//! Wiring ([`wire`]): the controller reads each shard's namespaces from the shard's namespace
//! cache (one reflector per shard, shared with the create path and the service-account
//! controller); only namespaces being deleted are queued. The reconcile lists the namespace's
//! content in storage (it is not cached: any resource, any size), deletes it, and looks again
//! every second while objects remain. The decisions are [`next_step`] and [`finalized`].
//!
//! While content remains, the namespace's `status.conditions` say what holds it, as
//! kube-controller-manager's namespace controller writes them (`kubectl describe namespace`
//! shows them): which resources still have objects, and which finalizers they wait for
//! ([`conditions`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use trellis_storage::{
    ListRequest, ListScope, ObjectKey, Preconditions, StorageError, Store, StoredObject,
};

use super::runtime::committer::{self, parse};
use super::runtime::{Action, Controller, Error, Reconciler, Running};
use crate::kinds::core::NAMESPACE_FINALIZER as FINALIZER;
use crate::machinery::deletion::{self, Deleted};
use crate::registry::{Registry, ResourceType};
use crate::tenancy::namespace_cache::NamespaceState;
use crate::tenancy::shards::{Shard, ShardMap};

/// How soon a namespace still emptying is looked at again.
const RETRY: Duration = Duration::from_secs(1);
/// How often every namespace being deleted is queued, whatever the triggers said.
const RESYNC: Duration = Duration::from_secs(60);

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

/// What is left in a namespace after a pass of deletes: objects by resource (`plural.group`,
/// `configmaps.` for the core group, as the upstream messages print it), and by finalizer.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Remaining {
    pub by_resource: BTreeMap<String, usize>,
    pub by_finalizer: BTreeMap<String, usize>,
}

impl Remaining {
    pub fn total(&self) -> usize {
        self.by_resource.values().sum()
    }
}

/// The deletion conditions of a namespace with `remaining` content, in upstream's order,
/// wording and reasons. A condition whose status is unchanged from `current` keeps its
/// `lastTransitionTime`.
pub fn conditions(remaining: &Remaining, current: &[Value], now: &str) -> Vec<Value> {
    let counted = |counts: &BTreeMap<String, usize>, each: &dyn Fn(&str, usize) -> String| {
        counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(what, n)| each(what, *n))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let resources = counted(&remaining.by_resource, &|r, n| {
        format!("{r} has {n} resource instances")
    });
    let finalizers = counted(&remaining.by_finalizer, &|f, n| {
        format!("{f} in {n} resource instances")
    });
    let held = |text: &String, reason: &str, message: String| {
        (!text.is_empty()).then(|| ("True", reason.to_string(), message))
    };
    let wanted = [
        (
            "NamespaceDeletionDiscoveryFailure",
            None,
            (
                "ResourcesDiscovered",
                "All resources successfully discovered",
            ),
        ),
        (
            "NamespaceDeletionGroupVersionParsingFailure",
            None,
            (
                "ParsedGroupVersions",
                "All legacy kube types successfully parsed",
            ),
        ),
        (
            "NamespaceDeletionContentFailure",
            None,
            (
                "ContentDeleted",
                "All content successfully deleted, may be waiting on finalization",
            ),
        ),
        (
            "NamespaceContentRemaining",
            held(
                &resources,
                "SomeResourcesRemain",
                format!("Some resources are remaining: {resources}"),
            ),
            ("ContentRemoved", "All content successfully removed"),
        ),
        (
            "NamespaceFinalizersRemaining",
            held(
                &finalizers,
                "SomeFinalizersRemain",
                format!("Some content in the namespace has finalizers remaining: {finalizers}"),
            ),
            (
                "ContentHasNoFinalizers",
                "All content-preserving finalizers finished",
            ),
        ),
    ];
    wanted
        .into_iter()
        .map(|(kind, problem, (ok_reason, ok_message))| {
            let (status, reason, message) =
                problem.unwrap_or(("False", ok_reason.to_string(), ok_message.to_string()));
            let since = current
                .iter()
                .find(|c| c["type"] == kind && c["status"] == status)
                .and_then(|c| c.get("lastTransitionTime").cloned())
                .unwrap_or_else(|| Value::String(now.to_string()));
            json!({"type": kind, "status": status, "lastTransitionTime": since,
                "reason": reason, "message": message})
        })
        .collect()
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

/// The namespace as stored, and parsed; `None` once it is gone.
async fn stored(shard: &Shard, key: &ObjectKey) -> Result<Option<(StoredObject, Value)>, Error> {
    match shard.store.get(key).await {
        Ok(stored) => {
            let namespace = parse(&stored)?;
            Ok(Some((stored, namespace)))
        }
        Err(StorageError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
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
        if let Some(again) = after_emptying(remaining.total()) {
            self.report(&shard, key, &remaining).await?;
            return Ok(again);
        }
        // Empty: drop our finalizer, and the namespace with it if nothing else holds it.
        let Some((stored, namespace)) = stored(&shard, key).await? else {
            return Ok(Action::await_change());
        };
        let rt = self.namespaces()?;
        // A namespace whose finalizer already went (through `/finalize`, before the delete)
        // is unchanged by this write, and goes with it all the same.
        committer::update(&shard.store, rt, &stored, finalized(&namespace)).await?;
        Ok(Action::await_change())
    }
}

impl NamespaceReconciler {
    /// Says in the namespace's conditions what still holds it (written only when that changed).
    async fn report(
        &self,
        shard: &Shard,
        key: &ObjectKey,
        remaining: &Remaining,
    ) -> Result<(), Error> {
        let Some((stored, namespace)) = stored(shard, key).await? else {
            return Ok(());
        };
        let current = namespace
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let now = crate::machinery::object_meta::now_rfc3339();
        let wanted = conditions(remaining, current, &now);
        if wanted == current {
            return Ok(());
        }
        let mut status = match namespace.get("status") {
            Some(status) if status.is_object() => status.clone(),
            _ => json!({}),
        };
        status["conditions"] = Value::Array(wanted);
        committer::update_status(&shard.store, self.namespaces()?, &stored, status).await?;
        Ok(())
    }

    fn namespaces(&self) -> Result<&ResourceType, Error> {
        committer::builtin(self.registry.scheme(), "", "v1", "namespaces")
    }

    /// Deletes everything in the namespace; what is still going (held by finalizers).
    async fn empty(&self, shard: &Shard, key: &ObjectKey) -> Result<Remaining, Error> {
        let (cluster, name) = (&key.cluster, &key.name);
        let store: &Store = &shard.store;
        let mut remaining = Remaining::default();
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
                    Ok(Deleted::Gone(_)) | Err(StorageError::NotFound(_)) => continue,
                    Ok(Deleted::Pending(stored)) => {
                        let object = parse(&stored)?;
                        for finalizer in deletion::finalizers(&object) {
                            *remaining
                                .by_finalizer
                                .entry(finalizer.to_string())
                                .or_default() += 1;
                        }
                    }
                    Err(StorageError::Conflict { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
                *remaining
                    .by_resource
                    .entry(format!("{}.{}", rt.plural, rt.group))
                    .or_default() += 1;
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
    fn conditions_say_what_holds_the_namespace() {
        let remaining = Remaining {
            by_resource: [
                ("configmaps.".to_string(), 2),
                ("widgets.example.com".to_string(), 1),
            ]
            .into(),
            by_finalizer: [("example.com/hold".to_string(), 3)].into(),
        };
        let first = conditions(&remaining, &[], "t1");
        let types: Vec<_> = first.iter().map(|c| c["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            [
                "NamespaceDeletionDiscoveryFailure",
                "NamespaceDeletionGroupVersionParsingFailure",
                "NamespaceDeletionContentFailure",
                "NamespaceContentRemaining",
                "NamespaceFinalizersRemaining"
            ]
        );
        assert_eq!(first[2]["status"], "False");
        assert_eq!(first[2]["reason"], "ContentDeleted");
        assert_eq!(first[3]["status"], "True");
        assert_eq!(first[3]["reason"], "SomeResourcesRemain");
        assert_eq!(
            first[3]["message"],
            "Some resources are remaining: configmaps. has 2 resource instances, \
             widgets.example.com has 1 resource instances"
        );
        assert_eq!(
            first[4]["message"],
            "Some content in the namespace has finalizers remaining: example.com/hold in 3 resource instances"
        );
        // Unchanged statuses keep their times; a pass that changes nothing writes nothing.
        let again = conditions(&remaining, &first, "t2");
        assert_eq!(again[0]["lastTransitionTime"], "t1");
        let fewer = Remaining {
            by_resource: [("configmaps.".to_string(), 1)].into(),
            by_finalizer: Default::default(),
        };
        let later = conditions(&fewer, &first, "t3");
        assert_eq!(later[3]["lastTransitionTime"], "t1");
        assert_eq!(later[4]["status"], "False");
        assert_eq!(later[4]["lastTransitionTime"], "t3");
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
