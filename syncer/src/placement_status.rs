//! A Placement's status as its syncer reports it, pure: from the edge Deployment, the
//! Placement's pods and the Service, at `now`.
//!
//! - `replicas`, `readyReplicas`: the Deployment's.
//! - `observedGeneration`: the Placement generation the Deployment was rendered from, once
//!   the cluster's Deployment controller has seen that Deployment; until then the previous
//!   report stands.
//! - `endpoint`: the Service's cluster DNS name and port.
//! - `Available`: at least one replica ready (`MinimumReplicasAvailable`), else False
//!   (`MinimumReplicasUnavailable`).
//! - `Progressing`: False with the pods' own reason when they cannot start
//!   (`ImagePullBackOff`, also for `ErrImagePull` and `InvalidImageName`;
//!   `CrashLoopBackOff`), or `Unschedulable` once a pod has been unschedulable longer than the
//!   timeout (the hub then treats the replicas as failing and may place them elsewhere); a
//!   render error is False too (`RenderFailed`). Otherwise True: `ReplicasReady` when all
//!   are ready, else `ReplicasStarting` (an unschedulable pod within the timeout says so in
//!   the message).
//! - A condition keeps its `lastTransitionTime` while its status stays the same.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use trellis_apis::compute::placement::{conditions, reasons};
use trellis_apis::compute::{Placement, PlacementStatus};

use crate::naming::PLACEMENT_GENERATION_ANNOTATION;
use crate::time::{seconds, time_at};

pub use trellis_apis::compute::placement::reasons::{
    MINIMUM_REPLICAS_AVAILABLE, MINIMUM_REPLICAS_UNAVAILABLE, RENDER_FAILED, REPLICAS_READY,
    REPLICAS_STARTING,
};

/// What the status needs of one pod of the Placement.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodState {
    pub name: String,
    /// Unschedulable since (seconds), with the scheduler's message.
    pub unschedulable: Option<(i64, String)>,
    /// A container waiting for a reason that needs attention, with its message.
    pub failing: Option<(&'static str, String)>,
    pub deleting: bool,
}

impl PodState {
    pub fn from_pod(pod: &Pod) -> PodState {
        let status = pod.status.as_ref();
        let unschedulable = status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .find(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
            })
            .map(|c| {
                let since = c
                    .last_transition_time
                    .as_ref()
                    .or(pod.metadata.creation_timestamp.as_ref())
                    .map(seconds)
                    .unwrap_or(0);
                (since, c.message.clone().unwrap_or_default())
            });
        let failing = status
            .into_iter()
            .flat_map(|s| {
                s.init_container_statuses
                    .iter()
                    .flatten()
                    .chain(s.container_statuses.iter().flatten())
            })
            .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
            .find_map(|w| {
                let reason = match w.reason.as_deref()? {
                    "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName" => {
                        reasons::IMAGE_PULL_BACK_OFF
                    }
                    "CrashLoopBackOff" => reasons::CRASH_LOOP_BACK_OFF,
                    _ => return None,
                };
                Some((reason, w.message.clone().unwrap_or_default()))
            });
        PodState {
            name: pod.metadata.name.clone().unwrap_or_default(),
            unschedulable,
            failing,
            deleting: pod.metadata.deletion_timestamp.is_some(),
        }
    }
}

/// What the syncer saw of one Placement on its cluster.
pub struct Observed<'a> {
    pub deployment: Option<&'a Deployment>,
    pub pods: &'a [PodState],
    pub endpoint: Option<String>,
    /// Why the Placement could not be rendered or applied, if it could not.
    pub error: Option<String>,
}

/// The status `placement` should have after `observed`, at `now` (seconds), with pods
/// unschedulable for more than `unschedulable_timeout` seconds reported as such.
pub fn status(
    placement: &Placement,
    observed: &Observed,
    now: i64,
    unschedulable_timeout: i64,
) -> PlacementStatus {
    let previous = placement.status.clone().unwrap_or_default();
    let deployment_status = observed.deployment.and_then(|d| d.status.as_ref());
    let replicas = deployment_status.and_then(|s| s.replicas).unwrap_or(0);
    let ready = deployment_status
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    let observed_generation = observed
        .deployment
        .filter(|d| {
            let seen = d.status.as_ref().and_then(|s| s.observed_generation);
            seen.is_some() && seen >= d.metadata.generation
        })
        .and_then(|d| d.metadata.annotations.as_ref())
        .and_then(|a| a.get(PLACEMENT_GENERATION_ANNOTATION))
        .and_then(|g| g.parse::<i64>().ok())
        .or(previous.observed_generation);
    let wanted = placement.spec.replicas;
    let available = if ready > 0 {
        (
            true,
            MINIMUM_REPLICAS_AVAILABLE,
            format!("{ready} of {wanted} replicas ready"),
        )
    } else {
        (
            false,
            MINIMUM_REPLICAS_UNAVAILABLE,
            format!("0 of {wanted} replicas ready"),
        )
    };
    let live = || observed.pods.iter().filter(|p| !p.deleting);
    let stuck = live().find_map(|p| {
        p.failing
            .as_ref()
            .map(|(reason, message)| (*reason, format!("pod {}: {message}", p.name)))
    });
    let unschedulable: Vec<&PodState> = live().filter(|p| p.unschedulable.is_some()).collect();
    let overdue = unschedulable.iter().find_map(|p| {
        let (since, message) = p.unschedulable.as_ref()?;
        (now.saturating_sub(*since) > unschedulable_timeout).then(|| {
            (
                reasons::UNSCHEDULABLE,
                format!(
                    "{} of {wanted} replicas unschedulable for more than {unschedulable_timeout}s: {message}",
                    unschedulable.len()
                ),
            )
        })
    });
    let progressing = if let Some(error) = &observed.error {
        (false, RENDER_FAILED, error.clone())
    } else if let Some((reason, message)) = stuck.or(overdue) {
        (false, reason, message)
    } else if ready >= wanted && replicas <= wanted {
        (
            true,
            REPLICAS_READY,
            format!("{ready} of {wanted} replicas ready"),
        )
    } else if !unschedulable.is_empty() {
        (
            true,
            REPLICAS_STARTING,
            format!(
                "{} of {wanted} replicas waiting for a node with free GPUs",
                unschedulable.len()
            ),
        )
    } else {
        (
            true,
            REPLICAS_STARTING,
            format!("{ready} of {wanted} replicas ready"),
        )
    };
    let conditions = vec![
        condition(
            &previous.conditions,
            conditions::AVAILABLE,
            available,
            placement,
            now,
        ),
        condition(
            &previous.conditions,
            conditions::PROGRESSING,
            progressing,
            placement,
            now,
        ),
    ];
    PlacementStatus {
        observed_generation,
        replicas,
        ready_replicas: ready,
        endpoint: observed.endpoint.clone(),
        conditions,
    }
}

fn condition(
    previous: &[Condition],
    type_: &str,
    (holds, reason, message): (bool, &str, String),
    placement: &Placement,
    now: i64,
) -> Condition {
    let status = if holds { "True" } else { "False" };
    let since = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| time_at(now));
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message,
        last_transition_time: since,
        observed_generation: placement.metadata.generation,
    }
}

#[cfg(test)]
mod tests;
