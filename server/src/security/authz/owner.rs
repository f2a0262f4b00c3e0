//! The creator of a workspace becomes its admin: a Workspace create records who asked in the
//! `tenancy.trellis.dev/owner` annotation (always overwriting what the client sent), and the
//! workspace controller's initialization binds that user to `cluster-admin` inside the new
//! workspace (ClusterRoleBinding `workspace-admin`). Members of `system:masters` need no
//! binding, so none is written for them (a workspace costs one row less).
//!
//! The user reaches the Workspace kind's admission with the request (`rest::Caller`).

use bytes::Bytes;
use serde_json::{json, Value};
use trellis_storage::{ObjectKey, StorageError, Store};

use super::cache::CLUSTER_ROLE_BINDINGS;
use super::defaults::RBAC_GROUP;
use crate::machinery::object_meta::now_rfc3339;
use crate::security::authn::UserInfo;

pub const OWNER_ANNOTATION: &str = "tenancy.trellis.dev/owner";
/// The binding that makes the owner admin of the workspace.
pub const ADMIN_BINDING: &str = "workspace-admin";

/// Records the requesting user as the owner of a Workspace being created.
pub fn record(workspace: &mut Value, user: Option<&UserInfo>) {
    let Some(meta) = workspace.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
    let Some(annotations) = annotations.as_object_mut() else {
        return;
    };
    match user {
        Some(user) => {
            let owner = json!({"username": user.name, "groups": user.groups});
            annotations.insert(OWNER_ANNOTATION.into(), json!(owner.to_string()));
        }
        None => {
            annotations.remove(OWNER_ANNOTATION);
        }
    }
}

/// The owner recorded on a Workspace.
pub fn owner_of(workspace: &Value) -> Option<UserInfo> {
    let text = workspace
        .pointer("/metadata/annotations")?
        .get(OWNER_ANNOTATION)?
        .as_str()?;
    let owner: Value = serde_json::from_str(text).ok()?;
    Some(UserInfo {
        name: owner.get("username")?.as_str()?.to_string(),
        groups: owner
            .get("groups")
            .and_then(Value::as_array)
            .map(|g| {
                g.iter()
                    .filter_map(|g| g.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        ..UserInfo::default()
    })
}

/// What a new workspace gets for its owner: `cluster-admin` inside it. Safe to repeat.
pub async fn initialize_workspace(
    store: &Store,
    cluster: &str,
    workspace: &Value,
) -> Result<(), StorageError> {
    let Some(owner) = owner_of(workspace).filter(|o| !o.is_master()) else {
        return Ok(());
    };
    let uid = uuid::Uuid::new_v4().to_string();
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": ADMIN_BINDING,
            "uid": uid,
            "creationTimestamp": now_rfc3339(),
        },
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": RBAC_GROUP, "kind": "User", "name": owner.name}],
    });
    let key = ObjectKey::new(cluster, CLUSTER_ROLE_BINDINGS, "", ADMIN_BINDING);
    match store
        .create(key, uid, Bytes::from(binding.to_string()))
        .await
    {
        Ok(_) | Err(StorageError::AlreadyExists(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_requesting_user_is_recorded_and_read_back() {
        let alice = UserInfo {
            name: "alice".into(),
            groups: vec!["devs".into()],
            ..UserInfo::default()
        };
        let mut ws =
            json!({"metadata": {"name": "w", "annotations": {OWNER_ANNOTATION: "forged"}}});
        record(&mut ws, Some(&alice));
        assert_eq!(owner_of(&ws), Some(alice));
        // Without a user nobody owns it, whatever the client claimed.
        record(&mut ws, None);
        assert_eq!(owner_of(&ws), None);
    }
}
