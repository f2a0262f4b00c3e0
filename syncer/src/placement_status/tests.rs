//! A Placement's status from its edge Deployment and pods.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use trellis_apis::compute::Placement;

use super::*;

const NOW: i64 = 1_750_000_000;
const TIMEOUT: i64 = 300;

fn placement(replicas: i32) -> Placement {
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "target-eu-1", "generation": 2},
        "spec": {
            "origin": {"workspace": "root:acme", "cluster": "c", "namespace": "default",
                "name": "llama", "uid": "u", "generation": 1},
            "model": {"uri": "hf://m/m"}, "runtime": {"image": "i"},
            "resources": {"gpu": {"productName": "NVIDIA-H200", "count": 1}},
            "replicas": replicas,
        },
    }))
    .expect("placement")
}

fn deployment(replicas: i32, ready: i32, observed: i64) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "p", "generation": 4,
            "annotations": {"trellis.dev/placement-generation": "2"}},
        "spec": {"selector": {}, "template": {}},
        "status": {"replicas": replicas, "readyReplicas": ready, "observedGeneration": observed},
    }))
    .expect("deployment")
}

fn pod(status: serde_json::Value) -> PodState {
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p-1"}, "status": status}))
        .expect("pod");
    PodState::from_pod(&pod)
}

fn condition<'a>(status: &'a PlacementStatus, type_: &str) -> &'a Condition {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .expect("condition")
}

#[test]
fn all_ready_is_available_and_observed() {
    let p = placement(2);
    let d = deployment(2, 2, 4);
    let observed = Observed {
        deployment: Some(&d),
        pods: &[],
        endpoint: Some("http://p.ns.svc.cluster.local:8000".into()),
        error: None,
    };
    let s = status(&p, &observed, NOW, TIMEOUT);
    assert_eq!((s.replicas, s.ready_replicas), (2, 2));
    assert_eq!(s.observed_generation, Some(2));
    assert_eq!(
        s.endpoint.as_deref(),
        Some("http://p.ns.svc.cluster.local:8000")
    );
    let available = condition(&s, "Available");
    assert_eq!(
        (available.status.as_str(), available.reason.as_str()),
        ("True", MINIMUM_REPLICAS_AVAILABLE)
    );
    assert_eq!(condition(&s, "Progressing").reason, REPLICAS_READY);
    // A Deployment the cluster has not seen yet: the generation is not claimed.
    let stale = deployment(2, 2, 3);
    let s = status(
        &p,
        &Observed {
            deployment: Some(&stale),
            ..observed
        },
        NOW,
        TIMEOUT,
    );
    assert_eq!(s.observed_generation, None);
}

#[test]
fn pull_errors_are_conditions_not_logs() {
    let p = placement(1);
    let d = deployment(1, 0, 4);
    let pods = [pod(
        json!({"containerStatuses": [{"name": "runtime", "ready": false,
        "restartCount": 0, "image": "", "imageID": "",
        "state": {"waiting": {"reason": "ErrImagePull", "message": "manifest unknown"}}}]}),
    )];
    let s = status(
        &p,
        &Observed {
            deployment: Some(&d),
            pods: &pods,
            endpoint: None,
            error: None,
        },
        NOW,
        TIMEOUT,
    );
    let progressing = condition(&s, "Progressing");
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_str()),
        ("False", "ImagePullBackOff")
    );
    assert!(
        progressing.message.contains("manifest unknown"),
        "{}",
        progressing.message
    );
    assert_eq!(condition(&s, "Available").status, "False");
}

#[test]
fn unschedulable_replicas_are_reported_after_the_timeout() {
    let p = placement(2);
    let d = deployment(2, 1, 4);
    let since = "2025-06-15T15:00:00Z";
    let pods = [pod(
        json!({"conditions": [{"type": "PodScheduled", "status": "False",
        "reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
        "lastTransitionTime": since}]}),
    )];
    let at = |now| {
        status(
            &p,
            &Observed {
                deployment: Some(&d),
                pods: &pods,
                endpoint: None,
                error: None,
            },
            now,
            TIMEOUT,
        )
    };
    let start = crate::time::seconds(&serde_json::from_value(json!(since)).expect("time"));
    let early = at(start + 60);
    let progressing = condition(&early, "Progressing");
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_str()),
        ("True", REPLICAS_STARTING)
    );
    let late = at(start + TIMEOUT + 1);
    let progressing = condition(&late, "Progressing");
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_str()),
        ("False", "Unschedulable")
    );
    assert!(
        progressing.message.contains("Insufficient nvidia.com/gpu"),
        "{}",
        progressing.message
    );
}

#[test]
fn transition_times_stay_while_the_status_does() {
    let mut p = placement(1);
    let d = deployment(1, 1, 4);
    let observed = Observed {
        deployment: Some(&d),
        pods: &[],
        endpoint: None,
        error: None,
    };
    let first = status(&p, &observed, NOW, TIMEOUT);
    p.status = Some(first.clone());
    let again = status(&p, &observed, NOW + 100, TIMEOUT);
    assert_eq!(again, first);
    let failed = status(
        &p,
        &Observed {
            error: Some("boom".into()),
            ..observed
        },
        NOW + 200,
        TIMEOUT,
    );
    let progressing = condition(&failed, "Progressing");
    assert_eq!(
        (
            progressing.reason.as_str(),
            crate::time::seconds(&progressing.last_transition_time)
        ),
        (RENDER_FAILED, NOW + 200)
    );
}
