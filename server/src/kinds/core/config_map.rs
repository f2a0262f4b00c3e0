//! ConfigMap: configuration data as string (`data`) and binary (`binaryData`) entries.
//!
//! As kube-apiserver checks them: keys are config keys, a key is in `data` or `binaryData`,
//! not both, the whole is at most 1 MiB, and once `immutable` is set nothing of it changes.
//! Secrets share the key, size and immutability rules.

use k8s_openapi::api::core::v1;
use serde_json::Value;

use crate::machinery::schema::FieldError;
use crate::machinery::status::StatusCause;

use crate::kinds::{
    age_cell, cell_count, cell_text, schema_of, Column, Grants, Kind, Names, SchemaSource, AGE,
    NAME, READ, WRITE,
};

pub struct ConfigMap;

impl Kind for ConfigMap {
    fn names(&self) -> Names {
        Names::namespaced("", "v1", "ConfigMap", "configmaps").short(&["cm"])
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Upstream(schema_of::<v1::ConfigMap>)
    }

    fn validate(&self, object: &Value, old: Option<&Value>) -> Vec<StatusCause> {
        let mut errors = Vec::new();
        let mut size = 0;
        for (key, value) in entries(object, "data") {
            errors.extend(key_errors("data", key));
            size += value.as_str().map_or(0, str::len);
        }
        let data = object.get("data");
        for (key, value) in entries(object, "binaryData") {
            errors.extend(key_errors("binaryData", key));
            if data.and_then(|d| d.get(key)).is_some() {
                errors.push(FieldError::invalid(
                    format!("binaryData[{key}]"),
                    &Value::String(key.clone()),
                    "duplicate of key present in data",
                ));
            }
            size += decoded_len(value);
        }
        if size > MAX_SIZE {
            errors.push(FieldError::too_long("", MAX_SIZE as u64));
        }
        if let Some(old) = old {
            errors.extend(immutable_errors(object, old, &["data", "binaryData"]));
        }
        errors.into_iter().map(StatusCause::from).collect()
    }

    fn columns(&self) -> &'static [Column] {
        &[NAME, ("Data", "integer", 0), AGE]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![
            cell_text(o, "/metadata/name"),
            cell_count(o, &["/data", "/binaryData"]),
            age_cell(o),
        ]
    }

    fn grants(&self) -> Grants {
        Grants {
            view: READ,
            edit: WRITE,
            admin: &[],
        }
    }

    fn protobuf(&self) -> Option<crate::machinery::protobuf::Converter> {
        Some(crate::machinery::protobuf::config_map)
    }
}

/// Most bytes of data one ConfigMap or Secret holds (kube-apiserver's `MaxSecretSize`).
pub(super) const MAX_SIZE: usize = 1024 * 1024;

/// Longest config key.
const MAX_KEY: usize = 253;

/// The entries of the map at `field`, if it is one.
pub(super) fn entries<'a>(
    object: &'a Value,
    field: &str,
) -> impl Iterator<Item = (&'a String, &'a Value)> {
    object
        .get(field)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
}

/// The bytes a base64 value stands for, from its length alone: no decoding on every write (a
/// Secret's values are decoded once, when admitted).
pub(super) fn decoded_len(value: &Value) -> usize {
    let Some(text) = value.as_str() else {
        return 0;
    };
    let padding = text.bytes().rev().take_while(|b| *b == b'=').count().min(2);
    (text.len() / 4 * 3).saturating_sub(padding)
}

/// What is wrong with `key` as a key of the map at `field` (kube-apiserver's `IsConfigMapKey`).
pub(super) fn key_errors(field: &str, key: &str) -> Vec<FieldError> {
    let mut problems = Vec::new();
    if key.len() > MAX_KEY {
        problems.push(format!("must be no more than {MAX_KEY} characters"));
    }
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        problems.push(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' \
             (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is \
             '[-._a-zA-Z0-9]+')"
                .to_string(),
        );
    }
    if key == "." {
        problems.push("must not be '.'".to_string());
    } else if key == ".." {
        problems.push("must not be '..'".to_string());
    } else if key.starts_with("..") {
        problems.push("must not start with '..'".to_string());
    }
    let value = Value::String(key.to_string());
    problems
        .iter()
        .map(|p| FieldError::invalid(format!("{field}[{key}]"), &value, p))
        .collect()
}

