//! Our own kinds' schemas, read as a CRD's: the schemars output of a `trellis-apis` type, with
//! its references inlined into one `openAPIV3Schema`, then parsed by the structural-schema
//! engine (`crate::machinery::schema`). So our own groups are pruned, defaulted and validated (CEL rules
//! included) exactly as custom resources are, and server-side apply follows their list types.
//!
//! schemars speaks JSON Schema; a structural schema is a subset. The translation: references
//! are inlined (ObjectMeta becomes `type: object`, as CRDs must say it), a `oneOf` of constants
//! (an enum with documented variants) becomes an `enum`, `const` becomes a one-value `enum`,
//! an untyped schema (a `serde_json::Value` field) keeps unknown fields, and formats the
//! engine does not know (`uint32`) are dropped in favour of `minimum: 0`.

use serde_json::{json, Map, Value};

use crate::machinery::schema::Structural;

/// An own kind's schema: as published to clients that read CRD-style schemas, and parsed.
pub struct OwnSchema {
    pub schema: Value,
    pub structural: Structural,
}

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const REF_PREFIX: &str = "#/components/schemas/";
/// Deeper than any of our types nests; guards against a recursive type.
const MAX_DEPTH: usize = 32;

impl OwnSchema {
    /// Reads the component schema `name` from `definitions`.
    pub fn read(name: &str, definitions: &Map<String, Value>) -> Result<OwnSchema, String> {
        let root = definitions
            .get(name)
            .ok_or_else(|| format!("no schema named {name}"))?;
        let schema = inline(root, definitions, 0)?;
        let structural = Structural::parse(&schema).map_err(|errs| {
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        Ok(OwnSchema { schema, structural })
    }
}

fn inline(schema: &Value, definitions: &Map<String, Value>, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err("the schema nests too deeply (a recursive type?)".into());
    }
    let Some(map) = schema.as_object() else {
        // `true`: anything.
        return Ok(json!({"x-kubernetes-preserve-unknown-fields": true}));
    };
    if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
        return referenced(reference, map, definitions, depth);
    }
    // A documented or optional reference, as k8s-openapi and schemars write them:
    // `allOf: [{$ref}]`, `anyOf: [{$ref}, {type: null}]`.
    for combinator in ["allOf", "anyOf"] {
        let Some(branches) = map.get(combinator).and_then(Value::as_array) else {
            continue;
        };
        // schemars' OpenAPI 3 forms of `null`: `{nullable: true, const|enum: null}`.
        let is_null = |b: &&Value| {
            b.get("type").and_then(Value::as_str) == Some("null")
                || b.get("const").is_some_and(Value::is_null)
                || b.get("enum")
                    .and_then(Value::as_array)
                    .is_some_and(|e| e == &[Value::Null])
        };
        let nullable = branches.iter().any(|b| is_null(&b));
        let mut rest = branches.iter().filter(|b| !is_null(b));
        if let (Some(only), None) = (rest.next(), rest.next()) {
            let mut inner = inline(only, definitions, depth + 1)?;
            merge_annotations(&mut inner, map);
            if nullable {
                inner["nullable"] = json!(true);
            }
            return Ok(inner);
        }
    }
    if let Some(values) = map
        .get("oneOf")
        .and_then(Value::as_array)
        .and_then(|o| constants(o))
    {
        let mut out = Map::new();
        out.insert("type".into(), json!("string"));
        out.insert("enum".into(), Value::Array(values));
        let mut out = Value::Object(out);
        merge_annotations(&mut out, map);
        return Ok(out);
    }
    let mut out = Map::new();
    for (key, value) in map {
        match key.as_str() {
            "properties" => {
                let mut properties = Map::new();
                for (name, property) in value.as_object().into_iter().flatten() {
                    let property = if depth == 0 && name == "metadata" {
                        // CRD schemas may say nothing else of metadata; the server owns it.
                        json!({"type": "object"})
                    } else {
                        inline(property, definitions, depth + 1)?
                    };
                    properties.insert(name.clone(), property);
                }
                out.insert(key.clone(), Value::Object(properties));
            }
            "items" | "additionalProperties" if value.is_object() => {
                out.insert(key.clone(), inline(value, definitions, depth + 1)?);
            }
            "const" => {
                out.insert("enum".into(), json!([value]));
            }
            "format" => match value.as_str() {
                Some(f) if f.starts_with("uint") => {
                    out.entry("minimum").or_insert(json!(0));
                    out.insert("format".into(), json!("int64"));
                }
                Some("int8" | "int16") => {
                    out.insert("format".into(), json!("int32"));
                }
                _ => {
                    out.insert(key.clone(), value.clone());
                }
            },
            // Annotations the structural engine does not read.
            "title" | "examples" | "readOnly" | "writeOnly" | "deprecated" | "$schema" => {}
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    if !out.contains_key("type")
        && !out.contains_key("x-kubernetes-int-or-string")
        && !out.contains_key("x-kubernetes-preserve-unknown-fields")
    {
        out.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
    }
    Ok(Value::Object(out))
}

fn referenced(
    reference: &str,
    map: &Map<String, Value>,
    definitions: &Map<String, Value>,
    depth: usize,
) -> Result<Value, String> {
    let name = reference
        .strip_prefix(REF_PREFIX)
        .or_else(|| reference.strip_prefix("#/$defs/"))
        .or_else(|| reference.strip_prefix("#/definitions/"))
        .ok_or_else(|| format!("unsupported reference {reference}"))?;
    if name == OBJECT_META {
        return Ok(json!({"type": "object"}));
    }
    let mut inner = {
        let target = definitions
            .get(name)
            .ok_or_else(|| format!("no schema named {name}"))?;
        inline(target, definitions, depth + 1)?
    };
    merge_annotations(&mut inner, map);
    Ok(inner)
}

/// The values of a `oneOf` whose every branch is one constant (or a one-value enum).
fn constants(branches: &[Value]) -> Option<Vec<Value>> {
    let mut values = Vec::new();
    for branch in branches {
        match (
            branch.get("const"),
            branch.get("enum").and_then(Value::as_array),
        ) {
            (Some(value), _) => values.push(value.clone()),
            (None, Some(list)) => values.extend(list.iter().cloned()),
            _ => return None,
        }
    }
    Some(values)
}

/// Carries what sits beside a reference (description, default, nullable, extensions) onto
/// the inlined schema.
fn merge_annotations(inner: &mut Value, outer: &Map<String, Value>) {
    let Some(inner) = inner.as_object_mut() else {
        return;
    };
    for (key, value) in outer {
        if matches!(key.as_str(), "$ref" | "allOf" | "anyOf" | "oneOf") {
            continue;
        }
        inner.insert(key.clone(), value.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<T: schemars::JsonSchema>() -> OwnSchema {
        let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
        let name = crate::kinds::schema_of::<T>(&mut generator);
        let definitions = generator.take_definitions(true);
        OwnSchema::read(&name, &definitions).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn workspaces_read_as_a_structural_schema() {
        let ws = read::<trellis_apis::tenancy::Workspace>();
        assert_eq!(ws.schema["properties"]["metadata"]["type"], "object");
        assert_eq!(
            ws.schema["properties"]["spec"]["properties"]["type"]["properties"]["name"]["type"],
            "string"
        );
        // Pruning: an undeclared field goes, a declared one stays.
        let mut object = json!({"apiVersion": "tenancy.trellis.dev/v1alpha1", "kind": "Workspace",
            "metadata": {"name": "a"}, "spec": {"bogus": 1, "type": {"name": "team"}}});
        assert_eq!(
            ws.structural.prune(&mut object),
            vec!["spec.bogus".to_string()]
        );
        assert_eq!(object["spec"]["type"]["name"], "team");
    }

    #[test]
    fn every_own_kind_of_the_hub_reads() {
        read::<trellis_apis::tenancy::WorkspaceType>();
        read::<trellis_apis::core::LogicalCluster>();
        read::<trellis_apis::core::Shard>();
    }
}
