//! Event (`events.k8s.io/v1`): stored as a core Event and converted on the way in and out
//! (`registry::conversion`), so both APIs show the same objects.

use k8s_openapi::api::events::v1;
use serde_json::{Map, Value};

use crate::kinds::{schema_of, Column, Grants, Kind, Names, SchemaSource, READ, WRITE};

pub struct Event;

impl Kind for Event {
    fn names(&self) -> Names {
        Names::namespaced(super::GROUP, "v1", "Event", "events")
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Upstream(schema_of::<v1::Event>)
    }

    fn stored_as(&self) -> Option<&'static str> {
        Some("core/events")
    }

    fn convert_from_storage(&self, object: &mut Map<String, Value>) {
        rename(object, FIELDS.iter().map(|(new, old)| (*old, *new)));
    }

    fn convert_to_storage(&self, object: &mut Map<String, Value>) {
        if object.get("apiVersion").and_then(Value::as_str) == Some("v1") {
            return;
        }
        rename(object, FIELDS.iter().copied());
        object.insert("apiVersion".into(), Value::String("v1".into()));
    }

    /// Printed as kube-apiserver prints both kinds of Event: as a core one.
    fn columns(&self) -> &'static [Column] {
        crate::kinds::core::EVENT_COLUMNS
    }

    fn cells(&self, object: &Value) -> Vec<Value> {
        let mut core = object.as_object().cloned().unwrap_or_default();
        self.convert_to_storage(&mut core);
        crate::kinds::core::event_cells(&Value::Object(core))
    }

    fn grants(&self) -> Grants {
        Grants {
            view: READ,
            edit: WRITE,
            admin: &[],
        }
    }
}

/// `events.k8s.io/v1` field ↔ core `v1` field.
const FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename(map: &mut Map<String, Value>, pairs: impl Iterator<Item = (&'static str, &'static str)>) {
    for (from, to) in pairs {
        if let Some(value) = map.remove(from) {
            map.insert(to.to_string(), value);
        }
    }
}
