//! What resources a workspace serves: the built-in kinds (one shared table, so a workspace
//! costs nothing here) and the kinds its CustomResourceDefinitions define ([`custom`]).
//!
//! A resource's storage key is `<group>/<plural>`, with `core` for the legacy group; every
//! version of a resource shares it.

pub mod builtin;
pub mod conversion;
pub mod crd;
pub mod custom;
pub mod strategy;

use std::cmp::Ordering;
use std::sync::{Arc, LazyLock};

use crate::shards::ShardMap;

pub use custom::{CustomVersion, PrinterColumn};

/// One served resource of one API group version.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceType {
    /// Empty for the legacy core group.
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub subresources: Subresources,
    /// Stored with another resource (`core/events` for `events.k8s.io` events) and
    /// converted on the way in and out ([`conversion`]).
    pub stored_as: Option<String>,
    /// Set for the resources of a CustomResourceDefinition.
    pub custom: Option<Arc<CustomVersion>>,
}

/// The subresources a resource serves besides itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Subresources {
    /// `/status`: writes to the main resource keep the stored status, writes here keep
    /// everything but the status.
    pub status: bool,
    /// `/scale`: an `autoscaling/v1` Scale over these fields.
    pub scale: Option<ScalePaths>,
}

/// Where a custom resource keeps what its Scale shows, as JSON paths (`.spec.replicas`).
#[derive(Clone, Debug, PartialEq)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// Every resource supports every verb.
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
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The resource part of storage keys.
    pub fn storage_resource(&self) -> String {
        if let Some(stored_as) = &self.stored_as {
            return stored_as.clone();
        }
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        format!("{group}/{}", self.plural)
    }

    /// Fields a field selector may name for this kind, as kube-apiserver allows them.
    pub fn selectable_fields(&self) -> Vec<&str> {
        let mut fields = vec!["metadata.name", "metadata.namespace"];
        if let Some(custom) = &self.custom {
            fields.extend(custom.selectable_fields.iter().map(String::as_str));
            return fields;
        }
        match (self.group.as_str(), self.kind.as_str()) {
            ("", "Secret") => fields.push("type"),
            ("", "Namespace") => fields.push("status.phase"),
            ("", "Event") => fields.extend([
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
            ]),
            _ => {}
        }
        fields
    }

    /// The verbs discovery lists: the authorization reviews are create-only.
    pub fn verbs(&self) -> &'static [&'static str] {
        if self.is_stored() {
            VERBS
        } else {
            &["create"]
        }
    }

    /// Whether objects of this resource are kept in storage: not the authorization reviews
    /// and SelfSubjectReviews, which are answered and forgotten (controllers need not list or
    /// watch them).
    pub fn is_stored(&self) -> bool {
        self.custom.is_some()
            || !matches!(
                self.group.as_str(),
                "authorization.k8s.io" | "authentication.k8s.io"
            )
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Whether this is the built-in `kind` of the core or another group.
    pub fn is(&self, group: &str, kind: &str) -> bool {
        self.custom.is_none() && self.group == group && self.kind == kind
    }
}

static BUILTIN: LazyLock<Vec<Arc<ResourceType>>> =
    LazyLock::new(|| builtin::table().into_iter().map(Arc::new).collect());

/// The built-in resources, the same in every workspace.
pub fn builtin() -> &'static [Arc<ResourceType>] {
    &BUILTIN
}

/// Finds a built-in resource.
pub fn lookup_builtin(
    group: &str,
    version: &str,
    plural: &str,
) -> Option<&'static Arc<ResourceType>> {
    BUILTIN
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resources of every workspace: the built-ins and each workspace's custom resources.
pub struct Registry {
    custom: custom::CustomResources,
}

impl Registry {
    pub fn new(shards: Arc<ShardMap>) -> Arc<Registry> {
        Arc::new(Registry {
            custom: custom::CustomResources::new(shards),
        })
    }

