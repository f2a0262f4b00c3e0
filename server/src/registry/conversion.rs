//! Converting objects between the version a request uses and the one they are stored in:
//! custom resources (conversion strategy `None`: only `apiVersion` changes) and built-in kinds
//! stored with another (`Kind::stored_as`), which convert themselves (`events.k8s.io/v1`
//! events are core events under other field names, as kube-apiserver stores both in one place).

use serde_json::Value;

use super::ResourceType;

/// A stored object as a request for `rt` shows it. Objects already in `rt`'s version are
/// left alone, so this is safe to repeat.
pub fn from_stored(rt: &ResourceType, object: &mut Value) {
    let api_version = rt.api_version();
    if object.get("apiVersion").and_then(Value::as_str) == Some(api_version.as_str()) {
        return;
    }
    let converts = rt.kind_rules.as_ref().filter(|k| k.stored_as().is_some());
    if rt.custom.is_none() && converts.is_none() {
        return;
    }
    let Some(map) = object.as_object_mut() else {
        return;
    };
    if let Some(kind) = converts {
        kind.convert_from_storage(map);
    }
    map.insert("apiVersion".into(), Value::String(api_version));
}

/// An object of `rt` as it is stored.
pub fn to_stored(rt: &ResourceType, object: &mut Value) {
    let Some(kind) = rt.kind_rules.as_ref().filter(|k| k.stored_as().is_some()) else {
        return;
    };
    if let Some(map) = object.as_object_mut() {
        kind.convert_to_storage(map);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::scheme::test_lookup as lookup_builtin;
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
