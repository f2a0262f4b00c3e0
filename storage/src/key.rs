//! Storage keys and list scopes.
//!
//! A key is `(logical cluster id, resource, namespace, name)`. The cluster is the stable random id of
//! a logical cluster, never its human path, so moving or renaming a workspace rewrites no data.
//! `resource` is opaque to storage (the server uses `<group>/<resource>`); cluster-scoped objects
//! have an empty namespace.

use crate::error::StorageError;

/// The address of one stored object.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub cluster: String,
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(
        cluster: impl Into<String>,
        resource: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        Self {
            cluster: cluster.into(),
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// Rejects keys no backend can store faithfully: empty required parts and NUL characters
    /// (Postgres `text` cannot hold NUL).
    pub(crate) fn validate(&self) -> Result<(), StorageError> {
        for (part, value, required) in [
            ("cluster", &self.cluster, true),
            ("resource", &self.resource, true),
            ("namespace", &self.namespace, false),
            ("name", &self.name, true),
        ] {
            if required && value.is_empty() {
                return Err(StorageError::InvalidKey(format!(
                    "{part} must not be empty"
                )));
            }
            if value.contains('\0') {
                return Err(StorageError::InvalidKey(format!(
                    "{part} must not contain NUL"
                )));
            }
        }
        Ok(())
    }

    /// The position of this key in list order within one resource.
    pub(crate) fn position(&self) -> ListPosition {
        ListPosition {
            cluster: self.cluster.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }
}

/// Which objects of one resource a list or watch covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListScope {
    pub resource: String,
    /// `None`: every logical cluster of the shard (wildcard).
    pub cluster: Option<String>,
    /// `None`: every namespace (and cluster-scoped objects).
    pub namespace: Option<String>,
}

impl ListScope {
    /// One resource in one logical cluster, all namespaces.
    pub fn cluster(cluster: impl Into<String>, resource: impl Into<String>) -> Self {
        Self {
            resource: resource.into(),
            cluster: Some(cluster.into()),
            namespace: None,
        }
    }

    /// One resource in one namespace of one logical cluster.
    pub fn namespace(
        cluster: impl Into<String>,
        resource: impl Into<String>,
        namespace: impl Into<String>,
    ) -> Self {
        Self {
            resource: resource.into(),
            cluster: Some(cluster.into()),
            namespace: Some(namespace.into()),
        }
    }

    /// One resource across every logical cluster of the shard.
    pub fn all_clusters(resource: impl Into<String>) -> Self {
        Self {
            resource: resource.into(),
            cluster: None,
            namespace: None,
        }
    }

    pub fn contains(&self, key: &ObjectKey) -> bool {
        key.resource == self.resource
            && self.cluster.as_ref().is_none_or(|c| *c == key.cluster)
            && self.namespace.as_ref().is_none_or(|n| *n == key.namespace)
    }
}

/// A point in list order: lists are sorted by `(cluster, namespace, name)` in byte order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ListPosition {
    pub cluster: String,
    pub namespace: String,
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_matches_only_its_resource_cluster_and_namespace() {
        let key = ObjectKey::new("c1", "core/configmaps", "default", "a");
        assert!(ListScope::cluster("c1", "core/configmaps").contains(&key));
        assert!(ListScope::namespace("c1", "core/configmaps", "default").contains(&key));
        assert!(ListScope::all_clusters("core/configmaps").contains(&key));
        assert!(!ListScope::cluster("c2", "core/configmaps").contains(&key));
        assert!(!ListScope::namespace("c1", "core/configmaps", "other").contains(&key));
        assert!(!ListScope::cluster("c1", "core/secrets").contains(&key));
    }

    #[test]
    fn keys_with_nul_or_missing_parts_are_rejected() {
        assert!(ObjectKey::new("c", "r", "", "n").validate().is_ok());
        assert!(ObjectKey::new("", "r", "", "n").validate().is_err());
        assert!(ObjectKey::new("c", "r", "", "").validate().is_err());
        assert!(ObjectKey::new("c", "r", "a\0b", "n").validate().is_err());
    }

    #[test]
    fn list_order_is_cluster_then_namespace_then_name() {
        let a = ObjectKey::new("a", "r", "z", "z").position();
        let b = ObjectKey::new("b", "r", "a", "a").position();
        let c = ObjectKey::new("b", "r", "a", "b").position();
        assert!(a < b && b < c);
    }
}
