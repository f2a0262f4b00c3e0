//! Node: a machine of the cluster, cluster-scoped. In the simulator every Node has a simulated
//! kubelet (`simulation::nodes` heartbeats its status); users cordon one with
//! `spec.unschedulable` and inject faults with the annotation of `simulation::faults`.

use k8s_openapi::api::core::v1;
use serde_json::Value;
use trellis_server::kinds::{
    age_cell, cell_text, condition_status, schema_of, Column, Grants, Kind, ListMerge,
    ListStrategy, Names, SchemaSource, Subresources, AGE, NAME, READ,
};

pub struct Node;

impl Kind for Node {
    fn names(&self) -> Names {
        Names::cluster("", "v1", "Node", "nodes").short(&["no"])
    }

    fn subresources(&self) -> Subresources {
        Subresources::with_status()
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Upstream(schema_of::<v1::Node>)
    }

    fn columns(&self) -> &'static [Column] {
        &[
            NAME,
            ("Status", "string", 0),
            ("Roles", "string", 0),
            AGE,
            ("Version", "string", 0),
            ("Internal-IP", "string", 1),
            ("External-IP", "string", 1),
            ("OS-Image", "string", 1),
            ("Kernel-Version", "string", 1),
            ("Container-Runtime", "string", 1),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let address = |kind: &str| {
            o.pointer("/status/addresses")
                .and_then(Value::as_array)
                .and_then(|a| {
                    a.iter()
                        .find(|x| x.get("type").and_then(Value::as_str) == Some(kind))
                })
                .and_then(|x| x.get("address").and_then(Value::as_str))
                .unwrap_or("<none>")
                .to_string()
        };
        vec![
            cell_text(o, "/metadata/name"),
            status_text(o).into(),
            roles(o).into(),
            age_cell(o),
            cell_text(o, "/status/nodeInfo/kubeletVersion"),
            address("InternalIP").into(),
            address("ExternalIP").into(),
            cell_text(o, "/status/nodeInfo/osImage"),
            cell_text(o, "/status/nodeInfo/kernelVersion"),
            cell_text(o, "/status/nodeInfo/containerRuntimeVersion"),
        ]
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &["spec.unschedulable"]
    }

    fn grants(&self) -> Grants {
        Grants {
            view: READ,
            edit: &[],
            admin: &[],
        }
    }

    fn list_merges(&self) -> &'static [ListMerge] {
        &[
            (&["status", "conditions"], ListStrategy::MergeByKey("type")),
            (&["status", "addresses"], ListStrategy::MergeByKey("type")),
            (&["spec", "taints"], ListStrategy::MergeByKey("key")),
        ]
    }
}

/// `Ready`, `NotReady` or `Unknown`, and `,SchedulingDisabled` when cordoned: kubectl's STATUS.
pub fn status_text(node: &Value) -> String {
    let ready = match condition_status(node, "Ready") {
        "True" => "Ready",
        "False" => "NotReady",
        _ => "Unknown",
    };
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        format!("{ready},SchedulingDisabled")
    } else {
        ready.to_string()
    }
}

/// The roles of `node-role.kubernetes.io/<role>` labels, or `<none>`.
fn roles(node: &Value) -> String {
    let roles: Vec<&str> = node
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                .filter(|r| !r.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_and_roles_as_kubectl_prints_them() {
        let node = json!({"metadata": {"labels": {"node-role.kubernetes.io/gpu": ""}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "False"}]}});
        assert_eq!(status_text(&node), "NotReady,SchedulingDisabled");
        assert_eq!(roles(&node), "gpu");
        assert_eq!(status_text(&json!({})), "Unknown");
    }
}
