//! OpenAPI v3 documents for the group versions a workspace's CRDs define, built on request
//! from their schemas (a few kilobytes; the built-in documents are built once per server).

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::{document, group_version_path, gvk, hash, index_entry, paths_for, Documents};
use crate::registry::ResourceType;

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// The component name of a custom kind, as kube-apiserver names it: the group reversed,
/// then version and kind (`com.example.v1.Widget`).
pub fn schema_name(rt: &ResourceType) -> String {
    let reversed: Vec<&str> = rt.group.split('.').rev().collect();
    format!("{}.{}.{}", reversed.join("."), rt.version, rt.kind)
}

/// The schema of a custom kind: its CRD schema with `apiVersion`, `kind` and `metadata`
/// described as for every kind.
fn kind_schema(rt: &ResourceType) -> Value {
    let mut schema = rt
        .custom
        .as_ref()
        .and_then(|c| c.schema.clone())
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
    if let Some(object) = schema.as_object_mut() {
        let properties = object.entry("properties").or_insert_with(|| json!({}));
        if let Some(properties) = properties.as_object_mut() {
            properties.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values."}));
            properties.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase."}));
            properties.insert("metadata".into(), json!({"allOf": [{"$ref": format!("#/components/schemas/{OBJECT_META}")}], "description": "Standard object's metadata."}));
        }
        object.insert("x-kubernetes-group-version-kind".into(), json!([gvk(rt)]));
    }
    schema
}

/// Adds `name` and every schema it refers to, from the built-in components.
fn add_with_references(name: &str, from: &Map<String, Value>, into: &mut Map<String, Value>) {
    let mut pending = vec![name.to_string()];
    let mut seen = BTreeSet::new();
    while let Some(name) = pending.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let Some(schema) = from.get(&name) else {
            continue;
        };
        collect_refs(schema, &mut pending);
        into.insert(name, schema.clone());
    }
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        if let Some(name) = r.strip_prefix("#/components/schemas/") {
                            out.push(name.to_string());
                        }
                    }
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// Group versions served only by CRDs, each with its custom resources.
fn custom_group_versions(resources: &[Arc<ResourceType>]) -> Vec<(String, Vec<&ResourceType>)> {
    let mut out: Vec<(String, Vec<&ResourceType>)> = Vec::new();
    for rt in resources.iter().filter(|r| r.custom.is_some()) {
        let key = group_version_path(&rt.group, &rt.version);
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, types)) => types.push(rt),
            None => out.push((key, vec![rt])),
        }
    }
    out
}

/// The v3 document of one custom group version (`apis/<group>/<version>`) with its hash.
pub fn custom_v3(
    docs: &Documents,
    resources: &[Arc<ResourceType>],
    group_version: &str,
) -> Option<(String, Bytes)> {
    let (_, types) = custom_group_versions(resources)
        .into_iter()
        .find(|(key, _)| key == group_version)?;
    let body = custom_document(docs, &types);
    Some((hash(&body), body))
}

fn custom_document(docs: &Documents, types: &[&ResourceType]) -> Bytes {
    let mut schemas = Map::new();
    add_with_references(OBJECT_META, &docs.schemas, &mut schemas);
    let mut paths = Map::new();
    for rt in types {
        let name = schema_name(rt);
        let schema_ref = json!({"$ref": format!("#/components/schemas/{name}")});
        schemas.insert(name, kind_schema(rt));
        for (path, item) in paths_for(rt, &schema_ref) {
            paths.insert(path, item);
        }
    }
    Bytes::from(serde_json::to_vec(&document(paths, &schemas)).unwrap_or_default())
}

/// The `/openapi/v3` index: the built-in group versions and the workspace's custom ones.
pub fn v3_index(docs: &Documents, resources: &[Arc<ResourceType>]) -> Bytes {
    let mut index = docs.index.clone();
    for (key, types) in custom_group_versions(resources) {
        let body = custom_document(docs, &types);
        index.insert(key.clone(), index_entry(&key, &hash(&body)));
    }
    Bytes::from(serde_json::to_vec(&json!({"paths": index})).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crds::served::resource_types;

    #[test]
    fn a_crd_gets_its_own_document_with_object_meta() {
        let crd = json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "description": "A widget.",
                        "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}],
            },
            "status": {"conditions": [{"type": "Established", "status": "True"}]},
        });
        let hub = crate::serving::hub::test_hub();
        let docs = crate::serving::hub::test_openapi();
        let mut resources = hub.resources().to_vec();
        resources.extend(resource_types(&crd).into_iter().map(Arc::new));
        let index: Value = serde_json::from_slice(&v3_index(docs, &resources)).unwrap();
        let url = index["paths"]["apis/example.com/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        let (hash, body) = custom_v3(docs, &resources, "apis/example.com/v1").unwrap();
        assert!(url.ends_with(&hash));
        let doc: Value = serde_json::from_slice(&body).unwrap();
        let widget = &doc["components"]["schemas"]["com.example.v1.Widget"];
        assert_eq!(
            widget["properties"]["spec"]["properties"]["size"]["type"],
            "integer"
        );
        assert_eq!(
            widget["x-kubernetes-group-version-kind"][0]["kind"],
            "Widget"
        );
        assert!(doc["components"]["schemas"][OBJECT_META].is_object());
        assert!(
            doc["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"].is_object()
        );
    }
}
