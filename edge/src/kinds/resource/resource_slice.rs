//! ResourceSlice: a driver's devices in one pool (per node for node-local GPUs), with their
//! attributes and capacity. Cluster-scoped; written by the driver (the simulator in DRA mode).

use k8s_openapi::api::resource::v1;
use serde_json::Value;
use trellis_server::kinds::{
    age_cell, cell_text, schema_of, Column, Grants, Kind, Names, SchemaSource, AGE, NAME, READ,
};

pub struct ResourceSlice;

impl Kind for ResourceSlice {
    fn names(&self) -> Names {
        Names::cluster(super::GROUP, "v1", "ResourceSlice", "resourceslices")
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Upstream(schema_of::<v1::ResourceSlice>)
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> &'static [Column] {
        &[
            NAME,
            ("Node", "string", 0),
            ("Driver", "string", 0),
            ("Pool", "string", 0),
            AGE,
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![
            cell_text(o, "/metadata/name"),
            cell_text(o, "/spec/nodeName"),
            cell_text(o, "/spec/driver"),
            cell_text(o, "/spec/pool/name"),
            age_cell(o),
        ]
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &["spec.nodeName", "spec.driver"]
    }

    fn grants(&self) -> Grants {
        Grants {
            view: READ,
            edit: &[],
            admin: &[],
        }
    }
}
