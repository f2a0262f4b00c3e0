//! The `status` and `scale` subresources.
//!
//! With a status subresource, writes to the resource keep the stored status and writes to
//! `/status` keep everything but the status (and metadata changes other than those the server
//! tracks), as kube-apiserver's status strategies do. `/scale` shows and changes a replica
//! count as an `autoscaling/v1` Scale.

use serde_json::{json, Value};

use crate::machinery::status::Status;
use crate::registry::{ResourceType, ScalePaths};

/// Which part of a resource a request addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subresource {
    None,
    Status,
    Scale,
    /// A Namespace's `spec.finalizers`.
    Finalize,
}

impl Subresource {
    /// The subresource named in a request path, if `rt` serves it.
    pub fn parse(name: Option<&str>, rt: &ResourceType) -> Option<Subresource> {
        match name {
            None => Some(Subresource::None),
            Some("status") if rt.subresources.status => Some(Subresource::Status),
            Some("scale") if rt.subresources.scale.is_some() => Some(Subresource::Scale),
            Some("finalize") if rt.subresources.finalize => Some(Subresource::Finalize),
            Some(_) => None,
        }
    }

    /// Its name in a request path (`None` for the resource itself).
    pub fn name(self) -> Option<&'static str> {
        match self {
            Subresource::None => None,
            Subresource::Status => Some("status"),
            Subresource::Scale => Some("scale"),
            Subresource::Finalize => Some("finalize"),
        }
    }

    /// The verbs it serves, as discovery lists them: `/finalize` takes only a PUT, as in
    /// kube-apiserver. (The resource itself is not limited here.)
    pub fn verbs(self) -> &'static [&'static str] {
        match self {
            Subresource::None => &[],
            Subresource::Finalize => &["update"],
            Subresource::Status | Subresource::Scale => &["get", "patch", "update"],
        }
    }
}

/// A write to the main resource: the stored status stays.
pub fn keep_status(new: &mut Value, current: &Value) {
    let Some(map) = new.as_object_mut() else {
        return;
    };
    match current.get("status") {
        Some(status) => map.insert("status".into(), status.clone()),
        None => map.remove("status"),
    };
}

/// A write to a Namespace's main resource keeps its `spec.finalizers`, as kube-apiserver does:
/// only `/finalize` changes them.
pub fn keep_finalizers(new: &mut Value, current: &Value) {
    let finalizers = current.pointer("/spec/finalizers").cloned();
    match (finalizers, new.as_object_mut()) {
        (Some(finalizers), Some(map)) => {
            let spec = map
                .entry("spec")
                .or_insert_with(|| Value::Object(Default::default()));
            if !spec.is_object() {
                *spec = Value::Object(Default::default());
            }
            spec["finalizers"] = finalizers;
        }
        (None, _) => {
            if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("finalizers");
            }
        }
        _ => {}
    }
}

/// A write to `/finalize`: the current object with the new `spec.finalizers` (its
/// resourceVersion kept as a precondition, as for `/status`).
pub fn only_finalizers(new: &Value, current: &Value) -> Value {
    let mut object = current.clone();
    keep_finalizers(&mut object, new);
    carry_revision(new, &mut object);
    object
}

/// A subresource write is the current object with one part from the client's: the client's
/// resourceVersion (or its absence) goes with it, so that it still acts as a precondition.
fn carry_revision(new: &Value, object: &mut Value) {
    match new.pointer("/metadata/resourceVersion") {
        Some(rv) => object["metadata"]["resourceVersion"] = rv.clone(),
        None => {
            if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("resourceVersion");
            }
        }
    }
}

/// A write to `/status`: the current object with the new status. The client's
/// resourceVersion is kept so that it still acts as a precondition.
pub fn only_status(new: &Value, current: &Value) -> Value {
    let mut object = current.clone();
    if let Some(map) = object.as_object_mut() {
        match new.get("status") {
            Some(status) => map.insert("status".into(), status.clone()),
            None => map.remove("status"),
        };
    }
    carry_revision(new, &mut object);
    object
}

/// `.spec.replicas` → `/spec/replicas`. Scale paths are simple dotted paths (the CRD
/// validation requires it).
fn pointer(json_path: &str) -> String {
    json_path.replace('.', "/")
}

