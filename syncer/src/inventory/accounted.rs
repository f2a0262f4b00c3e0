//! Which Placements the inventory already counts (`status.accounted` of the SyncTarget), so
//! the hub's ledger stops holding their GPUs: it holds a Placement's GPUs from the booking it
//! wrote until the syncer reports that booking here (see the hub's `fleet/ledger.rs`).
//!
//! A Placement is accounted with booking B when the Deployment the syncer applied for it was
//! rendered from booking B, and at least `replicas` of its pods made from the current pod
//! template are bound to nodes and not being deleted: their GPUs are then subtracted in the
//! same reading. Reported too early (a replica still pending), the hub would count its GPUs
//! nowhere and could overbook; reported late, it only holds them a little longer. Pods of an
//! older template do not count, so a rollout is accounted once the new pods are bound.

use std::collections::BTreeMap;

use trellis_apis::compute::AccountedPlacement;

use super::pods::PodGpus;

/// What the syncer applied for one Placement, as its edge Deployment records it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Applied {
    /// The Placement's name.
    pub placement: String,
    /// The Placement's `spec.booking` the Deployment was rendered from.
    pub booking: i64,
    /// Replicas the Deployment asks for.
    pub replicas: i32,
    /// The hash of the pod template the Deployment was rendered with.
    pub template: String,
}

/// The `accounted` list: Placements with all replicas bound, sorted by name.
pub fn accounted(applied: &[Applied], pods: &[PodGpus]) -> Vec<AccountedPlacement> {
    let mut bound: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for pod in pods.iter().filter(|p| p.active && !p.deleting) {
        if let (Some(placement), Some(template)) = (&pod.placement, &pod.template) {
            *bound.entry((placement, template)).or_default() += 1;
        }
    }
    let mut out: Vec<AccountedPlacement> = applied
        .iter()
        .filter(|a| a.booking > 0)
        .filter(|a| {
            let have = bound
                .get(&(a.placement.as_str(), a.template.as_str()))
                .copied()
                .unwrap_or(0);
            have >= i64::from(a.replicas)
        })
        .map(|a| AccountedPlacement {
            placement: a.placement.clone(),
            booking: a.booking,
        })
        .collect();
    out.sort_by(|a, b| a.placement.cmp(&b.placement));
    out
}

impl Applied {
    /// What the syncer applied, from the edge Deployment it made (`None` if not its own).
    pub fn from_deployment(deployment: &k8s_openapi::api::apps::v1::Deployment) -> Option<Applied> {
        use crate::naming::{BOOKING_ANNOTATION, PLACEMENT_LABEL};
        use crate::render::TEMPLATE_HASH_ANNOTATION;
        let meta = &deployment.metadata;
        let annotations = meta.annotations.as_ref()?;
        Some(Applied {
            placement: meta.labels.as_ref()?.get(PLACEMENT_LABEL)?.clone(),
            booking: annotations.get(BOOKING_ANNOTATION)?.parse().ok()?,
            replicas: deployment.spec.replicas.unwrap_or(1),
            template: annotations.get(TEMPLATE_HASH_ANNOTATION)?.clone(),
        })
    }
}
