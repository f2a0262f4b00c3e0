//! ResourceClaim: a request for devices (by DeviceClass), allocated by the scheduler
//! (`status.allocation`: the devices and the node they are on) and reserved for the pods that
//! use it (`status.reservedFor`).

use k8s_openapi::api::resource::v1;
use serde_json::Value;
use trellis_server::kinds::{
    age_cell, cell_text, schema_of, Column, Grants, Kind, ListMerge, ListStrategy, Names,
    SchemaSource, Subresources, AGE, NAME, READ, WRITE,
};

pub struct ResourceClaim;

impl Kind for ResourceClaim {
    fn names(&self) -> Names {
        Names::namespaced(super::GROUP, "v1", "ResourceClaim", "resourceclaims")
    }

    fn subresources(&self) -> Subresources {
        Subresources::with_status()
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Upstream(schema_of::<v1::ResourceClaim>)
    }

    fn columns(&self) -> &'static [Column] {
        &[NAME, ("State", "string", 0), AGE]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![cell_text(o, "/metadata/name"), state(o).into(), age_cell(o)]
    }

    fn grants(&self) -> Grants {
        Grants {
            view: READ,
            edit: WRITE,
            admin: &[],
        }
    }

    fn list_merges(&self) -> &'static [ListMerge] {
        &[(&["status", "reservedFor"], ListStrategy::MergeByKey("uid"))]
    }
}

/// kubectl's STATE: `pending`, or `allocated` and `reserved`, and `deleted`, comma-separated.
fn state(claim: &Value) -> String {
    let mut states = Vec::new();
    if claim.pointer("/metadata/deletionTimestamp").is_some() {
        states.push("deleted");
    }
    if claim.pointer("/status/allocation").is_some() {
        states.push("allocated");
    } else {
        states.push("pending");
    }
    if claim
        .pointer("/status/reservedFor")
        .and_then(Value::as_array)
        .is_some_and(|r| !r.is_empty())
    {
        states.push("reserved");
    }
    states.join(",")
}
