//! GPUPool: the classes of GPUs a provider offers and each tenant workspace's quota of them.

use serde_json::Value;

use crate::kinds::Subresources;
use crate::kinds::{
    age_cell, cell_count, cell_text, schema_of, Column, Grants, Kind, Names, SchemaSource, AGE,
    NAME, READ, WRITE,
};

pub struct GPUPool;

impl Kind for GPUPool {
    fn names(&self) -> Names {
        Names::of::<trellis_apis::compute::GPUPool>()
    }

    fn subresources(&self) -> Subresources {
        Subresources::with_status()
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Own(schema_of::<trellis_apis::compute::GPUPool>)
    }

    fn columns(&self) -> &'static [Column] {
        &[
            NAME,
            ("Classes", "integer", 0),
            ("Tenants", "integer", 0),
            AGE,
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![
            cell_text(o, "/metadata/name"),
            cell_count(o, &["/spec/classes"]),
            cell_count(o, &["/spec/tenants"]),
            age_cell(o),
        ]
    }

    fn grants(&self) -> Grants {
        Grants {
            view: READ,
            edit: &[],
            admin: WRITE,
        }
    }
}
