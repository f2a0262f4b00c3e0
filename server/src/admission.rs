//! Admission: the checks and defaults a write gets after the generic metadata rules and
//! before storage, when they need to look at other objects (the kind's own rules on the
//! object alone are its strategy, in `registry::strategy`).
//!
//! - namespace lifecycle: new objects need an existing namespace that is not terminating;
//! - workspaces: a new Workspace's type must fit its parent's, and gets its logical cluster.

use serde_json::Value;
use trellis_storage::{ObjectKey, StorageError};

use crate::deletion;
use crate::namespace_cache::Admission;
use crate::registry::builtin::TENANCY;
use crate::rest::Target;
use crate::selectors::LabelSelector;
use crate::status::{Status, StatusCause, Subject};
use crate::workspaces::{self, Unroutable};

/// Admits a create of `object` through `target`, completing it.
pub async fn admit_create(target: &Target<'_>, object: &mut Value) -> Result<(), Status> {
    check_namespace_accepts_content(target).await?;
    if target.rt.is(TENANCY, "Workspace") {
        let parent_type = match target.state.workspaces.type_of(target.cluster).await {
            Ok(t) => t,
            Err(Unroutable::Unavailable(e)) => return Err(Status::unavailable(e, 1)),
            Err(_) => "universal".to_string(),
        };
        let mut causes = workspaces::prepare_create(object, &parent_type);
        let selector = object.pointer("/spec/location/selector").cloned();
        if let Some(Err(e)) = selector.as_ref().map(LabelSelector::from_structured) {
            causes.push(StatusCause {
                kind: "FieldValueInvalid".into(),
                message: format!("Invalid value: {e}"),
                field: "spec.location.selector".into(),
            });
        }
        crate::authz::owner::record(object);
        if !causes.is_empty() {
            return Err(Status::invalid(&target.subject(), &target.rt.kind, causes));
        }
        // Placed now, in the same write; with no shard matching, the workspace stays
        // Scheduling and the controller tries again.
        let cluster = object
            .pointer("/spec/cluster")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match target.state.shards.place(&cluster, selector.as_ref()).await {
            Ok(Some(shard)) => object["status"]["shard"] = Value::String(shard),
            Ok(None) => {}
            Err(e) => return Err(target.storage_error(&e)),
        }
    }
    Ok(())
}

/// Like kube-apiserver's NamespaceLifecycle admission: new objects need an existing namespace
/// that is not being terminated.
async fn check_namespace_accepts_content(target: &Target<'_>) -> Result<(), Status> {
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
