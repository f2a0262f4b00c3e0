//! Converting objects between the version a request uses and the one they are stored in:
//! custom resources (conversion strategy `None`: only `apiVersion` changes) and
//! `events.k8s.io/v1` events, which are core events under other field names (as
//! kube-apiserver stores both in one place).

use serde_json::{Map, Value};

use super::ResourceType;

/// `events.k8s.io/v1` field ↔ core `v1` field.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn is_events_v1(rt: &ResourceType) -> bool {
    rt.custom.is_none() && rt.group == "events.k8s.io" && rt.kind == "Event"
}

fn rename(map: &mut Map<String, Value>, pairs: impl Iterator<Item = (&'static str, &'static str)>) {
    for (from, to) in pairs {
        if let Some(value) = map.remove(from) {
            map.insert(to.to_string(), value);
        }
    }
}

/// A stored object as a request for `rt` shows it. Objects already in `rt`'s version are
/// left alone, so this is safe to repeat.
pub fn from_stored(rt: &ResourceType, object: &mut Value) {
    let api_version = rt.api_version();
    if object.get("apiVersion").and_then(Value::as_str) == Some(api_version.as_str()) {
        return;
    }
    if rt.custom.is_none() && !is_events_v1(rt) {
        return;
    }
    let Some(map) = object.as_object_mut() else {
        return;
    };
    if is_events_v1(rt) {
        rename(map, EVENT_FIELDS.iter().map(|(new, old)| (*old, *new)));
    }
    map.insert("apiVersion".into(), Value::String(api_version));
}

/// An object of `rt` as it is stored.
pub fn to_stored(rt: &ResourceType, object: &mut Value) {
    if !is_events_v1(rt) {
        return;
    }
    let Some(map) = object.as_object_mut() else {
        return;
    };
    if map.get("apiVersion").and_then(Value::as_str) == Some("v1") {
        return;
    }
    rename(map, EVENT_FIELDS.iter().copied());
    map.insert("apiVersion".into(), Value::String("v1".into()));
}

#[cfg(test)]
mod tests {
    use super::*;
    fn lookup_builtin(
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<&'static std::sync::Arc<crate::registry::ResourceType>> {
        crate::kinds::scheme::test_hub().lookup(group, version, plural)
    }
    use serde_json::json;

    #[test]
    fn events_convert_both_ways() {
        let rt = lookup_builtin("events.k8s.io", "v1", "events").unwrap();
        assert_eq!(rt.storage_resource(), "core/events");
        let mut event = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e"},
            "regarding": {"kind": "Pod", "name": "p"},
            "note": "pulled", "reason": "Pulled", "reportingController": "kubelet",
        });
        let original = event.clone();
        to_stored(rt, &mut event);
        assert_eq!(event["apiVersion"], "v1");
        assert_eq!(event["involvedObject"]["name"], "p");
        assert_eq!(event["message"], "pulled");
        assert_eq!(event["reportingComponent"], "kubelet");
        assert!(event.get("note").is_none());
        from_stored(rt, &mut event);
        assert_eq!(event, original);
        from_stored(rt, &mut event);
        assert_eq!(event, original, "converting twice changes nothing");
    }
}
