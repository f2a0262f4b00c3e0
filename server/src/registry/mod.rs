//! What resources a workspace serves: the server's built-in kinds (its [`Scheme`], one shared
//! copy, so a workspace costs nothing here) and the kinds its CustomResourceDefinitions define
//! ([`custom`]). A [`ResourceType`] is one served resource; generic code asks it, and it asks
//! its kind ([`crate::kinds::Kind`]) or its CRD.
//!
//! A resource's storage key is `<group>/<plural>`, with `core` for the legacy group; every
//! version of a resource shares it.

pub mod conversion;

use std::cmp::Ordering;
use std::sync::Arc;

use serde_json::Value;

use crate::kinds::own_schema::OwnSchema;
use crate::kinds::{Column, Endpoint, Grants, Home, Kind, Names, Scheme};
use crate::machinery::patch::strategic::Strategies;
use crate::machinery::schema::Structural;
use crate::machinery::status::StatusCause;
use crate::tenancy::shards::ShardMap;

pub use crate::crds::served::{CustomVersion, PrinterColumn};

/// One served resource of one API group version.
#[derive(Clone)]
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
    /// Set for the built-in kinds: their rules.
    pub kind_rules: Option<Arc<dyn Kind>>,
    /// The OpenAPI component schema of a built-in kind (`io.k8s.api.core.v1.ConfigMap`).
    pub schema_name: Option<String>,
    /// Our own kinds' schema, read as a CRD's is.
    pub own_schema: Option<Arc<OwnSchema>>,
}

impl std::fmt::Debug for ResourceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceType")
            .field("group", &self.group)
            .field("version", &self.version)
            .field("plural", &self.plural)
            .finish_non_exhaustive()
    }
}

impl PartialEq for ResourceType {
    fn eq(&self, other: &Self) -> bool {
        self.group == other.group
            && self.version == other.version
            && self.kind == other.kind
            && self.plural == other.plural
            && self.singular == other.singular
            && self.namespaced == other.namespaced
            && self.short_names == other.short_names
            && self.categories == other.categories
            && self.subresources == other.subresources
            && self.stored_as == other.stored_as
            && self.custom == other.custom
            && self.schema_name == other.schema_name
    }
}

