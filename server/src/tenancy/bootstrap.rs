//! What a new hub contains before anyone writes: like kube-apiserver, the namespaces
//! `default`, `kube-system`, `kube-public` and `kube-node-lease`; like kcp, the root
//! workspace's LogicalCluster and the built-in WorkspaceTypes.

use bytes::Bytes;
use serde_json::json;
use trellis_storage::{ObjectKey, StorageError, Store};

use crate::machinery::object_meta::now_rfc3339;
use crate::registry::ResourceType;
use crate::tenancy::workspaces::ROOT_CLUSTER;

pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Creates whichever system namespaces are missing in `cluster`. Safe to run on every start
/// and on every replica at once.
pub async fn ensure_namespaces(store: &Store, cluster: &str) -> Result<(), StorageError> {
    create_namespaces(store, cluster, SYSTEM_NAMESPACES).await
}

/// Creates each of `names` in `cluster` that is missing.
pub async fn create_namespaces(
    store: &Store,
    cluster: &str,
    names: &[&str],
) -> Result<(), StorageError> {
    // The Namespace kind's rules (labels, finalizer, phase): the same in every server.
    let rt = ResourceType::of_kind(
        std::sync::Arc::new(crate::kinds::core::Namespace),
        None,
        None,
    );
    for name in names {
        let object = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": {"kubernetes.io/metadata.name": name},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        let key = ObjectKey::new(cluster, rt.storage_resource(), "", *name);
        create_missing(store, key, object).await?;
    }
    Ok(())
}

/// Creates `object` at `key` with a new uid and creation time, unless something is there.
pub async fn create_missing(
    store: &Store,
    key: ObjectKey,
    mut object: serde_json::Value,
) -> Result<(), StorageError> {
    let uid = uuid::Uuid::new_v4().to_string();
    object["metadata"]["uid"] = json!(uid);
    object["metadata"]["creationTimestamp"] = json!(now_rfc3339());
    match store
        .create(key, uid, Bytes::from(object.to_string()))
        .await
    {
        Ok(_) | Err(StorageError::AlreadyExists(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates the root workspace's own objects that are missing. Safe to repeat.
pub async fn ensure_root(store: &Store) -> Result<(), StorageError> {
    let mut objects: Vec<(&str, String, serde_json::Value)> = vec![(
        crate::tenancy::workspaces::index::LOGICAL_CLUSTERS,
        "cluster".to_string(),
        json!({
            "apiVersion": "core.trellis.dev/v1alpha1",
            "kind": "LogicalCluster",
            "metadata": {"name": "cluster", "annotations": {trellis_apis::PATH_ANNOTATION: ROOT_CLUSTER}},
            "spec": {},
            "status": {"phase": "Ready"},
        }),
    )];
    for t in crate::tenancy::workspaces::types::BUILTIN_TYPES {
        objects.push((
            "tenancy.trellis.dev/workspacetypes",
            t.name.to_string(),
            t.object(),
        ));
    }
    for (resource, name, object) in objects {
        create_missing(
            store,
            ObjectKey::new(ROOT_CLUSTER, resource, "", name),
            object,
        )
        .await?;
    }
    Ok(())
}

/// Lists each shard as a `Shard` object in the root workspace (creating the missing ones),
/// its database shown without credentials.
pub async fn ensure_shards(store: &Store, shards: &[(String, String)]) -> Result<(), StorageError> {
    for (name, location) in shards {
        let object = json!({
            "apiVersion": "core.trellis.dev/v1alpha1",
            "kind": "Shard",
            "metadata": {"name": name},
            "spec": {"database": crate::tenancy::shards::redacted_location(location)},
            "status": {"workspaces": 0},
        });
        create_missing(
            store,
            crate::tenancy::shards::ShardMap::object_key(name),
            object,
        )
        .await?;
    }
    Ok(())
}
