//! What the syncer names and marks on the edge cluster.
//!
//! - One namespace per (origin workspace, origin namespace): readable prefix plus a hash of
//!   both ([`edge_namespace`]), so `root:acme:ml`/`default` and `root:acme`/`ml-default` never
//!   meet, and a long path still gives a valid DNS-1123 label.
//! - The Deployment and Service of a Placement take the Placement's name, which the hub
//!   already makes unique per deployment uid and a DNS-1123 label (at most 63 characters).
//! - Everything the syncer creates carries [`MANAGED_BY_LABEL`] = [`MANAGER`] and
//!   [`SYNC_TARGET_LABEL`] = its target: the syncer only ever deletes objects selected by
//!   both, so two syncers sharing a cluster, or anyone else's objects, are never touched.
//!   The origin is carried back as labels where label values can hold it (uid, logical
//!   cluster id, Placement name) and as annotations otherwise (workspace path, namespace,
//!   name).

use std::collections::BTreeMap;

pub use trellis_apis::compute::placement::{
    ORIGIN_CLUSTER_LABEL, ORIGIN_UID_LABEL, PLACEMENT_LABEL, SYNC_TARGET_LABEL,
};
use trellis_apis::compute::Placement;

/// Kubernetes' recommended label naming the tool that manages an object.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`] on the syncer's objects.
pub const MANAGER: &str = "trellis-syncer";
/// Annotation: the origin ModelDeployment's workspace path (`root:acme:ml`).
pub const ORIGIN_WORKSPACE_ANNOTATION: &str = "trellis.dev/origin-workspace";
/// Annotation: the origin ModelDeployment's namespace.
pub const ORIGIN_NAMESPACE_ANNOTATION: &str = "trellis.dev/origin-namespace";
/// Annotation: the origin ModelDeployment's name.
pub const ORIGIN_NAME_ANNOTATION: &str = "trellis.dev/origin-name";
/// Annotation on an edge Deployment: the Placement's `metadata.generation` it was rendered
/// from (its status reports that generation as observed once the cluster has it).
pub const PLACEMENT_GENERATION_ANNOTATION: &str = "trellis.dev/placement-generation";
/// Annotation on an edge Deployment: the Placement's `spec.booking` it was rendered from;
/// reported in the SyncTarget's `status.accounted` once all its replicas are bound.
pub const BOOKING_ANNOTATION: &str = "trellis.dev/booking";

const LABEL_MAX: usize = 63;
const HASH_LEN: usize = 10;

/// The edge namespace for objects of `workspace`/`namespace`.
pub fn edge_namespace(workspace: &str, namespace: &str) -> String {
    let hash = fnv1a64(&[workspace, namespace]);
    let suffix = format!("{:0width$x}", hash >> (64 - 4 * HASH_LEN), width = HASH_LEN);
    let readable: String = format!("{workspace}-{namespace}")
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let budget = LABEL_MAX - 1 - HASH_LEN;
    let cut = &readable[..readable.len().min(budget)];
    let prefix = cut.trim_matches('-');
    if prefix.is_empty() {
        format!("t-{suffix}")
    } else {
        format!("{prefix}-{suffix}")
    }
}

/// The labels selecting everything this syncer owns on its cluster.
pub fn owned_selector(target: &str) -> String {
    format!("{MANAGED_BY_LABEL}={MANAGER},{SYNC_TARGET_LABEL}={target}")
}

/// The labels of every object rendered for `placement` on `target` (also the pods').
pub fn owned_labels(placement: &Placement, target: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert(MANAGED_BY_LABEL.to_string(), MANAGER.to_string());
    labels.insert(SYNC_TARGET_LABEL.to_string(), target.to_string());
    labels.insert(PLACEMENT_LABEL.to_string(), name_of(placement));
    let origin = &placement.spec.origin;
    for (key, value) in [
        (ORIGIN_UID_LABEL, &origin.uid),
        (ORIGIN_CLUSTER_LABEL, &origin.cluster),
    ] {
        if is_label_value(value) {
            labels.insert(key.to_string(), value.clone());
        }
    }
    labels
}

/// The annotations naming the origin of everything rendered for `placement`.
pub fn origin_annotations(placement: &Placement) -> BTreeMap<String, String> {
    let origin = &placement.spec.origin;
    BTreeMap::from([
        (
            ORIGIN_WORKSPACE_ANNOTATION.to_string(),
            origin.workspace.clone(),
        ),
        (
            ORIGIN_NAMESPACE_ANNOTATION.to_string(),
            origin.namespace.clone(),
        ),
        (ORIGIN_NAME_ANNOTATION.to_string(), origin.name.clone()),
    ])
}

/// The Placement's name ("" if it has none, which the hub never writes).
pub fn name_of(placement: &Placement) -> String {
    placement.metadata.name.clone().unwrap_or_default()
}

/// Whether `s` is a DNS-1123 label (what a Service or namespace name must be).
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= LABEL_MAX
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Whether `s` is a DNS-1123 subdomain (what most object names must be).
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Whether `s` may be a label value.
pub fn is_label_value(s: &str) -> bool {
    s.len() <= LABEL_MAX
        && (s.is_empty()
            || (s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
                && s.as_bytes()[0].is_ascii_alphanumeric()
                && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()))
}

/// FNV-1a, 64 bits, over the parts with a NUL between them: stable across Rust releases and
/// processes, unlike the standard library's hasher.
pub fn fnv1a64(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        let separator: &[u8] = if i == 0 { &[] } else { &[0] };
        for b in separator.iter().chain(part.as_bytes()) {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_namespaces_are_readable_distinct_and_valid() {
        let ns = edge_namespace("root:acme:ml", "default");
        assert!(ns.starts_with("root-acme-ml-default-"), "{ns}");
        assert!(is_dns_label(&ns), "{ns}");
        assert_eq!(ns, edge_namespace("root:acme:ml", "default"));
        // The readable parts alike, the origins not: different namespaces.
        assert_ne!(
            edge_namespace("root:acme:ml", "default"),
            edge_namespace("root:acme", "ml-default")
        );
        let long = edge_namespace(
            &format!("root:{}", "x".repeat(200)),
            "a-very-long-namespace",
        );
        assert!(is_dns_label(&long) && long.len() == 63, "{long}");
        let odd = edge_namespace(":::", "---");
        assert!(is_dns_label(&odd), "{odd}");
    }

    #[test]
    fn name_checks() {
        assert!(is_dns_label("eu-1"));
        assert!(!is_dns_label("Eu-1") && !is_dns_label("-a") && !is_dns_label(""));
        assert!(is_dns_subdomain("gpu.nvidia.com"));
        assert!(is_label_value("0b7f3c1e-58a4") && is_label_value(""));
        assert!(!is_label_value("root:acme") && !is_label_value("-a"));
    }
}
