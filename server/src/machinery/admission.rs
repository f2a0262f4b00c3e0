//! Admission every kind shares: new objects need an existing namespace that is not
//! terminating. A kind's own admission (a Workspace's placement, RBAC escalation) is its
//! `Kind::admit`.

use serde_json::Value;
use trellis_storage::{ObjectKey, StorageError};

use crate::endpoints::rest::Target;
use crate::machinery::deletion;
use crate::machinery::status::{Status, Subject};
use crate::tenancy::namespace_cache::Admission;

/// Like kube-apiserver's NamespaceLifecycle admission: new objects need an existing namespace
/// that is not being terminated.
pub async fn check_namespace_accepts_content(target: &Target<'_>) -> Result<(), Status> {
    let Some(namespace) = target.namespace.filter(|_| target.rt.namespaced) else {
        return Ok(());
    };
    let terminating = || {
        Status::forbidden(
            &target.subject(),
            &format!("unable to create new content in namespace {namespace} because it is being terminated"),
        )
    };
    // Usually answered from the hub's own view of the namespaces, without a storage read.
    match target
        .shard
        .namespaces
        .admission(&target.shard.store, target.cluster, namespace)
        .await
    {
        Admission::Accepts => return Ok(()),
        Admission::Terminating => return Err(terminating()),
        Admission::Unknown => {}
    }
    let key = ObjectKey::new(target.cluster, "core/namespaces", "", namespace);
    let stored = match target.shard.store.get(&key).await {
        Ok(stored) => stored,
        Err(StorageError::NotFound(_)) => {
            return Err(Status::not_found(&Subject {
                group: "",
                resource: "namespaces",
                name: namespace,
            }))
        }
        Err(e) => return Err(target.storage_error(&e)),
    };
    let object: Value = serde_json::from_slice(&stored.value)
        .map_err(|e| Status::internal(format!("stored namespace is not JSON: {e}")))?;
    if deletion::is_deleting(&object) {
        return Err(terminating());
    }
    Ok(())
}
