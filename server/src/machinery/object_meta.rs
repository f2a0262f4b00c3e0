//! The `metadata` rules every kind shares: names, server-set fields on create and update, and
//! the resourceVersion, which storage keeps out of the stored bytes and the server puts back on
//! every read.

use rand::Rng;
use serde_json::{Map, Value};

use crate::machinery::names::name_problem_by;
use crate::machinery::revision_splice::splice_revision;
use crate::machinery::status::{Status, StatusCause, Subject};
use crate::registry::ResourceType;

/// Longest `generateName` prefix used: with the suffix, a name of at most 63 characters.
const MAX_GENERATED_PREFIX: usize = 63 - SUFFIX_LEN;

/// Characters of `generateName` suffixes, as kube-apiserver uses (no vowels, no look-alikes).
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
const SUFFIX_LEN: usize = 5;

/// Sets one annotation on an object's JSON (nothing when it has no metadata object).
pub fn annotate(object: &mut Value, key: &str, value: String) {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = metadata
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(annotations) = annotations.as_object_mut() {
            annotations.insert(key.to_string(), Value::String(value));
        }
    }
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn metadata_mut(object: &mut Value) -> Result<&mut Map<String, Value>, Status> {
    let map = object
        .as_object_mut()
        .ok_or_else(|| Status::bad_request("the request body must be a JSON object"))?;
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    meta.as_object_mut()
        .ok_or_else(|| Status::bad_request("metadata must be an object"))
}

fn str_field<'a>(meta: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, Status> {
    match meta.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Status::bad_request(format!(
            "metadata.{field} must be a string"
        ))),
    }
}

/// Checks `apiVersion`/`kind` against the endpoint, filling them in when absent.
pub fn check_type(object: &mut Value, rt: &ResourceType) -> Result<(), Status> {
    let map = object
        .as_object_mut()
        .ok_or_else(|| Status::bad_request("the request body must be a JSON object"))?;
    let api_version = rt.api_version();
    for (field, expected) in [
        ("apiVersion", api_version.as_str()),
        ("kind", rt.kind.as_str()),
    ] {
        match map.get(field) {
            None | Some(Value::Null) => {
                map.insert(field.to_string(), Value::String(expected.to_string()));
            }
            Some(Value::String(s)) if s == expected => {}
            Some(other) => {
                return Err(Status::bad_request(format!(
                    "the API version in the data ({}) does not match the expected API version ({api_version}) or kind ({})",
                    map.get("apiVersion").and_then(Value::as_str).unwrap_or_default(),
                    other
                )))
            }
        }
    }
    Ok(())
}

/// What the server sets on create: the name (from `generateName` if needed), the namespace of
/// the URL, a new uid, the creation time and generation 1. Returns `(name, uid)`.
pub fn prepare_create(
    object: &mut Value,
    rt: &ResourceType,
    namespace: Option<&str>,
) -> Result<(String, String), Status> {
    check_type(object, rt)?;
    let meta = metadata_mut(object)?;
    let name = match (str_field(meta, "name")?, str_field(meta, "generateName")?) {
        (Some(name), _) if !name.is_empty() => name.to_string(),
        (_, Some(prefix)) if !prefix.is_empty() => {
            // As kube-apiserver: the prefix is cut so that prefix and suffix fit in 63.
            let mut cut = prefix.len().min(MAX_GENERATED_PREFIX);
            while !prefix.is_char_boundary(cut) {
                cut -= 1;
            }
            let prefix = &prefix[..cut];
            let mut rng = rand::thread_rng();
            let suffix: String = (0..SUFFIX_LEN)
                .map(|_| SUFFIX_ALPHABET[rng.gen_range(0..SUFFIX_ALPHABET.len())] as char)
                .collect();
            format!("{prefix}{suffix}")
        }
        _ => {
            return Err(Status::invalid(
                &Subject {
                    group: &rt.group,
                    resource: &rt.plural,
                    name: "",
                },
                &rt.kind,
                vec![StatusCause {
                    kind: "FieldValueRequired".into(),
                    message: "Required value: name or generateName is required".into(),
                    field: "metadata.name".into(),
                }],
            ))
        }
    };
    if let Some(problem) = name_problem_by(&name, rt.name_rule()) {
        return Err(Status::invalid(
            &Subject {
                group: &rt.group,
                resource: &rt.plural,
                name: &name,
            },
            &rt.kind,
            vec![StatusCause {
                kind: "FieldValueInvalid".into(),
                message: format!("Invalid value: {name:?}: {problem}"),
                field: "metadata.name".into(),
            }],
        ));
    }
    match (rt.namespaced, namespace, str_field(meta, "namespace")?) {
        (true, Some(url_ns), Some(body_ns)) if !body_ns.is_empty() && body_ns != url_ns => {
            return Err(Status::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ))
        }
        (true, Some(url_ns), _) => {
            meta.insert("namespace".into(), Value::String(url_ns.to_string()));
        }
        (true, None, _) => {
            return Err(Status::bad_request("a namespaced resource needs a namespace"))
        }
        (false, _, _) => {
            meta.remove("namespace");
        }
    }
    let uid = uuid::Uuid::new_v4().to_string();
    meta.insert("name".into(), Value::String(name.clone()));
    meta.insert("uid".into(), Value::String(uid.clone()));
    meta.insert("creationTimestamp".into(), Value::String(now_rfc3339()));
    if rt.tracks_generation() {
        meta.insert("generation".into(), Value::from(1));
    } else {
        meta.remove("generation");
    }
    meta.remove("resourceVersion");
    meta.remove("deletionTimestamp");
    meta.remove("deletionGracePeriodSeconds");
    rt.prepare(object, true);
    Ok((name, uid))
}

