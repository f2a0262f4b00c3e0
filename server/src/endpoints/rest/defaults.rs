//! Objects every workspace has without storing them: the server's default ClusterRoles and
//! ClusterRoleBindings (`security::authz::defaults`), one shared copy in memory. Reads show
//! them beside the stored objects, and a stored object of the same name wins, as it does for
//! authorization; an aggregated role (`admin`, `edit`, `view`) shows the rules it holds in the
//! workspace. The first write to a default stores it; from then on it is an ordinary object.

use std::collections::HashSet;

use serde_json::Value;

use super::Target;
use crate::machinery::status::Status;
use crate::security::authz::rbac::RoleRef;
use trellis_storage::StorageError;

/// The defaults of the target's resource, as stored (none for most resources).
fn of<'t>(target: &'t Target) -> &'t [Value] {
    if target.namespace.is_some() || target.rt.custom.is_some() {
        return &[];
    }
    target
        .state
        .default_roles
        .objects(&target.rt.storage_resource())
}

/// Whether the target's resource has defaults.
pub(super) fn exist(target: &Target) -> bool {
    !of(target).is_empty()
}

/// The default named `name`, if the resource has one.
pub(super) fn named(target: &Target, name: &str) -> Option<Value> {
    of(target)
        .iter()
        .find(|d| d.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
        .map(|d| in_workspace(target, d))
}

/// The defaults not shadowed by a stored object of the same name: by the names a list read
/// (`stored`, when it read them all), or else by asking the store.
pub(super) async fn unshadowed(
    target: &Target<'_>,
    stored: Option<&HashSet<String>>,
) -> Result<Vec<Value>, Status> {
    let mut out = Vec::new();
    for default in of(target) {
        let name = default
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let replaced = match stored {
            Some(stored) => stored.contains(name),
            None => match target.shard.store.get(&target.key(name)).await {
                Err(StorageError::NotFound(_)) => false,
                Ok(_) => true,
                Err(e) => return Err(target.storage_error(&e)),
            },
        };
        if !replaced {
            out.push(in_workspace(target, default));
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