/// Once the old object is `immutable`, neither that flag nor the `fields` may change.
pub(super) fn immutable_errors(object: &Value, old: &Value, fields: &[&str]) -> Vec<FieldError> {
    if old.get("immutable") != Some(&Value::Bool(true)) {
        return Vec::new();
    }
    const WHY: &str = "field is immutable when `immutable` is set";
    let mut errors = Vec::new();
    if object.get("immutable") != old.get("immutable") {
        errors.push(FieldError::forbidden("immutable", WHY));
    }
    for field in fields {
        let (new, was) = (object.get(*field), old.get(*field));
        let empty =
            |v: Option<&Value>| v.is_none_or(|v| v.is_null() || v == &serde_json::json!({}));
        if new != was && !(empty(new) && empty(was)) {
            errors.push(FieldError::forbidden(*field, WHY));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn causes(object: &Value, old: Option<&Value>) -> Vec<(String, String)> {
        ConfigMap
            .validate(object, old)
            .into_iter()
            .map(|c| (c.field, c.message))
            .collect()
    }

    #[test]
    fn keys_sizes_and_duplicates() {
        assert!(causes(
            &json!({"data": {"a.b-c_D": "x"}, "binaryData": {"bin": "eA=="}}),
            None
        )
        .is_empty());
        let bad = causes(&json!({"data": {"a b": "x", "..x": "y"}}), None);
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(bad.iter().any(|(f, m)| f == "data[a b]"
            && m.starts_with("Invalid value: \"a b\": a valid config key")));
        assert!(bad
            .iter()
            .any(|(f, m)| f == "data[..x]" && m.ends_with("must not start with '..'")));
        let twice = causes(
            &json!({"data": {"k": "x"}, "binaryData": {"k": "eA=="}}),
            None,
        );
        assert_eq!(
            twice,
            vec![(
                "binaryData[k]".to_string(),
                "Invalid value: \"k\": duplicate of key present in data".to_string()
            )]
        );
        let big = "x".repeat(MAX_SIZE / 2 + 1);
        let too_big = causes(&json!({"data": {"a": big, "b": big}}), None);
        assert_eq!(too_big.len(), 1, "{too_big:?}");
        assert!(too_big[0].1.starts_with("Too long"), "{too_big:?}");
    }

    #[test]
    fn base64_lengths_without_decoding() {
        for bytes in [&b""[..], b"a", b"ab", b"abc", b"abcd", &[0u8; 1000]] {
            use base64::Engine;
            let text = base64::engine::general_purpose::STANDARD.encode(bytes);
            assert_eq!(decoded_len(&Value::String(text)), bytes.len());
        }
    }

    #[test]
    fn immutable_means_immutable() {
        let old = json!({"immutable": true, "data": {"a": "1"}});
        assert!(causes(&old, Some(&old)).is_empty());
        // Metadata may still change; data, binaryData and the flag may not.
        let changed = causes(&json!({"immutable": true, "data": {"a": "2"}}), Some(&old));
        assert_eq!(
            changed,
            vec![(
                "data".to_string(),
                "Forbidden: field is immutable when `immutable` is set".to_string()
            )]
        );
        let unset = causes(&json!({"immutable": false, "data": {"a": "1"}}), Some(&old));
        assert_eq!(unset[0].0, "immutable");
        // Not immutable before: anything goes, setting the flag included.
        let mutable = json!({"data": {"a": "1"}});
        assert!(causes(
            &json!({"immutable": true, "data": {"a": "2"}}),
            Some(&mutable)
        )
        .is_empty());
    }
}
