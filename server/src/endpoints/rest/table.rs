//! Server-side printing: `Table` responses (what `kubectl get` shows) and metadata-only
//! `PartialObjectMetadata` lists, chosen by the `Accept` header as kube-apiserver does.
//!
//! Columns per kind follow kube-apiserver's printers; the Age cell is rendered here, in
//! kubectl's format.

use serde::Serialize;
use serde_json::{json, Value};

pub use crate::machinery::age::since;

use super::custom_columns;
use super::listed::{Listed, Metadata};
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
    for media in super::negotiation::media_ranges(accept) {
        if media.param("g") == Some("meta.k8s.io") && media.param("v") == Some("v1") {
            match media.param("as") {
                Some("Table") => return Rendering::Table,
                Some("PartialObjectMetadata" | "PartialObjectMetadataList") => {
                    return Rendering::PartialMetadata
                }
                _ => {}
            }
        }
        if media.essence == "application/json" && media.param("as").is_none()
            || media.essence == "*/*"
        {
            return Rendering::Object;
        }
    }
    Rendering::Object
}

/// What a row carries besides its cells, as `includeObject` asks: the object's metadata
/// (default), the whole object, or nothing.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum RowObject {
    Whole(Value),
    Partial(PartialMetadata),
}

fn row_object(listed: Listed, include: Option<&str>) -> Option<RowObject> {
    match include {
        Some("None") => None,
        Some("Object") => Some(RowObject::Whole(listed.into_value())),
        // Moved, not copied: the row is the last use of the object.
        _ => Some(RowObject::Partial(PartialMetadata::of(listed))),
    }
}

/// A `PartialObjectMetadata`: an object's metadata alone.
#[derive(Debug, Serialize)]
pub struct PartialMetadata {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata,
}

impl PartialMetadata {
    pub fn of(listed: Listed) -> PartialMetadata {
        PartialMetadata {
            api_version: "meta.k8s.io/v1",
            kind: "PartialObjectMetadata",
            metadata: listed.into_metadata(),
        }
    }
}

/// One object (a get's answer, a watch event's) rendered as asked: itself, its
/// `PartialObjectMetadata`, or a `Table` of one row.
pub fn render_one(
    rt: &ResourceType,
    rendering: Rendering,
    object: Value,
    include: Option<&str>,
) -> Value {
    match rendering {
        Rendering::Object => object,
        Rendering::PartialMetadata => {
            serde_json::to_value(PartialMetadata::of(Listed::whole(object))).unwrap_or(Value::Null)
        }
        Rendering::Table => {
            let revision = object.pointer("/metadata/resourceVersion").cloned();
            let metadata = json!({"resourceVersion": revision});
            table(rt, vec![Listed::whole(object)], metadata, include).into_value()
        }
    }
}

/// A `Table`, serialized with its keys in order, as the map it used to be built as.
#[derive(Debug, Serialize)]
pub struct Table {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    #[serde(rename = "columnDefinitions")]
    column_definitions: Vec<Value>,
    kind: &'static str,
    metadata: Value,
    rows: Vec<Row>,
}

#[derive(Debug, Serialize)]
struct Row {
    cells: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<RowObject>,
}

impl Table {
    /// The table as a value, for one object's answer or watch event.
    pub fn into_value(self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// A `Table` of `objects`; `list_metadata` is the list's `metadata` (revision, continue).
pub fn table(
    rt: &ResourceType,
    objects: Vec<Listed>,
    list_metadata: Value,
    include: Option<&str>,
) -> Table {
    let custom = rt
        .custom
        .as_ref()
        .filter(|c| !c.columns.is_empty())
        .map(|c| custom_columns::Columns::new(&c.columns));
    let column_definitions: Vec<Value> = match &custom {
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
    let rows = objects
        .into_iter()
        .map(|listed| {
            let cells = match &custom {
                Some(columns) => columns.cells(&listed.object),
                None => rt.cells(&listed.object),
            };
            Row {
                cells,
                object: row_object(listed, include),
            }
        })
        .collect();
    Table {
        api_version: "meta.k8s.io/v1",
        column_definitions,
        kind: "Table",
        metadata: list_metadata,
        rows,
    }
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
        let t = table(shard, vec![Listed::whole(object)], json!({}), None).into_value();
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

    /// A Table or metadata list whose managedFields passed through unparsed reads exactly as
    /// one built from whole objects.
    #[test]
    fn managed_fields_passed_through_read_as_parsed() {
        let cm = lookup_builtin("", "v1", "configmaps").unwrap();
        let stored = serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "app", "namespace": "d", "creationTimestamp": "2020-01-01T00:00:00Z",
                         "annotations": {"a": "b"}, "uid": "u",
                         "managedFields": [{"manager": "kubectl", "operation": "Update",
                                            "apiVersion": "v1", "fieldsType": "FieldsV1",
                                            "fieldsV1": {"f:data": {".": {}, "f:k": {}}}}]},
            "data": {"k": "v"}}))
        .unwrap();
        for include in [None, Some("Metadata"), Some("None"), Some("Object")] {
            let rows = |passed: bool| {
                let listed = if passed {
                    Listed::decode(&stored, 9, cm).unwrap()
                } else {
                    Listed::whole(crate::machinery::object_meta::decode(&stored, 9, cm).unwrap())
                };
                let meta = json!({"resourceVersion": "9"});
                serde_json::to_string(&table(cm, vec![listed], meta, include)).unwrap()
            };
            assert_eq!(rows(true), rows(false), "includeObject {include:?}");
        }
        let partial = |listed: Listed| serde_json::to_string(&PartialMetadata::of(listed)).unwrap();
        let whole = crate::machinery::object_meta::decode(&stored, 9, cm).unwrap();
        assert_eq!(
            partial(Listed::decode(&stored, 9, cm).unwrap()),
            serde_json::to_string(&render_one(cm, Rendering::PartialMetadata, whole, None))
                .unwrap()
        );
    }

    #[test]
    fn configmap_rows() {
        let cm = lookup_builtin("", "v1", "configmaps").unwrap();
        let object = json!({"metadata": {"name": "app", "creationTimestamp": "2020-01-01T00:00:00Z"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "eA=="}});
        let t = table(
            cm,
            vec![Listed::whole(object)],
            json!({"resourceVersion": "7"}),
            None,
        )
        .into_value();
        assert_eq!(t["columnDefinitions"][1]["name"], "Data");
        assert_eq!(t["rows"][0]["cells"][0], "app");
        assert_eq!(t["rows"][0]["cells"][1], 3);
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["metadata"]["resourceVersion"], "7");
        let t = table(
            cm,
            vec![Listed::whole(json!({"metadata": {"name": "x"}}))],
            json!({}),
            Some("None"),
        )
        .into_value();
        assert!(t["rows"][0].get("object").is_none());
    }
}
