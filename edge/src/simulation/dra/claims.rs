//! The resource claim controller, as kube-controller-manager runs it: for each pod claim
//! made from a ResourceClaimTemplate, a ResourceClaim `<pod>-<claim>-<random>` owned by the pod
//! (annotated `resource.kubernetes.io/pod-claim-name`), recorded in the pod's
//! `status.resourceClaimStatuses`; the garbage collector deletes it with the pod. A claim's
//! `reservedFor` entries for pods that are gone or finished are removed, and a claim reserved
//! for nobody is deallocated (its devices are free again).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, PodResourceClaimStatus};
use k8s_openapi::api::resource::v1::{ResourceClaim, ResourceClaimTemplate};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use trellis_server::controller::committer::Committed;
use trellis_server::controller::{Action, Change, Controller, Error, Reconciler, Running};
use trellis_storage::ObjectKey;

use crate::simulation::world::{
    self, controller_of, controller_reference, Typed, World, PODS, RESOURCE_CLAIMS,
    RESOURCE_CLAIM_TEMPLATES,
};

/// The annotation naming the pod claim a generated ResourceClaim is for.
pub const POD_CLAIM_NAME: &str = "resource.kubernetes.io/pod-claim-name";

/// What the controller looks at: a pod (its claims to make) or a claim (its reservations).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    Pod(ObjectKey),
    Claim(ObjectKey),
}

/// The claim made for pod claim `claim_name` of `pod` from `template`.
pub fn claim_for(pod: &Pod, claim_name: &str, template: &ResourceClaimTemplate) -> ResourceClaim {
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let template_spec = template.spec.clone().unwrap_or_default();
    let meta = template_spec.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert(POD_CLAIM_NAME.into(), claim_name.into());
    ResourceClaim {
        metadata: ObjectMeta {
            generate_name: Some(format!("{pod_name}-{claim_name}-")),
            namespace: pod.metadata.namespace.clone(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![controller_reference("v1", "Pod", &pod.metadata)]),
            ..ObjectMeta::default()
        },
        spec: template_spec.spec,
        status: None,
    }
}

pub fn wire(running: &mut Running, world: &World) {
    let claim_world = world.clone();
    let pod_world = world.clone();
    let controller = Controller::new("resourceclaim")
        .watches(&world.pods, move |change: &Change<'_, Typed<Pod>>| {
            let mut keys = vec![Key::Pod(change.key.clone())];
            // A pod gone or finished: the claims it held.
            let finished = change
                .new
                .as_ref()
                .is_none_or(|p| !super::super::replica_set::active(&p.object));
            if finished {
                if let Some(pod) = change.old.as_ref().or(change.new.as_ref()) {
                    keys.extend(claim_names(&pod.object).into_iter().filter_map(|name| {
                        claim_world
                            .key(RESOURCE_CLAIMS, &change.key.namespace, &name)
                            .ok()
                            .map(Key::Claim)
                    }));
                }
            }
            keys
        })
        .watches(
            &world.claims,
            move |change: &Change<'_, Typed<ResourceClaim>>| {
                let mut keys = vec![Key::Claim(change.key.clone())];
                // A generated claim appearing or vanishing: its pod.
                if let Some(claim) = change.new.as_ref().or(change.old.as_ref()) {
                    if let Some(owner) = controller_of(&claim.object.metadata, "Pod") {
                        keys.extend(
                            pod_world
                                .key(PODS, &change.key.namespace, &owner.name)
                                .ok()
                                .map(Key::Pod),
                        );
                    }
                }
                keys
            },
        )
        .waits_for(&world.claim_templates)
        .workers(2);
    running.spawn(controller.run(
        Arc::new(Claims {
            world: world.clone(),
        }),
        running.token(),
    ));
}

/// The names of the claims a pod uses (direct, or made for it and recorded in its status).
fn claim_names(pod: &Pod) -> Vec<String> {
    let direct = pod
        .spec
        .iter()
        .flat_map(|s| s.resource_claims.iter().flatten())
        .filter_map(|c| c.resource_claim_name.clone());
    let generated = pod
        .status
        .iter()
        .flat_map(|s| s.resource_claim_statuses.iter().flatten())
        .filter_map(|s| s.resource_claim_name.clone());
    direct.chain(generated).collect()
}

