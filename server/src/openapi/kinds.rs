//! Which k8s-openapi type carries the schema of each built-in kind.

use k8s_openapi::api::{authentication, authorization, coordination, core, events, rbac};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;
use schemars::{JsonSchema, SchemaGenerator};

macro_rules! kinds {
    ($( $group:literal, $kind:literal => $ty:ty; )*) => {
        /// Adds the kind's schema (and everything it references) to the generator.
        pub fn generate(generator: &mut SchemaGenerator, group: &str, kind: &str) {
            match (group, kind) {
                $( ($group, $kind) => { generator.subschema_for::<$ty>(); } )*
                _ => {}
            }
        }

        pub fn schema_name(group: &str, kind: &str) -> Option<&'static str> {
            // Computed once: k8s-openapi hands names out as owned strings.
            static NAMES: std::sync::LazyLock<Vec<((&'static str, &'static str), String)>> =
                std::sync::LazyLock::new(|| vec![ $( (($group, $kind), <$ty as JsonSchema>::schema_name().into_owned()), )* ]);
            NAMES.iter().find(|(k, _)| *k == (group, kind)).map(|(_, n)| n.as_str())
        }
    };
}

kinds! {
    "", "Namespace" => core::v1::Namespace;
    "", "ConfigMap" => core::v1::ConfigMap;
    "", "Secret" => core::v1::Secret;
    "", "ServiceAccount" => core::v1::ServiceAccount;
    "", "Event" => core::v1::Event;
    "events.k8s.io", "Event" => events::v1::Event;
    "coordination.k8s.io", "Lease" => coordination::v1::Lease;
    "rbac.authorization.k8s.io", "Role" => rbac::v1::Role;
    "rbac.authorization.k8s.io", "RoleBinding" => rbac::v1::RoleBinding;
    "rbac.authorization.k8s.io", "ClusterRole" => rbac::v1::ClusterRole;
    "rbac.authorization.k8s.io", "ClusterRoleBinding" => rbac::v1::ClusterRoleBinding;
    "apiextensions.k8s.io", "CustomResourceDefinition" => apiextensions::v1::CustomResourceDefinition;
    "tenancy.trellis.dev", "Workspace" => trellis_apis::tenancy::Workspace;
    "tenancy.trellis.dev", "WorkspaceType" => trellis_apis::tenancy::WorkspaceType;
    "core.trellis.dev", "LogicalCluster" => trellis_apis::core::LogicalCluster;
    "core.trellis.dev", "Shard" => trellis_apis::core::Shard;
    "authorization.k8s.io", "SelfSubjectAccessReview" => authorization::v1::SelfSubjectAccessReview;
    "authorization.k8s.io", "SelfSubjectRulesReview" => authorization::v1::SelfSubjectRulesReview;
    "authorization.k8s.io", "SubjectAccessReview" => authorization::v1::SubjectAccessReview;
    "authentication.k8s.io", "SelfSubjectReview" => authentication::v1::SelfSubjectReview;
}
