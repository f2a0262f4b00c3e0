//! The built-in resources every workspace serves, as kube-apiserver names them.

use super::{ResourceType, Subresources};

fn resource(
    group: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    short_names: &[&str],
) -> ResourceType {
    ResourceType {
        group: group.to_string(),
        version: "v1".to_string(),
        kind: kind.to_string(),
        plural: plural.to_string(),
        singular: kind.to_lowercase(),
        namespaced,
        short_names: short_names.iter().map(|s| s.to_string()).collect(),
        categories: Vec::new(),
        subresources: Subresources::default(),
        stored_as: None,
        custom: None,
    }
}

const RBAC: &str = "rbac.authorization.k8s.io";
const AUTHORIZATION: &str = "authorization.k8s.io";
const AUTHENTICATION: &str = "authentication.k8s.io";
pub const APIEXTENSIONS: &str = "apiextensions.k8s.io";
pub const TENANCY: &str = trellis_apis::tenancy::GROUP;
pub const TRELLIS_CORE: &str = trellis_apis::core::GROUP;

pub fn table() -> Vec<ResourceType> {
    let with_status = |mut rt: ResourceType| {
        rt.subresources.status = true;
        rt
    };
    let mut crds = with_status(resource(
        APIEXTENSIONS,
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        &["crd", "crds"],
    ));
    crds.categories = vec!["api-extensions".to_string()];
    let trellis = |group: &str, kind: &str, plural: &str, short_names: &[&str]| ResourceType {
        version: "v1alpha1".to_string(),
        ..resource(group, kind, plural, false, short_names)
    };
    vec![
        with_status(resource("", "Namespace", "namespaces", false, &["ns"])),
        resource("", "ConfigMap", "configmaps", true, &["cm"]),
        resource("", "Secret", "secrets", true, &[]),
        resource("", "ServiceAccount", "serviceaccounts", true, &["sa"]),
        resource("", "Event", "events", true, &["ev"]),
        ResourceType {
            stored_as: Some("core/events".to_string()),
            ..resource("events.k8s.io", "Event", "events", true, &[])
        },
        resource("coordination.k8s.io", "Lease", "leases", true, &[]),
        resource(RBAC, "Role", "roles", true, &[]),
        resource(RBAC, "RoleBinding", "rolebindings", true, &[]),
        resource(RBAC, "ClusterRole", "clusterroles", false, &[]),
        resource(
            RBAC,
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            &[],
        ),
        crds,
        with_status(trellis(TENANCY, "Workspace", "workspaces", &["ws"])),
        trellis(TENANCY, "WorkspaceType", "workspacetypes", &[]),
        with_status(trellis(
            TRELLIS_CORE,
            "LogicalCluster",
            "logicalclusters",
            &[],
        )),
        with_status(trellis(TRELLIS_CORE, "Shard", "shards", &[])),
        // Create-only and never stored: answered by `authz::reviews` in dispatch.
        resource(
            AUTHORIZATION,
            "SelfSubjectAccessReview",
            "selfsubjectaccessreviews",
            false,
            &[],
        ),
        resource(
            AUTHORIZATION,
            "SelfSubjectRulesReview",
            "selfsubjectrulesreviews",
            false,
            &[],
        ),
        resource(
            AUTHORIZATION,
            "SubjectAccessReview",
            "subjectaccessreviews",
            false,
            &[],
        ),
        // `kubectl auth whoami`: answered by `authn` in dispatch.
        resource(
            AUTHENTICATION,
            "SelfSubjectReview",
            "selfsubjectreviews",
            false,
            &[],
        ),
    ]
}