/// The resourceVersion a client sent with an update, if any.
pub fn requested_revision(object: &Value) -> Result<Option<u64>, Status> {
    match object.pointer("/metadata/resourceVersion") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .parse::<u64>()
            .map(Some)
            .map_err(|_| Status::bad_request(format!("invalid resourceVersion {s:?}"))),
        Some(_) => Err(Status::bad_request(
            "metadata.resourceVersion must be a string",
        )),
    }
}

/// Carries the server-owned fields of `existing` into an update, and bumps `generation` when
/// anything but metadata and status changed.
pub fn prepare_update(
    object: &mut Value,
    existing: &Value,
    rt: &ResourceType,
) -> Result<(), Status> {
    check_type(object, rt)?;
    let old_meta = existing.get("metadata").cloned().unwrap_or(Value::Null);
    let changed_spec = {
        let strip = |v: &Value| -> Value {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                m.remove("metadata");
                m.remove("status");
            }
            v
        };
        strip(object) != strip(existing)
    };
    let meta = metadata_mut(object)?;
    for field in [
        "uid",
        "creationTimestamp",
        "namespace",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        match old_meta.get(field) {
            Some(v) => meta.insert(field.into(), v.clone()),
            None => meta.remove(field),
        };
    }
    if rt.tracks_generation() {
        let generation = old_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        meta.insert(
            "generation".into(),
            Value::from(if changed_spec {
                generation + 1
            } else {
                generation
            }),
        );
    } else {
        meta.remove("generation");
    }
    meta.remove("resourceVersion");
    rt.prepare(object, false);
    Ok(())
}

