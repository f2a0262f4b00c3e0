//! What resources a workspace serves: the built-in kinds (one shared static table, so a
//! workspace costs nothing here) and, later, the kinds its CRDs define.
//!
//! A resource's storage key is `<group>/<plural>`, with `core` for the legacy group.

mod builtin;
pub mod strategy;

pub use builtin::BUILTIN;

/// One served resource of one API group version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceType {
    /// Empty for the legacy core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
}

/// Every built-in resource supports every verb.
pub const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

impl ResourceType {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The resource part of storage keys.
    pub fn storage_resource(&self) -> String {
        let group = if self.group.is_empty() {
            "core"
        } else {
            self.group
        };
        format!("{group}/{}", self.plural)
    }

    /// Fields a field selector may name for this kind, as kube-apiserver allows them.
    pub fn selectable_fields(&self) -> &'static [&'static str] {
        match (self.group, self.kind) {
            ("", "Secret") => &["metadata.name", "metadata.namespace", "type"],
            ("", "Namespace") => &["metadata.name", "metadata.namespace", "status.phase"],
            ("", "Event") => &[
                "metadata.name",
                "metadata.namespace",
                "involvedObject.apiVersion",
                "involvedObject.fieldPath",
                "involvedObject.kind",
                "involvedObject.name",
                "involvedObject.namespace",
                "involvedObject.resourceVersion",
                "involvedObject.uid",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ],
            _ => &["metadata.name", "metadata.namespace"],
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

/// Finds the served resource for a request's group, version and plural.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    BUILTIN
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The API groups served, each with its versions, in discovery order (core group excluded).
pub fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut groups: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for r in BUILTIN.iter().filter(|r| !r.group.is_empty()) {
        match groups.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) if !versions.contains(&r.version) => versions.push(r.version),
            Some(_) => {}
            None => groups.push((r.group, vec![r.version])),
        }
    }
    groups
}

/// The resources of one group version.
pub fn resources_of(group: &str, version: &str) -> Vec<&'static ResourceType> {
    BUILTIN
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_and_keys() {
        let cm = lookup("", "v1", "configmaps").unwrap();
        assert_eq!(cm.kind, "ConfigMap");
        assert_eq!(cm.api_version(), "v1");
        assert_eq!(cm.storage_resource(), "core/configmaps");
        let lease = lookup("coordination.k8s.io", "v1", "leases").unwrap();
        assert_eq!(lease.api_version(), "coordination.k8s.io/v1");
        assert_eq!(lease.storage_resource(), "coordination.k8s.io/leases");
        assert!(lookup("", "v1", "pods").is_none());
        assert!(groups()
            .iter()
            .any(|(g, v)| *g == "rbac.authorization.k8s.io" && v == &["v1"]));
    }

    #[test]
    fn names_are_unique_per_group_version() {
        for (i, a) in BUILTIN.iter().enumerate() {
            for b in &BUILTIN[i + 1..] {
                assert!(
                    !(a.group == b.group && a.version == b.version && a.plural == b.plural),
                    "{} twice",
                    a.plural
                );
            }
        }
    }
}
