//! The strategy of CustomResourceDefinitions themselves: what kube-apiserver checks before
//! storing one (names, scope, versions, subresources, schemas), and the cleanup finalizer
//! every new CRD carries.

use serde_json::{json, Value};

use crate::controllers::crd::CLEANUP_FINALIZER;
use crate::machinery::names::name_problem;
use crate::machinery::status::StatusCause;

fn cause(kind: &str, field: &str, message: String) -> StatusCause {
    StatusCause {
        kind: kind.into(),
        message,
        field: field.into(),
    }
}

fn required(field: &str) -> StatusCause {
    cause("FieldValueRequired", field, "Required value".into())
}

fn invalid(field: &str, value: &Value, why: &str) -> StatusCause {
    cause(
        "FieldValueInvalid",
        field,
        format!("Invalid value: {value}: {why}"),
    )
}

/// A new CRD holds the cleanup finalizer, so its objects go before it does.
pub fn prepare_create(crd: &mut Value) {
    // As kube-apiserver answers a create: the status starts empty but for the stored version,
    // so clients can read it back at once (the CRD controller accepts the names and establishes
    // it next).
    let stored = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|versions| {
            versions
                .iter()
                .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        })
        .and_then(|v| v.get("name"))
        .cloned();
    if let Some(map) = crd.as_object_mut() {
        map.insert(
            "status".into(),
            json!({
                "acceptedNames": {"kind": "", "plural": ""},
                "storedVersions": stored.into_iter().collect::<Vec<_>>(),
            }),
        );
    }
    let Some(meta) = crd.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let finalizers = meta.entry("finalizers").or_insert_with(|| json!([]));
    if let Some(list) = finalizers.as_array_mut() {
        if !list.iter().any(|f| f.as_str() == Some(CLEANUP_FINALIZER)) {
            list.push(json!(CLEANUP_FINALIZER));
        }
    }
}

/// kube-apiserver's defaults for every CRD write: `spec.names.singular` (the kind in lower
/// case), `spec.names.listKind` (`<Kind>List`) and `spec.conversion.strategy: None`.
pub fn apply_defaults(crd: &mut Value) {
    let kind = text(crd, "/spec/names/kind").map(str::to_string);
    if let (Some(kind), Some(names)) = (
        kind,
        crd.pointer_mut("/spec/names")
            .and_then(Value::as_object_mut),
    ) {
        names
            .entry("singular")
            .or_insert_with(|| json!(kind.to_lowercase()));
        names
            .entry("listKind")
            .or_insert_with(|| json!(format!("{kind}List")));
    }
    if let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) {
        let conversion = spec
            .entry("conversion")
            .or_insert_with(|| json!({"strategy": "None"}));
        if let Some(conversion) = conversion.as_object_mut() {
            conversion
                .entry("strategy")
                .or_insert_with(|| json!("None"));
        }
    }
}

fn text<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// A lowercase RFC 1035 label, as resource and version names must be.
fn dns1035_problem(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    (!ok).then(|| "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')".to_string())
}

/// Problems with `crd` (and, on update, with how it changed from `old`).
pub fn validate(crd: &Value, old: Option<&Value>) -> Vec<StatusCause> {
    let mut causes = Vec::new();
    let group = text(crd, "/spec/group");
    let plural = text(crd, "/spec/names/plural");
    match group {
        None => causes.push(required("spec.group")),
        Some(g) if !g.contains('.') => causes.push(invalid(
            "spec.group",
            &json!(g),
            "should be a domain with at least one dot",
        )),
        Some(g) => {
            if let Some(problem) = name_problem(g, false) {
                causes.push(invalid("spec.group", &json!(g), &problem));
            }
        }
    }
    if let (Some(group), Some(plural)) = (group, plural) {
        let name = text(crd, "/metadata/name").unwrap_or_default();
        if name != format!("{plural}.{group}") {
            causes.push(invalid(
                "metadata.name",
                &json!(name),
                "must be spec.names.plural+\".\"+spec.group",
            ));
        }
    }
    match text(crd, "/spec/scope") {
        Some("Namespaced" | "Cluster") => {}
        None => causes.push(required("spec.scope")),
        Some(other) => causes.push(cause(
            "FieldValueNotSupported",
            "spec.scope",
            format!(
                "Unsupported value: {:?}: supported values: \"Cluster\", \"Namespaced\"",
                other
            ),
        )),
    }
    if let Some(old) = old {
        if old.pointer("/spec/scope") != crd.pointer("/spec/scope") {
            causes.push(invalid(
                "spec.scope",
                crd.pointer("/spec/scope").unwrap_or(&Value::Null),
                "field is immutable",
            ));
        }
    }
    for field in ["plural", "singular"] {
        if let Some(name) = text(crd, &format!("/spec/names/{field}")) {
            if let Some(problem) = dns1035_problem(name) {
                causes.push(invalid(
                    &format!("spec.names.{field}"),
                    &json!(name),
                    &problem,
                ));
            }
        }
    }
    if plural.is_none() {
        causes.push(required("spec.names.plural"));
    }
    if text(crd, "/spec/names/kind").is_none() {
        causes.push(required("spec.names.kind"));
    }
    validate_versions(crd, &mut causes);
    causes
}

