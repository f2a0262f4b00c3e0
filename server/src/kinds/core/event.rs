//! Event (`v1`): a report of something that happened to an object. `events.k8s.io/v1` Events
//! are stored with these (`kinds::events`).

use k8s_openapi::api::core::v1;
use serde_json::Value;

use crate::kinds::{cell_text, schema_of, Column, Grants, Kind, Names, SchemaSource, READ, WRITE};
use crate::machinery::age;

pub struct Event;

impl Kind for Event {
    fn names(&self) -> Names {
        Names::namespaced("", "v1", "Event", "events").short(&["ev"])
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Upstream(schema_of::<v1::Event>)
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        cells(o)
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

/// kubectl's event columns, as kube-apiserver prints core and `events.k8s.io` Events alike
/// (the wide ones at priority 1).
pub(crate) const COLUMNS: &[Column] = &[
    ("Last Seen", "string", 0),
    ("Type", "string", 0),
    ("Reason", "string", 0),
    ("Object", "string", 0),
    ("Subobject", "string", 1),
    ("Source", "string", 1),
    ("Message", "string", 0),
    ("First Seen", "string", 1),
    ("Count", "string", 1),
    ("Name", "string", 1),
];

/// The cells of [`COLUMNS`] for a core Event: the last time it was seen (of its series, or
/// its last or first timestamp, or its eventTime), the object it is about, its source and
/// how often it happened.
pub(crate) fn cells(o: &Value) -> Vec<Value> {
    let text = |pointer: &str| {
        o.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let time = |pointer: &str| {
        o.pointer(pointer)
            .filter(|t| t.as_str().is_some_and(|t| !t.is_empty()))
    };
    let first = age::since(time("/firstTimestamp").or_else(|| time("/eventTime")));
    let mut last = time("/lastTimestamp").map_or_else(|| first.clone(), |t| age::since(Some(t)));
    let mut count = o.get("count").and_then(Value::as_i64).unwrap_or(0);
    if let Some(series) = o.get("series").filter(|s| s.is_object()) {
        last = age::since(series.get("lastObservedTime"));
        count = series.get("count").and_then(Value::as_i64).unwrap_or(0);
    } else if count == 0 {
        count = 1;
    }
    let (kind, name) = (
        text("/involvedObject/kind").to_lowercase(),
        text("/involvedObject/name"),
    );
    let object = if name.is_empty() {
        kind
    } else {
        format!("{kind}/{name}")
    };
    let first_of = |a: String, b: String| if a.is_empty() { b } else { a };
    let component = first_of(text("/source/component"), text("/reportingComponent"));
    let instance = first_of(text("/source/host"), text("/reportingInstance"));
    let source = if instance.is_empty() {
        component
    } else {
        format!("{component}, {instance}")
    };
    vec![
        last.into(),
        cell_text(o, "/type"),
        cell_text(o, "/reason"),
        object.into(),
        text("/involvedObject/fieldPath").into(),
        source.into(),
        text("/message").trim().into(),
        first.into(),
        count.into(),
        text("/metadata/name").into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_event_is_seen_when_it_last_happened() {
        let ago = |secs: u64| {
            humantime::format_rfc3339_seconds(
                std::time::SystemTime::now() - std::time::Duration::from_secs(secs),
            )
            .to_string()
        };
        let event = json!({
            "metadata": {"name": "web.1", "creationTimestamp": ago(5)},
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
            "reason": "BackOff", "type": "Warning", "message": " Back-off restarting \n",
            "firstTimestamp": ago(1140), "lastTimestamp": ago(546), "count": 3,
            "source": {"component": "kubelet", "host": "node-1"},
        });
        assert_eq!(
            cells(&event),
            vec![
                json!("9m6s"),
                json!("Warning"),
                json!("BackOff"),
                json!("pod/web"),
                json!("spec.containers{app}"),
                json!("kubelet, node-1"),
                json!("Back-off restarting"),
                json!("19m"),
                json!(3),
                json!("web.1"),
            ]
        );
        // A new-style event: its series, or its eventTime, and a count of 1.
        let series = json!({"metadata": {"name": "x"}, "involvedObject": {"kind": "Node"},
            "eventTime": ago(120), "series": {"count": 7, "lastObservedTime": ago(60)},
            "reportingComponent": "scheduler"});
        let c = cells(&series);
        assert_eq!(
            (&c[0], &c[3], &c[5], &c[7], &c[8]),
            (
                &json!("60s"),
                &json!("node"),
                &json!("scheduler"),
                &json!("2m"),
                &json!(7)
            )
        );
        let once = json!({"metadata": {"name": "y"}, "eventTime": ago(30)});
        assert_eq!(
            (&cells(&once)[0], &cells(&once)[8]),
            (&json!("30s"), &json!(1))
        );
    }
}
