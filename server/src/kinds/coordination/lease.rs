//! Lease: a holder and a renew time, the building block of leader election.

use k8s_openapi::api::coordination::v1;
use serde_json::Value;

use crate::kinds::{
    age_cell, cell_text, schema_of, Column, Grants, Kind, Names, SchemaSource, AGE, NAME,
    READ_WRITE,
};
use crate::machinery::schema::FieldError;
use crate::machinery::status::StatusCause;

pub struct Lease;

impl Kind for Lease {
    fn names(&self) -> Names {
        Names::namespaced(super::GROUP, "v1", "Lease", "leases")
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Upstream(schema_of::<v1::Lease>)
    }

    /// kube-apiserver's `ValidateLeaseSpec`: a positive duration, no negative transitions.
    fn validate(&self, object: &Value, _old: Option<&Value>) -> Vec<StatusCause> {
        let mut errors = Vec::new();
        let number = |field: &str| {
            object
                .pointer(&format!("/spec/{field}"))
                .filter(|v| v.is_i64())
        };
        if let Some(v) = number("leaseDurationSeconds").filter(|v| v.as_i64() <= Some(0)) {
            errors.push(FieldError::invalid(
                "spec.leaseDurationSeconds",
                v,
                "must be greater than 0",
            ));
        }
        if let Some(v) = number("leaseTransitions").filter(|v| v.as_i64() < Some(0)) {
            errors.push(FieldError::invalid(
                "spec.leaseTransitions",
                v,
                "must be greater than or equal to 0",
            ));
        }
        errors.into_iter().map(StatusCause::from).collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_are_positive_and_transitions_counted_from_zero() {
        let lease = |spec: Value| json!({"metadata": {"name": "l"}, "spec": spec});
        assert!(Lease
            .validate(
                &lease(json!({"leaseDurationSeconds": 15, "leaseTransitions": 0})),
                None
            )
            .is_empty());
        let causes = Lease.validate(
            &lease(json!({"leaseDurationSeconds": -5, "leaseTransitions": -1})),
            None,
        );
        let shown: Vec<_> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert_eq!(
            shown,
            [
                "spec.leaseDurationSeconds: Invalid value: -5: must be greater than 0",
                "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0",
            ]
        );
    }
}
