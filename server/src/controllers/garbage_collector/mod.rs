//! Garbage collection by `ownerReferences`, as kube-controller-manager's collector does:
//! - an object whose owners are all gone is deleted (each owner checked live, so an owner
//!   created after the collector last heard of it is not mistaken for a missing one);
//! - a dependent of an owner in foreground deletion (`foregroundDeletion` finalizer) is
//!   deleted, and the owner's finalizer is removed once no dependents remain;
//! - a dependent of an owner being orphaned (`orphan` finalizer) loses that reference, then the
//!   owner's finalizer is removed.
//!
//! Wiring ([`wire`]): one reflector per stored resource across every shard, built-in ones from
//! the start and custom ones while a CRD defines them (one per resource across all
//! workspaces, not one per workspace). Each keeps only the objects that take part (they name
//! owners, or wait on their dependents: [`graph::node_of`]) and feeds the owner graph
//! ([`graph::Graph`]), which turns each change into the keys it concerns: the object, its
//! owners, its dependents. So a change costs its own neighbourhood, not a pass over every
//! object. The decisions are in [`decisions`].

pub mod decisions;
pub mod graph;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use trellis_storage::{ListScope, ObjectKey, Preconditions, StorageError, Store, StoredObject};

use super::runtime::committer::{self, parse};
use super::runtime::{
    every_shard, Action, Change, Controller, Error, Reconciler, Reflector, Running, Subscription,
    Trigger,
};
use crate::crds::served::{condition_true, CRD_RESOURCE};
use crate::machinery::deletion;
use crate::registry::{Registry, ResourceType};
use crate::tenancy::shards::ShardMap;
use decisions::{DependentAction, OwnerState};
use graph::{Graph, Node, OwnerRef};

/// How soon an owner still waiting on dependents is looked at again.
const RETRY: Duration = Duration::from_secs(1);
/// Every kept object again now and then: an owner deleted while a watch was relisting is
/// only noticed this way (the relisting cannot tell its uid).
const RESYNC: Duration = Duration::from_secs(120);
const WORKERS: usize = 8;

/// The storage resources of the built-in kinds the collector follows.
fn builtin_resources(registry: &Registry) -> BTreeSet<String> {
    registry
        .scheme()
        .resources()
        .iter()
        // Resources stored with another are read through that one.
        .filter(|rt| rt.stored_as.is_none() && rt.is_stored())
        .map(|rt| rt.storage_resource())
        .collect()
}

/// The storage resource of a CRD's objects, once its names are accepted.
fn custom_resource(stored: &StoredObject) -> Option<String> {
    let crd: Value = serde_json::from_slice(&stored.value).ok()?;
    if !condition_true(&crd, "NamesAccepted") && !condition_true(&crd, "Established") {
        return None;
    }
    let group = crd.pointer("/spec/group").and_then(Value::as_str)?;
    let plural = crd.pointer("/spec/names/plural").and_then(Value::as_str)?;
    Some(format!("{group}/{plural}"))
}

/// The running collector, to wait for (tools and benchmarks).
pub struct GarbageCollector(Arc<Collector>);