/// A client's update may leave out the name, namespace and uid ([`prepare_update`] carries
/// them over), but not change them: kube-apiserver answers 400 for another name or namespace
/// and 422 for another uid. (Controllers' own updates are not checked: they only ever carry
/// the identity over.)
pub fn check_identity(object: &Value, existing: &Value, rt: &ResourceType) -> Result<(), Status> {
    let meta = object.get("metadata").unwrap_or(&Value::Null);
    let old_meta = existing.get("metadata").unwrap_or(&Value::Null);
    let sent = |field: &str| {
        meta.get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let old = |field: &str| {
        old_meta
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    if let Some(name) = sent("name").filter(|n| *n != old("name")) {
        return Err(Status::bad_request(format!(
            "the name of the object ({name}) does not match the name on the URL ({})",
            old("name")
        )));
    }
    if sent("namespace").is_some_and(|n| n != old("namespace")) {
        return Err(Status::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    if let Some(uid) = sent("uid").filter(|u| *u != old("uid")) {
        return Err(Status::invalid(
            &Subject {
                group: &rt.group,
                resource: &rt.plural,
                name: old("name"),
            },
            &rt.kind,
            vec![crate::machinery::schema::FieldError::invalid(
                "metadata.uid",
                &Value::String(uid.to_string()),
                "field is immutable",
            )
            .into()],
        ));
    }
    Ok(())
}

/// Parses stored bytes of type `rt`, sets `metadata.resourceVersion` and converts the object
/// to `rt`'s version when it is stored in another.
pub fn decode(value: &[u8], revision: u64, rt: &ResourceType) -> Result<Value, Status> {
    let mut object = with_revision(value, revision)?;
    crate::registry::conversion::from_stored(rt, &mut object);
    Ok(object)
}

/// The JSON encoding of [`decode`]'s result. Stored bytes in the usual shape get the revision
/// spliced in without a parse ([`crate::machinery::revision_splice`]); anything else is decoded and
/// re-encoded.
pub fn encode_with_revision(
    value: &[u8],
    revision: u64,
    rt: &ResourceType,
) -> Result<Vec<u8>, Status> {
    let api_version = rt.custom.is_some().then(|| rt.api_version());
    // Kinds stored as another (events.k8s.io events) need converting: no splice.
    if rt.stored_as.is_none() {
        if let Some(bytes) = splice_revision(value, revision, api_version.as_deref()) {
            return Ok(bytes);
        }
    }
    serde_json::to_vec(&decode(value, revision, rt)?)
        .map_err(|e| Status::internal(format!("encoding the object: {e}")))
}

/// Parses stored bytes and sets `metadata.resourceVersion`.
pub fn with_revision(value: &[u8], revision: u64) -> Result<Value, Status> {
    let mut object: Value = serde_json::from_slice(value)
        .map_err(|e| Status::internal(format!("stored object is not JSON: {e}")))?;
    if let Ok(meta) = metadata_mut(&mut object) {
        meta.insert(
            "resourceVersion".into(),
            Value::String(revision.to_string()),
        );
    }
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::scheme::test_lookup as lookup_builtin;
    use serde_json::json;

    #[test]
    fn create_sets_server_fields_and_generates_names() {
        let cm = lookup_builtin("", "v1", "configmaps").unwrap();
        let mut obj =
            json!({"metadata": {"generateName": "cfg-", "resourceVersion": "5"}, "data": {}});
        let (name, uid) = prepare_create(&mut obj, cm, Some("default")).unwrap();
        assert!(name.starts_with("cfg-") && name.len() == 9);
        // A long prefix is cut so that the name is a valid label (a Namespace's rule).
        let ns = lookup_builtin("", "v1", "namespaces").unwrap();
        for prefix in ["a".repeat(61), "b".repeat(300)] {
            let mut obj = json!({"metadata": {"generateName": prefix}});
            let (name, _) = prepare_create(&mut obj, ns, None).unwrap();
            assert_eq!(name.len(), 63);
            assert!(name.starts_with(&prefix[..58]), "{name}");
        }
        assert_eq!(obj["metadata"]["uid"], uid);
        assert_eq!(obj["metadata"]["namespace"], "default");
        assert!(
            obj["metadata"].get("generation").is_none(),
            "ConfigMaps have none"
        );
        assert_eq!(obj["kind"], "ConfigMap");
        assert_eq!(obj["apiVersion"], "v1");
        assert!(obj["metadata"].get("resourceVersion").is_none());
        let ts = obj["metadata"]["creationTimestamp"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.len() == 20, "{ts}");

        let mut wrong = json!({"kind": "Secret", "metadata": {"name": "x"}});
        assert_eq!(
            prepare_create(&mut wrong, cm, Some("default"))
                .unwrap_err()
                .code,
            400
        );
        let mut bad = json!({"metadata": {"name": "Bad_Name"}});
        assert_eq!(
            prepare_create(&mut bad, cm, Some("default"))
                .unwrap_err()
                .code,
            422
        );
        let mut other_ns = json!({"metadata": {"name": "x", "namespace": "other"}});
        assert_eq!(
            prepare_create(&mut other_ns, cm, Some("default"))
                .unwrap_err()
                .code,
            400
        );
    }

    #[test]
    fn update_keeps_identity_and_counts_generations() {
        let md = lookup_builtin("serving.trellis.dev", "v1alpha1", "modeldeployments").unwrap();
        let existing = json!({"apiVersion": "serving.trellis.dev/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": "x", "uid": "u1", "creationTimestamp": "t", "generation": 1}, "spec": {"replicas": 1}});
        let mut same_spec = json!({"metadata": {"name": "x", "uid": "forged", "labels": {"l": "v"}}, "spec": {"replicas": 1}});
        prepare_update(&mut same_spec, &existing, md).unwrap();
        assert_eq!(same_spec["metadata"]["uid"], "u1");
        assert_eq!(same_spec["metadata"]["generation"], 1);
        let mut new_spec = json!({"metadata": {"name": "x"}, "spec": {"replicas": 2}});
        prepare_update(&mut new_spec, &existing, md).unwrap();
        assert_eq!(new_spec["metadata"]["generation"], 2);
        // Kinds without a generation lose one a client sent.
        let cm = lookup_builtin("", "v1", "configmaps").unwrap();
        let existing = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "uid": "u2"}});
        let mut update = json!({"metadata": {"name": "c", "generation": 7}, "data": {"a": "1"}});
        prepare_update(&mut update, &existing, cm).unwrap();
        assert!(update["metadata"].get("generation").is_none());
    }

    #[test]
    fn encoding_with_a_revision_is_the_encoded_decode() {
        let cm = lookup_builtin("", "v1", "configmaps").unwrap();
        for stored in [
            &br#"{"apiVersion":"v1","data":{"a":"b"},"kind":"ConfigMap","metadata":{"name":"x","uid":"u"}}"#[..],
            br#"{"data":{}}"#,
            br#"{"metadata":{"name":"x","resourceVersion":"1"}}"#,
            br#" {"metadata" : {"name":"x"}} "#,
        ] {
            let expected = serde_json::to_vec(&decode(stored, 9, cm).unwrap()).unwrap();
            let encoded = encode_with_revision(stored, 9, cm).unwrap();
            assert_eq!(
                serde_json::from_slice::<Value>(&encoded).unwrap(),
                serde_json::from_slice::<Value>(&expected).unwrap()
            );
        }
        assert!(encode_with_revision(b"not json", 9, cm).is_err());
    }

    #[test]
    fn revisions_are_injected_and_parsed() {
        let v = with_revision(br#"{"metadata":{"name":"x"}}"#, 42).unwrap();
        assert_eq!(v["metadata"]["resourceVersion"], "42");
        assert_eq!(requested_revision(&v).unwrap(), Some(42));
        assert!(requested_revision(&json!({"metadata": {"resourceVersion": "abc"}})).is_err());
    }
}
