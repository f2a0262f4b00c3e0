//! Objects every workspace has without storing them: the server's default ClusterRoles and
//! ClusterRoleBindings (`security::authz::defaults`), one shared copy in memory. Reads show
//! them beside the stored objects, and a stored object of the same name wins, as it does for
//! authorization; an aggregated role (`admin`, `edit`, `view`) shows the rules it holds in the
//! workspace. The first write to a default stores it; from then on it is an ordinary object.

use serde_json::Value;

use super::Target;
use crate::machinery::status::Status;
use crate::security::authz::rbac::RoleRef;
use trellis_storage::StorageError;

/// The defaults of the target's resource, as its workspace sees them (none for most).
pub(super) fn all(target: &Target) -> Vec<Value> {
    if target.namespace.is_some() || target.rt.custom.is_some() {
        return Vec::new();
    }
    let defaults = target
        .state
        .default_roles
        .objects(&target.rt.storage_resource());
    defaults.iter().map(|d| in_workspace(target, d)).collect()
}

/// The default named `name`, if the resource has one.
pub(super) fn named(target: &Target, name: &str) -> Option<Value> {
    if target.namespace.is_some() || target.rt.custom.is_some() {
        return None;
    }
    target
        .state
        .default_roles
        .objects(&target.rt.storage_resource())
        .iter()
        .find(|d| d.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
        .map(|d| in_workspace(target, d))
}

/// The defaults not shadowed by a stored object of the same name.
pub(super) async fn unshadowed(target: &Target<'_>) -> Result<Vec<Value>, Status> {
    let mut out = Vec::new();
    for object in all(target) {
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match target.shard.store.get(&target.key(name)).await {
            Err(StorageError::NotFound(_)) => out.push(object),
            Ok(_) => {}
            Err(e) => return Err(target.storage_error(&e)),
        }
    }
    Ok(out)
}

/// A default with an aggregation rule holds, in a workspace, the rules of the roles its
/// selectors pick there (defaults and stored roles alike).
fn in_workspace(target: &Target, default: &Value) -> Value {
    let mut object = default.clone();
    if object.get("aggregationRule").is_none() {
        return object;
    }
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let rules = target
        .state
        .authorizer
        .cache_of_shard(&target.shard.name)
        .and_then(|cache| cache.role_rules(target.cluster, "", &RoleRef::ClusterRole(name)));
    if let Some(rules) = rules {
        object["rules"] = serde_json::to_value(&*rules).unwrap_or(Value::Array(Vec::new()));
    }
    object
}
