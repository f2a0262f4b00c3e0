//! Escalation prevention, as Kubernetes' RBAC does it: a user may write a Role or ClusterRole
//! only with rules it holds itself (or with verb `escalate` on it), and a RoleBinding or
//! ClusterRoleBinding only to a role whose rules it holds (or with verb `bind` on the role).
//! Holding is judged where the object applies: in its namespace for Roles and RoleBindings,
//! cluster-wide for ClusterRoles and ClusterRoleBindings. Admins of the workspace from above
//! and `system:masters` are not limited.

use serde_json::Value;

use super::defaults::RBAC_GROUP;
use super::rbac::{self, RoleRef, Rule};
use super::{Attributes, ResourceAttributes};
use crate::kinds::Admission;
use crate::machinery::status::{Status, Subject};
use crate::serving::state::AppState;

fn attrs(verb: &str, resource: &str, namespace: &str, name: &str) -> Attributes {
    Attributes {
        verb: verb.into(),
        resource: Some(ResourceAttributes {
            api_group: RBAC_GROUP.into(),
            resource: resource.into(),
            subresource: None,
            namespace: namespace.into(),
            name: name.into(),
        }),
        path: String::new(),
    }
}

/// What an RBAC object grants: a role's own rules, or a binding's role's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    Rules,
    Binding,
}

/// Refuses a write of an RBAC `object` (a role or binding, as `grant` says) that would grant
/// more than the requesting user holds, as kube-apiserver's escalation check does.
pub fn check(admission: &Admission<'_>, object: &Value, grant: Grant) -> Result<(), Status> {
    let resource = admission.subject.resource;
    let Some(user) = admission.user else {
        return Ok(());
    };
    if admission.admin || user.is_master() {
        return Ok(());
    }
    let state = AppState::of(admission.server)?;
    let Some(cache) = state.authorizer.cache_of_shard(admission.shard) else {
        return Err(Status::unavailable("no RBAC cache for this shard", 1));
    };
    let cluster = admission.cluster;
    let namespace = admission.namespace.unwrap_or_default();
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (granted, allowed_by): (Vec<Rule>, Attributes) = match grant {
        Grant::Rules => (
            rbac::rules_of(object),
            attrs("escalate", resource, namespace, name),
        ),
        Grant::Binding => {
            let Some(role) = rbac::role_ref_of(object) else {
                return Ok(());
            };
            let rules = cache
                .role_rules(cluster, namespace, &role)
                .map(|r| r.to_vec())
                .unwrap_or_default();
            let bind = match &role {
                RoleRef::Role(n) => attrs("bind", "roles", namespace, n),
                RoleRef::ClusterRole(n) => attrs("bind", "clusterroles", namespace, n),
            };
            (rules, bind)
        }
    };
    if cache.allows(cluster, user, &allowed_by) {
        return Ok(());
    }
    let held = cache.rules(cluster, user, namespace);
    let missing: Vec<&Rule> = granted
        .iter()
        .filter(|rule| !rbac::covers(&held, rule))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let missing = missing
        .iter()
        .map(|r| serde_json::to_string(r).unwrap_or_default())
        .collect::<Vec<_>>()
        .join(", ");
    Err(Status::forbidden(
        &Subject {
            group: RBAC_GROUP,
            resource,
            name,
        },
        &format!(
            "User {:?} is attempting to grant RBAC permissions not currently held: {missing}",
            user.name
        ),
    ))
}
