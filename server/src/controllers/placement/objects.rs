//! The fleet's objects as the placement controller keeps and writes them: what its reflectors
//! keep of each stored object ([`Kept`]: the typed object, parsed once per change, beside the
//! stored bytes its writes are preconditioned on), which changes are worth a pass
//! ([`spec_or_metadata_changed`], [`target_changed`]), and the JSON of the writes that are not plain status
//! writes (a SyncTarget's health, a Placement's spec, labels and retiring mark). Pure
//! functions, tested below.

use k8s_openapi::api::core::v1::Taint;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use trellis_apis::compute::placement::RETIRING_SINCE_ANNOTATION;
use trellis_apis::compute::{Placement, SyncTarget, SyncTargetStatus};
use trellis_storage::StoredObject;

use crate::controllers::runtime::{Change, Error};
use crate::fleet::health;

/// One stored object as a reflector keeps it.
#[derive(Debug)]
pub struct Kept<K> {
    /// As read: key, uid, revision and bytes, for writes preconditioned on them.
    pub stored: StoredObject,
    /// The same object, typed.
    pub object: K,
}

/// The reflector projection of a kind: objects that do not parse as `K` are not kept (and
/// logged), so a pass never stumbles on them.
pub fn keep<K: DeserializeOwned>(stored: &StoredObject) -> Option<Kept<K>> {
    match serde_json::from_slice(&stored.value) {
        Ok(object) => Some(Kept {
            stored: stored.clone(),
            object,
        }),
        Err(e) => {
            tracing::warn!(key = ?stored.key, error = %e, "a stored fleet object does not parse; the placement controller ignores it");
            None
        }
    }
}

/// The typed objects with metadata and spec, whose status the hub alone writes.
pub trait SpecAndMetadata {
    fn metadata(&self) -> &ObjectMeta;
    /// Whether the specs are equal.
    fn same_spec(&self, other: &Self) -> bool;
}

impl SpecAndMetadata for trellis_apis::serving::ModelDeployment {
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn same_spec(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}

impl SpecAndMetadata for trellis_apis::compute::GPUPool {
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn same_spec(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}

/// Whether a change of a ModelDeployment or GPUPool is worth a pass: anything but a change
/// of its status alone, which only the placement controller writes (its own writes would
/// otherwise each bring one more pass). A status someone else changed is put back by the
/// next pass or the resync.
pub fn spec_or_metadata_changed<K: SpecAndMetadata>(change: &Change<'_, Kept<K>>) -> bool {
    match (&change.old, &change.new) {
        (Some(old), Some(new)) => {
            !same_metadata(old.object.metadata(), new.object.metadata())
                || !old.object.same_spec(&new.object)
        }
        _ => true,
    }
}

/// Whether a SyncTarget change is worth a pass at `now` (seconds since the epoch): anything
/// but a heartbeat alone of a target whose previous heartbeat is still fresh. Such a
/// heartbeat changes no decision; it only moves the time the target would go stale, and the
/// pass that last read the target asked to look again no later than the old time, when the
/// new heartbeat is read. So a fleet of healthy targets costs a pass every half minute or so,
/// not one per heartbeat.
pub fn target_changed(change: &Change<'_, Kept<SyncTarget>>, now: i64) -> bool {
    let (Some(old), Some(new)) = (&change.old, &change.new) else {
        return true;
    };
    let (old, new) = (&old.object, &new.object);
    let (Some(old_status), Some(new_status)) = (&old.status, &new.status) else {
        return true;
    };
    let heartbeat_only = same_metadata(&old.metadata, &new.metadata)
        && old.spec == new.spec
        && SyncTargetStatus {
            last_heartbeat_time: new_status.last_heartbeat_time.clone(),
            ..old_status.clone()
        } == *new_status;
    !(heartbeat_only && health::heartbeat_healthy(old, now))
}

/// Metadata equal but for what every write changes (`managedFields`, `resourceVersion`).
fn same_metadata(a: &ObjectMeta, b: &ObjectMeta) -> bool {
    let bare = |m: &ObjectMeta| ObjectMeta {
        managed_fields: None,
        resource_version: None,
        ..m.clone()
    };
    a == b || bare(a) == bare(b)
}

/// `current` (a stored SyncTarget) with the taints and conditions health asks for; the
/// rest as read. No taints leaves `spec.taints` out, as the typed object writes it.
pub fn with_health(
    current: &Value,
    taints: &[Taint],
    conditions: &[Condition],
) -> Result<Value, Error> {
    let mut desired = current.clone();
    let object = desired
        .as_object_mut()
        .ok_or_else(|| Error::Invalid("a stored SyncTarget is not a JSON object".into()))?;
    let spec = object_field(object, "spec")?;
    if taints.is_empty() {
        spec.remove("taints");
    } else {
        spec.insert("taints".into(), to_value(taints)?);
    }
    let status = object_field(object, "status")?;
    status.insert("conditions".into(), to_value(conditions)?);
    Ok(desired)
}

/// `current` (a stored Placement) rendered as `desired`: its spec, its labels (added to
/// those it has) and the retiring mark exactly as `desired` has it; everything else as read
/// (other annotations, finalizers, the syncer's status).
pub fn with_placement(current: &Value, desired: &Placement) -> Result<Value, Error> {
    let mut updated = current.clone();
    let object = updated
        .as_object_mut()
        .ok_or_else(|| Error::Invalid("a stored Placement is not a JSON object".into()))?;
    object.insert("spec".into(), to_value(&desired.spec)?);
    let metadata = object_field(object, "metadata")?;
    if let Some(wanted) = &desired.metadata.labels {
        let labels = object_field(metadata, "labels")?;
        for (k, v) in wanted {
            labels.insert(k.clone(), Value::String(v.clone()));
        }
    }
    let since = desired
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RETIRING_SINCE_ANNOTATION));
    match since {
        Some(since) => {
            object_field(metadata, "annotations")?.insert(
                RETIRING_SINCE_ANNOTATION.into(),
                Value::String(since.clone()),
            );
        }
        None => {
            if let Some(annotations) = metadata
                .get_mut("annotations")
                .and_then(Value::as_object_mut)
            {
                annotations.remove(RETIRING_SINCE_ANNOTATION);
                if annotations.is_empty() {
                    metadata.remove("annotations");
                }
            }
        }
    }
    Ok(updated)
}

