//! Placement: the replicas of one ModelDeployment that one SyncTarget runs, in the target's
//! namespace of the provider workspace. The hub writes the spec, the target's syncer the
//! status.

use serde_json::Value;

use crate::kinds::Subresources;
use crate::kinds::{
    age_cell, cell_text, condition_status, schema_of, Column, Grants, Kind, Names, SchemaSource,
    AGE, NAME, READ_WRITE,
};

pub struct Placement;

impl Kind for Placement {
    fn names(&self) -> Names {
        Names::of::<trellis_apis::compute::Placement>()
    }

    fn subresources(&self) -> Subresources {
        Subresources::with_status()
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Own(schema_of::<trellis_apis::compute::Placement>)
    }

    fn columns(&self) -> &'static [Column] {
        &[
            NAME,
            ("Replicas", "integer", 0),
            ("Ready", "integer", 0),
            ("Available", "string", 0),
            AGE,
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let number = |p: &str| o.pointer(p).cloned().unwrap_or(Value::from(0));
        vec![
            cell_text(o, "/metadata/name"),
            number("/spec/replicas"),
            number("/status/readyReplicas"),
            condition_status(o, "Available").into(),
            age_cell(o),
        ]
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &["spec.target"]
    }

    fn grants(&self) -> Grants {
        // The provider's own work: its admins, never the tenants' roles.
        Grants {
            view: &[],
            edit: &[],
            admin: READ_WRITE,
        }
    }
}
