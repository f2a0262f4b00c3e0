//! ConfigMap: configuration data as string (`data`) and binary (`binaryData`) entries.

use k8s_openapi::api::core::v1;
use serde_json::Value;

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
