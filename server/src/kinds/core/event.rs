//! Event (`v1`): a report of something that happened to an object. `events.k8s.io/v1` Events
//! are stored with these (`kinds::events`).

use k8s_openapi::api::core::v1;
use serde_json::Value;

use crate::kinds::{
    age_cell, cell_text, schema_of, Column, Grants, Kind, Names, SchemaSource, READ, WRITE,
};

pub struct Event;

impl Kind for Event {
    fn names(&self) -> Names {
        Names::namespaced("", "v1", "Event", "events").short(&["ev"])
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Upstream(schema_of::<v1::Event>)
    }

    fn columns(&self) -> &'static [Column] {
        &[
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Message", "string", 0),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let involved = |field: &str| {
            o.pointer(&format!("/involvedObject/{field}"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let object = format!("{}/{}", involved("kind").to_lowercase(), involved("name"));
        vec![
            age_cell(o),
            cell_text(o, "/type"),
            cell_text(o, "/reason"),
            object.into(),
            cell_text(o, "/message"),
        ]
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &[
            "involvedObject.apiVersion",
            "involvedObject.fieldPath",
            "involvedObject.kind",
            "involvedObject.name",
            "involvedObject.namespace",
            "involvedObject.resourceVersion",
            "involvedObject.uid",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ]
    }

    fn grants(&self) -> Grants {
        Grants {
            view: READ,
            edit: WRITE,
            admin: &[],
        }
    }
}
