//! `apps/v1`: Deployments and the ReplicaSets they manage, reconciled by the simulator's
//! workload controllers (`simulation::deployment`, `simulation::replica_set`).

mod deployment;
mod replica_set;

pub use deployment::Deployment;
pub use replica_set::ReplicaSet;

use serde_json::{json, Value};
use trellis_server::kinds::StatusCause;
use trellis_server::kinds::{ListMerge, ListStrategy, SchemeBuilder};

pub const GROUP: &str = "apps";

pub fn install(scheme: &mut SchemeBuilder) {
    scheme.add(Deployment);
    scheme.add(ReplicaSet);
}

/// How a workload's pod template's lists merge in a strategic merge patch.
const TEMPLATE_MERGES: &[ListMerge] = &[
    (
        &["spec", "template", "spec", "containers"],
        ListStrategy::MergeByKey("name"),
    ),
    (
        &["spec", "template", "spec", "initContainers"],
        ListStrategy::MergeByKey("name"),
    ),
    (
        &["spec", "template", "spec", "containers", "env"],
        ListStrategy::MergeByKey("name"),
    ),
    (
        &["spec", "template", "spec", "containers", "ports"],
        ListStrategy::MergeByKey("containerPort"),
    ),
    (
        &["spec", "template", "spec", "containers", "volumeMounts"],
        ListStrategy::MergeByKey("mountPath"),
    ),
    (
        &["spec", "template", "spec", "volumes"],
        ListStrategy::MergeByKey("name"),
    ),
    (
        &["spec", "template", "spec", "resourceClaims"],
        ListStrategy::MergeByKey("name"),
    ),
    (&["status", "conditions"], ListStrategy::MergeByKey("type")),
];

/// The defaults of a workload's replicas and pod template.
fn workload_defaults(object: &mut Value) {
    crate::kinds::default_at(object, &["spec", "replicas"], json!(1));
    if let Some(spec) = object.pointer_mut("/spec/template/spec") {
        crate::kinds::core::pod::spec_defaults(spec);
    }
}

/// kube-apiserver's rules for a workload's selector: present, not empty, and matching the pod
/// template's labels; replicas not negative.
fn validate_workload(object: &Value) -> Vec<StatusCause> {
    let mut causes = Vec::new();
    let invalid = |field: &str, message: String| StatusCause {
        kind: "FieldValueInvalid".into(),
        message,
        field: field.into(),
    };
    if let Some(replicas) = object.pointer("/spec/replicas").and_then(Value::as_i64) {
        if replicas < 0 {
            causes.push(invalid(
                "spec.replicas",
                format!("Invalid value: {replicas}: must be greater than or equal to 0"),
            ));
        }
    }
    let selector = object.pointer("/spec/selector");
    let empty = selector.is_none_or(|s| {
        s.get("matchLabels")
            .and_then(Value::as_object)
            .is_none_or(|m| m.is_empty())
            && s.get("matchExpressions")
                .and_then(Value::as_array)
                .is_none_or(|m| m.is_empty())
    });
    if empty {
        causes.push(StatusCause {
            kind: "FieldValueRequired".into(),
            message: "Required value".into(),
            field: "spec.selector".into(),
        });
        return causes;
    }
    let labels = object
        .pointer("/spec/template/metadata/labels")
        .cloned()
        .unwrap_or(json!({}));
    let matches = selector
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .zip(serde_json::from_value(labels.clone()).ok())
        .is_some_and(|(s, l)| crate::simulation::selectors::matches(&s, &l));
    if !matches {
        causes.push(invalid(
            "spec.template.metadata.labels",
            format!("Invalid value: {labels}: `selector` does not match template `labels`"),
        ));
    }
    causes
}