impl GarbageCollector {
    /// Waits until every resource followed has been listed (the owner graph is complete).
    pub async fn wait_synced(&self) {
        self.0.crds.wait_synced().await;
        while !self.0.synced() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// How many objects take part in garbage collection (name owners or wait on dependents).
    pub fn kept(&self) -> usize {
        self.0
            .reflectors
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(Reflector::len)
            .sum()
    }
}

pub fn wire(
    running: &mut Running,
    shards: Arc<ShardMap>,
    registry: Arc<Registry>,
) -> GarbageCollector {
    let graph: Arc<Mutex<Graph>> = Arc::default();
    let crds = Reflector::new(
        "gc:customresourcedefinitions",
        ListScope::all_clusters(CRD_RESOURCE),
        every_shard(&shards),
        custom_resource,
    );
    running.spawn(crds.run(running.token()));
    let mut controller = Controller::new("garbage-collector")
        .waits_for(&crds)
        .workers(WORKERS);
    let mut reflectors = HashMap::new();
    for resource in builtin_resources(&registry) {
        let reflector = node_reflector(&resource, &shards);
        running.spawn(reflector.run(running.token()));
        controller = controller.watches(&reflector, affected(graph.clone()));
        reflectors.insert(resource, reflector);
    }
    let collector = Arc::new(Collector {
        shards,
        registry,
        graph,
        reflectors: Arc::new(RwLock::new(reflectors)),
        crds,
    });
    running.spawn(follow_custom_resources(
        collector.clone(),
        controller.trigger(),
        running.token(),
    ));
    let all = collector.clone();
    let controller = controller.resync(RESYNC, move || all.keys());
    running.spawn(controller.run(collector.clone(), running.token()));
    GarbageCollector(collector)
}

fn node_reflector(resource: &str, shards: &ShardMap) -> Reflector<Node> {
    Reflector::new(
        format!("gc:{resource}"),
        ListScope::all_clusters(resource),
        every_shard(shards),
        graph::node_of,
    )
}

/// Records each change in the graph; the keys it concerns.
fn affected(
    graph: Arc<Mutex<Graph>>,
) -> impl Fn(&Change<'_, Node>) -> Vec<ObjectKey> + Send + Sync + 'static {
    move |change| {
        graph.lock().unwrap_or_else(|e| e.into_inner()).apply(
            change.key,
            change.uid,
            change.old.as_deref(),
            change.new.as_deref(),
        )
    }
}

/// Starts a reflector for each custom resource a CRD defines (and stops it when none does).
async fn follow_custom_resources(
    collector: Arc<Collector>,
    trigger: Trigger<ObjectKey>,
    stop: CancellationToken,
) {
    let changed = Arc::new(Notify::new());
    let _crd_changes = {
        let changed = changed.clone();
        collector.crds.subscribe(move |_| changed.notify_one())
    };
    let builtin = builtin_resources(&collector.registry);
    let mut followed: HashMap<String, (CancellationToken, Subscription)> = HashMap::new();
    let mut tasks = JoinSet::new();
    loop {
        let wanted: BTreeSet<String> = collector
            .crds
            .list()
            .iter()
            .map(|r| (**r).clone())
            .filter(|r| !builtin.contains(r))
            .collect();
        let gone: Vec<String> = followed
            .keys()
            .filter(|r| !wanted.contains(*r))
            .cloned()
            .collect();
        for resource in gone {
            if let Some((token, subscription)) = followed.remove(&resource) {
                token.cancel();
                drop(subscription);
            }
            collector.forget(&resource);
        }
        for resource in wanted {
            if followed.contains_key(&resource) {
                continue;
            }
            let reflector = node_reflector(&resource, &collector.shards);
            let token = stop.child_token();
            tasks.spawn(reflector.run(token.clone()));
            let subscription = trigger.watch(&reflector, affected(collector.graph.clone()));
            collector
                .reflectors
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(resource.clone(), reflector);
            followed.insert(resource, (token, subscription));
        }
        // Reap the reflectors that stopped.
        while tasks.try_join_next().is_some() {}
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = changed.notified() => {}
        }
    }
    tasks.shutdown().await;
}

struct Collector {
    shards: Arc<ShardMap>,
    registry: Arc<Registry>,
    graph: Arc<Mutex<Graph>>,
    /// Storage resource → what is kept of its objects.
    reflectors: Arc<RwLock<HashMap<String, Reflector<Node>>>>,
    /// Each CRD's custom resource (once accepted).
    crds: Reflector<String>,
}

impl Collector {
    fn reflector(&self, resource: &str) -> Option<Reflector<Node>> {
        self.reflectors
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(resource)
            .cloned()
    }

    /// Every key kept, for the resync.
    fn keys(&self) -> Vec<ObjectKey> {
        self.reflectors
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .flat_map(|r| r.keys())
            .collect()
    }

    /// Whether every reflector has listed every shard: only then does "no dependent left"
    /// mean none.
    fn synced(&self) -> bool {
        self.crds.is_synced()
            && self
                .reflectors
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .all(Reflector::is_synced)
    }

    /// Stops following `resource`: its objects leave the graph.
    fn forget(&self, resource: &str) {
        let Some(reflector) = self
            .reflectors
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(resource)
        else {
            return;
        };
        let mut graph = self.graph.lock().unwrap_or_else(|e| e.into_inner());
        for key in reflector.keys() {
            if let Some(node) = reflector.get(&key) {
                graph.apply(&key, None, Some(&node), None);
            }
        }
    }

    /// What is kept of the object at `key`, with its shard's store.
    fn node(&self, key: &ObjectKey) -> Option<(Arc<Node>, Store)> {
        let reflector = self.reflector(&key.resource)?;
        let node = reflector.get(key)?;
        let (_, store) = reflector.shard_of(key)?;
        Some((node, store.clone()))
    }

