//! The scheduler: binds each pending pod to a node where it fits, as kube-scheduler does,
//! or marks it `PodScheduled=False` (reason `Unschedulable`) with kube-scheduler's message.
//!
//! Like kube-scheduler it keeps a cache ([`State`]) of nodes and of what each one's pods hold,
//! fed by the shared pod, node, slice and claim reflectors, and *assumes* a pod on its node
//! the moment it decides, before the write is watched back: the next pod already sees the
//! GPUs taken. Workers decide under one lock, so no two take the same GPUs; nodes are tried from where the last search
//! stopped, and at most [`ENOUGH`] feasible ones are scored, so a pod costs the same with
//! 4 nodes or 10,000. Unschedulable pods are tried again every [`RETRY`].
//!
//! A pod that fits nowhere also gets a `FailedScheduling` Warning event (once per message).
//!
//! DRA: a pod's claims (ResourceClaims named directly or made from templates, see
//! [`super::dra`]) are allocated devices of the chosen node in the same step: the claim's
//! `status.allocation` and `reservedFor` are written before the pod is bound.

pub mod demand;
pub mod fit;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, EventSource, Node, ObjectReference, Pod, PodCondition};
use k8s_openapi::api::resource::v1::{
    ResourceClaim, ResourceClaimConsumerReference, ResourceClaimStatus, ResourceSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use trellis_server::controller::committer::Committed;
use trellis_server::controller::{Action, Change, Controller, Error, Reconciler, Running};
use trellis_storage::ObjectKey;

use self::fit::{Demand, NodeInfo, Placement, Usage};
use super::dra::allocation;
use super::world::{self, Typed, World, EVENTS, PODS, RESOURCE_CLAIMS};
use crate::gpu::labels::{DRA_DRIVER, GPU_RESOURCE};

/// Feasible nodes scored per pod.
pub const ENOUGH: usize = 50;
/// How soon an unschedulable pod is tried again.
pub const RETRY: Duration = Duration::from_secs(2);

/// What the scheduler knows: nodes, and what the pods and claims on them hold.
#[derive(Default)]
pub struct State {
    nodes: BTreeMap<String, NodeInfo>,
    /// Devices per node, from the slices (kept apart from nodes: they change apart).
    devices: HashMap<String, Vec<String>>,
    usage: HashMap<String, Usage>,
    /// Pods counted on a node, and their GPUs.
    pods: HashMap<ObjectKey, (String, i64)>,
    /// Claims holding devices: node and devices.
    claims: HashMap<ObjectKey, (String, Vec<String>)>,
    /// Where the last search stopped.
    cursor: String,
}

impl State {
    fn set_node(&mut self, name: &str, info: Option<NodeInfo>) {
        match info {
            Some(mut info) => {
                info.devices = self.devices.get(name).cloned().unwrap_or_default();
                self.nodes.insert(name.to_string(), info);
            }
            None => {
                self.nodes.remove(name);
            }
        }
    }

    fn set_devices(&mut self, node: &str, devices: Option<Vec<String>>) {
        match devices {
            Some(devices) => {
                if let Some(info) = self.nodes.get_mut(node) {
                    info.devices = devices.clone();
                }
                self.devices.insert(node.to_string(), devices);
            }
            None => {
                self.devices.remove(node);
                if let Some(info) = self.nodes.get_mut(node) {
                    info.devices.clear();
                }
            }
        }
    }

    /// Counts (or stops counting) a pod on a node.
    fn set_pod(&mut self, key: &ObjectKey, held: Option<(String, i64)>) {
        if let Some((node, gpus)) = self.pods.remove(key) {
            let usage = self.usage.entry(node).or_default();
            usage.gpus -= gpus;
            usage.pods -= 1;
        }
        if let Some((node, gpus)) = held {
            let usage = self.usage.entry(node.clone()).or_default();
            usage.gpus += gpus;
            usage.pods += 1;
            self.pods.insert(key.clone(), (node, gpus));
        }
    }

    /// Counts (or stops counting) a claim's devices.
    fn set_claim(&mut self, key: &ObjectKey, held: Option<(String, Vec<String>)>) {
        if let Some((node, devices)) = self.claims.remove(key) {
            let usage = self.usage.entry(node).or_default();
            for device in devices {
                usage.devices.remove(&device);
            }
        }
        if let Some((node, devices)) = held {
            let usage = self.usage.entry(node.clone()).or_default();
            usage.devices.extend(devices.iter().cloned());
            self.claims.insert(key.clone(), (node, devices));
        }
    }

    /// Finds a node for `demand`, starting after where the last search stopped.
    fn place(&mut self, demand: &Demand) -> Placement {
        let cursor = self.cursor.clone();
        let order = self
            .nodes
            .range::<String, _>((
                std::ops::Bound::Excluded(&cursor),
                std::ops::Bound::Unbounded,
            ))
            .chain(self.nodes.range::<String, _>(..=&cursor));
        let usage = &self.usage;
        let placed = fit::choose(order, |n| usage.get(n), demand, ENOUGH);
        if let Placement::Node(name) = &placed {
            self.cursor = name.clone();
        }
        placed
    }
}

/// What the scheduler keeps of a node.
fn node_info(node: &Node) -> NodeInfo {
    let status = node.status.as_ref();
    let allocatable = |resource: &str| {
        status
            .and_then(|s| s.allocatable.as_ref())
            .and_then(|a| a.get(resource))
            .and_then(|q| q.0.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    NodeInfo {
        labels: node.metadata.labels.clone().unwrap_or_default(),
        ready,
        unschedulable: node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true),
        gpus: allocatable(GPU_RESOURCE),
        pods: allocatable("pods"),
        devices: Vec::new(),
    }
}

/// The node and GPUs a pod holds: bound and not finished.
fn pod_holds(pod: &Pod) -> Option<(String, i64)> {
    let node = pod
        .spec
        .as_ref()?
        .node_name
        .clone()
        .filter(|n| !n.is_empty())?;
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return None;
    }
    Some((node, demand::held_gpus(pod)))
}

/// The node and devices of the GPU driver's slice.
fn slice_devices(slice: &ResourceSlice) -> Option<(String, Vec<String>)> {
    if slice.spec.driver != DRA_DRIVER {
        return None;
    }
    let node = slice.spec.node_name.clone()?;
    Some((
        node,
        slice
            .spec
            .devices
            .iter()
            .flatten()
            .map(|d| d.name.clone())
            .collect(),
    ))
}

pub fn wire(running: &mut Running, world: &World) {
    let state = Arc::new(Mutex::new(State::default()));
    let subscriptions = vec![
        {
            let state = state.clone();
            world
                .nodes
                .subscribe(move |change: &Change<'_, Typed<Node>>| {
                    let info = change.new.as_ref().map(|n| node_info(&n.object));
                    if let Ok(mut state) = state.lock() {
                        state.set_node(&change.key.name, info);
                    }
                })
        },
        {
            let state = state.clone();
            world
                .pods
                .subscribe(move |change: &Change<'_, Typed<Pod>>| {
                    let held = change.new.as_ref().and_then(|p| pod_holds(&p.object));
                    if let Ok(mut state) = state.lock() {
                        state.set_pod(change.key, held);
                    }
                })
        },
        {
            let state = state.clone();
            world
                .claims
                .subscribe(move |change: &Change<'_, Typed<ResourceClaim>>| {
                    let held = change
                        .new
                        .as_ref()
                        .and_then(|c| allocation::held(&c.object));
                    if let Ok(mut state) = state.lock() {
                        state.set_claim(change.key, held);
                    }
                })
        },
        {
            let state = state.clone();
            world
                .slices
                .subscribe(move |change: &Change<'_, Typed<ResourceSlice>>| {
                    let old = change.old.as_ref().and_then(|s| slice_devices(&s.object));
                    let new = change.new.as_ref().and_then(|s| slice_devices(&s.object));
                    if let Ok(mut state) = state.lock() {
                        if let Some((node, _)) = old {
                            state.set_devices(&node, None);
                        }
                        if let Some((node, devices)) = new {
                            state.set_devices(&node, Some(devices));
                        }
                    }
                })
        },
    ];
    let controller = Controller::new("scheduler")
        .watches(&world.pods, |change: &Change<'_, Typed<Pod>>| {
            change
                .new
                .as_ref()
                .filter(|p| demand::wants_scheduling(&p.object))
                .map(|_| change.key.clone())
        })
        .waits_for(&world.nodes)
        .waits_for(&world.claims)
        .waits_for(&world.slices)
        .workers(4);
    let reconciler = Arc::new(Scheduler {
        world: world.clone(),
        state,
    });
    let stop = running.token();
    running.spawn(async move {
        controller.run(reconciler, stop).await;
        drop(subscriptions);
    });
}

