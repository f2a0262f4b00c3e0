//! What a new hub contains before anyone writes: like kube-apiserver, the namespaces
//! `default`, `kube-system`, `kube-public` and `kube-node-lease`.

use bytes::Bytes;
use serde_json::json;
use trellis_storage::{ObjectKey, StorageError, Store};

use crate::object_meta::now_rfc3339;
use crate::registry::lookup_builtin;

pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Creates whichever system namespaces are missing in `cluster`. Safe to run on every start
/// and on every replica at once.
pub async fn ensure_namespaces(store: &Store, cluster: &str) -> Result<(), StorageError> {
    let Some(rt) = lookup_builtin("", "v1", "namespaces") else {
        return Ok(());
    };
    for name in SYSTEM_NAMESPACES {
        let uid = uuid::Uuid::new_v4().to_string();
        let object = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "uid": uid,
                "creationTimestamp": now_rfc3339(),
                "labels": {"kubernetes.io/metadata.name": name},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        let key = ObjectKey::new(cluster, rt.storage_resource(), "", *name);
        match store
            .create(key, uid, Bytes::from(object.to_string()))
            .await
        {
            Ok(_) | Err(StorageError::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
