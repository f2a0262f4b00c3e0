//! RoleBinding: checked on every write for escalation (the writer must hold its role's rules).

use k8s_openapi::api::rbac::v1;

use super::RbacKind;
use crate::kinds::{schema_of, Names};
use crate::security::authz::escalation::Grant;

pub const ROLE_BINDING: RbacKind = RbacKind {
    names: Names::namespaced(super::GROUP, "v1", "RoleBinding", "rolebindings"),
    schema: schema_of::<v1::RoleBinding>,
    grant: Grant::Binding,
    protobuf: crate::machinery::protobuf::role_binding,
};