struct Scheduler {
    world: World,
    state: Arc<Mutex<State>>,
}

/// A claim of the pod being scheduled: as read, and what it asks if not allocated yet.
struct PodClaim {
    claim: Arc<Typed<ResourceClaim>>,
    requests: Vec<(String, i64)>,
}

impl Scheduler {
    /// The pod's claims, once they all exist (`None`: wait).
    fn claims_of(&self, pod: &Pod) -> Option<Vec<PodClaim>> {
        let spec = pod.spec.as_ref()?;
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let statuses = pod
            .status
            .as_ref()
            .and_then(|s| s.resource_claim_statuses.as_ref());
        let mut claims = Vec::new();
        for claim in spec.resource_claims.iter().flatten() {
            let name = claim.resource_claim_name.clone().or_else(|| {
                statuses?
                    .iter()
                    .find(|s| s.name == claim.name)?
                    .resource_claim_name
                    .clone()
            })?;
            let key = self.world.key(RESOURCE_CLAIMS, namespace, &name).ok()?;
            let claim = self.world.claims.get(&key)?;
            let requests = if allocation::held(&claim.object).is_some() {
                Vec::new()
            } else {
                allocation::requested(&claim.object)
            };
            claims.push(PodClaim { claim, requests });
        }
        Some(claims)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, Error> {
        self.state
            .lock()
            .map_err(|_| Error::Unavailable("the scheduler's cache is poisoned".into()))
    }

    async fn unschedulable(&self, pod: &Typed<Pod>, message: String) -> Result<Action, Error> {
        let message_text = message.clone();
        let condition = PodCondition {
            type_: "PodScheduled".into(),
            status: "False".into(),
            reason: Some("Unschedulable".into()),
            message: Some(message_text),
            ..PodCondition::default()
        };
        let mut status = pod.object.status.clone().unwrap_or_default();
        set_condition(status.conditions.get_or_insert_with(Vec::new), condition);
        let written = self
            .world
            .update_status(PODS, &pod.stored, world::to_value(&status)?)
            .await?;
        if !matches!(written, Committed::Unchanged) {
            self.event(pod, "FailedScheduling", &message).await?;
        }
        Ok(Action::requeue(RETRY))
    }

    /// A Warning event about `pod`, as `kubectl describe pod` lists kube-scheduler's: one per
    /// pod and message (named after both, so a repeated decision adds nothing).
    async fn event(&self, pod: &Typed<Pod>, reason: &str, message: &str) -> Result<(), Error> {
        let name = pod.object.metadata.name.clone().unwrap_or_default();
        let namespace = pod.stored.key.namespace.clone();
        let now = Time(world::now());
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!(
                    "{name}.{:08x}",
                    super::hash::fnv32a(format!("{reason}/{message}").as_bytes())
                )),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(name),
                namespace: Some(namespace.clone()),
                uid: pod.object.metadata.uid.clone(),
                ..ObjectReference::default()
            },
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some("Warning".into()),
            count: Some(1),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            source: Some(EventSource {
                component: Some(demand::DEFAULT_SCHEDULER.into()),
                host: None,
            }),
            reporting_component: Some(demand::DEFAULT_SCHEDULER.into()),
            ..Event::default()
        };
        self.world
            .create(EVENTS, Some(&namespace), world::to_value(&event)?)
            .await?;
        Ok(())
    }

    /// Writes the allocation of `devices` (of `node`) to the pod's claims, and reserves
    /// every claim for the pod.
    async fn allocate(
        &self,
        pod: &Typed<Pod>,
        node: &str,
        claims: &[PodClaim],
        devices: &[Vec<String>],
    ) -> Result<(), Error> {
        for (claim, devices) in claims.iter().zip(devices) {
            let mut status: ResourceClaimStatus =
                claim.claim.object.status.clone().unwrap_or_default();
            if status.allocation.is_none() {
                let mut allocated = allocation::allocation(node, &claim.requests, devices);
                allocated.allocation_timestamp = Some(Time(world::now()));
                status.allocation = Some(allocated);
            }
            let reserved = status.reserved_for.get_or_insert_with(Vec::new);
            let uid = pod.object.metadata.uid.clone().unwrap_or_default();
            if !reserved.iter().any(|r| r.uid == uid) {
                reserved.push(ResourceClaimConsumerReference {
                    api_group: None,
                    resource: "pods".into(),
                    name: pod.object.metadata.name.clone().unwrap_or_default(),
                    uid,
                });
            }
            self.world
                .update_status(
                    RESOURCE_CLAIMS,
                    &claim.claim.stored,
                    world::to_value(&status)?,
                )
                .await?;
        }
        Ok(())
    }

    async fn bind(&self, pod: &Typed<Pod>, node: &str) -> Result<(), Error> {
        let mut bound = pod.object.clone();
        if let Some(spec) = bound.spec.as_mut() {
            spec.node_name = Some(node.to_string());
        }
        let status = bound.status.get_or_insert_with(Default::default);
        set_condition(
            status.conditions.get_or_insert_with(Vec::new),
            PodCondition {
                type_: "PodScheduled".into(),
                status: "True".into(),
                last_transition_time: Some(Time(world::now())),
                ..PodCondition::default()
            },
        );
        self.world
            .update(PODS, &pod.stored, world::to_value(&bound)?)
            .await?;
        Ok(())
    }
}

