//! `fieldValidation`: finding fields a kind's schema does not declare, and values of the wrong
//! JSON type, as kube-apiserver's strict decoding does.
//!
//! Unknown fields are removed from the object in every mode (built-in kinds never store them);
//! the mode only decides whether the client hears of it: an error (Strict), a `Warning` header
//! (Warn, the default) or nothing (Ignore). Wrong types are always an error.

use std::fmt::Write;

use serde_json::{Map, Value};

use crate::machinery::status::Status;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

impl FieldValidation {
    pub fn from_query(value: Option<&str>) -> Result<FieldValidation, Status> {
        match value {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(Status::bad_request(format!(
                "fieldValidation must be one of Ignore, Warn, Strict; got {other:?}"
            ))),
        }
    }
}

/// What a check found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FieldReport {
    /// Paths like `.spec.foo`, already removed from the object.
    pub unknown: Vec<String>,
    /// `(path, problem)` for values of the wrong type.
    pub wrong_types: Vec<(String, String)>,
}

const REF_PREFIX: &str = "#/components/schemas/";

/// Checks `object` against the component schema `root`, removing undeclared fields.
pub fn check(object: &mut Value, root: &str, schemas: &Map<String, Value>) -> FieldReport {
    let mut report = FieldReport::default();
    if let Some(schema) = schemas.get(root) {
        walk(object, schema, schemas, &mut String::new(), &mut report);
    }
    report
}

/// Follows `$ref`, and `allOf: [{$ref}]` (a reference that carries its own description).
fn resolve<'a>(schema: &'a Value, schemas: &'a Map<String, Value>) -> &'a Value {
    let mut schema = schema;
    // References may chain; a bound keeps a malformed cycle from looping.
    for _ in 0..16 {
        let reference = match schema.get("allOf").and_then(Value::as_array) {
            Some(all) if all.len() == 1 => &all[0],
            _ => schema,
        };
        match reference
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix(REF_PREFIX))
            .and_then(|name| schemas.get(name))
        {
            Some(target) => schema = target,
            None => break,
        }
    }
    schema
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(expected: &str, value: &Value) -> bool {
    matches!(
        (expected, value),
        (_, Value::Null)
            | ("string", Value::String(_))
            | ("boolean", Value::Bool(_))
            | ("object", Value::Object(_))
            | ("array", Value::Array(_))
            | ("number", Value::Number(_))
    ) || (expected == "integer" && (value.is_i64() || value.is_u64()))
}

fn walk(
    value: &mut Value,
    schema: &Value,
    schemas: &Map<String, Value>,
    path: &mut String,
    report: &mut FieldReport,
) {
    let schema = resolve(schema, schemas);
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        || schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
    {
        return;
    }
    if let Some(expected) = schema.get("type").and_then(Value::as_str) {
        if !type_matches(expected, value) {
            report.wrong_types.push((
                if path.is_empty() {
                    ".".to_string()
                } else {
                    path.clone()
                },
                format!("expected {expected}, got {}", type_name(value)),
            ));
            return;
        }
    }
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            if properties.is_none() && additional.is_none() {
                // A free-form object (e.g. RawExtension): nothing is unknown.
                return;
            }
            // Unknown fields are dropped as they are found (what Ignore and Warn store).
            map.retain(|key, v| {
                let field_schema = properties.and_then(|p| p.get(key)).or(additional);
                let len = path.len();
                path.push('.');
                path.push_str(key);
                let known = match field_schema {
                    Some(field_schema) => {
                        walk(v, field_schema, schemas, path, report);
                        true
                    }
                    None => {
                        report.unknown.push(path.clone());
                        false
                    }
                };
                path.truncate(len);
                known
            });
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = path.len();
                    let _ = write!(path, "[{i}]");
                    walk(item, item_schema, schemas, path, report);
                    path.truncate(len);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn documents() -> &'static crate::endpoints::openapi::Documents {
        crate::serving::hub::test_openapi()
    }
    use serde_json::json;

    const CM: &str = "io.k8s.api.core.v1.ConfigMap";

    #[test]
    fn declared_fields_pass_untouched() {
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "labels": {"a": "b"}, "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u"}]},
            "data": {"k": "v"}});
        let before = cm.clone();
        let report = check(&mut cm, CM, &documents().schemas);
        assert_eq!(report, FieldReport::default());
        assert_eq!(cm, before);
    }

    #[test]
    fn unknown_fields_are_found_at_any_depth_and_removed() {
        let mut cm = json!({"metadata": {"name": "x", "bogus": 1,
            "ownerReferences": [{"name": "p", "extra": true}]}, "spec": {}, "data": {"k": "v"}});
        let report = check(&mut cm, CM, &documents().schemas);
        assert_eq!(
            report.unknown,
            vec![
                ".metadata.bogus",
                ".metadata.ownerReferences[0].extra",
                ".spec"
            ]
        );
        assert!(cm.get("spec").is_none() && cm["metadata"].get("bogus").is_none());
    }

    #[test]
    fn wrong_types_are_reported() {
        let mut cm = json!({"metadata": {"name": 5}, "data": {"k": 1}, "immutable": "yes"});
        let report = check(&mut cm, CM, &documents().schemas);
        let paths: Vec<&str> = report.wrong_types.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, vec![".data.k", ".immutable", ".metadata.name"]);
    }

    #[test]
    fn modes() {
        assert_eq!(
            FieldValidation::from_query(None).unwrap(),
            FieldValidation::Warn
        );
        assert_eq!(
            FieldValidation::from_query(Some("Strict")).unwrap(),
            FieldValidation::Strict
        );
        assert!(FieldValidation::from_query(Some("strict")).is_err());
    }
}