struct Claims {
    world: World,
}

impl Claims {
    async fn pod(&self, key: &ObjectKey) -> Result<Action, Error> {
        let Some(pod) = self.world.pods.get(key) else {
            return Ok(Action::await_change());
        };
        if !super::super::replica_set::active(&pod.object) {
            return Ok(Action::await_change());
        }
        let uid = pod.object.metadata.uid.clone().unwrap_or_default();
        let existing: Vec<Arc<Typed<ResourceClaim>>> = self
            .world
            .claims
            .list_namespace(&self.world.cluster, &key.namespace)
            .into_iter()
            .map(|(_, c)| c)
            .filter(|c| controller_of(&c.object.metadata, "Pod").is_some_and(|o| o.uid == uid))
            .collect();
        let mut statuses = Vec::new();
        for claim in pod
            .object
            .spec
            .iter()
            .flat_map(|s| s.resource_claims.iter().flatten())
        {
            let Some(template_name) = &claim.resource_claim_template_name else {
                continue;
            };
            let made = existing.iter().find(|c| {
                c.object
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(POD_CLAIM_NAME))
                    == Some(&claim.name)
            });
            let name = match made {
                Some(made) => made.stored.key.name.clone(),
                None => {
                    let template_key =
                        self.world
                            .key(RESOURCE_CLAIM_TEMPLATES, &key.namespace, template_name)?;
                    let Some(template) = self.world.claim_templates.get(&template_key) else {
                        // kube-controller-manager waits for the template too.
                        return Ok(Action::requeue(std::time::Duration::from_secs(2)));
                    };
                    let desired = claim_for(&pod.object, &claim.name, &template.object);
                    match self
                        .world
                        .create(
                            RESOURCE_CLAIMS,
                            Some(&key.namespace),
                            world::to_value(&desired)?,
                        )
                        .await?
                    {
                        Committed::Created(stored) => {
                            self.world
                                .wait_for(&self.world.claims, stored.revision)
                                .await;
                            stored.key.name
                        }
                        _ => return Ok(Action::requeue(std::time::Duration::from_millis(100))),
                    }
                }
            };
            statuses.push(PodResourceClaimStatus {
                name: claim.name.clone(),
                resource_claim_name: Some(name),
            });
        }
        if statuses.is_empty() {
            return Ok(Action::await_change());
        }
        let mut status = pod.object.status.clone().unwrap_or_default();
        status.resource_claim_statuses = Some(statuses);
        self.world
            .update_status(PODS, &pod.stored, world::to_value(&status)?)
            .await?;
        Ok(Action::await_change())
    }

    async fn claim(&self, key: &ObjectKey) -> Result<Action, Error> {
        let Some(claim) = self.world.claims.get(key) else {
            return Ok(Action::await_change());
        };
        let Some(mut status) = claim.object.status.clone() else {
            return Ok(Action::await_change());
        };
        let reserved = status.reserved_for.take().unwrap_or_default();
        let kept: Vec<_> = reserved
            .into_iter()
            .filter(|r| {
                r.resource != "pods"
                    || self
                        .world
                        .key(PODS, &key.namespace, &r.name)
                        .ok()
                        .and_then(|k| self.world.pods.get(&k))
                        .is_some_and(|p| {
                            p.object.metadata.uid.as_deref() == Some(r.uid.as_str())
                                && super::super::replica_set::active(&p.object)
                        })
            })
            .collect();
        if kept.is_empty() {
            status.allocation = None;
            status.reserved_for = None;
        } else {
            status.reserved_for = Some(kept);
        }
        self.world
            .update_status(RESOURCE_CLAIMS, &claim.stored, world::to_value(&status)?)
            .await?;
        Ok(Action::await_change())
    }
}

impl Reconciler for Claims {
    type Key = Key;

    async fn reconcile(&self, key: &Key) -> Result<Action, Error> {
        match key {
            Key::Pod(key) => self.pod(key).await,
            Key::Claim(key) => self.claim(key).await,
        }
    }
}
