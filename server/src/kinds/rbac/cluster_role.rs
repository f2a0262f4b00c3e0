//! ClusterRole: checked on every write for escalation (the writer must hold its rules).

use k8s_openapi::api::rbac::v1;

use super::RbacKind;
use crate::kinds::{schema_of, Names};
use crate::security::authz::escalation::Grant;

pub const CLUSTER_ROLE: RbacKind = RbacKind {
    names: Names::cluster(super::GROUP, "v1", "ClusterRole", "clusterroles"),
    schema: schema_of::<v1::ClusterRole>,
    grant: Grant::Rules,
    protobuf: crate::machinery::protobuf::cluster_role,
};
