//! Faults injected through the API, as a user or a test would cause them on a real cluster:
//!
//! - a Node annotated `trellis.dev/fault=NotReady` reports Ready=False (reason
//!   `KubeletNotReady`), `=Unknown` reports Ready=Unknown (`NodeStatusUnknown`, the kubelet
//!   stopped posting); its pods turn unready, and nothing new is scheduled there. Removing the
//!   annotation heals it.
//! - a cordon (`kubectl cordon`, `spec.unschedulable: true`) keeps new pods off the node.
//! - a container whose image matches `--never-pull-image-regex` (by default images of the
//!   reserved `.invalid` domain, e.g. `registry.invalid/model:1`) stays Waiting with reason
//!   `ImagePullBackOff`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The annotation that injects a node fault.
pub const NODE_FAULT: &str = "trellis.dev/fault";

/// The images that never pull unless the command line says otherwise.
pub const DEFAULT_NEVER_PULL: &str = r"^([^/]+\.)?invalid(:\d+)?/";

/// A node's injected fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeFault {
    None,
    NotReady,
    Unknown,
}

/// The fault `meta`'s annotation asks for (unknown values are ignored).
pub fn node_fault(meta: &ObjectMeta) -> NodeFault {
    match meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(NODE_FAULT))
        .map(String::as_str)
    {
        Some("NotReady") => NodeFault::NotReady,
        Some("Unknown") => NodeFault::Unknown,
        _ => NodeFault::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_never_pull_pattern_matches_the_invalid_domain_only() {
        let re = regex::Regex::new(DEFAULT_NEVER_PULL).unwrap();
        assert!(re.is_match("registry.invalid/model:1"));
        assert!(re.is_match("invalid/model"));
        assert!(!re.is_match("nvcr.io/nvidia/tritonserver:25.01"));
        assert!(!re.is_match("nginx"));
    }
}
