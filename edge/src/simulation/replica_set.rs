//! The replica set controller: keeps `spec.replicas` pods of a ReplicaSet's template (pods
//! it controls: its controller owner reference), creating them named `<replica set>-<random>`
//! or deleting the least useful ones first (unbound, then not ready, then the newest), and
//! reports replicas, ready and available counts. The pods' owner references let the garbage
//! collector delete them with their ReplicaSet.
//!
//! Each ReplicaSet's active and ready pods are counted from the pod cache's changes (an
//! index by owner uid), so a pass costs its own writes, not a look at every pod; only a
//! scale-down lists the pods, to choose which go.
//!
//! After its own writes it waits for the pod cache to see them before it looks again, as
//! kube-controller-manager's expectations do: a second look never creates the same pods twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use trellis_server::controller::committer::Committed;
use trellis_server::controller::{Action, Change, Controller, Error, Reconciler, Running};
use trellis_storage::ObjectKey;

use super::world::{self, controller_of, controller_reference, Typed, World, PODS, REPLICA_SETS};

/// Pods created or deleted at once per ReplicaSet.
const BURST: usize = 16;

/// Whether `pod` counts as a replica: not being deleted, not finished.
pub fn active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// Whether `pod` is Ready.
pub fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

/// The order pods are deleted in when scaling down: unbound first, then not ready, then the
/// newest.
pub fn deletion_order(pods: &mut [Arc<Typed<Pod>>]) {
    pods.sort_by_key(|p| {
        let bound = p
            .object
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        (
            bound,
            ready(&p.object),
            std::cmp::Reverse(p.stored.create_revision),
        )
    });
}

/// The status of a ReplicaSet with `replicas` active pods, `ready` of them ready.
pub fn status(rs: &ReplicaSet, replicas: usize, ready: usize) -> ReplicaSetStatus {
    let (replicas, ready) = (replicas as i32, ready as i32);
    let old = rs.status.clone().unwrap_or_default();
    ReplicaSetStatus {
        replicas,
        fully_labeled_replicas: Some(replicas),
        ready_replicas: Some(ready),
        available_replicas: Some(ready),
        observed_generation: rs.metadata.generation,
        conditions: old.conditions,
        terminating_replicas: None,
    }
}

/// A new pod of `rs`'s template.
fn new_pod(rs: &ReplicaSet) -> Pod {
    let template = rs.spec.template.clone().unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    let name = rs.metadata.name.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: rs.metadata.namespace.clone(),
            labels: meta.labels,
            annotations: meta.annotations,
            owner_references: Some(vec![controller_reference(
                "apps/v1",
                "ReplicaSet",
                &rs.metadata,
            )]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// The active pods of each ReplicaSet (by uid) and whether each is ready, kept from the pod
/// cache's changes: a pass counts its pods without looking at every pod.
#[derive(Default)]
struct Index {
    by_owner: HashMap<String, HashMap<ObjectKey, bool>>,
}

impl Index {
    fn apply(&mut self, change: &Change<'_, Typed<Pod>>) {
        let owner = |p: &Arc<Typed<Pod>>| {
            controller_of(&p.object.metadata, "ReplicaSet").map(|o| o.uid.clone())
        };
        if let Some(uid) = change.old.as_ref().and_then(owner) {
            if let Some(pods) = self.by_owner.get_mut(&uid) {
                pods.remove(change.key);
                if pods.is_empty() {
                    self.by_owner.remove(&uid);
                }
            }
        }
        if let Some(pod) = change.new.as_ref().filter(|p| active(&p.object)) {
            if let Some(uid) = owner(pod) {
                self.by_owner
                    .entry(uid)
                    .or_default()
                    .insert(change.key.clone(), ready(&pod.object));
            }
        } else if let Some(uid) = change.new.as_ref().and_then(owner) {
            // Still there but no longer a replica (finished or being deleted).
            if let Some(pods) = self.by_owner.get_mut(&uid) {
                pods.remove(change.key);
            }
        }
    }

    /// Active pods and ready ones of the ReplicaSet `uid`.
    fn counts(&self, uid: &str) -> (usize, usize) {
        self.by_owner
            .get(uid)
            .map(|pods| (pods.len(), pods.values().filter(|r| **r).count()))
            .unwrap_or((0, 0))
    }
}

pub fn wire(running: &mut Running, world: &World) {
    let index = Arc::new(Mutex::new(Index::default()));
    let indexing = {
        let index = index.clone();
        world
            .pods
            .subscribe(move |change: &Change<'_, Typed<Pod>>| {
                if let Ok(mut index) = index.lock() {
                    index.apply(change);
                }
            })
    };
    let rs_world = world.clone();
    let controller = Controller::new("replicaset")
        .watches(
            &world.replica_sets,
            |change: &Change<'_, Typed<ReplicaSet>>| {
                change.new.as_ref().map(|_| change.key.clone())
            },
        )
        .watches(&world.pods, move |change: &Change<'_, Typed<Pod>>| {
            let pod = change.new.as_ref().or(change.old.as_ref())?;
            let owner = controller_of(&pod.object.metadata, "ReplicaSet")?;
            rs_world
                .key(REPLICA_SETS, &change.key.namespace, &owner.name)
                .ok()
        })
        .workers(4);
    let reconciler = Arc::new(ReplicaSets {
        world: world.clone(),
        index,
    });
    let stop = running.token();
    running.spawn(async move {
        controller.run(reconciler, stop).await;
        drop(indexing);
    });
}

