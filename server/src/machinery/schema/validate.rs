//! OpenAPI value validation of a custom resource against its schema, with the wording and
//! cause types kube-apiserver gives (kube-openapi's messages, mapped to `field.Error`s).

use serde_json::{Number, Value};

use super::field_error::{child, index, FieldError};
use super::format::check_format;
use super::structural::{AdditionalProperties, Structural};

/// JSON type names, as the messages use them.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if is_integer(n) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `3.0` counts as an integer: JSON does not tell the two apart.
fn is_integer(n: &Number) -> bool {
    n.is_i64()
        || n.is_u64()
        || n.as_f64()
            .is_some_and(|f| f.fract() == 0.0 && f.is_finite())
}

/// A number as Go's `%v` prints a float64 or int64: `10`, not `10.0`.
pub fn show_number(n: &Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{f:.0}"),
        Some(f) => f.to_string(),
        None => n.to_string(),
    }
}

fn type_matches(ty: &str, value: &Value) -> bool {
    match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => matches!(value, Value::Number(n) if is_integer(n)),
        "number" => value.is_number(),
        // Unknown type names are refused when the CRD is written; nothing to check here.
        _ => true,
    }
}

/// Numbers compare by value: `1` and `1.0` are one enum value.
pub fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// Validates `value` at `path` against `schema`, pushing kube-apiserver's errors onto `errs`.
pub fn validate(schema: &Structural, value: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let name = path;
    if value.is_null() {
        // A null is acceptable where the schema allows it; elsewhere it is a type error.
        if schema.nullable || (schema.ty.is_empty() && !schema.int_or_string) {
            return;
        }
        let expected = if schema.int_or_string {
            "integer,string"
        } else {
            &schema.ty
        };
        errs.push(type_error(path, expected, "null"));
        return;
    }
    if schema.int_or_string {
        if !(value.is_string() || matches!(value, Value::Number(n) if is_integer(n))) {
            errs.push(type_error(path, "integer,string", type_name(value)));
            return;
        }
    } else if !schema.ty.is_empty() && !type_matches(&schema.ty, value) {
        // kube-openapi stops at a type error: the other keywords assume the right type.
        errs.push(type_error(path, &schema.ty, type_name(value)));
        return;
    }

    if let Some(allowed) = &schema.enum_values {
        if !allowed.iter().any(|a| json_equal(a, value)) {
            let shown: Vec<String> = allowed
                .iter()
                .map(|a| match a {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            errs.push(FieldError::not_supported(path, value, &shown));
        }
    }

    match value {
        Value::String(s) => validate_string(schema, s, value, path, errs),
        Value::Number(n) => validate_number(schema, n, value, path, errs),
        Value::Array(items) => validate_array(schema, items, path, errs),
        Value::Object(fields) => validate_object(schema, fields, path, errs),
        _ => {}
    }

    for sub in &schema.all_of {
        validate(sub, value, path, errs);
    }
    if !schema.any_of.is_empty() && !schema.any_of.iter().any(|s| passes(s, value, path)) {
        errs.push(FieldError::invalid(
            path,
            value,
            &format!("{name} in body must validate at least one schema (anyOf)"),
        ));
    }
    if !schema.one_of.is_empty()
        && schema
            .one_of
            .iter()
            .filter(|s| passes(s, value, path))
            .count()
            != 1
    {
        errs.push(FieldError::invalid(
            path,
            value,
            &format!("{name} in body must validate one and only one schema (oneOf)"),
        ));
    }
    if let Some(not) = &schema.not {
        if passes(not, value, path) {
            errs.push(FieldError::invalid(
                path,
                value,
                &format!("{name} in body must not validate the schema (not)"),
            ));
        }
    }
}

fn passes(schema: &Structural, value: &Value, path: &str) -> bool {
    let mut errs = Vec::new();
    validate(schema, value, path, &mut errs);
    errs.is_empty()
}

fn type_error(path: &str, expected: &str, actual: &str) -> FieldError {
    FieldError::type_invalid(
        path,
        &Value::String(actual.to_string()),
        &format!(
            "{path} in body must be of type {expected}: {}",
            super::field_error::quote(actual)
        ),
    )
}

fn validate_string(
    schema: &Structural,
    s: &str,
    value: &Value,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    // Lengths count characters (runes), as kube-openapi does.
    let len = s.chars().count() as u64;
    if let Some(max) = schema.max_length {
        if len > max {
            errs.push(FieldError::too_long(path, max));
        }
    }
    if let Some(min) = schema.min_length {
        if len < min {
            errs.push(FieldError::invalid(
                path,
                value,
                &format!("{path} in body should be at least {min} chars long"),
            ));
        }
    }
    if let Some(p) = &schema.pattern {
        if !p.regex.is_match(s) {
            errs.push(FieldError::invalid(
                path,
                value,
                &format!("{path} in body should match '{}'", p.source),
            ));
        }
    }
    if let Some(format) = &schema.format {
        if !check_format(format, s) {
            // kube-openapi reports a bad format as a type error.
            errs.push(FieldError::type_invalid(
                path,
                value,
                &format!(
                    "{path} in body must be of type {format}: {}",
                    super::field_error::quote(s)
                ),
            ));
        }
    }
}

fn validate_number(
    schema: &Structural,
    n: &Number,
    value: &Value,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let Some(v) = n.as_f64() else { return };
    if let Some(max) = &schema.maximum {
        let m = max.as_f64().unwrap_or(f64::INFINITY);
        let (bad, word) = if schema.exclusive_maximum {
            (v >= m, "less than")
        } else {
            (v > m, "less than or equal to")
        };
        if bad {
            errs.push(FieldError::invalid(
                path,
                value,
                &format!("{path} in body should be {word} {}", show_number(max)),
            ));
        }
    }
    if let Some(min) = &schema.minimum {
        let m = min.as_f64().unwrap_or(f64::NEG_INFINITY);
        let (bad, word) = if schema.exclusive_minimum {
            (v <= m, "greater than")
        } else {
            (v < m, "greater than or equal to")
        };
        if bad {
            errs.push(FieldError::invalid(
                path,
                value,
                &format!("{path} in body should be {word} {}", show_number(min)),
            ));
        }
    }
    if let Some(factor) = &schema.multiple_of {
        let multiple = match (n.as_i64(), factor.as_i64()) {
            (Some(i), Some(f)) if f != 0 => i % f == 0,
            _ => factor
                .as_f64()
                .is_some_and(|f| f != 0.0 && (v / f).fract() == 0.0),
        };
        if !multiple {
            errs.push(FieldError::invalid(
                path,
                value,
                &format!(
                    "{path} in body should be a multiple of {}",
                    show_number(factor)
                ),
            ));
        }
    }
}

fn validate_array(schema: &Structural, items: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    if let Some(max) = schema.max_items {
        if items.len() as u64 > max {
            errs.push(FieldError::too_many(path, items.len(), max));
        }
    }
    if let Some(min) = schema.min_items {
        if (items.len() as u64) < min {
            errs.push(FieldError::invalid(
                path,
                &Value::from(items.len()),
                &format!("{path} in body should have at least {min} items"),
            ));
        }
    }
    if let Some(item_schema) = schema.items.as_deref() {
        for (i, item) in items.iter().enumerate() {
            validate(item_schema, item, &index(path, i), errs);
        }
    }
    match schema.list_type.as_deref() {
        Some("set") => {
            for (i, item) in items.iter().enumerate() {
                if items[..i].iter().any(|earlier| json_equal(earlier, item)) {
                    errs.push(FieldError::duplicate(index(path, i), Some(item)));
                }
            }
        }
        Some("map") => {
            let key_of = |item: &Value| -> Value {
                let mut key = serde_json::Map::new();
                for k in &schema.list_map_keys {
                    if let Some(v) = item.get(k) {
                        key.insert(k.clone(), v.clone());
                    }
                }
                Value::Object(key)
            };
            for (i, item) in items.iter().enumerate() {
                let key = key_of(item);
                if items[..i]
                    .iter()
                    .any(|earlier| json_equal(&key_of(earlier), &key))
                {
                    errs.push(FieldError::duplicate(index(path, i), Some(&key)));
                }
            }
        }
        _ => {}
    }
}

fn validate_object(
    schema: &Structural,
    fields: &serde_json::Map<String, Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    // A property count out of bounds ends the object's validation, as in kube-openapi.
    if let Some(min) = schema.min_properties {
        if (fields.len() as u64) < min {
            errs.push(FieldError::invalid(
                path,
                &Value::from(fields.len()),
                &format!("{path} in body should have at least {min} properties"),
            ));
            return;
        }
    }
    if let Some(max) = schema.max_properties {
        if fields.len() as u64 > max {
            errs.push(FieldError::too_many(path, fields.len(), max));
            return;
        }
    }
    for name in &schema.required {
        if !fields.contains_key(name) {
            errs.push(FieldError::required(child(path, name), ""));
        }
    }
    for (name, sub) in fields {
        if path.is_empty() && matches!(name.as_str(), "metadata" | "apiVersion" | "kind") {
            // The root's metadata and type fields are the server's to check.
            continue;
        }
        if let Some(prop) = schema.properties.get(name) {
            validate(prop, sub, &child(path, name), errs);
        } else {
            match &schema.additional_properties {
                Some(AdditionalProperties::Schema(s)) => validate(s, sub, &child(path, name), errs),
                // Unreachable for a structural schema, which may not say `false`.
                Some(AdditionalProperties::Allowed(false)) if !schema.preserve_unknown_fields => {
                    errs.push(FieldError::invalid(
                        path,
                        &Value::String(name.clone()),
                        &format!("{path}.{name} in body is a forbidden property"),
                    ))
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::Structural;

    fn errors(schema: serde_json::Value, object: serde_json::Value) -> Vec<String> {
        let s = match Structural::parse(&schema) {
            Ok(s) => s,
            Err(e) => panic!("schema did not parse: {e:?}"),
        };
        // Sorted, as the order of an object's fields is not part of the contract.
        let mut got: Vec<String> = s
            .validate(&object, None)
            .iter()
            .map(ToString::to_string)
            .collect();
        got.sort();
        got
    }

    fn spec(props: serde_json::Value) -> serde_json::Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": props}}})
    }

    #[test]
    fn type_errors() {
        let s = spec(json!({"replicas": {"type": "integer"}}));
        assert_eq!(
            errors(s.clone(), json!({"spec": {"replicas": "3"}})),
            vec![
                r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#
            ]
        );
        assert_eq!(
            errors(s.clone(), json!({"spec": {"replicas": 3}})),
            Vec::<String>::new()
        );
        assert_eq!(
            errors(s, json!({"spec": {"replicas": null}})),
            vec![
                r#"spec.replicas: Invalid value: "null": spec.replicas in body must be of type integer: "null""#
            ]
        );
        let nullable = spec(json!({"replicas": {"type": "integer", "nullable": true}}));
        assert!(errors(nullable, json!({"spec": {"replicas": null}})).is_empty());
    }

    #[test]
    fn required_enum_and_bounds() {
        let s = json!({"type": "object", "properties": {"spec": {
            "type": "object",
            "required": ["image"],
            "properties": {
                "image": {"type": "string"},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "replicas": {"type": "integer", "maximum": 10, "minimum": 1},
                "step": {"type": "integer", "multipleOf": 5, "maximum": 100, "exclusiveMaximum": true},
            },
        }}});
        let got = errors(
            s.clone(),
            json!({"spec": {"mode": "x", "replicas": 11, "step": 7}}),
        );
        assert_eq!(
            got,
            vec![
                "spec.image: Required value",
                r#"spec.mode: Unsupported value: "x": supported values: "a", "b""#,
                "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10",
                "spec.step: Invalid value: 7: spec.step in body should be a multiple of 5",
            ]
        );
        let got = errors(
            s,
            json!({"spec": {"image": "i", "replicas": 0, "step": 100}}),
        );
        assert_eq!(
            got,
            vec![
                "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
                "spec.step: Invalid value: 100: spec.step in body should be less than 100",
            ]
        );
    }

    #[test]
    fn strings() {
        let s = spec(json!({
            "name": {"type": "string", "maxLength": 3, "minLength": 2, "pattern": "^[a-z]+$"},
            "when": {"type": "string", "format": "date-time"},
        }));
        assert_eq!(
            errors(s.clone(), json!({"spec": {"name": "abcD"}})),
            vec![
                r#"spec.name: Invalid value: "abcD": spec.name in body should match '^[a-z]+$'"#,
                "spec.name: Too long: may not be more than 3 bytes",
            ]
        );
        assert_eq!(
            errors(s.clone(), json!({"spec": {"name": "a"}})),
            vec![
                r#"spec.name: Invalid value: "a": spec.name in body should be at least 2 chars long"#
            ]
        );
        let parsed = match Structural::parse(&s) {
            Ok(p) => p,
            Err(e) => panic!("{e:?}"),
        };
        let bad_format = parsed.validate(&json!({"spec": {"when": "yesterday"}}), None);
        assert_eq!(bad_format.len(), 1);
        assert_eq!(bad_format[0].kind, "FieldValueTypeInvalid");
        assert_eq!(
            errors(s.clone(), json!({"spec": {"when": "yesterday"}})),
            vec![
                r#"spec.when: Invalid value: "yesterday": spec.when in body must be of type date-time: "yesterday""#
            ]
        );
        assert!(errors(
            s,
            json!({"spec": {"name": "ab", "when": "2024-01-02T03:04:05Z"}})
        )
        .is_empty());
    }

    #[test]
    fn arrays_and_list_types() {
        let s = spec(json!({
            "tags": {"type": "array", "maxItems": 2, "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "ports": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["port", "protocol"],
                "items": {"type": "object", "required": ["port", "protocol"], "properties": {
                    "port": {"type": "integer"}, "protocol": {"type": "string"}}},
            },
        }));
        let got = errors(
            s,
            json!({"spec": {
                "tags": ["a", "b", "a"],
                "ports": [{"port": 80, "protocol": "TCP"}, {"port": 80, "protocol": "UDP"}, {"port": 80, "protocol": "TCP"}],
            }}),
        );
        assert_eq!(
            got,
            vec![
                r#"spec.ports[2]: Duplicate value: {"port":80,"protocol":"TCP"}"#,
                "spec.tags: Too many: 3: must have at most 2 items",
                r#"spec.tags[2]: Duplicate value: "a""#,
            ]
        );
    }

    #[test]
    fn objects_and_composition() {
        let s = spec(json!({
            "labels": {"type": "object", "maxProperties": 1, "additionalProperties": {"type": "string"}},
            "port": {"x-kubernetes-int-or-string": true},
            "choice": {"type": "string", "anyOf": [{"enum": ["a"]}, {"pattern": "^x"}]},
            "notb": {"type": "string", "not": {"enum": ["b"]}},
        }));
        let got = errors(
            s.clone(),
            json!({"spec": {"labels": {"a": "1", "b": 2}, "port": true, "choice": "y", "notb": "b"}}),
        );
        assert_eq!(
            got,
            vec![
                r#"spec.choice: Invalid value: "y": spec.choice in body must validate at least one schema (anyOf)"#,
                "spec.labels: Too many: 2: must have at most 1 item",
                r#"spec.notb: Invalid value: "b": spec.notb in body must not validate the schema (not)"#,
                r#"spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean""#,
            ]
        );
        assert_eq!(
            errors(s.clone(), json!({"spec": {"labels": {"b": 2}}})),
            vec![
                r#"spec.labels.b: Invalid value: "integer": spec.labels.b in body must be of type string: "integer""#
            ]
        );
        assert!(errors(s, json!({"spec": {"port": "http", "choice": "xy"}})).is_empty());
    }
}