    /// Keeps the custom-resource cache fresh by watching the CustomResourceDefinitions of
    /// every workspace, one watch per shard.
    pub fn spawn_watch(self: &Arc<Self>) {
        for shard in self.custom.shards().iter() {
            let (registry, store) = (self.clone(), shard.store.clone());
            tokio::spawn(async move { registry.custom.watch(store).await });
        }
    }

    /// Finds the resource a request for `group`/`version`/`plural` in `cluster` addresses.
    pub async fn lookup(
        &self,
        cluster: &str,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<Arc<ResourceType>> {
        if let Some(rt) = lookup_builtin(group, version, plural) {
            return Some(rt.clone());
        }
        self.custom.lookup(cluster, group, version, plural).await
    }

    /// Every resource `cluster` serves: built-ins first, then its custom resources.
    pub async fn resources(&self, cluster: &str) -> Vec<Arc<ResourceType>> {
        let mut all = BUILTIN.clone();
        all.extend(self.custom.resources(cluster).await);
        all
    }

    /// Forgets what is cached of `cluster`'s custom resources, so the next request reads them
    /// again: after a CRD write on this replica, before the watch reports it.
    pub fn invalidate(&self, cluster: &str) {
        self.custom.invalidate(cluster);
    }
}

/// Kubernetes' version order: GA before beta before alpha, higher numbers first, then
/// anything else alphabetically. The first version of a group is its preferred one.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn rank(v: &str) -> Option<(u8, u64, u64)> {
        let rest = v.strip_prefix('v')?;
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let major: u64 = rest[..digits].parse().ok()?;
        let tail = &rest[digits..];
        if tail.is_empty() {
            return Some((3, major, 0));
        }
        for (prefix, level) in [("beta", 2), ("alpha", 1)] {
            if let Some(n) = tail.strip_prefix(prefix) {
                return Some((level, major, n.parse().ok()?));
            }
        }
        None
    }
    match (rank(a), rank(b)) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// The API groups among `resources`, each with its versions in preference order, in the
/// order the groups first appear (core group excluded).
pub fn groups(resources: &[Arc<ResourceType>]) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for r in resources.iter().filter(|r| !r.group.is_empty()) {
        match groups.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) if !versions.contains(&r.version) => {
                versions.push(r.version.clone())
            }
            Some(_) => {}
            None => groups.push((r.group.clone(), vec![r.version.clone()])),
        }
    }
    for (_, versions) in &mut groups {
        versions.sort_by(|a, b| compare_versions(a, b));
    }
    groups
}

/// The resources of one group version.
pub fn resources_of<'a>(
    resources: &'a [Arc<ResourceType>],
    group: &str,
    version: &str,
) -> Vec<&'a Arc<ResourceType>> {
    resources
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_and_keys() {
        let cm = lookup_builtin("", "v1", "configmaps").unwrap();
        assert_eq!(cm.kind, "ConfigMap");
        assert_eq!(cm.api_version(), "v1");
        assert_eq!(cm.storage_resource(), "core/configmaps");
        let lease = lookup_builtin("coordination.k8s.io", "v1", "leases").unwrap();
        assert_eq!(lease.api_version(), "coordination.k8s.io/v1");
        assert_eq!(lease.storage_resource(), "coordination.k8s.io/leases");
        assert!(lookup_builtin("", "v1", "pods").is_none());
        assert!(groups(builtin())
            .iter()
            .any(|(g, v)| g == "rbac.authorization.k8s.io" && v == &["v1"]));
    }

    #[test]
    fn names_are_unique_per_group_version() {
        for (i, a) in builtin().iter().enumerate() {
            for b in &builtin()[i + 1..] {
                assert!(
                    !(a.group == b.group && a.version == b.version && a.plural == b.plural),
                    "{} twice",
                    a.plural
                );
            }
        }
    }

    #[test]
    fn versions_sort_as_kubernetes_does() {
        let mut versions = vec!["v1alpha1", "foo", "v1beta2", "v2", "v1", "v1beta1", "v10"];
        versions.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(
            versions,
            ["v10", "v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]
        );
    }
}
