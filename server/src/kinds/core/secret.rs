//! Secret: confidential data. `stringData` is write-only, folded into `data` (base64) on every
//! write; `type` defaults to `Opaque`. Readable by editors, not viewers, as in Kubernetes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use k8s_openapi::api::core::v1;
use serde_json::{Map, Value};

use crate::kinds::{
    age_cell, cell_count, cell_text, schema_of, Column, Grants, Kind, Names, SchemaSource, AGE,
    NAME, READ_WRITE,
};

pub struct Secret;

impl Kind for Secret {
    fn names(&self) -> Names {
        Names::namespaced("", "v1", "Secret", "secrets")
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Upstream(schema_of::<v1::Secret>)
    }

    fn prepare(&self, object: &mut Value) {
        fold_string_data(object)
    }

    fn columns(&self) -> &'static [Column] {
        &[NAME, ("Type", "string", 0), ("Data", "integer", 0), AGE]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![
            cell_text(o, "/metadata/name"),
            cell_text(o, "/type"),
            cell_count(o, &["/data"]),
            age_cell(o),
        ]
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &["type"]
    }

    fn grants(&self) -> Grants {
        Grants {
            view: &[],
            edit: READ_WRITE,
            admin: &[],
        }
    }

    fn protobuf(&self) -> Option<crate::machinery::protobuf::Converter> {
        Some(crate::machinery::protobuf::secret)
    }
}

/// `stringData` merged into `data` (base64), winning over it; `type` defaults to `Opaque`.
fn fold_string_data(object: &mut Value) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(string_data)) = map.remove("stringData") {
        let data = map
            .entry("data")
            .or_insert_with(|| Value::Object(Map::new()));
        if !data.is_object() {
            *data = Value::Object(Map::new());
        }
        if let Some(data) = data.as_object_mut() {
            for (key, value) in string_data {
                if let Some(text) = value.as_str() {
                    data.insert(key, Value::String(STANDARD.encode(text)));
                }
            }
        }
    }
    if map
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        map.insert("type".into(), Value::String("Opaque".into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_fold_string_data_into_data() {
        let mut s = json!({"metadata": {"name": "s"}, "data": {"a": "eA==", "k": "b2xk"}, "stringData": {"k": "v"}});
        Secret.prepare(&mut s);
        assert_eq!(s["data"], json!({"a": "eA==", "k": "dg=="}));
        assert!(s.get("stringData").is_none());
        assert_eq!(s["type"], "Opaque");
        let mut tls = json!({"type": "kubernetes.io/tls"});
        Secret.prepare(&mut tls);
        assert_eq!(tls["type"], "kubernetes.io/tls");
    }
}
