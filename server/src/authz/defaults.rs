//! The ClusterRoles and ClusterRoleBindings every workspace has without storing them:
//! Kubernetes' user-facing roles (`cluster-admin`, and `admin`, `edit`, `view` aggregated from
//! the `system:aggregate-to-*` roles by the `rbac.authorization.k8s.io/aggregate-to-*`
//! labels), discovery and self-review for every authenticated user, and Trellis' workspace
//! access role.
//!
//! They are one shared copy in memory (a workspace costs no rows for them). A ClusterRole or
//! ClusterRoleBinding stored under the same name in a workspace replaces the default there, and
//! stored ClusterRoles carrying an aggregation label add their rules to `admin`/`edit`/`view`
//! as in Kubernetes.

use std::sync::LazyLock;

use serde_json::{json, Value};

use super::rbac::Rule;

pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// Label a ClusterRole carries to add its rules to `admin` (and likewise `-edit`, `-view`).
pub const AGGREGATE_TO: &str = "rbac.authorization.k8s.io/aggregate-to-";
/// Marks the built-in roles, as Kubernetes' bootstrap policy does.
const BOOTSTRAPPING: &str = "kubernetes.io/bootstrapping";

/// The verb that lets a user into a workspace (see the README): on non-resource URL `/`.
pub const ACCESS_VERB: &str = "access";
/// A ClusterRole granting only [`ACCESS_VERB`], for users who get nothing cluster-wide.
pub const WORKSPACE_ACCESS_ROLE: &str = "system:trellis:workspace-access";

fn role(name: &str, labels: Value, rules: &[Rule], aggregate: Option<&str>) -> Value {
    let mut labels = labels;
    labels[BOOTSTRAPPING] = json!("rbac-defaults");
    let mut object = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        },
        "rules": rules,
    });
    if let Some(to) = aggregate {
        object["aggregationRule"] = json!({"clusterRoleSelectors": [
            {"matchLabels": {format!("{AGGREGATE_TO}{to}"): "true"}}
        ]});
    }
    object
}

fn aggregate_label(to: &str) -> Value {
    json!({ format!("{AGGREGATE_TO}{to}"): "true" })
}

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];

/// Every default ClusterRole, as the objects `kubectl get clusterrole -o yaml` would show
/// (aggregated roles with their own rules empty: [`super::cache`] computes them).
pub fn cluster_roles() -> &'static [Value] {
    static ROLES: LazyLock<Vec<Value>> = LazyLock::new(|| {
        let tenancy = trellis_apis::tenancy::GROUP;
        vec![
            role(
                "cluster-admin",
                json!({}),
                &[
                    Rule::new(&["*"], &["*"], &["*"]),
                    Rule::non_resource(&["*"], &["*"]),
                ],
                None,
            ),
            role("admin", json!({}), &[], Some("admin")),
            role("edit", aggregate_label("admin"), &[], Some("edit")),
            role("view", aggregate_label("edit"), &[], Some("view")),
            role(
                "system:aggregate-to-admin",
                aggregate_label("admin"),
                &[
                    Rule::new(&["*"], &[RBAC_GROUP], &["roles", "rolebindings"]),
                    Rule::new(&[READ, WRITE].concat(), &[tenancy], &["workspaces"]),
                    Rule::new(
                        &["create"],
                        &["authorization.k8s.io"],
                        &["localsubjectaccessreviews"],
                    ),
                ],
                None,
            ),
            role(
                "system:aggregate-to-edit",
                aggregate_label("edit"),
                &[
                    Rule::new(
                        WRITE,
                        &[""],
                        &["configmaps", "secrets", "serviceaccounts", "events"],
                    ),
                    Rule::new(READ, &[""], &["secrets"]),
                    Rule::new(WRITE, &["events.k8s.io"], &["events"]),
                    Rule::new(
                        &[READ, WRITE].concat(),
                        &["coordination.k8s.io"],
                        &["leases"],
                    ),
                ],
                None,
            ),
            role(
                "system:aggregate-to-view",
                aggregate_label("view"),
                &[
                    Rule::new(
                        READ,
                        &[""],
                        &["configmaps", "serviceaccounts", "events", "namespaces"],
                    ),
                    Rule::new(READ, &["events.k8s.io"], &["events"]),
                    Rule::new(READ, &[RBAC_GROUP], &["roles", "rolebindings"]),
                    Rule::new(READ, &[tenancy], &["workspaces", "workspacetypes"]),
                    Rule::non_resource(&[ACCESS_VERB], &["/"]),
                ],
                None,
            ),
            role(
                WORKSPACE_ACCESS_ROLE,
                json!({}),
                &[Rule::non_resource(&[ACCESS_VERB], &["/"])],
                None,
            ),
            role(
                "system:discovery",
                json!({}),
                &[Rule::non_resource(
                    &["get"],
                    &[
                        "/api",
                        "/api/*",
                        "/apis",
                        "/apis/*",
                        "/openapi",
                        "/openapi/*",
                        "/version",
                        "/version/",
                        "/healthz",
                        "/livez",
                        "/readyz",
                    ],
                )],
                None,
            ),
            role(
                "system:basic-user",
                json!({}),
                &[
                    Rule::new(
                        &["create"],
                        &["authorization.k8s.io"],
                        &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    ),
                    Rule::new(
                        &["create"],
                        &["authentication.k8s.io"],
                        &["selfsubjectreviews"],
                    ),
                ],
                None,
            ),
        ]
    });
    &ROLES
}

/// The default ClusterRoleBindings: (name, ClusterRole, group bound). Every authenticated user
/// may discover the API and review itself, in any workspace it may enter.
pub const CLUSTER_ROLE_BINDINGS: &[(&str, &str, &str)] = &[
    (
        "system:discovery",
        "system:discovery",
        crate::authn::AUTHENTICATED,
    ),
    (
        "system:basic-user",
        "system:basic-user",
        crate::authn::AUTHENTICATED,
    ),
];

/// A default ClusterRoleBinding as the object it stands for.
pub fn cluster_role_binding(name: &str, role: &str, group: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": name,
            "labels": {BOOTSTRAPPING: "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        },
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": group}],
    })
}
