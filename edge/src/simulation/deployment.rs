//! The deployment controller: one ReplicaSet per pod template, named
//! `<deployment>-<pod-template-hash>` and labelled with the hash; replicas move from old sets
//! to the current one as the strategy allows ([`super::rollout`]: `maxSurge`,
//! `maxUnavailable`, or `Recreate`). Status: replicas, updated, ready, available and
//! unavailable counts, `observedGeneration`, and the Available and Progressing conditions
//! with kube-controller-manager's reasons and messages.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentSpec, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use trellis_server::controller::{Action, Change, Controller, Error, Reconciler, Running};
use trellis_storage::ObjectKey;

use super::hash::{fnv32a, safe_encode};
use super::rollout::{self, Set, Strategy};
use super::world::{
    self, controller_of, controller_reference, Typed, World, DEPLOYMENTS, REPLICA_SETS,
};

pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";

/// The pod-template hash of a template (with the deployment's collision count).
pub fn template_hash(template: &PodTemplateSpec, collisions: i32) -> String {
    let mut text = serde_json::to_string(template).unwrap_or_default();
    if collisions > 0 {
        text.push_str(&collisions.to_string());
    }
    safe_encode(fnv32a(text.as_bytes()))
}

/// The ReplicaSet of `deployment` for its current template (revision `revision`).
pub fn new_replica_set(deployment: &Deployment, hash: &str, revision: i64) -> ReplicaSet {
    let spec = deployment.spec.clone();
    let mut template = spec.template.clone();
    let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(POD_TEMPLATE_HASH.into(), hash.into());
    let labels = meta.labels.clone();
    let mut selector: LabelSelector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(POD_TEMPLATE_HASH.into(), hash.into());
    let name = deployment.metadata.name.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1);
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{name}-{hash}")),
            namespace: deployment.metadata.namespace.clone(),
            labels,
            annotations: Some(
                [
                    (REVISION.to_string(), revision.to_string()),
                    (DESIRED_REPLICAS.to_string(), replicas.to_string()),
                ]
                .into(),
            ),
            owner_references: Some(vec![controller_reference(
                "apps/v1",
                "Deployment",
                &deployment.metadata,
            )]),
            ..ObjectMeta::default()
        },
        spec: ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        },
        status: None,
    }
}

fn revision_of(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn hash_of(rs: &ReplicaSet) -> Option<&str> {
    rs.metadata
        .labels
        .as_ref()?
        .get(POD_TEMPLATE_HASH)
        .map(String::as_str)
}

/// A ReplicaSet as the rollout sees it.
fn set_of(rs: &ReplicaSet) -> Set {
    Set {
        replicas: rs.spec.replicas.unwrap_or(1),
        available: counts(rs).2,
    }
}

/// The deployment's strategy, resolved against `replicas`.
fn strategy_of(spec: &DeploymentSpec, replicas: i32) -> Strategy {
    let strategy = spec.strategy.clone().unwrap_or_default();
    if strategy.type_.as_deref() == Some("Recreate") {
        return Strategy::Recreate;
    }
    let rolling = strategy.rolling_update.unwrap_or_default();
    let text = |v: Option<IntOrString>| {
        v.map(|v| match v {
            IntOrString::Int(i) => i.to_string(),
            IntOrString::String(s) => s,
        })
    };
    rollout::rolling(
        text(rolling.max_surge).as_deref(),
        text(rolling.max_unavailable).as_deref(),
        replicas,
    )
}

/// Counts of a ReplicaSet's status.
fn counts(rs: &ReplicaSet) -> (i32, i32, i32) {
    let s = rs.status.clone().unwrap_or_default();
    (
        s.replicas,
        s.ready_replicas.unwrap_or(0),
        s.available_replicas.unwrap_or(0),
    )
}

/// Whether the ReplicaSet has all `want` replicas available, as observed for its generation.
pub fn complete(rs: &ReplicaSet, want: i32) -> bool {
    let observed = rs.status.as_ref().and_then(|s| s.observed_generation);
    let (replicas, _, available) = counts(rs);
    observed == rs.metadata.generation && replicas == want && available >= want
}

/// The status of `deployment` whose current ReplicaSet is `new` and older ones `old`.
pub fn status(
    deployment: &Deployment,
    new: &ReplicaSet,
    old: &[&ReplicaSet],
    now: Time,
) -> DeploymentStatus {
    let want = deployment.spec.replicas.unwrap_or(1);
    let all = std::iter::once(new).chain(old.iter().copied());
    let (mut replicas, mut ready, mut available) = (0, 0, 0);
    for rs in all {
        let (r, re, a) = counts(rs);
        replicas += r;
        ready += re;
        available += a;
    }
    let updated = counts(new).0;
    let previous = deployment.status.clone().unwrap_or_default();
    let new_name = new.metadata.name.clone().unwrap_or_default();
    let available_condition = if available >= want {
        (
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".to_string(),
        )
    } else {
        (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".to_string(),
        )
    };
    let progressing = if complete(new, want) && old.iter().all(|rs| counts(rs).0 == 0) {
        (
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{new_name}\" has successfully progressed."),
        )
    } else {
        (
            "True",
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{new_name}\" is progressing."),
        )
    };
    let conditions = [
        ("Available", available_condition),
        ("Progressing", progressing),
    ]
    .into_iter()
    .map(|(type_, (status, reason, message))| {
        let before = previous
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_.as_deref() == Some(type_));
        let same = before.is_some_and(|b| {
            b.status.as_deref() == Some(status)
                && b.reason.as_deref() == Some(reason)
                && b.message.as_deref() == Some(message.as_str())
        });
        let transition = before
            .filter(|b| b.status.as_deref() == Some(status))
            .and_then(|b| b.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        DeploymentCondition {
            type_: Some(type_.into()),
            status: Some(status.into()),
            reason: Some(reason.into()),
            message: Some(message),
            last_transition_time: Some(transition),
            last_update_time: if same {
                before.and_then(|b| b.last_update_time.clone())
            } else {
                Some(now.clone())
            },
        }
    })
    .collect();
    DeploymentStatus {
        replicas: Some(replicas),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        unavailable_replicas: Some((want - available).max(0)),
        observed_generation: deployment.metadata.generation,
        conditions: Some(conditions),
        collision_count: previous.collision_count,
        terminating_replicas: None,
    }
}