impl Reconciler for Scheduler {
    type Key = ObjectKey;

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, Error> {
        let Some(pod) = self.world.pods.get(key) else {
            return Ok(Action::await_change());
        };
        if !demand::wants_scheduling(&pod.object) {
            return Ok(Action::await_change());
        }
        let Some(claims) = self.claims_of(&pod.object) else {
            // Its claims are being made from their templates: their creation requeues it.
            return Ok(Action::requeue(RETRY));
        };
        let mut demand = demand::of_pod(&pod.object);
        for claim in &claims {
            match allocation::held(&claim.claim.object) {
                Some((node, _)) => demand.node = Some(node),
                None => demand.devices += claim.requests.iter().map(|(_, n)| n).sum::<i64>(),
            }
        }
        // Decide and assume under the lock; write after.
        let decided = {
            let mut state = self.lock()?;
            let total = state.nodes.len();
            match state.place(&demand) {
                Placement::Nowhere(why) => Err(fit::unschedulable_message(total, &why)),
                Placement::Node(node) => {
                    let mut free: Vec<String> = match state.nodes.get(&node) {
                        Some(info) => {
                            let empty = Usage::default();
                            let used = state.usage.get(&node).unwrap_or(&empty);
                            fit::free_devices(info, used).cloned().collect()
                        }
                        None => Vec::new(),
                    }
                    .into_iter()
                    .rev()
                    .collect();
                    let mut picked = Vec::new();
                    for claim in &claims {
                        let wanted: i64 = claim.requests.iter().map(|(_, n)| n).sum();
                        let devices: Vec<String> = (0..wanted).filter_map(|_| free.pop()).collect();
                        state.set_claim(
                            &claim.claim.stored.key,
                            Some((node.clone(), devices.clone())),
                        );
                        picked.push(devices);
                    }
                    state.set_pod(key, Some((node.clone(), demand.gpus)));
                    Ok((node, picked))
                }
            }
        };
        let (node, devices) = match decided {
            Ok(decided) => decided,
            Err(message) => return self.unschedulable(&pod, message).await,
        };
        let written = async {
            self.allocate(&pod, &node, &claims, &devices).await?;
            self.bind(&pod, &node).await
        }
        .await;
        if let Err(e) = written {
            // Forget what was assumed; the reflectors put back whatever was written.
            let mut state = self.lock()?;
            state.set_pod(key, None);
            for claim in &claims {
                if allocation::held(&claim.claim.object).is_none() {
                    state.set_claim(&claim.claim.stored.key, None);
                }
            }
            return Err(e);
        }
        tracing::debug!(pod = %key.name, node = %node, "bound");
        Ok(Action::await_change())
    }
}

/// Sets `condition` in `conditions`, keeping its transition time when its status is
/// unchanged (and taking now when it changes and none is given).
pub fn set_condition(conditions: &mut Vec<PodCondition>, mut condition: PodCondition) {
    match conditions.iter_mut().find(|c| c.type_ == condition.type_) {
        Some(existing) => {
            if existing.status == condition.status {
                condition.last_transition_time = existing.last_transition_time.clone();
            } else if condition.last_transition_time.is_none() {
                condition.last_transition_time = Some(Time(world::now()));
            }
            *existing = condition;
        }
        None => {
            if condition.last_transition_time.is_none() {
                condition.last_transition_time = Some(Time(world::now()));
            }
            conditions.push(condition);
        }
    }
}
