//! ClusterRoleBinding: checked on every write for escalation (the writer must hold its role's rules).

use k8s_openapi::api::rbac::v1;

use super::RbacKind;
use crate::kinds::{schema_of, Names};
use crate::security::authz::escalation::Grant;

pub const CLUSTER_ROLE_BINDING: RbacKind = RbacKind {
    names: Names::cluster(
        super::GROUP,
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
    ),
    schema: schema_of::<v1::ClusterRoleBinding>,
    grant: Grant::Binding,
    protobuf: crate::machinery::protobuf::cluster_role_binding,
};
