//! What a pod asks of a node, read from its spec: `nvidia.com/gpu` (limits, else requests;
//! containers add up, an init container needs its own at most), its node selector, and whether
//! it may be scheduled at all (not yet bound, not deleted, meant for the default scheduler).

use k8s_openapi::api::core::v1::{Container, Pod};

use super::fit::Demand;
use crate::gpu::labels::GPU_RESOURCE;

/// The scheduler name pods get by default; pods naming another scheduler are left alone.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";

/// Whether the scheduler should place `pod`.
pub fn wants_scheduling(pod: &Pod) -> bool {
    let Some(spec) = &pod.spec else {
        return false;
    };
    let terminal = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed");
    spec.node_name.as_deref().unwrap_or_default().is_empty()
        && pod.metadata.deletion_timestamp.is_none()
        && !terminal
        && spec.scheduler_name.as_deref().unwrap_or(DEFAULT_SCHEDULER) == DEFAULT_SCHEDULER
}

/// The GPUs and node selector of `pod` (claims are resolved by the caller).
pub fn of_pod(pod: &Pod) -> Demand {
    let Some(spec) = &pod.spec else {
        return Demand::default();
    };
    let running: i64 = spec.containers.iter().map(gpus).sum();
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(gpus)
        .max()
        .unwrap_or(0);
    Demand {
        gpus: running.max(init),
        node_selector: spec.node_selector.clone().unwrap_or_default(),
        ..Demand::default()
    }
}

/// The GPUs a pod holds on its node while it runs (what [`of_pod`] asked).
pub fn held_gpus(pod: &Pod) -> i64 {
    of_pod(pod).gpus
}

/// `nvidia.com/gpu` of one container: its limit, else its request. An extended resource is a
/// whole number; anything else can never fit.
fn gpus(container: &Container) -> i64 {
    let resources = container.resources.as_ref();
    let quantity = resources
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get(GPU_RESOURCE))
        .or_else(|| {
            resources
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get(GPU_RESOURCE))
        });
    match quantity {
        None => 0,
        Some(q) => q.0.trim().parse::<i64>().unwrap_or(i64::MAX / 4),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    #[test]
    fn gpus_add_up_over_containers_and_init_containers_take_the_max() {
        let p = pod(json!({
            "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H200"},
            "containers": [
                {"name": "a", "resources": {"limits": {"nvidia.com/gpu": "2"}}},
                {"name": "b", "resources": {"requests": {"nvidia.com/gpu": "1"}}},
                {"name": "c"}],
            "initContainers": [{"name": "i", "resources": {"limits": {"nvidia.com/gpu": "4"}}}]}));
        let demand = of_pod(&p);
        assert_eq!(demand.gpus, 4);
        assert_eq!(
            demand.node_selector["nvidia.com/gpu.product"],
            "NVIDIA-H200"
        );
        assert!(wants_scheduling(&p));
    }

    #[test]
    fn bound_or_foreign_pods_are_not_scheduled() {
        assert!(!wants_scheduling(&pod(
            json!({"nodeName": "n", "containers": []})
        )));
        assert!(!wants_scheduling(&pod(
            json!({"schedulerName": "other", "containers": []})
        )));
    }

    #[test]
    fn a_fractional_gpu_never_fits() {
        let p = pod(json!({"containers": [
            {"name": "a", "resources": {"limits": {"nvidia.com/gpu": "500m"}}}]}));
        assert!(of_pod(&p).gpus > 1_000_000);
    }
}
