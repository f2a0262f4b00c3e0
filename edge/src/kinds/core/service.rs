//! Service: a stable address for a set of pods. Served for the syncer to render into; the
//! simulator gives a ClusterIP service an address (derived from its name, in 10.96.0.0/16) and
//! routes nothing.

use k8s_openapi::api::core::v1;
use serde_json::{json, Value};
use trellis_server::kinds::{
    age_cell, cell_text, schema_of, Column, Grants, Kind, ListMerge, ListStrategy, Names,
    SchemaSource, Subresources, AGE, NAME, READ, WRITE,
};

use crate::kinds::{default_at, selector_cell};

pub struct Service;

impl Kind for Service {
    fn names(&self) -> Names {
        Names {
            categories: &["all"],
            ..Names::namespaced("", "v1", "Service", "services").short(&["svc"])
        }
    }

    fn subresources(&self) -> Subresources {
        Subresources::with_status()
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Upstream(schema_of::<v1::Service>)
    }

    fn prepare(&self, object: &mut Value) {
        let Some(spec) = object.get_mut("spec") else {
            return;
        };
        default_at(spec, &["type"], json!("ClusterIP"));
        default_at(spec, &["sessionAffinity"], json!("None"));
        for port in spec
            .get_mut("ports")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            default_at(port, &["protocol"], json!("TCP"));
            if let Some(number) = port.get("port").cloned() {
                default_at(port, &["targetPort"], number);
            }
        }
    }

    fn prepare_create(&self, object: &mut Value) {
        let headless = object.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None");
        let external = object.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName");
        if headless || external || object.pointer("/spec/clusterIP").is_some() {
            return;
        }
        let ip = cluster_ip(
            object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        );
        if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("clusterIP".into(), json!(ip));
            spec.insert("clusterIPs".into(), json!([ip]));
        }
    }

    fn columns(&self) -> &'static [Column] {
        &[
            NAME,
            ("Type", "string", 0),
            ("Cluster-IP", "string", 0),
            ("External-IP", "string", 0),
            ("Port(s)", "string", 0),
            AGE,
            ("Selector", "string", 1),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let ports: Vec<String> = o
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|p| {
                let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                match p.get("nodePort").and_then(Value::as_i64) {
                    Some(node_port) => format!("{port}:{node_port}/{protocol}"),
                    None => format!("{port}/{protocol}"),
                }
            })
            .collect();
        let selector = o
            .pointer("/spec/selector")
            .map(|s| json!({"matchLabels": s}))
            .map(|s| selector_cell(&json!({"s": s}), "/s"))
            .unwrap_or_else(|| "<none>".into());
        vec![
            cell_text(o, "/metadata/name"),
            cell_text(o, "/spec/type"),
            cell_text(o, "/spec/clusterIP"),
            "<none>".into(),
            if ports.is_empty() {
                "<none>".into()
            } else {
                ports.join(",").into()
            },
            age_cell(o),
            selector,
        ]
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &["spec.clusterIP", "spec.type"]
    }

    fn grants(&self) -> Grants {
        Grants {
            view: READ,
            edit: WRITE,
            admin: &[],
        }
    }

    fn list_merges(&self) -> &'static [ListMerge] {
        &[(&["spec", "ports"], ListStrategy::MergeByKey("port"))]
    }
}

/// A ClusterIP derived from the service's namespace and name (FNV-1a), in 10.96.0.0/16 past
/// `.0.1` (the `kubernetes` service's, by convention). Two services may collide: the simulator
/// routes nothing, so an address is only something to print.
fn cluster_ip(namespace: &str, name: &str) -> String {
    let hash = crate::simulation::hash::fnv32a(format!("{namespace}/{name}").as_bytes());
    let host = 2 + hash % (256 * 256 - 3);
    format!("10.96.{}.{}", host / 256, host % 256)
}
