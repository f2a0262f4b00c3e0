//! Deleting an object the Kubernetes way, shared by the REST layer and the controllers.
//!
//! An object with finalizers is not removed: it gets a `deletionTimestamp` and stays until its
//! last finalizer is taken off (then the update that removes it deletes it). Namespaces always
//! go through this, with phase `Terminating`, so their contents can be removed first.
//! `propagationPolicy` Foreground and Orphan work the same way, through the `foregroundDeletion`
//! and `orphan` finalizers that the garbage collector acts on and removes.

use bytes::Bytes;
use serde_json::Value;
use trellis_storage::{ObjectKey, Preconditions, StorageError, Store, StoredObject};

use crate::machinery::object_meta::now_rfc3339;
use crate::registry::ResourceType;

/// What a delete did.
pub enum Deleted {
    /// Removed from storage: the last state, with the deletion's revision.
    Gone(StoredObject),
    /// Marked for deletion (finalizers pending): the object as stored now.
    Pending(StoredObject),
}

/// The object's `metadata.finalizers`.
pub fn finalizers(object: &Value) -> Vec<&str> {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

pub fn is_deleting(object: &Value) -> bool {
    object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

/// Whether an update that leaves `object` so should remove it: deletion was requested and no
/// finalizer is left (namespaces also wait for `spec.finalizers`).
pub fn update_completes_deletion(object: &Value) -> bool {
    is_deleting(object)
        && finalizers(object).is_empty()
        && object
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_none_or(|f| {
                f.is_empty() || object.get("kind").and_then(Value::as_str) != Some("Namespace")
            })
}

/// Finalizers `updated` adds that `current` lacks, when `current` is already being deleted:
/// kube-apiserver refuses those.
pub fn new_finalizers_while_deleting<'a>(current: &Value, updated: &'a Value) -> Vec<&'a str> {
    if !is_deleting(current) {
        return Vec::new();
    }
    let before = finalizers(current);
    finalizers(updated)
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect()
}

/// What happens to an object's dependents (objects whose ownerReferences name it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Propagation {
    /// The object goes now; the garbage collector deletes dependents afterwards.
    #[default]
    Background,
    /// Dependents are deleted first; the object waits with the `foregroundDeletion` finalizer.
    Foreground,
    /// Dependents lose their reference to the object and stay (`orphan` finalizer).
    Orphan,
}

pub const FOREGROUND: &str = "foregroundDeletion";
pub const ORPHAN: &str = "orphan";

impl Propagation {
    pub fn parse(value: Option<&str>) -> Result<Propagation, String> {
        match value {
            None | Some("") | Some("Background") => Ok(Propagation::Background),
            Some("Foreground") => Ok(Propagation::Foreground),
            Some("Orphan") => Ok(Propagation::Orphan),
            Some(other) => Err(format!(
                "propagationPolicy must be Background, Foreground or Orphan, got {other:?}"
            )),
        }
    }

    fn finalizer(self) -> Option<&'static str> {
        match self {
            Propagation::Background => None,
            Propagation::Foreground => Some(FOREGROUND),
            Propagation::Orphan => Some(ORPHAN),
        }
    }
}

/// Deletes `key` (of type `rt`) whose current stored state is `existing`.
pub async fn delete(
    store: &Store,
    rt: &ResourceType,
    key: ObjectKey,
    existing: &StoredObject,
    preconditions: Preconditions,
    propagation: Propagation,
) -> Result<Deleted, StorageError> {
    let mut object: Value = serde_json::from_slice(&existing.value)
        .map_err(|e| StorageError::Internal(format!("stored object is not JSON: {e}")))?;
    let graceful = rt
        .kind_rules
        .as_ref()
        .is_some_and(|k| k.deletes_gracefully());
    let extra = propagation.finalizer();
    if finalizers(&object).is_empty() && extra.is_none() && !graceful {
        return store.delete(key, preconditions).await.map(Deleted::Gone);
    }
    if is_deleting(&object) && extra.is_none_or(|f| finalizers(&object).contains(&f)) {
        return Ok(Deleted::Pending(existing.clone()));
    }
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if !meta.contains_key("deletionTimestamp") {
            meta.insert("deletionTimestamp".into(), Value::String(now_rfc3339()));
            meta.insert("deletionGracePeriodSeconds".into(), Value::from(0));
        }
        if let Some(extra) = extra {
            let list = meta
                .entry("finalizers")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Some(list) = list.as_array_mut() {
                if !list.iter().any(|f| f.as_str() == Some(extra)) {
                    list.push(Value::String(extra.to_string()));
                }
            }
        }
    }
    if let Some(kind) = rt.kind_rules.as_ref().filter(|_| graceful) {
        kind.mark_deleting(&mut object);
    }
    let preconditions = Preconditions {
        revision: Some(preconditions.revision.unwrap_or(existing.revision)),
        uid: preconditions.uid,
    };
    let bytes = Bytes::from(
        serde_json::to_vec(&object).map_err(|e| StorageError::Internal(e.to_string()))?,
    );
    store
        .update(key, bytes, preconditions)
        .await
        .map(Deleted::Pending)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deletion_completes_when_the_last_finalizer_goes() {
        let deleting =
            json!({"kind": "ConfigMap", "metadata": {"deletionTimestamp": "t", "finalizers": []}});
        assert!(update_completes_deletion(&deleting));
        let held = json!({"kind": "ConfigMap", "metadata": {"deletionTimestamp": "t", "finalizers": ["x"]}});
        assert!(!update_completes_deletion(&held));
        let alive = json!({"kind": "ConfigMap", "metadata": {"finalizers": []}});
        assert!(!update_completes_deletion(&alive));
        let namespace = json!({"kind": "Namespace", "metadata": {"deletionTimestamp": "t"}, "spec": {"finalizers": ["kubernetes"]}});
        assert!(!update_completes_deletion(&namespace));
    }

    #[test]
    fn propagation_policies() {
        assert_eq!(Propagation::parse(None).unwrap(), Propagation::Background);
        assert_eq!(
            Propagation::parse(Some("Orphan")).unwrap().finalizer(),
            Some(ORPHAN)
        );
        assert_eq!(
            Propagation::parse(Some("Foreground")).unwrap().finalizer(),
            Some(FOREGROUND)
        );
        assert!(Propagation::parse(Some("orphan")).is_err());
    }

    #[test]
    fn no_new_finalizers_once_deleting() {
        let current = json!({"metadata": {"deletionTimestamp": "t", "finalizers": ["a"]}});
        let updated = json!({"metadata": {"finalizers": ["a", "b"]}});
        assert_eq!(new_finalizers_while_deleting(&current, &updated), vec!["b"]);
        let alive = json!({"metadata": {"finalizers": ["a"]}});
        assert!(new_finalizers_while_deleting(&alive, &updated).is_empty());
    }
}
