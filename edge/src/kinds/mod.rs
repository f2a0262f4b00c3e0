//! The kinds an edge cluster serves and the hub never does, one file per kind under a folder
//! per API group, as the server's own kinds are: `apps/v1` Deployments and ReplicaSets, the
//! core Pods, Nodes and Services, and Dynamic Resource Allocation's `resource.k8s.io/v1`
//! kinds. Schemas come from k8s-openapi; Table columns and selectable fields are kubectl's and
//! kube-apiserver's. [`EDGE`] lists every group an edge server installs, the server's own
//! (namespaces, RBAC, events, leases, CRDs, reviews) included.
//!
//! Also here: the few cell renderings several kinds share (replica counts, containers, images,
//! label selectors).

pub mod apps;
pub mod core;
pub mod resource;

use serde_json::Value;
use trellis_server::kinds::Install;

/// The groups an edge server installs: the server's groups an ordinary cluster has, and this
/// crate's.
pub const EDGE: &[Install] = &[
    trellis_server::kinds::core::install,
    core::install,
    trellis_server::kinds::events::install,
    trellis_server::kinds::coordination::install,
    trellis_server::kinds::rbac::install,
    trellis_server::kinds::apiextensions::install,
    trellis_server::kinds::authorization::install,
    trellis_server::kinds::authentication::install,
    apps::install,
    resource::install,
];

/// An integer cell at a JSON pointer (0 when absent), as kubectl prints replica counts.
pub fn int_cell(object: &Value, pointer: &str) -> Value {
    Value::from(object.pointer(pointer).and_then(Value::as_i64).unwrap_or(0))
}

/// `a/b` of two integers at JSON pointers (absent: 0).
pub fn ratio_cell(object: &Value, numerator: &str, denominator: &str) -> Value {
    let n = |p: &str| object.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    Value::String(format!("{}/{}", n(numerator), n(denominator)))
}

/// The names (`field` = "name") or images (`field` = "image") of the containers at
/// `pointer`, comma-separated, as kubectl's wide columns show them.
pub fn containers_cell(object: &Value, pointer: &str, field: &str) -> Value {
    let joined = object
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(|containers| {
            containers
                .iter()
                .filter_map(|c| c.get(field).and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    Value::String(joined)
}

/// A `metav1.LabelSelector` at `pointer` in kubectl's form (`app=web,tier in (gpu)`), or
/// `<none>`.
pub fn selector_cell(object: &Value, pointer: &str) -> Value {
    let Some(selector) = object.pointer(pointer) else {
        return Value::String("<none>".into());
    };
    let mut terms: Vec<String> = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    for expression in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = expression
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let values: Vec<&str> = expression
            .get("values")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let term = match expression.get("operator").and_then(Value::as_str) {
            Some("In") => format!("{key} in ({})", values.join(",")),
            Some("NotIn") => format!("{key} notin ({})", values.join(",")),
            Some("Exists") => key.to_string(),
            Some("DoesNotExist") => format!("!{key}"),
            _ => continue,
        };
        terms.push(term);
    }
    Value::String(if terms.is_empty() {
        "<none>".into()
    } else {
        terms.join(",")
    })
}

/// Sets `object[pointer]` to `value` unless something is there already; creates the objects
/// on the way. For defaults.
pub fn default_at(object: &mut Value, path: &[&str], value: Value) {
    let mut at = object;
    for (i, segment) in path.iter().enumerate() {
        let Some(map) = at.as_object_mut() else {
            return;
        };
        if i + 1 == path.len() {
            map.entry(segment.to_string()).or_insert(value);
            return;
        }
        at = map
            .entry(segment.to_string())
            .or_insert_with(|| Value::Object(Default::default()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors_print_as_kubectl_does() {
        let o = json!({"spec": {"selector": {"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["gpu", "cpu"]},
                                 {"key": "old", "operator": "DoesNotExist"}]}}});
        assert_eq!(
            selector_cell(&o, "/spec/selector"),
            "app=web,tier in (gpu,cpu),!old"
        );
        assert_eq!(selector_cell(&o, "/spec/none"), "<none>");
    }

    #[test]
    fn defaults_fill_only_what_is_missing() {
        let mut o = json!({"spec": {"replicas": 3}});
        default_at(&mut o, &["spec", "replicas"], json!(1));
        default_at(
            &mut o,
            &["spec", "strategy", "type"],
            json!("RollingUpdate"),
        );
        assert_eq!(
            o,
            json!({"spec": {"replicas": 3, "strategy": {"type": "RollingUpdate"}}})
        );
    }
}
