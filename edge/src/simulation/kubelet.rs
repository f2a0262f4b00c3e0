//! The kubelets of every node: a bound pod's containers start after `--pod-start-delay`
//! (meanwhile `ContainerCreating`) and are ready `--pod-ready-delay` later; an image matching
//! `--never-pull-image-regex` stays `ImagePullBackOff`; on a node that is not Ready, pods are
//! not ready (as the node lifecycle controller marks them). The status is a pure function of
//! the pod, its node and the time ([`desired_status`]); the reconciler writes it and comes
//! back when the next step is due.
//!
//! Times are derived from when the pod was bound (its `PodScheduled` transition), so a
//! reconcile repeated, or done by a new leader, writes the same status.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateWaiting, ContainerStatus, HostIP, Node,
    Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use trellis_server::controller::{Action, Change, Controller, Error, Reconciler, Running};
use trellis_storage::ObjectKey;

use super::faults::{node_fault, NodeFault};
use super::scheduler::set_condition;
use super::world::{self, Typed, World, NODES, PODS};

/// How a kubelet runs pods.
#[derive(Clone, Debug)]
pub struct Timing {
    pub start_delay: Duration,
    pub ready_delay: Duration,
    pub never_pull: Option<regex::Regex>,
}

/// What a node's kubelet knows of its node.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeState {
    pub ready: bool,
    pub ip: Option<String>,
}

/// The node state of `node`: Ready unless a fault says otherwise.
pub fn node_state(node: &Node) -> NodeState {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
        && node_fault(&node.metadata) == NodeFault::None;
    let ip = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
        .map(|a| a.address.clone());
    NodeState { ready, ip }
}

/// When the pod was bound: its PodScheduled=True transition, else its creation.
fn bound_at(pod: &Pod) -> Option<Timestamp> {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| {
            c.iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "True")
        })
        .and_then(|c| c.last_transition_time.as_ref())
        .or(pod.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
}

/// The pod's address: derived from its uid (10.64.0.0/10), stable across reconciles.
fn pod_ip(pod: &Pod) -> String {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let h = super::hash::fnv32a(uid.as_bytes());
    format!(
        "10.{}.{}.{}",
        64 + (h >> 16) % 64,
        (h >> 8) & 0xff,
        (h & 0xff).max(1)
    )
}

fn later(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::ZERO))
        .unwrap_or(t)
}