pub fn wire(running: &mut Running, world: &World) {
    let rs_world = world.clone();
    let controller = Controller::new("deployment")
        .watches(
            &world.deployments,
            |change: &Change<'_, Typed<Deployment>>| {
                change.new.as_ref().map(|_| change.key.clone())
            },
        )
        .watches(
            &world.replica_sets,
            move |change: &Change<'_, Typed<ReplicaSet>>| {
                let rs = change.new.as_ref().or(change.old.as_ref())?;
                let owner = controller_of(&rs.object.metadata, "Deployment")?;
                rs_world
                    .key(DEPLOYMENTS, &change.key.namespace, &owner.name)
                    .ok()
            },
        )
        .workers(4);
    running.spawn(controller.run(
        Arc::new(Deployments {
            world: world.clone(),
        }),
        running.token(),
    ));
}

struct Deployments {
    world: World,
}

impl Reconciler for Deployments {
    type Key = ObjectKey;

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, Error> {
        let Some(deployment) = self.world.deployments.get(key) else {
            return Ok(Action::await_change());
        };
        let d = &deployment.object;
        if d.metadata.deletion_timestamp.is_some() {
            return Ok(Action::await_change());
        }
        let uid = d.metadata.uid.as_deref().unwrap_or_default();
        let owned: Vec<Arc<Typed<ReplicaSet>>> = self
            .world
            .replica_sets
            .list_namespace(&self.world.cluster, &key.namespace)
            .into_iter()
            .map(|(_, rs)| rs)
            .filter(|rs| {
                controller_of(&rs.object.metadata, "Deployment").is_some_and(|o| o.uid == uid)
            })
            .collect();
        let spec = d.spec.clone();
        let want = spec.replicas.unwrap_or(1);
        let collisions = d
            .status
            .as_ref()
            .and_then(|s| s.collision_count)
            .unwrap_or(0);
        let hash = template_hash(&spec.template, collisions);
        let old: Vec<&Arc<Typed<ReplicaSet>>> = owned
            .iter()
            .filter(|rs| hash_of(&rs.object) != Some(hash.as_str()))
            .collect();
        let sets: Vec<Set> = old.iter().map(|rs| set_of(&rs.object)).collect();
        let strategy = strategy_of(&spec, want);
        let Some(new) = owned
            .iter()
            .find(|rs| hash_of(&rs.object) == Some(hash.as_str()))
        else {
            let revision = owned
                .iter()
                .map(|rs| revision_of(&rs.object))
                .max()
                .unwrap_or(0)
                + 1;
            let (replicas, _) = rollout::plan(
                want,
                strategy,
                Set {
                    replicas: 0,
                    available: 0,
                },
                &sets,
            );
            let mut rs = new_replica_set(d, &hash, revision);
            rs.spec.replicas = Some(replicas);
            self.world
                .create(REPLICA_SETS, Some(&key.namespace), world::to_value(&rs)?)
                .await?;
            return Ok(Action::await_change());
        };
        let (new_replicas, old_replicas) =
            rollout::plan(want, strategy, set_of(&new.object), &sets);
        // The current ReplicaSet: its share of the replicas (and the newest revision).
        let newest = owned
            .iter()
            .map(|rs| revision_of(&rs.object))
            .max()
            .unwrap_or(0);
        let mut desired = new.object.clone();
        desired.spec.replicas = Some(new_replicas);
        desired.spec.min_ready_seconds = spec.min_ready_seconds;
        let annotations = desired
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new);
        annotations.insert(DESIRED_REPLICAS.into(), want.to_string());
        if revision_of(&new.object) < newest {
            annotations.insert(REVISION.into(), (newest + 1).to_string());
        }
        self.world
            .update(REPLICA_SETS, &new.stored, world::to_value(&desired)?)
            .await?;
        // Older ones: shrunk as the rollout allows.
        for (rs, replicas) in old.iter().zip(old_replicas) {
            if rs.object.spec.replicas.unwrap_or(1) != replicas {
                let mut scaled = rs.object.clone();
                scaled.spec.replicas = Some(replicas);
                self.world
                    .update(REPLICA_SETS, &rs.stored, world::to_value(&scaled)?)
                    .await?;
            }
        }
        let old_objects: Vec<&ReplicaSet> = old.iter().map(|rs| &rs.object).collect();
        let status = status(d, &new.object, &old_objects, Time(world::now()));
        self.world
            .update_status(DEPLOYMENTS, &deployment.stored, world::to_value(&status)?)
            .await?;
        Ok(Action::await_change())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(image: &str, replicas: i32) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "d-1", "generation": 1},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "main", "image": image}]}}}
        }))
        .unwrap()
    }

    #[test]
    fn the_hash_follows_the_template() {
        let a = template_hash(&deployment("a", 1).spec.template, 0);
        assert_eq!(a, template_hash(&deployment("a", 3).spec.template, 0));
        assert_ne!(a, template_hash(&deployment("b", 1).spec.template, 0));
        assert_ne!(a, template_hash(&deployment("a", 1).spec.template, 1));
    }

    #[test]
    fn a_new_replica_set_selects_its_hash_and_is_owned() {
        let d = deployment("a", 3);
        let rs = new_replica_set(&d, "abc12", 2);
        assert_eq!(rs.metadata.name.as_deref(), Some("web-abc12"));
        let spec = rs.spec;
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(
            spec.selector.match_labels.unwrap()[POD_TEMPLATE_HASH],
            "abc12"
        );
        assert_eq!(
            spec.template.unwrap().metadata.unwrap().labels.unwrap()[POD_TEMPLATE_HASH],
            "abc12"
        );
        assert_eq!(rs.metadata.owner_references.unwrap()[0].uid, "d-1");
        assert_eq!(rs.metadata.annotations.unwrap()[REVISION], "2");
    }

    #[test]
    fn available_when_every_replica_is() {
        let d = deployment("a", 2);
        let mut rs = new_replica_set(&d, "abc12", 1);
        rs.metadata.generation = Some(1);
        rs.status = Some(k8s_openapi::api::apps::v1::ReplicaSetStatus {
            replicas: 2,
            ready_replicas: Some(1),
            available_replicas: Some(1),
            observed_generation: Some(1),
            ..Default::default()
        });
        let now = Time(world::now());
        let s = status(&d, &rs, &[], now.clone());
        let available = |s: &DeploymentStatus| {
            s.conditions
                .as_ref()
                .unwrap()
                .iter()
                .find(|c| c.type_.as_deref() == Some("Available"))
                .unwrap()
                .status
                .clone()
                .unwrap()
        };
        assert_eq!(available(&s), "False");
        assert_eq!(s.unavailable_replicas, Some(1));
        rs.status.as_mut().unwrap().available_replicas = Some(2);
        rs.status.as_mut().unwrap().ready_replicas = Some(2);
        let s = status(&d, &rs, &[], now);
        assert_eq!(available(&s), "True");
        assert_eq!(
            (s.replicas, s.updated_replicas, s.ready_replicas),
            (Some(2), Some(2), Some(2))
        );
        assert!(complete(&rs, 2));
    }
}