fn validate_versions(crd: &Value, causes: &mut Vec<StatusCause>) {
    let Some(versions) = crd.pointer("/spec/versions").and_then(Value::as_array) else {
        causes.push(required("spec.versions"));
        return;
    };
    if versions.is_empty() {
        causes.push(required("spec.versions"));
        return;
    }
    let storage = versions.iter().filter(|v| v["storage"] == true).count();
    if storage != 1 {
        causes.push(invalid(
            "spec.versions",
            &json!(versions
                .iter()
                .filter_map(|v| v["name"].as_str())
                .collect::<Vec<_>>()),
            "must have exactly one version marked as storage version",
        ));
    }
    let mut seen = Vec::new();
    for (i, version) in versions.iter().enumerate() {
        let at = format!("spec.versions[{i}]");
        match version["name"].as_str() {
            None | Some("") => causes.push(required(&format!("{at}.name"))),
            Some(name) => {
                if let Some(problem) = dns1035_problem(name) {
                    causes.push(invalid(&format!("{at}.name"), &json!(name), &problem));
                }
                if seen.contains(&name) {
                    causes.push(cause(
                        "FieldValueDuplicate",
                        &format!("{at}.name"),
                        format!("Duplicate value: {name:?}"),
                    ));
                }
                seen.push(name);
            }
        }
        let schema = version.pointer("/schema/openAPIV3Schema");
        match schema {
            None | Some(Value::Null) => causes.push(cause(
                "FieldValueRequired",
                &format!("{at}.schema.openAPIV3Schema"),
                "Required value: schemas are required".into(),
            )),
            Some(schema) => {
                let prefix = format!("{at}.schema.openAPIV3Schema");
                causes.extend(schema_problems(schema, &prefix));
            }
        }
        if let Some(scale) = version.pointer("/subresources/scale") {
            for (field, prefix, required_field) in [
                ("specReplicasPath", ".spec.", true),
                ("statusReplicasPath", ".status.", true),
                ("labelSelectorPath", "", false),
            ] {
                let path = format!("{at}.subresources.scale.{field}");
                match scale[field].as_str() {
                    None if required_field => causes.push(required(&path)),
                    None => {}
                    Some(p) if !p.starts_with(prefix) || !p.starts_with('.') => {
                        causes.push(invalid(
                            &path,
                            &json!(p),
                            &format!(
                                "should be a json path under {}",
                                if prefix.is_empty() {
                                    ".spec or .status"
                                } else {
                                    prefix.trim_end_matches('.')
                                }
                            ),
                        ))
                    }
                    Some(_) => {}
                }
            }
        }
    }
}

/// What makes a version's schema unusable: not structural, invalid, or with CEL rules that
/// do not compile.
fn schema_problems(schema: &Value, prefix: &str) -> Vec<StatusCause> {
    crate::machinery::schema::Structural::check_structural(schema, prefix)
        .into_iter()
        .map(|e| StatusCause {
            kind: e.kind.to_string(),
            message: e.message,
            field: e.field,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object"}}}],
            },
        })
    }

    fn fields(causes: &[StatusCause]) -> Vec<&str> {
        causes.iter().map(|c| c.field.as_str()).collect()
    }

    #[test]
    fn a_good_crd_passes_and_gets_the_finalizer() {
        assert!(
            validate(&crd(), None).is_empty(),
            "{:?}",
            validate(&crd(), None)
        );
        let mut new = crd();
        prepare_create(&mut new);
        assert_eq!(new["metadata"]["finalizers"], json!([CLEANUP_FINALIZER]));
    }

    #[test]
    fn bad_crds_say_what_is_wrong() {
        let mut bad = crd();
        bad["metadata"]["name"] = json!("gadgets.example.com");
        bad["spec"]["scope"] = json!("Global");
        bad["spec"]["versions"][0]["storage"] = json!(false);
        bad["spec"]["versions"][0]["schema"] = Value::Null;
        let causes = validate(&bad, None);
        assert_eq!(
            fields(&causes),
            [
                "metadata.name",
                "spec.scope",
                "spec.versions",
                "spec.versions[0].schema.openAPIV3Schema"
            ]
        );
        let mut no_dot = crd();
        no_dot["spec"]["group"] = json!("example");
        no_dot["metadata"]["name"] = json!("widgets.example");
        assert!(validate(&no_dot, None)[0]
            .message
            .contains("should be a domain with at least one dot"));
        let mut rescoped = crd();
        rescoped["spec"]["scope"] = json!("Cluster");
        assert_eq!(fields(&validate(&rescoped, Some(&crd()))), ["spec.scope"]);
    }
}