    /// The type to write an object of storage resource `resource` as (the version it is
    /// stored in, when `api_version` names one).
    async fn type_of(
        &self,
        cluster: &str,
        resource: &str,
        api_version: &str,
    ) -> Result<Arc<ResourceType>, Error> {
        let types = self.registry.resources(cluster).await;
        let mut stored = types.iter().filter(|rt| rt.storage_resource() == resource);
        let first = stored.clone().next().cloned();
        stored
            .find(|rt| rt.api_version() == api_version)
            .cloned()
            .or(first)
            .ok_or_else(|| Error::Unavailable(format!("{resource} is not served in {cluster}")))
    }

    /// What the owner `owner` of the object at `key` turned out to be.
    async fn owner_state(&self, key: &ObjectKey, owner: &OwnerRef) -> Result<OwnerState, Error> {
        let kept = self
            .graph
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .key_of(&owner.uid)
            .cloned();
        if let Some((node, _)) = kept.and_then(|k| self.node(&k)) {
            return Ok(match (node.foreground, node.orphan) {
                (true, _) => OwnerState::Foreground,
                (_, true) => OwnerState::Orphaning,
                _ => OwnerState::Present,
            });
        }
        // Not kept (most owners): look it up by its reference's kind and name.
        let (group, version) = owner
            .api_version
            .split_once('/')
            .unwrap_or(("", owner.api_version.as_str()));
        let Some(owner_rt) = self
            .registry
            .resources(&key.cluster)
            .await
            .into_iter()
            .find(|r| r.group == group && r.version == version && r.kind == owner.kind)
        else {
            return Ok(OwnerState::Unknown);
        };
        let namespace = if owner_rt.namespaced {
            key.namespace.as_str()
        } else {
            ""
        };
        let shard = match owner_rt.home() {
            crate::kinds::Home::RootShard => self.shards.root().clone(),
            crate::kinds::Home::Workspace => self
                .shards
                .shard_for(&key.cluster)
                .await
                .map_err(|e| Error::Unavailable(format!("{e:?}")))?,
        };
        let owner_key = ObjectKey::new(
            key.cluster.clone(),
            owner_rt.storage_resource(),
            namespace,
            owner.name.clone(),
        );
        match shard.store.get(&owner_key).await {
            Ok(found) if found.uid == owner.uid => {
                let node = graph::node_of_value(&found.uid, &parse(&found)?);
                Ok(match (node.foreground, node.orphan) {
                    (true, _) => OwnerState::Foreground,
                    (_, true) => OwnerState::Orphaning,
                    _ => OwnerState::Present,
                })
            }
            Ok(_) | Err(StorageError::NotFound(_)) => Ok(OwnerState::Gone),
            Err(e) => Err(e.into()),
        }
    }

    /// Lets an owner waiting on its dependents go once none is left.
    async fn release(&self, key: &ObjectKey, node: &Node, store: &Store) -> Result<Action, Error> {
        if !self.synced() {
            return Ok(Action::requeue(RETRY));
        }
        let left = self
            .graph
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .dependents_of(&node.uid)
            .len();
        if !decisions::owner_may_go(node, left) {
            return Ok(Action::requeue(RETRY));
        }
        let Some(stored) = get(store, key).await? else {
            return Ok(Action::await_change());
        };
        let object = parse(&stored)?;
        let rt = self
            .type_of(&key.cluster, &key.resource, api_version(&object))
            .await?;
        committer::update(store, &rt, &stored, decisions::released(&object)).await?;
        Ok(Action::await_change())
    }

