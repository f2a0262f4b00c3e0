//! ReplicaSet: keeps a number of pods of one template, by the simulator's replica set
//! controller; usually owned by a Deployment, one per pod-template hash.

use k8s_openapi::api::apps::v1;
use serde_json::Value;
use trellis_server::kinds::StatusCause;
use trellis_server::kinds::{
    age_cell, cell_text, schema_of, Column, Grants, Kind, ListMerge, Names, ScalePaths,
    SchemaSource, Subresources, AGE, NAME, READ, WRITE,
};

use super::{validate_workload, workload_defaults, TEMPLATE_MERGES};
use crate::kinds::{containers_cell, int_cell, selector_cell};

pub struct ReplicaSet;

impl Kind for ReplicaSet {
    fn names(&self) -> Names {
        Names {
            categories: &["all"],
            ..Names::namespaced(super::GROUP, "v1", "ReplicaSet", "replicasets").short(&["rs"])
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
        SchemaSource::Upstream(schema_of::<v1::ReplicaSet>)
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare(&self, object: &mut Value) {
        workload_defaults(object);
    }

    fn validate(&self, object: &Value, _old: Option<&Value>) -> Vec<StatusCause> {
        validate_workload(object)
    }

    fn columns(&self) -> &'static [Column] {
        &[
            NAME,
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            AGE,
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![
            cell_text(o, "/metadata/name"),
            int_cell(o, "/spec/replicas"),
            int_cell(o, "/status/replicas"),
            int_cell(o, "/status/readyReplicas"),
            age_cell(o),
            containers_cell(o, "/spec/template/spec/containers", "name"),
            containers_cell(o, "/spec/template/spec/containers", "image"),
            selector_cell(o, "/spec/selector"),
        ]
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &["status.replicas"]
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
