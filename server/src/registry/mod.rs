//! What resources a workspace serves: the server's built-in kinds (its [`Scheme`], one shared
//! copy, so a workspace costs nothing here) and the kinds its CustomResourceDefinitions define
//! ([`custom`]). A [`ResourceType`] is one served resource; generic code asks it, and it asks
//! its kind ([`crate::kinds::Kind`]) or its CRD.
//!
//! A resource's storage key is `<group>/<plural>`, with `core` for the legacy group; every
//! version of a resource shares it.

pub mod conversion;
pub mod resource_type;
pub mod scheme;

use std::cmp::Ordering;
use std::sync::Arc;

use crate::tenancy::shards::ShardMap;

pub use resource_type::{PrinterColumn, ResourceType, ScalePaths};
pub use scheme::Scheme;

/// The resources of every workspace: the built-ins and each workspace's custom resources.
pub struct Registry {
    scheme: Arc<Scheme>,
    custom: crate::crds::served::CustomResources,
}

impl Registry {
    pub fn new(scheme: Arc<Scheme>, shards: Arc<ShardMap>) -> Arc<Registry> {
        Arc::new(Registry {
            scheme,
            custom: crate::crds::served::CustomResources::new(shards),
        })
    }

    /// The server's built-in kinds.
    pub fn scheme(&self) -> &Arc<Scheme> {
        &self.scheme
    }

    /// What keeps the custom-resource cache fresh: a watch of the CustomResourceDefinitions of
    /// every workspace per shard, for the caller to run.
    pub fn watches(
        self: &Arc<Self>,
    ) -> Vec<impl std::future::Future<Output = ()> + Send + 'static> {
        self.custom
            .shards()
            .iter()
            .map(|shard| {
                let (registry, store) = (self.clone(), shard.store.clone());
                async move { registry.custom.watch(store).await }
            })
            .collect()
    }

    /// Finds the resource a request for `group`/`version`/`plural` in `cluster` addresses.
    pub async fn lookup(
        &self,
        cluster: &str,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<Arc<ResourceType>> {
        if let Some(rt) = self.scheme.lookup(group, version, plural) {
            return Some(rt.clone());
        }
        self.custom.lookup(cluster, group, version, plural).await
    }

    /// Every resource `cluster` serves: built-ins first, then its custom resources.
    pub async fn resources(&self, cluster: &str) -> Vec<Arc<ResourceType>> {
        let mut all = self.scheme.resources().to_vec();
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
    use crate::registry::scheme::{test_lookup as lookup_builtin, test_scheme as test_hub};

    fn builtin() -> &'static [Arc<ResourceType>] {
        test_hub().resources()
    }

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
            .any(|(g, v)| g == "coordination.k8s.io" && v == &["v1"]));
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
