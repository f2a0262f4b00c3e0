//! Deployment: declarative replicas of a pod template, rolled out through ReplicaSets by the
//! simulator's deployment controller. Serves `/status` and `/scale` (`kubectl scale`).

use k8s_openapi::api::apps::v1;
use serde_json::{json, Value};
use trellis_server::kinds::StatusCause;
use trellis_server::kinds::{
    age_cell, cell_text, schema_of, Column, Grants, Kind, ListMerge, Names, ScalePaths,
    SchemaSource, Subresources, AGE, NAME, READ, WRITE,
};

use super::{validate_workload, workload_defaults, TEMPLATE_MERGES};
use crate::kinds::{containers_cell, default_at, int_cell, ratio_cell, selector_cell};

pub struct Deployment;

impl Kind for Deployment {
    fn names(&self) -> Names {
        Names {
            categories: &["all"],
            ..Names::namespaced(super::GROUP, "v1", "Deployment", "deployments").short(&["deploy"])
        }
    }

    fn subresources(&self) -> Subresources {
        Subresources {
            status: true,
            scale: Some(ScalePaths {
                spec_replicas: ".spec.replicas".into(),
                status_replicas: ".status.replicas".into(),
                label_selector: None,
            }),
            ..Subresources::default()
        }
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Upstream(schema_of::<v1::Deployment>)
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare(&self, object: &mut Value) {
        workload_defaults(object);
        let Some(spec) = object.get_mut("spec") else {
            return;
        };
        default_at(spec, &["revisionHistoryLimit"], json!(10));
        default_at(spec, &["progressDeadlineSeconds"], json!(600));
        default_at(spec, &["strategy", "type"], json!("RollingUpdate"));
        if spec.pointer("/strategy/type").and_then(Value::as_str) == Some("RollingUpdate") {
            default_at(
                spec,
                &["strategy", "rollingUpdate", "maxSurge"],
                json!("25%"),
            );
            default_at(
                spec,
                &["strategy", "rollingUpdate", "maxUnavailable"],
                json!("25%"),
            );
        }
    }

    fn validate(&self, object: &Value, _old: Option<&Value>) -> Vec<StatusCause> {
        validate_workload(object)
    }

    fn columns(&self) -> &'static [Column] {
        &[
            NAME,
            ("Ready", "string", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            AGE,
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![
            cell_text(o, "/metadata/name"),
            ratio_cell(o, "/status/readyReplicas", "/spec/replicas"),
            int_cell(o, "/status/updatedReplicas"),
            int_cell(o, "/status/availableReplicas"),
            age_cell(o),
            containers_cell(o, "/spec/template/spec/containers", "name"),
            containers_cell(o, "/spec/template/spec/containers", "image"),
            selector_cell(o, "/spec/selector"),
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
        TEMPLATE_MERGES
    }
}
