//! Whether a CRD's schema is *structural* and otherwise acceptable, with the errors
//! kube-apiserver gives when a CRD is written: a schema that fails here cannot serve
//! pruning, defaulting or CEL, and the CRD is refused.

use serde_json::Value;

use super::field_error::{child, index, key, FieldError};
use super::structural::{AdditionalProperties, Structural};
use super::{cel, prune, validate};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

const TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];

/// Pushes the structural-schema violations of `node` (read from the schema at `path`).
pub fn check(node: &Structural, path: &str, errs: &mut Vec<FieldError>) {
    let before = errs.len();
    invariants(node, Level::Root, path, errs);
    // Defaults are only meaningful against a structural schema, as upstream checks them.
    if errs.len() == before {
        defaults(node, path, true, errs);
    }
}

fn invariants(s: &Structural, lvl: Level, path: &str, errs: &mut Vec<FieldError>) {
    if !s.ty.is_empty() && !TYPES.contains(&s.ty.as_str()) {
        let supported: Vec<String> = TYPES.iter().map(|t| t.to_string()).collect();
        errs.push(FieldError::not_supported(
            child(path, "type"),
            &Value::String(s.ty.clone()),
            &supported,
        ));
    }
    if s.ty == "array" && s.items.is_none() {
        errs.push(FieldError::required(
            child(path, "items"),
            "must be specified",
        ));
    }
    if let Some(items) = &s.items {
        invariants(items, Level::Item, &child(path, "items"), errs);
    }
    for (name, prop) in &s.properties {
        invariants(
            prop,
            Level::Field,
            &key(&child(path, "properties"), name),
            errs,
        );
    }
    let additional = child(path, "additionalProperties");
    match &s.additional_properties {
        None => {}
        Some(a) => {
            if lvl == Level::Root {
                errs.push(FieldError::forbidden(
                    &additional,
                    "must not be used at the root",
                ));
            }
            if !s.properties.is_empty() {
                errs.push(FieldError::forbidden(
                    &additional,
                    "additionalProperties and properties are mutual exclusive",
                ));
            }
            match a {
                AdditionalProperties::Schema(sub) => {
                    invariants(sub, Level::Field, &additional, errs)
                }
                AdditionalProperties::Allowed(false) => errs.push(FieldError::forbidden(
                    &additional,
                    "additionalProperties cannot be set to false",
                )),
                AdditionalProperties::Allowed(true) => {}
            }
        }
    }
    if s.int_or_string && s.preserve_unknown_fields {
        errs.push(FieldError::invalid(
            child(path, "x-kubernetes-preserve-unknown-fields"),
            &Value::Bool(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if s.int_or_string && s.embedded_resource {
        errs.push(FieldError::invalid(
            child(path, "x-kubernetes-embedded-resource"),
            &Value::Bool(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    let int_or_string_any_of = is_int_or_string_pattern(&s.any_of);
    let int_or_string_all_of = s
        .all_of
        .first()
        .is_some_and(|first| is_int_or_string_pattern(&first.any_of));
    value_validations(s, int_or_string_any_of, int_or_string_all_of, path, errs);

    let type_path = child(path, "type");
    if s.embedded_resource && s.ty != "object" {
        let detail = "must be object if x-kubernetes-embedded-resource is true";
        if s.ty.is_empty() {
            errs.push(FieldError::required(&type_path, detail));
        } else {
            errs.push(FieldError::invalid(
                &type_path,
                &Value::String(s.ty.clone()),
                detail,
            ));
        }
    } else if s.ty.is_empty() && !s.int_or_string && !s.preserve_unknown_fields {
        let detail = match lvl {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        errs.push(FieldError::required(&type_path, detail));
    }
    if s.embedded_resource && s.additional_properties.is_some() {
        errs.push(FieldError::forbidden(
            &additional,
            "must not be used if x-kubernetes-embedded-resource is set",
        ));
    }
    if lvl == Level::Root && !s.ty.is_empty() && s.ty != "object" {
        errs.push(FieldError::invalid(
            &type_path,
            &Value::String(s.ty.clone()),
            "must be object at the root",
        ));
    }
    if lvl == Level::Root || s.embedded_resource {
        for (name, want) in [
            ("kind", "string"),
            ("apiVersion", "string"),
            ("metadata", "object"),
        ] {
            if let Some(p) = s.properties.get(name) {
                if p.ty != want {
                    errs.push(FieldError::invalid(
                        child(&key(&child(path, "properties"), name), "type"),
                        &Value::String(p.ty.clone()),
                        &format!("must be {want}"),
                    ));
                }
            }
        }
    }
    if lvl == Level::Root {
        if let Some(meta) = s.properties.get("metadata") {
            if !metadata_is_plain(meta) {
                errs.push(FieldError::forbidden(
                    key(&child(path, "properties"), "metadata"),
                    "must not specify anything other than name and generateName, but metadata is implicitly specified",
                ));
            }
        }
    }
    if s.embedded_resource && !s.preserve_unknown_fields && s.properties.is_empty() {
        errs.push(FieldError::required(
            child(path, "properties"),
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ));
    }
    if s.unique_items {
        errs.push(FieldError::forbidden(
            child(path, "uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    list_type(s, path, errs);
    for (i, rule) in s.validations.iter().enumerate() {
        for problem in cel::reference_errors(rule, s, lvl == Level::Root) {
            errs.push(FieldError::invalid(
                child(&index(&child(path, "x-kubernetes-validations"), i), "rule"),
                &Value::String(rule.rule.clone()),
                &format!("compilation failed: {problem}"),
            ));
        }
        if let Some(fp) = &rule.field_path {
            if let Err(e) = cel::field_path_target(s, fp, "") {
                errs.push(FieldError::invalid(
                    child(
                        &index(&child(path, "x-kubernetes-validations"), i),
                        "fieldPath",
                    ),
                    &Value::String(fp.clone()),
                    &format!("fieldPath must be a valid path: {e}"),
                ));
            }
        }
    }
}

/// `anyOf: [{type: integer}, {type: string}]`, the one place a value validation may name types.
fn is_int_or_string_pattern(any_of: &[Structural]) -> bool {
    any_of.len() == 2
        && any_of[0].ty == "integer"
        && any_of[1].ty == "string"
        && any_of.iter().all(is_only_type)
}

fn is_only_type(s: &Structural) -> bool {
    !s.ty.is_empty()
        && s.properties.is_empty()
        && s.default.is_none()
        && !s.has_title
        && !s.has_description
        && !has_other_keywords(s)
}

/// The root's `metadata` may only restrict `name` and `generateName`; anything else it says
/// would be a promise the server does not keep.
fn metadata_is_plain(meta: &Structural) -> bool {
    meta.properties
        .keys()
        .all(|k| k == "name" || k == "generateName")
        && !has_other_keywords(meta)
}

/// Whether `s` says anything besides `type`, `properties`, `default`, `title`, `description`.
fn has_other_keywords(s: &Structural) -> bool {
    s.format.is_some()
        || s.items.is_some()
        || s.additional_properties.is_some()
        || !s.required.is_empty()
        || s.enum_values.is_some()
        || s.nullable
        || s.maximum.is_some()
        || s.exclusive_maximum
        || s.minimum.is_some()
        || s.exclusive_minimum
        || s.multiple_of.is_some()
        || s.max_length.is_some()
        || s.min_length.is_some()
        || s.pattern.is_some()
        || s.max_items.is_some()
        || s.min_items.is_some()
        || s.unique_items
        || s.max_properties.is_some()
        || s.min_properties.is_some()
        || s.preserve_unknown_fields
        || s.embedded_resource
        || s.int_or_string
        || s.list_type.is_some()
        || !s.list_map_keys.is_empty()
        || s.map_type.is_some()
        || !s.validations.is_empty()
        || !s.all_of.is_empty()
        || !s.any_of.is_empty()
        || !s.one_of.is_empty()
        || s.not.is_some()
}

/// `allOf`/`anyOf`/`oneOf`/`not` may only validate values, never declare the shape.
fn value_validations(
    s: &Structural,
    skip_any_of: bool,
    skip_first_all_of_any_of: bool,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    if !skip_any_of {
        for (i, sub) in s.any_of.iter().enumerate() {
            nested(sub, false, &index(&child(path, "anyOf"), i), errs);
        }
    }
    for (i, sub) in s.all_of.iter().enumerate() {
        nested(
            sub,
            skip_first_all_of_any_of && i == 0,
            &index(&child(path, "allOf"), i),
            errs,
        );
    }
    for (i, sub) in s.one_of.iter().enumerate() {
        nested(sub, false, &index(&child(path, "oneOf"), i), errs);
    }
    if let Some(not) = &s.not {
        nested(not, false, &child(path, "not"), errs);
    }
}

fn nested(v: &Structural, skip_any_of: bool, path: &str, errs: &mut Vec<FieldError>) {
    value_validations(v, skip_any_of, false, path, errs);
    if let Some(items) = &v.items {
        nested(items, false, &child(path, "items"), errs);
    }
    for (name, prop) in &v.properties {
        nested(prop, false, &key(&child(path, "properties"), name), errs);
    }
    let mut forbid =
        |word: &str, detail: &str| errs.push(FieldError::forbidden(child(path, word), detail));
    if !v.ty.is_empty() {
        forbid("type", "must be empty to be structural");
    }
    if v.additional_properties.is_some() {
        forbid("additionalProperties", "must be undefined to be structural");
    }
    if v.default.is_some() {
        forbid("default", "must be undefined to be structural");
    }
    if v.has_title {
        forbid("title", "must be empty to be structural");
    }
    if v.has_description {
        forbid("description", "must be empty to be structural");
    }
    if v.nullable {
        forbid("nullable", "must be false to be structural");
    }
    if v.preserve_unknown_fields {
        forbid(
            "x-kubernetes-preserve-unknown-fields",
            "must be false to be structural",
        );
    }
    if v.embedded_resource {
        forbid(
            "x-kubernetes-embedded-resource",
            "must be false to be structural",
        );
    }
    if v.int_or_string {
        forbid(
            "x-kubernetes-int-or-string",
            "must be false to be structural",
        );
    }
    if !v.list_map_keys.is_empty() {
        forbid(
            "x-kubernetes-list-map-keys",
            "must be empty to be structural",
        );
    }
    if v.list_type.is_some() {
        forbid(
            "x-kubernetes-list-type",
            "must be undefined to be structural",
        );
    }
    if v.properties.contains_key("metadata") {
        errs.push(FieldError::forbidden(
            key(&child(path, "properties"), "metadata"),
            "must not be specified in a nested context",
        ));
    }
}

fn is_scalar(s: &Structural) -> bool {
    matches!(s.ty.as_str(), "string" | "integer" | "number" | "boolean") || s.int_or_string
}

/// `x-kubernetes-list-type` and its map keys.
fn list_type(s: &Structural, path: &str, errs: &mut Vec<FieldError>) {
    let keys_path = child(path, "x-kubernetes-list-map-keys");
    let Some(list_type) = s.list_type.as_deref() else {
        if !s.list_map_keys.is_empty() {
            errs.push(FieldError::forbidden(
                keys_path,
                "must be empty if x-kubernetes-list-type is not map",
            ));
        }
        return;
    };
    let type_path = child(path, "x-kubernetes-list-type");
    if !["atomic", "set", "map"].contains(&list_type) {
        let supported = ["atomic".to_string(), "set".to_string(), "map".to_string()];
        errs.push(FieldError::not_supported(
            type_path,
            &Value::String(list_type.to_string()),
            &supported,
        ));
        return;
    }
    if s.ty != "array" {
        errs.push(FieldError::invalid(
            child(path, "type"),
            &Value::String(s.ty.clone()),
            "must be array if x-kubernetes-list-type is specified",
        ));
        return;
    }
    let Some(items) = s.items.as_deref() else {
        return;
    };
    match list_type {
        // A set compares whole items, so they must be scalars or atomic.
        "set"
            if !is_scalar(items)
                && items.map_type.as_deref() != Some("atomic")
                && items.ty != "array" =>
        {
            errs.push(FieldError::invalid(
                child(&child(path, "items"), "x-kubernetes-map-type"),
                &Value::String(items.map_type.clone().unwrap_or_default()),
                "must be atomic as item of a list with x-kubernetes-list-type=set",
            ));
        }
        "map" => {
            if s.list_map_keys.is_empty() {
                errs.push(FieldError::required(
                    keys_path,
                    "must not be empty if x-kubernetes-list-type is map",
                ));
                return;
            }
            if items.ty != "object" {
                errs.push(FieldError::invalid(
                    child(&child(path, "items"), "type"),
                    &Value::String(items.ty.clone()),
                    "must be object for an array of list-type map",
                ));
                return;
            }
            for (i, k) in s.list_map_keys.iter().enumerate() {
                if s.list_map_keys[..i].contains(k) {
                    errs.push(FieldError::duplicate(
                        index(&keys_path, i),
                        Some(&Value::String(k.clone())),
                    ));
                    continue;
                }
                match items.properties.get(k) {
                    None => errs.push(FieldError::required(
                        key(&child(&child(path, "items"), "properties"), k),
                        "entries must all be names of item properties",
                    )),
                    Some(prop) => {
                        if !is_scalar(prop) {
                            errs.push(FieldError::invalid(
                                child(&key(&child(&child(path, "items"), "properties"), k), "type"),
                                &Value::String(prop.ty.clone()),
                                "must be a scalar type if used as list map key",
                            ));
                        }
                        if !items.required.contains(k) && prop.default.is_none() {
                            errs.push(FieldError::required(
                                child(&child(path, "items"), "required"),
                                &format!(
                                    "all map keys must be required or have a default value: {k}"
                                ),
                            ));
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

/// Every `default` must be pruned already and valid against its own schema.
fn defaults(s: &Structural, path: &str, root: bool, errs: &mut Vec<FieldError>) {
    if let Some(default) = &s.default {
        let at = child(path, "default");
        if root {
            errs.push(FieldError::forbidden(&at, "must not be set at the root"));
        } else {
            let mut pruned_copy = default.clone();
            let mut unknown = Vec::new();
            prune::prune(s, &mut pruned_copy, "", s.embedded_resource, &mut unknown);
            if !unknown.is_empty() {
                errs.push(FieldError::invalid(
                    &at,
                    default,
                    "must not have unknown fields",
                ));
            }
            // The default is validated as a document of its own: messages name fields relative
            // to it (`in body should be...` for the default itself), fields are under `default`.
            let mut found = Vec::new();
            validate::validate(s, default, "", &mut found);
            for e in &mut found {
                e.field = if e.field.is_empty() {
                    at.clone()
                } else if e.field.starts_with('[') {
                    format!("{at}{}", e.field)
                } else {
                    child(&at, &e.field)
                };
            }
            if found.is_empty() {
                // As an update from itself (transition rules) and as a create.
                cel::validate(s, default, Some(default), &at, &mut found);
                if found.is_empty() {
                    cel::validate(s, default, None, &at, &mut found);
                }
            }
            errs.extend(found);
        }
    }
    if let Some(items) = &s.items {
        defaults(items, &child(path, "items"), false, errs);
    }
    for (name, prop) in &s.properties {
        if root && name == "metadata" {
            if prop.default.is_some() {
                errs.push(FieldError::forbidden(
                    child(&key(&child(path, "properties"), name), "default"),
                    "must not be set for metadata",
                ));
            }
            continue;
        }
        defaults(prop, &key(&child(path, "properties"), name), false, errs);
    }
    if let Some(AdditionalProperties::Schema(sub)) = &s.additional_properties {
        defaults(sub, &child(path, "additionalProperties"), false, errs);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::Structural;

    const PREFIX: &str = "spec.versions[0].schema.openAPIV3Schema";

    fn check(schema: serde_json::Value) -> Vec<String> {
        let mut got: Vec<String> = Structural::check_structural(&schema, PREFIX)
            .iter()
            .map(ToString::to_string)
            .collect();
        got.sort();
        got
    }

    #[test]
    fn a_good_schema_passes() {
        let got = check(json!({"type": "object", "properties": {
            "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 10}}},
            "spec": {"type": "object", "properties": {
                "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "n": {"type": "integer", "default": 3, "allOf": [{"minimum": 1}]},
            }},
        }}));
        assert_eq!(got, Vec::<String>::new());
    }

    #[test]
    fn structural_violations() {
        let got = check(json!({"type": "object", "properties": {
            "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}},
            "spec": {"properties": {
                "a": {"type": "object", "properties": {"x": {"type": "string"}}, "additionalProperties": {"type": "string"}},
                "list": {"type": "array"},
                "u": {"type": "array", "uniqueItems": true, "items": {"type": "string"}},
                "v": {"type": "string", "anyOf": [{"type": "string", "description": "d"}]},
            }},
        }}));
        assert_eq!(
            got,
            vec![
                format!("{PREFIX}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"),
                format!("{PREFIX}.properties[spec].properties[a].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"),
                format!("{PREFIX}.properties[spec].properties[list].items: Required value: must be specified"),
                format!("{PREFIX}.properties[spec].properties[u].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic"),
                format!("{PREFIX}.properties[spec].properties[v].anyOf[0].description: Forbidden: must be empty to be structural"),
                format!("{PREFIX}.properties[spec].properties[v].anyOf[0].type: Forbidden: must be empty to be structural"),
                format!("{PREFIX}.properties[spec].type: Required value: must not be empty for specified object fields"),
            ]
        );
    }

    #[test]
    fn root_must_be_an_object() {
        assert_eq!(
            check(json!({"type": "string"})),
            vec![format!(
                r#"{PREFIX}.type: Invalid value: "string": must be object at the root"#
            )]
        );
        assert_eq!(
            check(json!({})),
            vec![format!(
                "{PREFIX}.type: Required value: must not be empty at the root"
            )]
        );
    }

    #[test]
    fn list_map_keys() {
        let got = check(json!({"type": "object", "properties": {
            "a": {"type": "array", "x-kubernetes-list-type": "map", "items": {"type": "object"}},
            "b": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name", "missing"],
                  "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
            "c": {"type": "string", "x-kubernetes-list-type": "set"},
            "d": {"type": "array", "x-kubernetes-list-type": "bag", "items": {"type": "string"}},
        }}));
        assert_eq!(
            got,
            vec![
                format!("{PREFIX}.properties[a].x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map"),
                format!("{PREFIX}.properties[b].items.properties[missing]: Required value: entries must all be names of item properties"),
                format!("{PREFIX}.properties[b].items.required: Required value: all map keys must be required or have a default value: name"),
                format!(r#"{PREFIX}.properties[c].type: Invalid value: "string": must be array if x-kubernetes-list-type is specified"#),
                format!(r#"{PREFIX}.properties[d].x-kubernetes-list-type: Unsupported value: "bag": supported values: "atomic", "set", "map""#),
            ]
        );
    }

    #[test]
    fn defaults_must_validate_and_be_pruned() {
        let got = check(json!({"type": "object", "properties": {
            "n": {"type": "integer", "maximum": 5, "default": 7},
            "o": {"type": "object", "properties": {"a": {"type": "string"}}, "default": {"a": "x", "b": 1}},
            "s": {"type": "string", "default": "no", "x-kubernetes-validations": [{"rule": "self == 'yes'"}]},
            "t": {"type": "object", "properties": {"a": {"type": "string"}}, "default": {"a": 5}},
        }}));
        assert_eq!(
            got,
            vec![
                format!("{PREFIX}.properties[n].default: Invalid value: 7:  in body should be less than or equal to 5"),
                format!(r#"{PREFIX}.properties[o].default: Invalid value: {{"a":"x","b":1}}: must not have unknown fields"#),
                format!(r#"{PREFIX}.properties[s].default: Invalid value: "no": failed rule: self == 'yes'"#),
                format!(r#"{PREFIX}.properties[t].default.a: Invalid value: "integer": a in body must be of type string: "integer""#),
            ]
        );
    }

    #[test]
    fn rule_field_paths_must_name_fields() {
        let got = check(json!({"type": "object", "properties": {"spec": {
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": "true", "fieldPath": ".a"},
                {"rule": "true", "fieldPath": ".nope"},
                {"rule": "true", "fieldPath": ".m['k']"},
            ],
            "properties": {"a": {"type": "string"}, "m": {"type": "object", "additionalProperties": {"type": "string"}}},
        }}}));
        assert_eq!(
            got,
            vec![format!(
                r#"{PREFIX}.properties[spec].x-kubernetes-validations[1].fieldPath: Invalid value: ".nope": fieldPath must be a valid path: does not refer to a valid field"#
            )]
        );
    }

    #[test]
    fn hostile_schemas_do_not_panic() {
        let mut deep = json!({"type": "object"});
        for _ in 0..100 {
            deep = json!({"type": "object", "properties": {"x": deep}});
        }
        assert!(!check(deep).is_empty());
        let got = check(
            json!({"type": "object", "properties": {"p": {"type": "string", "pattern": "(unclosed"}}}),
        );
        assert_eq!(got.len(), 1);
        assert!(
            got[0].contains(
                "pattern: Invalid value: \"(unclosed\": must be a valid regular expression"
            ),
            "{got:?}"
        );
    }
}