/// The JSON object at `object[field]`, made one if it is absent or null.
fn object_field<'a>(
    object: &'a mut Map<String, Value>,
    field: &str,
) -> Result<&'a mut Map<String, Value>, Error> {
    let slot = object
        .entry(field)
        .or_insert_with(|| Value::Object(Map::new()));
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut().ok_or_else(|| {
        Error::Invalid(format!(
            "`{field}` of a stored fleet object is not an object"
        ))
    })
}

pub fn to_value<T: serde::Serialize + ?Sized>(value: &T) -> Result<Value, Error> {
    serde_json::to_value(value).map_err(|e| Error::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use serde_json::json;
    use trellis_apis::compute::PlacementSpec;
    use trellis_apis::serving::ModelDeployment;
    use trellis_storage::ObjectKey;

    use super::*;

    fn stored(value: Value) -> StoredObject {
        StoredObject {
            key: ObjectKey::new("c1", "serving.trellis.dev/modeldeployments", "ml", "llama"),
            uid: "u1".into(),
            create_revision: 1,
            revision: 2,
            value: value.to_string().into(),
        }
    }

    fn md(replicas: i32, ready: i32) -> Arc<Kept<ModelDeployment>> {
        let value = json!({
            "apiVersion": "serving.trellis.dev/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": "llama", "namespace": "ml", "uid": "u1", "generation": 1},
            "spec": {"model": {"uri": "hf://meta-llama/Llama-3.1-8B-Instruct"},
                "runtime": {"image": "vllm/vllm-openai:v0.9.1"},
                "resources": {"gpu": {"class": "h200", "count": 8}},
                "replicas": replicas,
                "placement": {"pool": "root:platform/h200"}},
            "status": {"readyReplicas": ready},
        });
        Arc::new(keep(&stored(value)).expect("a ModelDeployment"))
    }

    #[test]
    fn objects_that_do_not_parse_are_not_kept() {
        assert!(keep::<ModelDeployment>(&stored(json!({"spec": "nonsense"}))).is_none());
        assert_eq!(md(2, 0).object.spec.replicas, Some(2));
    }

    #[test]
    fn status_only_changes_bring_no_pass() {
        let key = ObjectKey::new("c1", "serving.trellis.dev/modeldeployments", "ml", "llama");
        let change = |old: Option<Arc<Kept<ModelDeployment>>>,
                      new: Option<Arc<Kept<ModelDeployment>>>| {
            let deleted = new.is_none();
            spec_or_metadata_changed(&Change {
                key: &key,
                uid: None,
                old,
                new,
                deleted,
            })
        };
        assert!(
            !change(Some(md(2, 0)), Some(md(2, 2))),
            "the hub's own write"
        );
        assert!(change(Some(md(2, 0)), Some(md(3, 0))), "scaled");
        assert!(change(None, Some(md(2, 0))), "created");
        assert!(change(Some(md(2, 0)), None), "deleted");
    }

    fn target(heartbeat: &str, free: i32) -> Arc<Kept<SyncTarget>> {
        let value = json!({
            "metadata": {"name": "eu-1", "uid": "u2"},
            "spec": {},
            "status": {"lastHeartbeatTime": heartbeat,
                "gpus": [{"productName": "NVIDIA H200", "totalDevices": 16,
                    "availableDevices": free,
                    "freeByNode": [{"freeDevices": free / 2, "nodes": 2}]}]},
        });
        Arc::new(keep(&stored(value)).expect("a SyncTarget"))
    }

    #[test]
    fn a_heartbeat_alone_brings_no_pass_while_the_target_is_fresh() {
        let key = ObjectKey::new("c1", "compute.trellis.dev/synctargets", "", "eu-1");
        // 2025-06-15T15:06:40Z.
        let now = 1_750_000_000;
        let change = |old: Arc<Kept<SyncTarget>>, new: Arc<Kept<SyncTarget>>, now: i64| {
            target_changed(
                &Change {
                    key: &key,
                    uid: None,
                    old: Some(old),
                    new: Some(new),
                    deleted: false,
                },
                now,
            )
        };
        let earlier = target("2025-06-15T15:06:30Z", 16);
        let beat = target("2025-06-15T15:06:40Z", 16);
        assert!(!change(earlier.clone(), beat.clone(), now));
        // The previous heartbeat was stale: the target comes back, a pass lifts its taint.
        assert!(change(earlier.clone(), beat.clone(), now + 60));
        // The inventory moved with the heartbeat.
        assert!(change(earlier, target("2025-06-15T15:06:40Z", 8), now));
    }

    #[test]
    fn health_replaces_taints_and_conditions_only() {
        let current = json!({"metadata": {"name": "eu-1", "labels": {"a": "b"}},
            "spec": {"unschedulable": true, "taints": [{"key": "x", "effect": "NoSchedule"}]},
            "status": {"lastHeartbeatTime": "2025-06-15T15:06:35Z",
                "conditions": [{"type": "Ready", "status": "True", "reason": "SyncerReady",
                    "message": "", "lastTransitionTime": "2025-06-15T14:00:00Z"}]}});
        let taint = Taint {
            key: "trellis.dev/unreachable".into(),
            effect: "NoExecute".into(),
            ..Taint::default()
        };
        let desired = with_health(&current, std::slice::from_ref(&taint), &[]).unwrap();
        assert_eq!(desired["spec"]["unschedulable"], true);
        assert_eq!(
            desired["spec"]["taints"],
            json!([{"key": "trellis.dev/unreachable", "effect": "NoExecute"}])
        );
        assert_eq!(desired["status"]["conditions"], json!([]));
        assert_eq!(
            desired["status"]["lastHeartbeatTime"],
            "2025-06-15T15:06:35Z"
        );
        assert_eq!(desired["metadata"], current["metadata"]);
        // No taints: the field goes, as the typed object leaves it out.
        let cleared = with_health(&current, &[], &[]).unwrap();
        assert!(cleared["spec"].get("taints").is_none());
        // A target its syncer never reported on gets a status.
        let bare = with_health(&json!({"metadata": {"name": "eu-9"}}), &[], &[]).unwrap();
        assert_eq!(bare["status"]["conditions"], json!([]));
    }

    #[test]
    fn a_placement_update_keeps_what_others_wrote() {
        let current = json!({"metadata": {"name": "p", "namespace": "target-eu-1",
                "labels": {"team": "x", "trellis.dev/sync-target": "eu-1"},
                "annotations": {"note": "kept", RETIRING_SINCE_ANNOTATION: "2025-06-15T15:00:00Z"},
                "finalizers": ["syncer.trellis.dev/cleanup"]},
            "spec": {"replicas": 1},
            "status": {"readyReplicas": 1}});
        let mut desired = Placement::new(
            "p",
            PlacementSpec {
                replicas: 3,
                booking: 7,
                ..PlacementSpec::default()
            },
        );
        desired.metadata.labels = Some(BTreeMap::from([(
            "trellis.dev/origin-uid".to_string(),
            "u1".to_string(),
        )]));
        let updated = with_placement(&current, &desired).unwrap();
        assert_eq!(updated["spec"]["replicas"], 3);
        assert_eq!(updated["spec"]["booking"], 7);
        assert_eq!(updated["metadata"]["labels"]["team"], "x");
        assert_eq!(
            updated["metadata"]["labels"]["trellis.dev/origin-uid"],
            "u1"
        );
        assert_eq!(
            updated["metadata"]["annotations"],
            json!({"note": "kept"}),
            "no longer retiring"
        );
        assert_eq!(
            updated["metadata"]["finalizers"],
            current["metadata"]["finalizers"]
        );
        assert_eq!(updated["status"], current["status"]);

        desired.metadata.annotations = Some(BTreeMap::from([(
            RETIRING_SINCE_ANNOTATION.to_string(),
            "2025-06-15T15:06:40Z".to_string(),
        )]));
        let retiring = with_placement(&json!({"metadata": {"name": "p"}}), &desired).unwrap();
        assert_eq!(
            retiring["metadata"]["annotations"][RETIRING_SINCE_ANNOTATION],
            "2025-06-15T15:06:40Z"
        );
    }
}