    /// Deletes or orphans a dependent as its owners require.
    async fn collect(&self, key: &ObjectKey, node: &Node, store: &Store) -> Result<(), Error> {
        let mut owners = Vec::with_capacity(node.owners.len());
        for owner in &node.owners {
            owners.push((owner.uid.clone(), self.owner_state(key, owner).await?));
        }
        let action = decisions::dependent_action(node, &owners);
        if action == DependentAction::Nothing {
            return Ok(());
        }
        let Some(stored) = get(store, key).await? else {
            return Ok(());
        };
        let object = parse(&stored)?;
        let rt = self
            .type_of(&key.cluster, &key.resource, api_version(&object))
            .await?;
        match action {
            DependentAction::Nothing => {}
            DependentAction::Delete(propagation) => {
                let precondition = Preconditions::revision(stored.revision);
                match deletion::delete(store, &rt, key.clone(), &stored, precondition, propagation)
                    .await
                {
                    Ok(_) | Err(StorageError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            DependentAction::DropRefs(uids) => {
                let desired = decisions::without_owner_refs(&object, &uids);
                committer::update(store, &rt, &stored, desired).await?;
            }
        }
        Ok(())
    }
}

fn api_version(object: &Value) -> &str {
    object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

async fn get(store: &Store, key: &ObjectKey) -> Result<Option<StoredObject>, Error> {
    match store.get(key).await {
        Ok(stored) => Ok(Some(stored)),
        Err(StorageError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl Reconciler for Collector {
    type Key = ObjectKey;

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, Error> {
        let Some((node, store)) = self.node(key) else {
            return Ok(Action::await_change());
        };
        if !node.owners.is_empty() {
            self.collect(key, &node, &store).await?;
        }
        if node.waits_on_dependents() {
            return self.release(key, &node, &store).await;
        }
        Ok(Action::await_change())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::workspaces::ROOT_CLUSTER;
    use bytes::Bytes;
    use serde_json::json;
    use trellis_storage::StoreOptions;

    const CONFIGMAPS: &str = "core/configmaps";
    const WIDGETS: &str = "example.com/widgets";

    async fn put(store: &Store, resource: &str, name: &str, uid: &str, object: Value) {
        let key = ObjectKey::new(ROOT_CLUSTER, resource, "ns", name);
        store
            .create(key, uid, Bytes::from(object.to_string()))
            .await
            .unwrap();
    }

    async fn gone(store: &Store, resource: &str, name: &str) {
        let key = ObjectKey::new(ROOT_CLUSTER, resource, "ns", name);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while store.get(&key).await.is_ok() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{resource} {name} was not collected"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn owned_by(api_version: &str, kind: &str, name: &str, uid: &str) -> Value {
        json!([{"apiVersion": api_version, "kind": kind, "name": name, "uid": uid}])
    }

    /// Through a store, with a custom resource: a widget owned by a ConfigMap goes with it,
    /// and a ConfigMap deleted in the foreground waits for its dependent, then goes.
    #[tokio::test]
    async fn dependents_of_any_resource_follow_their_owners() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path().join("s.db"), StoreOptions::default())
            .await
            .unwrap();
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                "versions": [{"name": "v1", "served": true, "storage": true}]},
            "status": {"conditions": [
                {"type": "NamesAccepted", "status": "True"}, {"type": "Established", "status": "True"}]},
        });
        store
            .create(
                ObjectKey::new(ROOT_CLUSTER, CRD_RESOURCE, "", "widgets.example.com"),
                "crd-uid",
                Bytes::from(crd.to_string()),
            )
            .await
            .unwrap();
        put(&store, CONFIGMAPS, "owner", "o1",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner", "namespace": "ns"}})).await;
        put(&store, WIDGETS, "w1", "w1",
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1", "namespace": "ns",
                "ownerReferences": owned_by("v1", "ConfigMap", "owner", "o1")}})).await;
        let shards = ShardMap::single(store.clone());
        let registry = Registry::new(Arc::new(crate::serving::hub::scheme()), shards.clone());
        let mut running = Running::new();
        let collector = wire(&mut running, shards, registry);
        tokio::time::timeout(Duration::from_secs(20), collector.wait_synced())
            .await
            .expect("the collector lists everything");

        // The owner goes: its widget follows.
        store
            .delete(
                ObjectKey::new(ROOT_CLUSTER, CONFIGMAPS, "ns", "owner"),
                Preconditions::none(),
            )
            .await
            .unwrap();
        gone(&store, WIDGETS, "w1").await;

        // Foreground: the owner waits for its dependent, then goes too.
        put(&store, CONFIGMAPS, "parent", "p1",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "parent", "namespace": "ns",
                "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["foregroundDeletion"]}})).await;
        put(&store, CONFIGMAPS, "child", "c1",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "child", "namespace": "ns",
                "ownerReferences": owned_by("v1", "ConfigMap", "parent", "p1")}})).await;
        gone(&store, CONFIGMAPS, "child").await;
        gone(&store, CONFIGMAPS, "parent").await;
        running.shutdown(Duration::from_secs(5)).await;
    }
}
