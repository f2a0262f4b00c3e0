//! `rbac.authorization.k8s.io/v1`: Roles, ClusterRoles and their bindings. Writes are checked
//! for escalation (`authz::escalation`); the default ClusterRoles are built from every kind's
//! [`Grants`](super::Grants) (`authz::defaults`).

mod cluster_role;
mod cluster_role_binding;
mod role;
mod role_binding;

pub use cluster_role::ClusterRole;
pub use cluster_role_binding::ClusterRoleBinding;
pub use role::Role;
pub use role_binding::RoleBinding;

use serde_json::Value;

use super::{age_cell, cell_text, Column, Grants, SchemeBuilder, AGE, NAME, READ};

pub const GROUP: &str = "rbac.authorization.k8s.io";

pub fn install(scheme: &mut SchemeBuilder) {
    scheme.add(Role);
    scheme.add(RoleBinding);
    scheme.add(ClusterRole);
    scheme.add(ClusterRoleBinding);
}

/// Roles and bindings inside a namespace: admins manage them, viewers read them.
const NAMESPACED_GRANTS: Grants = Grants {
    view: READ,
    edit: &[],
    admin: &["*"],
};

const ROLE_COLUMNS: &[Column] = &[NAME, ("Created At", "date", 0)];

fn role_cells(o: &Value) -> Vec<Value> {
    vec![
        cell_text(o, "/metadata/name"),
        cell_text(o, "/metadata/creationTimestamp"),
    ]
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
