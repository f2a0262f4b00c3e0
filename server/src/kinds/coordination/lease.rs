//! Lease: a holder and a renew time, the building block of leader election.

use k8s_openapi::api::coordination::v1;
use serde_json::Value;

use crate::kinds::{
    age_cell, cell_text, schema_of, Column, Grants, Kind, Names, SchemaSource, AGE, NAME,
    READ_WRITE,
};

pub struct Lease;

impl Kind for Lease {
    fn names(&self) -> Names {
        Names::namespaced(super::GROUP, "v1", "Lease", "leases")
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Upstream(schema_of::<v1::Lease>)
    }

    fn columns(&self) -> &'static [Column] {
        &[NAME, ("Holder", "string", 0), AGE]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![
            cell_text(o, "/metadata/name"),
            cell_text(o, "/spec/holderIdentity"),
            age_cell(o),
        ]
    }

    fn grants(&self) -> Grants {
        Grants {
            view: &[],
            edit: READ_WRITE,
            admin: &[],
        }
    }

    fn protobuf(&self) -> Option<crate::machinery::protobuf::Converter> {
        Some(crate::machinery::protobuf::lease)
    }
}
