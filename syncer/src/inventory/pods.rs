//! What a pod holds and where: the inventory subtracts the GPUs of bound pods that have not
//! terminated (running or still starting; a pod not yet bound holds nothing), whoever owns
//! them; `accounted` counts the bound pods of each Placement.
//!
//! A pod's GPUs are the larger of its containers' sum and its largest init container, as the
//! scheduler counts them (limits, or requests when a container has no limit).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::nodes::{count, GPU_RESOURCE, MIG_RESOURCE_PREFIX};
use crate::naming::PLACEMENT_LABEL;
use crate::render::TEMPLATE_HASH_ANNOTATION;

/// What the inventory needs of one pod.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodGpus {
    /// The node it is bound to.
    pub node: Option<String>,
    /// Bound and neither succeeded nor failed: holds its GPUs (a terminating pod still does).
    pub active: bool,
    /// Being deleted: no longer one of its Placement's replicas.
    pub deleting: bool,
    /// `nvidia.com/gpu` it holds.
    pub gpus: i64,
    /// MIG devices it holds, by profile.
    pub mig: BTreeMap<String, i64>,
    /// The Placement it runs for (the syncer's label), if any.
    pub placement: Option<String>,
    /// The rendered template it was made from (the syncer's annotation), if any.
    pub template: Option<String>,
}

fn resources(container: &Container) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    let Some(resources) = container.resources.as_ref() else {
        return out;
    };
    for map in [resources.requests.as_ref(), resources.limits.as_ref()]
        .into_iter()
        .flatten()
    {
        // Limits come second and win: for extended resources requests equal limits.
        for (name, quantity) in map {
            if name == GPU_RESOURCE || name.starts_with(MIG_RESOURCE_PREFIX) {
                out.insert(name.clone(), count(&quantity.0));
            }
        }
    }
    out
}

impl PodGpus {
    pub fn from_pod(pod: &Pod) -> PodGpus {
        let spec = pod.spec.as_ref();
        let mut sum: BTreeMap<String, i64> = BTreeMap::new();
        for c in spec.map(|s| s.containers.as_slice()).unwrap_or_default() {
            for (name, n) in resources(c) {
                let slot = sum.entry(name).or_default();
                *slot = slot.saturating_add(n);
            }
        }
        for c in spec
            .and_then(|s| s.init_containers.as_deref())
            .unwrap_or_default()
        {
            for (name, n) in resources(c) {
                let slot = sum.entry(name).or_default();
                *slot = (*slot).max(n);
            }
        }
        let node = spec
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty());
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let terminated = matches!(phase, Some("Succeeded") | Some("Failed"));
        let gpus = sum.remove(GPU_RESOURCE).unwrap_or(0);
        let mig = sum
            .into_iter()
            .filter_map(|(name, n)| {
                let profile = name.strip_prefix(MIG_RESOURCE_PREFIX)?;
                (n > 0).then(|| (profile.to_string(), n))
            })
            .collect();
        PodGpus {
            active: node.is_some() && !terminated,
            deleting: pod.metadata.deletion_timestamp.is_some(),
            node,
            gpus,
            mig,
            placement: pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(PLACEMENT_LABEL))
                .cloned(),
            template: pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(TEMPLATE_HASH_ANNOTATION))
                .cloned(),
        }
    }
}