/// The status the kubelet reports for `pod` on a node in `node` state at `now`, and how long
/// until it changes by itself (`None`: not before something else changes).
pub fn desired_status(
    pod: &Pod,
    node: &NodeState,
    now: Timestamp,
    timing: &Timing,
) -> (PodStatus, Option<Duration>) {
    let mut status = pod.status.clone().unwrap_or_default();
    let bound = bound_at(pod).unwrap_or(now);
    let started = later(bound, timing.start_delay);
    let ready_at = later(started, timing.ready_delay);
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    status.host_ip = node.ip.clone();
    status.host_ips = node.ip.clone().map(|ip| vec![HostIP { ip }]);
    status.start_time = Some(Time(bound));
    let condition =
        |type_: &str, ok: bool, reason: Option<&str>, message: Option<String>| PodCondition {
            type_: type_.into(),
            status: if ok { "True" } else { "False" }.into(),
            reason: reason.map(str::to_string),
            message,
            ..PodCondition::default()
        };
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    if now < started {
        set_condition(
            conditions,
            condition("PodReadyToStartContainers", false, None, None),
        );
        set_condition(conditions, condition("Initialized", true, None, None));
        let names = container_list(containers.iter().map(|c| c.name.as_str()));
        let message = format!("containers with unready status: [{names}]");
        set_condition(
            conditions,
            condition(
                "Ready",
                false,
                Some("ContainersNotReady"),
                Some(message.clone()),
            ),
        );
        set_condition(
            conditions,
            condition(
                "ContainersReady",
                false,
                Some("ContainersNotReady"),
                Some(message),
            ),
        );
        status.phase = Some("Pending".into());
        status.container_statuses = Some(
            containers
                .iter()
                .map(|c| waiting(c, "ContainerCreating", None))
                .collect(),
        );
        let wait = (started.duration_since(now)).unsigned_abs();
        return (status, Some(wait));
    }
    status.pod_ip = Some(pod_ip(pod));
    status.pod_ips = Some(vec![PodIP { ip: pod_ip(pod) }]);
    let past_ready = now >= ready_at;
    let mut statuses = Vec::new();
    let mut unready = Vec::new();
    let mut running = 0;
    for container in containers {
        let image = container.image.as_deref().unwrap_or_default();
        if timing
            .never_pull
            .as_ref()
            .is_some_and(|re| re.is_match(image))
        {
            statuses.push(waiting(
                container,
                "ImagePullBackOff",
                Some(format!("Back-off pulling image \"{image}\"")),
            ));
            unready.push(container.name.as_str());
            continue;
        }
        running += 1;
        let ready = past_ready && node.ready;
        if !ready {
            unready.push(container.name.as_str());
        }
        statuses.push(ContainerStatus {
            name: container.name.clone(),
            image: image.to_string(),
            image_id: format!(
                "{image}@sha256:{:064x}",
                super::hash::fnv32a(image.as_bytes())
            ),
            container_id: Some(format!(
                "containerd://{:016x}{:016x}",
                super::hash::fnv32a(pod.metadata.uid.as_deref().unwrap_or_default().as_bytes()),
                super::hash::fnv32a(container.name.as_bytes())
            )),
            ready,
            started: Some(true),
            restart_count: 0,
            state: Some(ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(Time(started)),
                }),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        });
    }
    status.container_statuses = Some(statuses);
    status.phase = Some(if running > 0 { "Running" } else { "Pending" }.into());
    let all_ready = unready.is_empty();
    set_condition(
        conditions_of(&mut status),
        condition("PodReadyToStartContainers", true, None, None),
    );
    set_condition(
        conditions_of(&mut status),
        condition("Initialized", true, None, None),
    );
    let (reason, message) = if all_ready {
        (None, None)
    } else if !node.ready {
        (Some("NodeNotReady"), None)
    } else {
        (
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: [{}]",
                container_list(unready.iter().copied())
            )),
        )
    };
    set_condition(
        conditions_of(&mut status),
        condition("Ready", all_ready, reason, message.clone()),
    );
    let containers_reason = (!all_ready).then_some("ContainersNotReady");
    let containers_message = (!all_ready).then(|| {
        format!(
            "containers with unready status: [{}]",
            container_list(unready.iter().copied())
        )
    });
    set_condition(
        conditions_of(&mut status),
        condition(
            "ContainersReady",
            all_ready,
            containers_reason,
            containers_message,
        ),
    );
    let next = (!past_ready && running > 0).then(|| ready_at.duration_since(now).unsigned_abs());
    (status, next)
}

fn conditions_of(status: &mut PodStatus) -> &mut Vec<PodCondition> {
    status.conditions.get_or_insert_with(Vec::new)
}

fn container_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join(" ")
}

fn waiting(
    container: &k8s_openapi::api::core::v1::Container,
    reason: &str,
    message: Option<String>,
) -> ContainerStatus {
    ContainerStatus {
        name: container.name.clone(),
        image: container.image.clone().unwrap_or_default(),
        image_id: String::new(),
        ready: false,
        started: Some(false),
        restart_count: 0,
        state: Some(ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.into()),
                message,
            }),
            ..ContainerState::default()
        }),
        ..ContainerStatus::default()
    }
}

pub fn wire(running: &mut Running, world: &World) {
    let pods = world.pods.clone();
    let controller = Controller::new("kubelet")
        .watches(&world.pods, |change: &Change<'_, Typed<Pod>>| {
            change
                .new
                .as_ref()
                .filter(|p| bound(&p.object))
                .map(|_| change.key.clone())
        })
        // A node turning ready or not: its pods (a scan, on a rare change).
        .watches(&world.nodes, move |change: &Change<'_, Typed<Node>>| {
            let was = change.old.as_ref().map(|n| node_state(&n.object).ready);
            let is = change.new.as_ref().map(|n| node_state(&n.object).ready);
            if was == is || was.is_none() {
                return Vec::new();
            }
            let node = change.key.name.clone();
            pods.list()
                .into_iter()
                .filter(|p| {
                    p.object.spec.as_ref().and_then(|s| s.node_name.as_deref())
                        == Some(node.as_str())
                })
                .map(|p| p.stored.key.clone())
                .collect()
        })
        .workers(4);
    let reconciler = Arc::new(Kubelet {
        world: world.clone(),
        timing: Timing {
            start_delay: world.options.pod_start_delay,
            ready_delay: world.options.pod_ready_delay,
            never_pull: world.options.never_pull_image.clone(),
        },
    });
    running.spawn(controller.run(reconciler, running.token()));
}