pub use crate::kinds::{ScalePaths, Subresources};

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

    /// The resource of a built-in kind.
    pub fn of_kind(
        kind: Arc<dyn Kind>,
        schema_name: Option<String>,
        own_schema: Option<Arc<OwnSchema>>,
    ) -> ResourceType {
        let n: Names = kind.names();
        let strings = |s: &[&str]| s.iter().map(|s| s.to_string()).collect();
        ResourceType {
            group: n.group.to_string(),
            version: n.version.to_string(),
            kind: n.kind.to_string(),
            plural: n.plural.to_string(),
            singular: n.kind.to_lowercase(),
            namespaced: n.namespaced,
            short_names: strings(n.short_names),
            categories: strings(n.categories),
            subresources: kind.subresources(),
            stored_as: kind.stored_as().map(str::to_string),
            custom: None,
            kind_rules: Some(kind),
            schema_name,
            own_schema,
        }
    }

    /// Fields a field selector may name for this kind, as kube-apiserver allows them.
    pub fn selectable_fields(&self) -> Vec<&str> {
        let mut fields = vec!["metadata.name", "metadata.namespace"];
        if let Some(custom) = &self.custom {
            fields.extend(custom.selectable_fields.iter().map(String::as_str));
        }
        if let Some(kind) = &self.kind_rules {
            fields.extend(kind.selectable_fields());
        }
        fields
    }

    /// The verbs discovery lists: kinds answered by an endpoint are create-only.
    pub fn verbs(&self) -> &'static [&'static str] {
        if self.is_stored() {
            VERBS
        } else {
            &["create"]
        }
    }

    /// Whether objects of this resource are kept in storage: not the reviews, which are
    /// answered and forgotten (controllers need not list or watch them).
    pub fn is_stored(&self) -> bool {
        self.endpoint().is_none()
    }

    /// What answers a kind that is never stored.
    pub fn endpoint(&self) -> Option<Arc<dyn Endpoint>> {
        self.kind_rules.as_ref().and_then(|k| k.endpoint())
    }

    /// What answers a subresource served by code (`serviceaccounts/token`).
    pub fn endpoint_subresource(&self, name: &str) -> Option<Arc<dyn Endpoint>> {
        self.kind_rules.as_ref().and_then(|k| {
            k.endpoint_subresources()
                .into_iter()
                .find(|(n, _, _)| *n == name)
                .map(|(_, _, endpoint)| endpoint)
        })
    }

    /// Whether objects carry `metadata.generation` (custom resources always do).
    pub fn tracks_generation(&self) -> bool {
        self.custom.is_some()
            || self
                .kind_rules
                .as_ref()
                .is_some_and(|k| k.tracks_generation())
    }

    /// Where this resource's objects are stored.
    pub fn home(&self) -> Home {
        self.kind_rules
            .as_ref()
            .map_or(Home::Workspace, |k| k.home())
    }

    /// The structural schema objects are pruned, defaulted and validated by: a CRD version's,
    /// or one of our own kinds'.
    pub fn structural(&self) -> Option<&Structural> {
        match (&self.custom, &self.own_schema) {
            (Some(custom), _) => custom.structural.as_deref(),
            (None, Some(own)) => Some(&own.structural),
            (None, None) => None,
        }
    }

    /// The OpenAPI v3 schema (as a CRD writes it) of a custom resource or own kind.
    pub fn openapi_schema(&self) -> Option<&Value> {
        match (&self.custom, &self.own_schema) {
            (Some(custom), _) => custom.schema.as_ref(),
            (None, Some(own)) => Some(&own.schema),
            (None, None) => None,
        }
    }

    /// How lists of a built-in kind merge in strategic merge patches.
    pub fn strategies(&self) -> Strategies {
        Strategies::with(
            self.kind_rules
                .as_ref()
                .map_or(&[][..], |k| k.list_merges()),
        )
    }

    /// Normalizes an object before every create and update (then, on creates,
    /// the create-only steps).
    pub fn prepare(&self, object: &mut Value, create: bool) {
        if let Some(kind) = &self.kind_rules {
            kind.prepare(object);
            if create {
                kind.prepare_create(object);
            }
        }
    }

    /// The kind's own rules for a new state of an object.
    pub fn validate(&self, object: &Value, old: Option<&Value>) -> Vec<StatusCause> {
        self.kind_rules
            .as_ref()
            .map(|k| k.validate(object, old))
            .unwrap_or_default()
    }

    /// Table columns and cells of a built-in kind.
    pub fn columns(&self) -> &'static [Column] {
        self.kind_rules
            .as_ref()
            .map_or(crate::kinds::NAME_AGE, |k| k.columns())
    }

    pub fn cells(&self, object: &Value) -> Vec<Value> {
        match &self.kind_rules {
            Some(kind) => kind.cells(object),
            None => vec![
                crate::kinds::cell_text(object, "/metadata/name"),
                crate::kinds::age_cell(object),
            ],
        }
    }

    pub fn grants(&self) -> Grants {
        self.kind_rules
            .as_ref()
            .map(|k| k.grants())
            .unwrap_or_default()
    }

    /// The protobuf converter of this kind, if clients may send it as protobuf.
    pub fn protobuf(&self) -> Option<crate::machinery::protobuf::Converter> {
        self.kind_rules.as_ref().and_then(|k| k.protobuf())
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Whether this is the built-in `kind` of the core or another group.
    pub fn is(&self, group: &str, kind: &str) -> bool {
        self.custom.is_none() && self.group == group && self.kind == kind
    }
}

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
    use crate::kinds::scheme::{lookup_builtin, test_hub};

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