/// The Scale of `object`.
pub fn scale_of(object: &Value, paths: &ScalePaths) -> Value {
    let meta = &object["metadata"];
    let mut metadata = json!({});
    for field in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = meta.get(field) {
            metadata[field] = v.clone();
        }
    }
    let replicas = |path: &str| {
        object
            .pointer(&pointer(path))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    };
    let mut status = json!({"replicas": replicas(&paths.status_replicas)});
    if let Some(selector) = paths
        .label_selector
        .as_deref()
        .and_then(|p| object.pointer(&pointer(p)))
        .and_then(Value::as_str)
    {
        status["selector"] = json!(selector);
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": replicas(&paths.spec_replicas)},
        "status": status,
    })
}

/// `current` with the replica count of `scale`; the Scale's resourceVersion, if any,
/// becomes the write's precondition.
pub fn apply_scale(current: &Value, scale: &Value, paths: &ScalePaths) -> Result<Value, Status> {
    if let Some(kind) = scale.get("kind").and_then(Value::as_str) {
        if kind != "Scale" {
            return Err(Status::bad_request(format!(
                "expected a Scale, got a {kind}"
            )));
        }
    }
    let replicas = match scale.pointer("/spec/replicas") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_i64()
            .ok_or_else(|| Status::bad_request("Scale.spec.replicas must be an integer"))?,
    };
    if replicas < 0 {
        return Err(Status::new(
            422,
            "Invalid",
            format!("Scale.autoscaling \"{}\" is invalid: spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0",
                current.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default()),
        ));
    }
    let mut object = current.clone();
    let path = pointer(&paths.spec_replicas);
    set_pointer(&mut object, &path, json!(replicas));
    match scale.pointer("/metadata/resourceVersion") {
        Some(rv) if !rv.is_null() && rv != "" => object["metadata"]["resourceVersion"] = rv.clone(),
        _ => {
            if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("resourceVersion");
            }
        }
    }
    Ok(object)
}

/// Sets the value at a `/a/b/c` pointer, creating the objects on the way.
fn set_pointer(object: &mut Value, path: &str, value: Value) {
    let mut at = object;
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        if !at.is_object() {
            *at = json!({});
        }
        let Some(map) = at.as_object_mut() else {
            return;
        };
        if i + 1 == parts.len() {
            map.insert(part.to_string(), value);
            return;
        }
        at = map.entry(part.to_string()).or_insert_with(|| json!({}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths() -> ScalePaths {
        ScalePaths {
            spec_replicas: ".spec.replicas".into(),
            status_replicas: ".status.replicas".into(),
            label_selector: Some(".status.selector".into()),
        }
    }

    #[test]
    fn scale_reads_and_writes_the_replica_paths() {
        let object = json!({
            "metadata": {"name": "w", "namespace": "d", "resourceVersion": "7"},
            "spec": {"replicas": 2, "image": "x"},
            "status": {"replicas": 1, "selector": "app=w"},
        });
        let scale = scale_of(&object, &paths());
        assert_eq!(scale["spec"]["replicas"], 2);
        assert_eq!(scale["status"], json!({"replicas": 1, "selector": "app=w"}));
        assert_eq!(scale["metadata"]["resourceVersion"], "7");
        let scaled = apply_scale(&object, &json!({"spec": {"replicas": 5}}), &paths()).unwrap();
        assert_eq!(scaled["spec"], json!({"replicas": 5, "image": "x"}));
        assert!(scaled.pointer("/metadata/resourceVersion").is_none());
        assert_eq!(
            apply_scale(&object, &json!({"spec": {"replicas": -1}}), &paths())
                .unwrap_err()
                .code,
            422
        );
        let empty = apply_scale(
            &json!({"metadata": {}}),
            &json!({"spec": {"replicas": 3}}),
            &paths(),
        )
        .unwrap();
        assert_eq!(empty["spec"]["replicas"], 3);
    }

    #[test]
    fn status_writes_are_kept_apart() {
        let current = json!({"metadata": {"name": "w", "resourceVersion": "3"}, "spec": {"a": 1}, "status": {"ok": false}});
        let mut update =
            json!({"metadata": {"name": "w"}, "spec": {"a": 2}, "status": {"ok": true}});
        keep_status(&mut update, &current);
        assert_eq!(update["status"], json!({"ok": false}));
        assert_eq!(update["spec"], json!({"a": 2}));
        let status_update = json!({"metadata": {"name": "w", "resourceVersion": "3"}, "spec": {"a": 9}, "status": {"ok": true}});
        let written = only_status(&status_update, &current);
        assert_eq!(written["spec"], json!({"a": 1}));
        assert_eq!(written["status"], json!({"ok": true}));
        assert_eq!(written["metadata"]["resourceVersion"], "3");
    }
}
