//! `rbac.authorization.k8s.io/v1`: Roles, ClusterRoles and their bindings. Writes are checked
//! for escalation (`security::authz::escalation`); the default ClusterRoles are built from
//! every kind's [`Grants`](super::Grants) (`security::authz::defaults`). Bindings are
//! defaulted and all four kinds validated as kube-apiserver does it (`validation`).
//!
//! The four kinds differ only in names, schema, what they grant and their columns, so each
//! file is one [`RbacKind`] value and the rules are written once here.

mod cluster_role;
mod cluster_role_binding;
mod role;
mod role_binding;
mod validation;

pub use cluster_role::CLUSTER_ROLE;
pub use cluster_role_binding::CLUSTER_ROLE_BINDING;
pub use role::ROLE;
pub use role_binding::ROLE_BINDING;

use async_trait::async_trait;
use serde_json::Value;

use super::{
    age_cell, cell_text, Admission, Column, Grants, Kind, Names, SchemaSource, SchemeBuilder, AGE,
    NAME,
};
use crate::machinery::protobuf::Converter;
use crate::machinery::schema::FieldError;
use crate::machinery::status::{Status, StatusCause};
use crate::security::authz::escalation::{self, Grant};

pub const GROUP: &str = "rbac.authorization.k8s.io";

pub fn install(scheme: &mut SchemeBuilder) {
    scheme.add(ROLE);
    scheme.add(ROLE_BINDING);
    scheme.add(CLUSTER_ROLE);
    scheme.add(CLUSTER_ROLE_BINDING);
}

/// One RBAC kind: a role (granting its rules) or a binding (granting its role's).
pub struct RbacKind {
    names: Names,
    schema: fn(&mut schemars::SchemaGenerator) -> String,
    grant: Grant,
    protobuf: Converter,
}

#[async_trait]
impl Kind for RbacKind {
    fn names(&self) -> Names {
        self.names
    }

    /// RBAC names are path segments (`system:aggregate-to-view`), as in Kubernetes.
    fn name_rule(&self) -> crate::kinds::NameRule {
        crate::kinds::NameRule::PathSegment
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Upstream(self.schema)
    }

    /// Bindings get the API groups kube-apiserver defaults (`SetDefaults_RoleBinding`,
    /// `SetDefaults_ClusterRoleBinding`, `SetDefaults_Subject`), before validation.
    fn prepare(&self, object: &mut Value) {
        if self.grant == Grant::Binding {
            validation::default_binding(object);
        }
    }

    /// kube-apiserver's strategies: `Validate` checks the object; `ValidateUpdate` checks it,
    /// then calls the `…Update` validation, which checks it again (so an update lists each
    /// problem of the new object twice, as kube-apiserver's causes do) and, for bindings,
    /// that the roleRef is unchanged.
    fn validate(&self, object: &Value, old: Option<&Value>) -> Vec<StatusCause> {
        let namespaced = self.names.namespaced;
        let check = || match self.grant {
            Grant::Rules => validation::validate_role(object, namespaced, old),
            Grant::Binding => validation::validate_binding(object, namespaced),
        };
        let mut errors = check();
        if let Some(old) = old {
            errors.extend(check());
            if self.grant == Grant::Binding {
                errors.extend(validation::validate_binding_update(object, old));
            }
        }
        errors.into_iter().map(cause).collect()
    }

    async fn admit(
        &self,
        admission: &Admission<'_>,
        object: &mut Value,
        _old: Option<&Value>,
    ) -> Result<(), Status> {
        escalation::check(admission, object, self.grant)
    }

    fn columns(&self) -> &'static [Column] {
        match self.grant {
            Grant::Rules => crate::kinds::NAME_CREATED_AT,
            Grant::Binding => BINDING_COLUMNS,
        }
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        match self.grant {
            Grant::Rules => crate::kinds::name_created_at_cells(o),
            Grant::Binding => binding_cells(o),
        }
    }

    fn grants(&self) -> Grants {
        // Roles and bindings inside a namespace: admins manage them. Viewers and editors do not
        // even read them (who may do what), as Kubernetes' `view` and `edit` roles say.
        if self.names.namespaced {
            Grants {
                view: &[],
                edit: &[],
                admin: &["*"],
            }
        } else {
            Grants::default()
        }
    }

    fn protobuf(&self) -> Option<Converter> {
        Some(self.protobuf)
    }
}

fn cause(error: FieldError) -> StatusCause {
    StatusCause {
        kind: error.kind.to_string(),
        message: error.message,
        field: error.field,
    }
}

const BINDING_COLUMNS: &[Column] = &[
    NAME,
    ("Role", "string", 0),
    AGE,
    ("Users", "string", 1),
    ("Groups", "string", 1),
    ("ServiceAccounts", "string", 1),
];

fn binding_cells(o: &Value) -> Vec<Value> {
    let role = format!(
        "{}/{}",
        o.pointer("/roleRef/kind")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        o.pointer("/roleRef/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    );
    vec![
        cell_text(o, "/metadata/name"),
        role.into(),
        age_cell(o),
        subjects(o, "User"),
        subjects(o, "Group"),
        subjects(o, "ServiceAccount"),
    ]
}

/// Subjects of a binding of one kind, comma-separated.
fn subjects(object: &Value, kind: &str) -> Value {
    let names: Vec<String> = object
        .get("subjects")
        .and_then(Value::as_array)
        .map(|subjects| {
            subjects
                .iter()
                .filter(|s| s.get("kind").and_then(Value::as_str) == Some(kind))
                .map(|s| {
                    let name = s.get("name").and_then(Value::as_str).unwrap_or_default();
                    match s.get("namespace").and_then(Value::as_str) {
                        Some(ns) if kind == "ServiceAccount" => format!("{ns}/{name}"),
                        _ => name.to_string(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Value::String(names.join(", "))
}
