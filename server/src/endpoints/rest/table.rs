//! Server-side printing: `Table` responses (what `kubectl get` shows) and metadata-only
//! `PartialObjectMetadata` lists, chosen by the `Accept` header as kube-apiserver does.
//!
//! Columns per kind follow kube-apiserver's printers; the Age cell is rendered here, in
//! kubectl's format.

use serde_json::{json, Map, Value};

pub use crate::machinery::age::since;

use super::custom_columns;
use crate::registry::ResourceType;

/// What the client asked the list or get to be rendered as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rendering {
    Object,
    Table,
    PartialMetadata,
}

/// Reads `Accept`: the first acceptable `meta.k8s.io/v1` rendering wins, plain JSON otherwise.
pub fn rendering(accept: Option<&str>) -> Rendering {
    let Some(accept) = accept else {
        return Rendering::Object;
    };
    for media in accept.split(',') {
        let params: Vec<(&str, &str)> = media
            .split(';')
            .skip(1)
            .filter_map(|p| p.trim().split_once('='))
            .collect();
        let get = |k: &str| params.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
        if get("g") == Some("meta.k8s.io") && get("v") == Some("v1") {
            match get("as") {
                Some("Table") => return Rendering::Table,
                Some("PartialObjectMetadata" | "PartialObjectMetadataList") => {
                    return Rendering::PartialMetadata
                }
                _ => {}
            }
        }
        let essence = media.split(';').next().unwrap_or_default().trim();
        if essence == "application/json" && get("as").is_none() || essence == "*/*" {
            return Rendering::Object;
        }
    }
    Rendering::Object
}

/// The object carried by a row: its metadata (default), the whole object, or nothing, as
/// `includeObject` asks.
fn row_object(mut object: Value, include: Option<&str>) -> Option<Value> {
    match include {
        Some("None") => None,
        Some("Object") => Some(object),
        _ => {
            // Moved, not copied: the row is the last use of the object.
            let metadata = object
                .get_mut("metadata")
                .map(Value::take)
                .unwrap_or_else(|| Value::Object(Map::new()));
            Some(partial_metadata_of(metadata))
        }
    }
}

pub fn partial_metadata(object: &Value) -> Value {
    partial_metadata_of(
        object
            .get("metadata")
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new())),
    )
}

/// Built field by field: `json!` would copy its values through the serializer.
fn partial_metadata_of(metadata: Value) -> Value {
    let mut partial = Map::new();
    partial.insert("kind".into(), Value::from("PartialObjectMetadata"));
    partial.insert("apiVersion".into(), Value::from("meta.k8s.io/v1"));
    partial.insert("metadata".into(), metadata);
    Value::Object(partial)
}

/// A `Table` of `objects`; `list_metadata` is the list's `metadata` (revision, continue).
pub fn table(
    rt: &ResourceType,
    objects: Vec<Value>,
    list_metadata: Value,
    include: Option<&str>,
) -> Value {
    let custom = rt
        .custom
        .as_ref()
        .filter(|c| !c.columns.is_empty())
        .map(|c| custom_columns::Columns::new(&c.columns));
    let definitions: Vec<Value> = match &custom {
        Some(columns) => columns.definitions(),
        None => rt
            .columns()
            .iter()
            .map(|(name, kind, priority)| {
                json!({
                    "name": name,
                    "type": kind,
                    "format": if *name == "Name" { "name" } else { "" },
                    "description": "",
                    "priority": priority,
                })
            })
            .collect(),
    };
    let rows: Vec<Value> = objects
        .into_iter()
        .map(|o| {
            let cells = match &custom {
                Some(columns) => columns.cells(&o),
                None => rt.cells(&o),
            };
            let mut row = Map::new();
            row.insert("cells".into(), Value::Array(cells));
            if let Some(object) = row_object(o, include) {
                row.insert("object".into(), object);
            }
            Value::Object(row)
        })
        .collect();
    // Built field by field: `json!` would copy every row again through the serializer.
    let mut table = Map::new();
    table.insert("kind".into(), Value::from("Table"));
    table.insert("apiVersion".into(), Value::from("meta.k8s.io/v1"));
    table.insert("metadata".into(), list_metadata);
    table.insert("columnDefinitions".into(), Value::Array(definitions));
    table.insert("rows".into(), Value::Array(rows));
    Value::Object(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machinery::age::human_duration;
    use crate::registry::scheme::test_lookup as lookup_builtin;

    #[test]
    fn accept_headers() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(rendering(Some(kubectl)), Rendering::Table);
        assert_eq!(
            rendering(Some(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
            )),
            Rendering::PartialMetadata
        );
        assert_eq!(rendering(Some("application/json")), Rendering::Object);
        assert_eq!(rendering(None), Rendering::Object);
        assert_eq!(
            rendering(Some(
                "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
            )),
            Rendering::Object
        );
    }

    #[test]
    fn ages_read_like_kubectl() {
        let d = |s| human_duration(std::time::Duration::from_secs(s));
        assert_eq!(d(5), "5s");
        assert_eq!(d(119), "119s");
        assert_eq!(d(200), "3m20s");
        assert_eq!(d(600), "10m");
        assert_eq!(d(3 * 3600 + 120), "3h2m");
        assert_eq!(d(30 * 3600), "30h");
        assert_eq!(d(3 * 86_400 + 3600), "3d1h");
        assert_eq!(d(40 * 86_400), "40d");
        assert_eq!(d(3 * 365 * 86_400 + 5 * 86_400), "3y5d");
    }

    #[test]
    fn shard_rows() {
        let shard = lookup_builtin("core.trellis.dev", "v1alpha1", "shards").unwrap();
        let object = json!({"metadata": {"name": "s1", "creationTimestamp": "2020-01-01T00:00:00Z"}, "spec": {"database": "postgres://t:***@db/x"}, "status": {"workspaces": 42}});
        let t = table(shard, vec![object], json!({}), None);
        let names: Vec<_> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Name", "Workspaces", "Database", "Age"]);
        assert_eq!(t["rows"][0]["cells"][1], 42);
        assert_eq!(t["rows"][0]["cells"][2], "postgres://t:***@db/x");
    }

    #[test]
    fn configmap_rows() {
        let cm = lookup_builtin("", "v1", "configmaps").unwrap();
        let object = json!({"metadata": {"name": "app", "creationTimestamp": "2020-01-01T00:00:00Z"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "eA=="}});
        let t = table(cm, vec![object], json!({"resourceVersion": "7"}), None);
        assert_eq!(t["columnDefinitions"][1]["name"], "Data");
        assert_eq!(t["rows"][0]["cells"][0], "app");
        assert_eq!(t["rows"][0]["cells"][1], 3);
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["metadata"]["resourceVersion"], "7");
        let t = table(
            cm,
            vec![json!({"metadata": {"name": "x"}})],
            json!({}),
            Some("None"),
        );
        assert!(t["rows"][0].get("object").is_none());
    }
}