fn bound(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
        && pod.metadata.deletion_timestamp.is_none()
}

struct Kubelet {
    world: World,
    timing: Timing,
}

impl Reconciler for Kubelet {
    type Key = ObjectKey;

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, Error> {
        let Some(pod) = self.world.pods.get(key) else {
            return Ok(Action::await_change());
        };
        if !bound(&pod.object) {
            return Ok(Action::await_change());
        }
        let node_name = pod
            .object
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let Some(node) = self
            .world
            .nodes
            .get(&self.world.key(NODES, "", &node_name)?)
        else {
            // No kubelet for a node that does not exist: the pod stays as it is.
            return Ok(Action::await_change());
        };
        let (status, next) = desired_status(
            &pod.object,
            &node_state(&node.object),
            world::now(),
            &self.timing,
        );
        self.world
            .update_status(PODS, &pod.stored, world::to_value(&status)?)
            .await?;
        Ok(match next {
            Some(wait) => Action::requeue(wait.max(Duration::from_millis(50))),
            None => Action::await_change(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(image: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "uid": "u-1", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"nodeName": "n", "containers": [{"name": "main", "image": image}]},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True",
                "lastTransitionTime": "2026-01-01T00:00:10Z"}]}
        }))
        .unwrap()
    }

    fn at(seconds: i64) -> Timestamp {
        "2026-01-01T00:00:10Z".parse::<Timestamp>().unwrap() + SignedDuration::from_secs(seconds)
    }

    fn timing() -> Timing {
        Timing {
            start_delay: Duration::from_secs(2),
            ready_delay: Duration::from_secs(3),
            never_pull: Some(
                regex::Regex::new(crate::simulation::faults::DEFAULT_NEVER_PULL).unwrap(),
            ),
        }
    }

    fn ready(status: &PodStatus) -> &str {
        &status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap()
            .status
    }

    const UP: NodeState = NodeState {
        ready: true,
        ip: None,
    };

    #[test]
    fn a_pod_is_created_then_runs_then_is_ready() {
        let (creating, next) = desired_status(&pod("nginx"), &UP, at(1), &timing());
        assert_eq!(creating.phase.as_deref(), Some("Pending"));
        assert_eq!(next, Some(Duration::from_secs(1)));
        let (running, next) = desired_status(&pod("nginx"), &UP, at(2), &timing());
        assert_eq!(running.phase.as_deref(), Some("Running"));
        assert_eq!(ready(&running), "False");
        assert_eq!(next, Some(Duration::from_secs(3)));
        let (up, next) = desired_status(&pod("nginx"), &UP, at(5), &timing());
        assert_eq!(ready(&up), "True");
        assert!(up.container_statuses.unwrap()[0].ready);
        assert_eq!(next, None);
    }

    #[test]
    fn the_status_is_the_same_when_computed_again() {
        let (first, _) = desired_status(&pod("nginx"), &UP, at(9), &timing());
        let mut again = pod("nginx");
        again.status = Some(first.clone());
        let (second, _) = desired_status(&again, &UP, at(20), &timing());
        assert_eq!(first, second);
    }

    #[test]
    fn an_image_that_never_pulls_backs_off() {
        let (status, next) =
            desired_status(&pod("registry.invalid/model:1"), &UP, at(9), &timing());
        assert_eq!(status.phase.as_deref(), Some("Pending"));
        let waiting = status.container_statuses.unwrap()[0]
            .state
            .clone()
            .unwrap()
            .waiting
            .unwrap();
        assert_eq!(waiting.reason.as_deref(), Some("ImagePullBackOff"));
        assert_eq!(next, None);
    }

    #[test]
    fn pods_on_a_node_that_is_not_ready_are_not_ready() {
        let down = NodeState {
            ready: false,
            ip: None,
        };
        let (status, _) = desired_status(&pod("nginx"), &down, at(9), &timing());
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(ready(&status), "False");
        let reason = status
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap()
            .reason;
        assert_eq!(reason.as_deref(), Some("NodeNotReady"));
    }
}
