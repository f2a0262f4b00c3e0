//! Per-kind rules applied to every create and update, after the generic metadata rules: what
//! kube-apiserver's strategies for the built-in kinds do (defaults and normalization).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Map, Value};

use super::builtin::{APIEXTENSIONS, TENANCY};
use super::ResourceType;
use crate::status::StatusCause;

/// Normalizes `object` of type `rt` before it is stored.
pub fn prepare(rt: &ResourceType, object: &mut Value) {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Secret") => prepare_secret(object),
        ("", "Namespace") => prepare_namespace(object),
        _ => {}
    }
}

/// Steps of a create only, after [`prepare`].
pub fn prepare_create(rt: &ResourceType, object: &mut Value) {
    if rt.is(APIEXTENSIONS, "CustomResourceDefinition") {
        super::crd::prepare_create(object);
    }
}

/// The kind's own rules for a new state of an object (`old` on updates); each problem is a
/// cause of a 422.
pub fn validate(rt: &ResourceType, object: &Value, old: Option<&Value>) -> Vec<StatusCause> {
    if rt.is(APIEXTENSIONS, "CustomResourceDefinition") {
        return super::crd::validate(object, old);
    }
    if let (true, Some(old)) = (rt.is(TENANCY, "Workspace"), old) {
        return crate::workspaces::validate_update(object, old);
    }
    Vec::new()
}

/// `stringData` is write-only: merged into `data` (base64), winning over it; `type` defaults
/// to `Opaque`.
fn prepare_secret(object: &mut Value) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(string_data)) = map.remove("stringData") {
        let data = map
            .entry("data")
            .or_insert_with(|| Value::Object(Map::new()));
        if !data.is_object() {
            *data = Value::Object(Map::new());
        }
        if let Some(data) = data.as_object_mut() {
            for (key, value) in string_data {
                if let Some(text) = value.as_str() {
                    data.insert(key, Value::String(STANDARD.encode(text)));
                }
            }
        }
    }
    if map
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        map.insert("type".into(), Value::String("Opaque".into()));
    }
}

/// New namespaces are `Active`, held by the `kubernetes` finalizer until their content is gone,
/// and labelled with their name.
fn prepare_namespace(object: &mut Value) {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if object
        .pointer("/metadata/labels")
        .is_none_or(|l| !l.is_object())
    {
        object["metadata"]["labels"] = json!({});
    }
    object["metadata"]["labels"]["kubernetes.io/metadata.name"] = Value::String(name);
    if object.pointer("/spec/finalizers").is_none() {
        if !object.get("spec").is_some_and(Value::is_object) {
            object["spec"] = json!({});
        }
        object["spec"]["finalizers"] = json!(["kubernetes"]);
    }
    if object.pointer("/status/phase").is_none() {
        if !object.get("status").is_some_and(Value::is_object) {
            object["status"] = json!({});
        }
        object["status"]["phase"] = json!("Active");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::lookup_builtin;

    #[test]
    fn secrets_fold_string_data_into_data() {
        let secret = lookup_builtin("", "v1", "secrets").unwrap();
        let mut s = json!({"metadata": {"name": "s"}, "data": {"a": "eA==", "k": "b2xk"}, "stringData": {"k": "v"}});
        prepare(secret, &mut s);
        assert_eq!(s["data"], json!({"a": "eA==", "k": "dg=="}));
        assert!(s.get("stringData").is_none());
        assert_eq!(s["type"], "Opaque");
        let mut tls = json!({"type": "kubernetes.io/tls"});
        prepare(secret, &mut tls);
        assert_eq!(tls["type"], "kubernetes.io/tls");
    }

    #[test]
    fn namespaces_get_phase_finalizer_and_label() {
        let ns = lookup_builtin("", "v1", "namespaces").unwrap();
        let mut n = json!({"metadata": {"name": "ml"}});
        prepare(ns, &mut n);
        assert_eq!(n["status"]["phase"], "Active");
        assert_eq!(n["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(n["metadata"]["labels"]["kubernetes.io/metadata.name"], "ml");
    }
}
