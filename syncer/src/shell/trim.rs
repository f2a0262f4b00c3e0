//! What the reflectors keep of the objects they hold whole (the syncer's Deployments, DRA
//! slices and claims): managed fields and what no decision reads are dropped as each object
//! arrives. Nodes and Pods, far more numerous, are not kept as objects at all
//! ([`super::summaries`]).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::resource::v1::{ResourceClaim, ResourceSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn common(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    meta.owner_references = None;
    meta.finalizers = None;
    meta.generate_name = None;
}

/// A Deployment the syncer made: its metadata and counts, not its pod template.
pub fn deployment(deployment: &mut Deployment) {
    common(&mut deployment.metadata);
    deployment.spec.template = Default::default();
    if let Some(status) = deployment.status.as_mut() {
        status.conditions = None;
    }
}

/// A ResourceSlice: all of it but managed fields (devices are what it is for).
pub fn resource_slice(slice: &mut ResourceSlice) {
    common(&mut slice.metadata);
}

/// A ResourceClaim: its allocation, not its request.
pub fn resource_claim(claim: &mut ResourceClaim) {
    common(&mut claim.metadata);
    claim.spec = Default::default();
    if let Some(status) = claim.status.as_mut() {
        status.reserved_for = None;
        status.devices = None;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::inventory::accounted::Applied;

    #[test]
    fn a_trimmed_deployment_still_says_what_was_applied() {
        let mut d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "generation": 2,
                "labels": {"trellis.dev/placement": "p"},
                "annotations": {"trellis.dev/booking": "7", "trellis.dev/template-hash": "t"},
                "managedFields": [{"manager": "trellis-syncer"}]},
            "spec": {"replicas": 2, "selector": {},
                "template": {"spec": {"containers": [{"name": "runtime", "image": "i"}]}}},
            "status": {"replicas": 2, "readyReplicas": 1, "observedGeneration": 2,
                "conditions": [{"type": "Available", "status": "True"}]},
        }))
        .expect("deployment");
        let before = Applied::from_deployment(&d);
        deployment(&mut d);
        assert_eq!(Applied::from_deployment(&d), before);
        assert!(before.is_some());
        let kept = serde_json::to_value(&d).expect("json");
        assert!(kept["metadata"].get("managedFields").is_none());
        assert!(kept["spec"]["template"].get("spec").is_none());
        assert_eq!(kept["status"]["readyReplicas"], 1);
    }
}
