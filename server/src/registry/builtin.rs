//! The built-in resources every workspace serves, as kube-apiserver names them.

use super::ResourceType;

const fn core(
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
) -> ResourceType {
    ResourceType {
        group: "",
        version: "v1",
        kind,
        plural,
        singular,
        namespaced,
        short_names,
        categories: &[],
    }
}

const fn grouped(
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
) -> ResourceType {
    ResourceType {
        group,
        version: "v1",
        kind,
        plural,
        singular,
        namespaced,
        short_names: &[],
        categories: &[],
    }
}

const RBAC: &str = "rbac.authorization.k8s.io";

pub static BUILTIN: &[ResourceType] = &[
    core("Namespace", "namespaces", "namespace", false, &["ns"]),
    core("ConfigMap", "configmaps", "configmap", true, &["cm"]),
    core("Secret", "secrets", "secret", true, &[]),
    core(
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        true,
        &["sa"],
    ),
    core("Event", "events", "event", true, &["ev"]),
    grouped("coordination.k8s.io", "Lease", "leases", "lease", true),
    grouped(RBAC, "Role", "roles", "role", true),
    grouped(RBAC, "RoleBinding", "rolebindings", "rolebinding", true),
    grouped(RBAC, "ClusterRole", "clusterroles", "clusterrole", false),
    grouped(
        RBAC,
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        false,
    ),
];
