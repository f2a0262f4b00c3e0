//! The replica set controller: keeps `spec.replicas` pods of a ReplicaSet's template (pods
//! it controls: its controller owner reference), creating them named `<replica set>-<random>`
//! or deleting the least useful ones first (unbound, then not ready, then the newest), and
//! reports replicas, ready and available counts. The pods' owner references let the garbage
//! collector delete them with their ReplicaSet.
//!
//! After its own writes it waits for the pod cache to see them before it looks again, as
//! kube-controller-manager's expectations do: a second look never creates the same pods twice.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use trellis_server::controllers::runtime::committer::Committed;
use trellis_server::controllers::runtime::{
    Action, Change, Controller, Error, Reconciler, Running,
};
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

/// The status of a ReplicaSet with `pods`.
pub fn status(rs: &ReplicaSet, pods: &[Arc<Typed<Pod>>]) -> ReplicaSetStatus {
    let ready = pods.iter().filter(|p| ready(&p.object)).count() as i32;
    let old = rs.status.clone().unwrap_or_default();
    ReplicaSetStatus {
        replicas: pods.len() as i32,
        fully_labeled_replicas: Some(pods.len() as i32),
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

pub fn wire(running: &mut Running, world: &World) {
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
    running.spawn(controller.run(
        Arc::new(ReplicaSets {
            world: world.clone(),
        }),
        running.token(),
    ));
}

struct ReplicaSets {
    world: World,
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
        let mut pods = self.pods_of(&rs);
        let want = rs.object.spec.replicas.unwrap_or(1).max(0) as usize;
        let namespace = rs.stored.key.namespace.clone();
        if pods.len() < want {
            let pod = world::to_value(&new_pod(&rs.object))?;
            let results: Vec<Result<Committed, Error>> =
                futures::stream::iter(0..(want - pods.len()).min(BURST * 8))
                    .map(|_| {
                        let pod: Value = pod.clone();
                        let namespace = namespace.clone();
                        async move { self.world.create(PODS, Some(&namespace), pod).await }
                    })
                    .buffer_unordered(BURST)
                    .collect()
                    .await;
            let mut newest = 0;
            for result in results {
                if let Committed::Created(stored) = result? {
                    newest = newest.max(stored.revision);
                }
            }
            self.world.wait_for(&self.world.pods, newest).await;
            return Ok(Action::requeue(std::time::Duration::from_millis(10)));
        }
        if pods.len() > want {
            deletion_order(&mut pods);
            let extra = pods.len() - want;
            let mut newest = 0;
            for pod in pods.drain(..extra) {
                if let Some(revision) = self.world.delete(&pod.stored).await? {
                    newest = newest.max(revision);
                }
            }
            self.world.wait_for(&self.world.pods, newest).await;
        }
        let status = status(&rs.object, &pods);
        self.world
            .update_status(REPLICA_SETS, &rs.stored, world::to_value(&status)?)
            .await?;
        Ok(Action::await_change())
    }
}
