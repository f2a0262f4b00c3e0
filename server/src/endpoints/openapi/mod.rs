//! OpenAPI v3 for the built-in kinds: what `kubectl` validates against, explains from, and
//! checks for server-side field validation support.
//!
//! Schemas come from k8s-openapi (generated from Kubernetes' own OpenAPI, descriptions
//! included), so they are the upstream definitions under the upstream names; our own kinds'
//! come from their `trellis-apis` types. The documents are the same in every workspace and
//! built once per server, from its scheme (`registry::Scheme`).

mod custom;
mod field_validation;
mod v2;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::registry::{self, ResourceType};

pub use custom::{custom_v3, v3_index};
pub use field_validation::{check, FieldReport, FieldValidation};
pub use v2::v2;

/// Every group version's document, and the index pointing at them.
pub struct Documents {
    /// `/openapi/v3` entries of the built-in group versions.
    pub index: Map<String, Value>,
    /// `api/v1` or `apis/<group>/<version>` → (hash, document body).
    pub by_group_version: BTreeMap<String, (String, Bytes)>,
    /// Component schemas by name, for validation.
    pub schemas: Map<String, Value>,
    /// The v2 form of the built-in paths and definitions, converted when first asked for.
    v2: OnceLock<(Map<String, Value>, Map<String, Value>)>,
}

fn gvk(rt: &ResourceType) -> Value {
    json!({"group": rt.group, "version": rt.version, "kind": rt.kind})
}

fn group_version_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn query_parameter(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn operation(
    rt: &ResourceType,
    action: &str,
    id: String,
    body: bool,
    schema_ref: &Value,
    writes: bool,
) -> Value {
    let mut parameters = vec![query_parameter(
        "pretty",
        "If 'true', then the output is pretty printed.",
    )];
    if writes {
        parameters.push(query_parameter(
            "dryRun",
            "When present, indicates that modifications should not be persisted. Valid values are: All.",
        ));
        parameters.push(query_parameter(
            "fieldManager",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
        ));
        parameters.push(query_parameter(
            "fieldValidation",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn (default), Strict.",
        ));
    }
    let mut op = json!({
        "operationId": id,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk(rt),
        "parameters": parameters,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": schema_ref}}}},
    });
    if body {
        op["requestBody"] =
            json!({"required": true, "content": {"application/json": {"schema": schema_ref}}});
    }
    op
}

fn paths_for(rt: &ResourceType, schema_ref: &Value) -> Vec<(String, Value)> {
    let base = format!("/{}", group_version_path(&rt.group, &rt.version));
    let collection = if rt.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", rt.plural)
    } else {
        format!("{base}/{}", rt.plural)
    };
    let item = format!("{collection}/{{name}}");
    let id = |verb: &str| {
        format!(
            "{verb}{}{}",
            if rt.namespaced { "Namespaced" } else { "" },
            rt.kind
        )
    };
    let list_ref = json!({"type": "object"});
    vec![
        (
            collection,
            json!({
                "get": operation(rt, "list", id("list"), false, &list_ref, false),
                "post": operation(rt, "post", id("create"), true, schema_ref, true),
                "delete": operation(rt, "deletecollection", id("deleteCollection"), false, &list_ref, true),
            }),
        ),
        (
            item,
            json!({
                "get": operation(rt, "get", id("read"), false, schema_ref, false),
                "put": operation(rt, "put", id("replace"), true, schema_ref, true),
                "patch": operation(rt, "patch", id("patch"), true, schema_ref, true),
                "delete": operation(rt, "delete", id("delete"), false, schema_ref, true),
            }),
        ),
    ]
}

fn document(paths: Map<String, Value>, schemas: &Map<String, Value>) -> Value {
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v{}.{}.0", crate::endpoints::discovery::KUBE_MAJOR, crate::endpoints::discovery::KUBE_MINOR)},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

fn index_entry(key: &str, hash: &str) -> Value {
    json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")})
}

fn hash(bytes: &[u8]) -> String {
    use std::hash::{DefaultHasher, Hasher};
    let mut h = DefaultHasher::new();
    h.write(bytes);
    format!("{:016X}", h.finish())
}

/// The documents of `resources` (a scheme's built-in kinds), whose schemas are `schemas`.
pub fn build(resources: &[Arc<ResourceType>], mut schemas: Map<String, Value>) -> Documents {
    // k8s-openapi types "any JSON value" as an object; Kubernetes publishes it untyped.
    if let Some(any) =
        schemas.get_mut("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON")
    {
        if let Some(map) = any.as_object_mut() {
            map.remove("type");
            map.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
        }
    }
    for rt in resources {
        if let Some(schema) = rt.schema_name.as_ref().and_then(|n| schemas.get_mut(n)) {
            schema["x-kubernetes-group-version-kind"] = json!([gvk(rt)]);
        }
    }

    let mut by_group_version = BTreeMap::new();
    let mut index = Map::new();
    let mut group_versions: Vec<(String, String)> = vec![(String::new(), "v1".into())];
    for (group, versions) in registry::groups(resources) {
        for version in versions {
            group_versions.push((group.clone(), version));
        }
    }
    for (group, version) in &group_versions {
        let mut paths = Map::new();
        for rt in registry::resources_of(resources, group, version) {
            let Some(name) = &rt.schema_name else {
                continue;
            };
            let schema_ref = json!({"$ref": format!("#/components/schemas/{name}")});
            for (path, item) in paths_for(rt, &schema_ref) {
                paths.insert(path, item);
            }
        }
        let document = document(paths, &schemas);
        let body = Bytes::from(serde_json::to_vec(&document).unwrap_or_default());
        let hash = hash(&body);
        let key = group_version_path(group, version);
        index.insert(key.clone(), index_entry(&key, &hash));
        by_group_version.insert(key, (hash, body));
    }
    Documents {
        index,
        by_group_version,
        schemas,
        v2: OnceLock::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serving::hub::{test_hub, test_openapi};

    #[test]
    fn every_builtin_kind_has_a_schema_marked_with_its_gvk() {
        let docs = test_openapi();
        for rt in test_hub().resources() {
            let name = rt
                .schema_name
                .as_ref()
                .unwrap_or_else(|| panic!("no schema for {}", rt.kind));
            let schema = &docs.schemas[name];
            assert_eq!(
                schema["x-kubernetes-group-version-kind"][0]["kind"],
                rt.kind
            );
        }
        let cm = &docs.schemas["io.k8s.api.core.v1.ConfigMap"];
        // A reference with a description is wrapped in allOf, as in Kubernetes' own v3 documents.
        assert_eq!(
            cm["properties"]["metadata"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
    }

    #[test]
    fn index_points_at_hashed_documents_with_field_validation() {
        let docs = test_openapi();
        let index: Value = serde_json::from_slice(&v3_index(docs, test_hub().resources())).unwrap();
        let url = index["paths"]["api/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert!(url.starts_with("/openapi/v3/api/v1?hash="));
        assert!(index["paths"]["apis/rbac.authorization.k8s.io/v1"].is_object());
        let (_, body) = &docs.by_group_version["api/v1"];
        let doc: Value = serde_json::from_slice(body).unwrap();
        let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "ConfigMap"
        );
        assert!(patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"));
    }
}
