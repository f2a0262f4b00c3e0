//! `/openapi/v2`: the Swagger 2.0 document older clients read, derived from the v3 documents
//! (the same schemas under `definitions`, request bodies as `body` parameters).

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::custom;
use super::Documents;
use crate::registry::ResourceType;

/// Rewrites v3 references and operations into their v2 form.
fn to_v2(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get_mut("$ref") {
                if let Some(name) = r.strip_prefix("#/components/schemas/") {
                    *r = format!("#/definitions/{name}");
                }
            }
            map.values_mut().for_each(to_v2);
        }
        Value::Array(items) => items.iter_mut().for_each(to_v2),
        _ => {}
    }
}

fn operation_to_v2(op: &Value) -> Value {
    let mut op = op.clone();
    let Some(map) = op.as_object_mut() else {
        return op;
    };
    let mut parameters: Vec<Value> = map
        .get("parameters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut p| {
            if let Some(p) = p.as_object_mut() {
                p.remove("schema");
                p.insert("type".into(), json!("string"));
                p.insert("uniqueItems".into(), json!(true));
            }
            p
        })
        .collect();
    if let Some(body) = map.remove("requestBody") {
        let schema = body
            .pointer("/content/application~1json/schema")
            .cloned()
            .unwrap_or_else(|| json!({"type": "object"}));
        parameters.push(json!({"name": "body", "in": "body", "required": true, "schema": schema}));
    }
    map.insert("parameters".into(), Value::Array(parameters));
    if let Some(responses) = map.get_mut("responses").and_then(Value::as_object_mut) {
        for response in responses.values_mut() {
            let schema = response
                .pointer("/content/application~1json/schema")
                .cloned();
            if let Some(r) = response.as_object_mut() {
                r.remove("content");
                if let Some(schema) = schema {
                    r.insert("schema".into(), schema);
                }
            }
        }
    }
    map.insert(
        "consumes".into(),
        json!(["application/json", "application/yaml"]),
    );
    map.insert(
        "produces".into(),
        json!(["application/json", "application/yaml"]),
    );
    op
}

fn add_paths(doc: &Value, paths: &mut Map<String, Value>) {
    let Some(doc_paths) = doc.get("paths").and_then(Value::as_object) else {
        return;
    };
    for (path, item) in doc_paths {
        let Some(item) = item.as_object() else {
            continue;
        };
        let converted: Map<String, Value> = item
            .iter()
            .map(|(method, op)| (method.clone(), operation_to_v2(op)))
            .collect();
        paths.insert(path.clone(), Value::Object(converted));
    }
}

/// The built-in part, converted once per server.
fn builtin_v2(docs: &Documents) -> &(Map<String, Value>, Map<String, Value>) {
    docs.v2.get_or_init(|| convert_builtin(docs))
}

fn convert_builtin(docs: &Documents) -> (Map<String, Value>, Map<String, Value>) {
    let mut paths = Map::new();
    for (_, body) in docs.by_group_version.values() {
        if let Ok(doc) = serde_json::from_slice::<Value>(body) {
            add_paths(&doc, &mut paths);
        }
    }
    let mut definitions = Value::Object(docs.schemas.clone());
    to_v2(&mut definitions);
    let mut paths = Value::Object(paths);
    to_v2(&mut paths);
    match (paths, definitions) {
        (Value::Object(p), Value::Object(d)) => (p, d),
        _ => (Map::new(), Map::new()),
    }
}

/// The whole v2 document of a workspace: built-in kinds and its custom resources.
pub fn v2(docs: &Documents, resources: &[Arc<ResourceType>]) -> Value {
    let (builtin_paths, builtin_definitions) = builtin_v2(docs);
    let mut paths = builtin_paths.clone();
    let mut definitions = builtin_definitions.clone();
    let mut seen = Vec::new();
    for rt in resources.iter().filter(|r| r.custom.is_some()) {
        let key = super::group_version_path(&rt.group, &rt.version);
        if seen.contains(&key) {
            continue;
        }
        seen.push(key.clone());
        let Some((_, body)) = custom::custom_v3(docs, resources, &key) else {
            continue;
        };
        let Ok(mut doc) = serde_json::from_slice::<Value>(&body) else {
            continue;
        };
        to_v2(&mut doc);
        add_paths(&doc, &mut paths);
        if let Some(schemas) = doc
            .pointer("/components/schemas")
            .and_then(Value::as_object)
        {
            for (name, schema) in schemas {
                definitions
                    .entry(name.clone())
                    .or_insert_with(|| schema.clone());
            }
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": format!("v{}.{}.0", crate::endpoints::discovery::KUBE_MAJOR, crate::endpoints::discovery::KUBE_MINOR)},
        "paths": paths,
        "definitions": definitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_has_definitions_and_body_parameters() {
        let hub = crate::serving::hub::test_hub();
        let doc = v2(crate::serving::hub::test_openapi(), hub.resources());
        assert_eq!(doc["swagger"], "2.0");
        let cm = &doc["definitions"]["io.k8s.api.core.v1.ConfigMap"];
        assert_eq!(
            cm["properties"]["metadata"]["allOf"][0]["$ref"],
            "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        let put = &doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["put"];
        let body = put["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["in"] == "body")
            .unwrap();
        assert_eq!(
            body["schema"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.ConfigMap"
        );
        assert!(!doc.to_string().contains("#/components/"));
    }
}