struct ReplicaSets {
    world: World,
    index: Arc<Mutex<Index>>,
}

impl ReplicaSets {
    fn pods_of(&self, rs: &Typed<ReplicaSet>) -> Vec<Arc<Typed<Pod>>> {
        let uid = rs.object.metadata.uid.as_deref().unwrap_or_default();
        // Every pod, then this namespace's: `list` hands out the cached objects without
        // copying their keys, which at 10,000 pods per ReplicaSet is most of a pass.
        let namespace = rs.stored.key.namespace.as_str();
        self.world
            .pods
            .list()
            .into_iter()
            .filter(|p| {
                p.stored.key.namespace == namespace
                    && p.stored.key.cluster == self.world.cluster
                    && controller_of(&p.object.metadata, "ReplicaSet").is_some_and(|o| o.uid == uid)
                    && active(&p.object)
            })
            .collect()
    }
}

impl Reconciler for ReplicaSets {
    type Key = ObjectKey;

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, Error> {
        let Some(rs) = self.world.replica_sets.get(key) else {
            return Ok(Action::await_change());
        };
        if rs.object.metadata.deletion_timestamp.is_some() {
            return Ok(Action::await_change());
        }
        let uid = rs.object.metadata.uid.clone().unwrap_or_default();
        let counts = || {
            self.index
                .lock()
                .map(|index| index.counts(&uid))
                .map_err(|_| Error::Unavailable("the replica set index is poisoned".into()))
        };
        let (active, _) = counts()?;
        let want = rs.object.spec.replicas.unwrap_or(1).max(0) as usize;
        let namespace = rs.stored.key.namespace.clone();
        if active < want {
            let pod = world::to_value(&new_pod(&rs.object))?;
            let results: Vec<Result<Committed, Error>> =
                futures::stream::iter(0..(want - active).min(BURST * 8))
                    .map(|_| {
                        let pod: Value = pod.clone();
                        let namespace = namespace.clone();
                        async move { self.world.create(PODS, Some(&namespace), pod).await }
                    })
                    .buffer_unordered(BURST)
                    .collect()
                    .await;
            let mut newest = 0;
            let mut created = Vec::new();
            for result in results {
                if let Committed::Created(stored) = result? {
                    newest = newest.max(stored.revision);
                    created.push(stored.key);
                }
            }
            // Counted at once (the cache's handlers may run just after its revision moves).
            if let Ok(mut index) = self.index.lock() {
                let pods = index.by_owner.entry(uid.clone()).or_default();
                for key in created {
                    pods.entry(key).or_insert(false);
                }
            }
            self.world.wait_for(&self.world.pods, newest).await;
            return Ok(Action::requeue(std::time::Duration::from_millis(10)));
        }
        if active > want {
            let mut pods = self.pods_of(&rs);
            deletion_order(&mut pods);
            let extra = pods.len().saturating_sub(want);
            let mut newest = 0;
            for pod in pods.drain(..extra) {
                if let Some(revision) = self.world.delete(&pod.stored).await? {
                    newest = newest.max(revision);
                }
            }
            self.world.wait_for(&self.world.pods, newest).await;
        }
        let (active, ready) = counts()?;
        let status = status(&rs.object, active, ready);
        self.world
            .update_status(REPLICA_SETS, &rs.stored, world::to_value(&status)?)
            .await?;
        Ok(Action::await_change())
    }
}
