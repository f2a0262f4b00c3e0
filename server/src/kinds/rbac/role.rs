//! Role: checked on every write for escalation (the writer must hold its rules).

use k8s_openapi::api::rbac::v1;

use super::RbacKind;
use crate::kinds::{schema_of, Names};
use crate::security::authz::escalation::Grant;

pub const ROLE: RbacKind = RbacKind {
    names: Names::namespaced(super::GROUP, "v1", "Role", "roles"),
    schema: schema_of::<v1::Role>,
    grant: Grant::Rules,
    protobuf: crate::machinery::protobuf::role,
};
