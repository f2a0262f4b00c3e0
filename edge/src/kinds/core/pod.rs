//! Pod: one or more containers on a node. Created Pending with kube-apiserver's defaults; the
//! simulated scheduler sets `spec.nodeName`, the simulated kubelet writes the status. Columns
//! and selectable fields are kubectl's and kube-apiserver's (`spec.nodeName`, `status.phase`…).

use k8s_openapi::api::core::v1;
use serde_json::{json, Value};
use trellis_server::kinds::{
    age_cell, cell_text, schema_of, Column, Grants, Kind, ListMerge, ListStrategy, Names,
    SchemaSource, Subresources, AGE, NAME, READ, WRITE,
};

use crate::kinds::default_at;

pub struct Pod;

impl Kind for Pod {
    fn names(&self) -> Names {
        Names {
            categories: &["all"],
            ..Names::namespaced("", "v1", "Pod", "pods").short(&["po"])
        }
    }

    fn subresources(&self) -> Subresources {
        Subresources::with_status()
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Upstream(schema_of::<v1::Pod>)
    }

    fn prepare(&self, object: &mut Value) {
        if let Some(spec) = object.get_mut("spec") {
            spec_defaults(spec);
        }
    }

    fn prepare_create(&self, object: &mut Value) {
        initial_status(object);
    }

    fn columns(&self) -> &'static [Column] {
        &[
            NAME,
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            AGE,
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let statuses = o
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let containers = o
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let ready = statuses
            .iter()
            .filter(|s| s.get("ready").and_then(Value::as_bool) == Some(true))
            .count();
        let restarts: i64 = statuses
            .iter()
            .filter_map(|s| s.get("restartCount").and_then(Value::as_i64))
            .sum();
        vec![
            cell_text(o, "/metadata/name"),
            format!("{ready}/{containers}").into(),
            status_text(o).into(),
            restarts.to_string().into(),
            age_cell(o),
            cell_text(o, "/status/podIP"),
            cell_text(o, "/spec/nodeName"),
            cell_text(o, "/status/nominatedNodeName"),
            "<none>".into(),
        ]
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ]
    }

    fn grants(&self) -> Grants {
        Grants {
            view: READ,
            edit: WRITE,
            admin: &[],
        }
    }

    fn list_merges(&self) -> &'static [ListMerge] {
        POD_SPEC_MERGES
    }
}

/// How a pod spec's lists merge in a strategic merge patch, from the pod's root.
const POD_SPEC_MERGES: &[ListMerge] = &[
    (&["spec", "containers"], ListStrategy::MergeByKey("name")),
    (
        &["spec", "initContainers"],
        ListStrategy::MergeByKey("name"),
    ),
    (
        &["spec", "containers", "env"],
        ListStrategy::MergeByKey("name"),
    ),
    (
        &["spec", "containers", "ports"],
        ListStrategy::MergeByKey("containerPort"),
    ),
    (
        &["spec", "containers", "volumeMounts"],
        ListStrategy::MergeByKey("mountPath"),
    ),
    (&["spec", "volumes"], ListStrategy::MergeByKey("name")),
    (
        &["spec", "resourceClaims"],
        ListStrategy::MergeByKey("name"),
    ),
    (&["status", "conditions"], ListStrategy::MergeByKey("type")),
];

/// kube-apiserver's defaults of a pod spec (also of a Deployment's or ReplicaSet's template,
/// so the template a controller copies is the one a pod would get).
pub fn spec_defaults(spec: &mut Value) {
    default_at(spec, &["restartPolicy"], json!("Always"));
    default_at(spec, &["dnsPolicy"], json!("ClusterFirst"));
    default_at(spec, &["schedulerName"], json!("default-scheduler"));
    default_at(spec, &["terminationGracePeriodSeconds"], json!(30));
    default_at(spec, &["securityContext"], json!({}));
    for containers in ["containers", "initContainers"] {
        let Some(list) = spec.get_mut(containers).and_then(Value::as_array_mut) else {
            continue;
        };
        for container in list {
            let image = container
                .get("image")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let policy = if image.ends_with(":latest")
                || !image.rsplit('/').next().unwrap_or("").contains(':')
            {
                "Always"
            } else {
                "IfNotPresent"
            };
            default_at(container, &["imagePullPolicy"], json!(policy));
            default_at(
                container,
                &["terminationMessagePath"],
                json!("/dev/termination-log"),
            );
            default_at(container, &["terminationMessagePolicy"], json!("File"));
            default_at(container, &["resources"], json!({}));
        }
    }
}

/// What a new pod's status is, whatever the client sent: Pending, with its QoS class.
pub fn initial_status(pod: &mut Value) {
    let qos = qos_class(pod);
    if let Some(map) = pod.as_object_mut() {
        map.insert(
            "status".into(),
            json!({"phase": "Pending", "qosClass": qos}),
        );
    }
}

/// The QoS class: BestEffort without any requests or limits, Guaranteed when every container
/// limits cpu and memory to what it requests, Burstable otherwise.
fn qos_class(pod: &Value) -> &'static str {
    let containers = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let resources = |c: &Value, which: &str| {
        c.pointer(&format!("/resources/{which}"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    if containers
        .iter()
        .all(|c| resources(c, "requests").is_empty() && resources(c, "limits").is_empty())
    {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        let limits = resources(c, "limits");
        let requests = resources(c, "requests");
        ["cpu", "memory"].iter().all(|r| {
            limits.contains_key(*r) && requests.get(*r).is_none_or(|q| Some(q) == limits.get(*r))
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// The STATUS column, as kubectl computes it: the pod's reason or phase, overridden by a
/// waiting or terminated container's reason, `Terminating` once deleted.
pub fn status_text(pod: &Value) -> String {
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        return "Terminating".into();
    }
    let mut reason = pod
        .pointer("/status/reason")
        .or_else(|| pod.pointer("/status/phase"))
        .and_then(Value::as_str)
        .unwrap_or("Pending")
        .to_string();
    for status in pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let waiting = status
            .pointer("/state/waiting/reason")
            .and_then(Value::as_str);
        let terminated = status
            .pointer("/state/terminated/reason")
            .and_then(Value::as_str);
        if let Some(why) = waiting.or(terminated).filter(|r| !r.is_empty()) {
            reason = why.to_string();
        }
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_shows_a_waiting_reason_over_the_phase() {
        let pod = json!({"status": {"phase": "Pending", "containerStatuses": [
            {"name": "a", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}});
        assert_eq!(status_text(&pod), "ImagePullBackOff");
        assert_eq!(
            status_text(&json!({"status": {"phase": "Running"}})),
            "Running"
        );
    }

    #[test]
    fn new_pods_are_pending_with_their_qos_class() {
        let mut pod = json!({"spec": {"containers": [{"name": "a", "image": "x",
            "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
            "status": {"phase": "Running"}});
        initial_status(&mut pod);
        assert_eq!(
            pod["status"],
            json!({"phase": "Pending", "qosClass": "Burstable"})
        );
    }

    #[test]
    fn spec_defaults_are_kubes() {
        let mut spec = json!({"containers": [{"name": "a", "image": "nginx:1.27"},
                                             {"name": "b", "image": "nginx"}]});
        spec_defaults(&mut spec);
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["containers"][0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(spec["containers"][1]["imagePullPolicy"], "Always");
    }
}
