//! The ClusterRoles and ClusterRoleBindings every workspace has without storing them:
//! Kubernetes' user-facing roles (`cluster-admin`, and `admin`, `edit`, `view` aggregated from
//! the `system:aggregate-to-*` roles by the `rbac.authorization.k8s.io/aggregate-to-*`
//! labels), discovery and self-review for every authenticated user, and Trellis' workspace
//! access role.
//!
//! The `system:aggregate-to-*` roles are built from the server's kinds: each kind says what
//! `view`, `edit` and `admin` may do with it (`kinds::Grants`). They are one shared copy per
//! server (a workspace costs no rows for them). A ClusterRole or
//! ClusterRoleBinding stored under the same name in a workspace replaces the default there, and
//! stored ClusterRoles carrying an aggregation label add their rules to `admin`/`edit`/`view`
//! as in Kubernetes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{json, Value};

use super::cache::{effective_cluster_roles, Rules};
use super::rbac::Rule;
use crate::registry::ResourceType;

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

/// The default ClusterRoles of one server, and their effective rules in a workspace with
/// nothing stored.
pub struct DefaultRoles {
    cluster_roles: Vec<Value>,
    cluster_role_bindings: Vec<Value>,
    effective: Arc<HashMap<String, Rules>>,
}

/// The resourceVersion the defaults show: older than anything stored. A write naming it
/// stores the default first (`endpoints::rest`), as if it had always been there.
pub const DEFAULT_REVISION: u64 = 1;

impl DefaultRoles {
    /// The defaults of a server serving `resources`.
    pub fn new(resources: &[Arc<ResourceType>]) -> DefaultRoles {
        let created = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let mut cluster_roles = cluster_roles(resources);
        let mut cluster_role_bindings: Vec<Value> = CLUSTER_ROLE_BINDINGS
            .iter()
            .map(|(name, role, group)| cluster_role_binding(name, role, group))
            .collect();
        for object in cluster_roles.iter_mut().chain(&mut cluster_role_bindings) {
            stamp(object, &created);
        }
        let effective = Arc::new(effective_cluster_roles(&cluster_roles, &HashMap::new()));
        DefaultRoles {
            cluster_roles,
            cluster_role_bindings,
            effective,
        }
    }

    /// The default objects stored as `resource` would be (`rbac.authorization.k8s.io/
    /// clusterroles`), none for other resources: what every workspace reads where it stores
    /// none of the same name.
    pub fn objects(&self, resource: &str) -> &[Value] {
        match resource {
            super::cache::CLUSTER_ROLES => &self.cluster_roles,
            super::cache::CLUSTER_ROLE_BINDINGS => &self.cluster_role_bindings,
            _ => &[],
        }
    }

    /// Every default ClusterRole, as the objects `kubectl get clusterrole -o yaml` would show
    /// (aggregated roles with their own rules empty: [`super::cache`] computes them).
    pub fn cluster_roles(&self) -> &[Value] {
        &self.cluster_roles
    }

    /// Every ClusterRole's rules in a workspace with no RBAC objects of its own.
    pub fn effective(&self) -> &Arc<HashMap<String, Rules>> {
        &self.effective
    }
}

/// The metadata a default shows as an object: a uid derived from its kind and name (the same
/// on every replica), the server's start as its creation, and [`DEFAULT_REVISION`].
fn stamp(object: &mut Value, created: &str) {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let kind = object["kind"].as_str().unwrap_or_default().to_string();
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let name = meta.get("name").and_then(Value::as_str).unwrap_or_default();
    let half = |salt: &str| {
        let mut h = DefaultHasher::new();
        (salt, &kind, name).hash(&mut h);
        h.finish()
    };
    let (a, b) = (half("a"), half("b"));
    let uid = format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    );
    meta.insert("uid".into(), json!(uid));
    meta.insert("creationTimestamp".into(), json!(created));
    meta.insert(
        "resourceVersion".into(),
        json!(DEFAULT_REVISION.to_string()),
    );
}

/// A default ClusterRoleBinding as the object it stands for.
fn cluster_role_binding(name: &str, role: &str, group: &str) -> Value {
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

/// What `view`, `edit` or `admin` (as `pick` chooses) gets on `resources`: one rule per group
/// and verb set.
fn grant_rules(
    resources: &[Arc<ResourceType>],
    pick: fn(&crate::kinds::Grants) -> &'static [&'static str],
) -> Vec<Rule> {
    let mut by_group: BTreeMap<(&str, &'static [&'static str]), Vec<&str>> = BTreeMap::new();
    for rt in resources {
        let grants = rt.grants();
        let verbs = pick(&grants);
        if verbs.is_empty() {
            continue;
        }
        let plurals = by_group.entry((rt.group.as_str(), verbs)).or_default();
        if !plurals.contains(&rt.plural.as_str()) {
            plurals.push(&rt.plural);
        }
    }
    by_group
        .into_iter()
        .map(|((group, verbs), plurals)| Rule::new(verbs, &[group], &plurals))
        .collect()
}

fn cluster_roles(resources: &[Arc<ResourceType>]) -> Vec<Value> {
    let mut admin = grant_rules(resources, |g| g.admin);
    admin.push(Rule::new(
        &["create"],
        &["authorization.k8s.io"],
        &["localsubjectaccessreviews"],
    ));
    let edit = grant_rules(resources, |g| g.edit);
    let mut view = grant_rules(resources, |g| g.view);
    view.push(Rule::non_resource(&[ACCESS_VERB], &["/"]));
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
            &admin,
            None,
        ),
        role(
            "system:aggregate-to-edit",
            aggregate_label("edit"),
            &edit,
            None,
        ),
        role(
            "system:aggregate-to-view",
            aggregate_label("view"),
            &view,
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
        // Prometheus and the like: `/metrics` and the health checks, in the workspace (root)
        // whose `/metrics` they scrape.
        role(
            MONITORING,
            json!({}),
            &[
                Rule::non_resource(&[ACCESS_VERB], &["/"]),
                Rule::non_resource(
                    &["get"],
                    &[
                        "/metrics",
                        "/metrics/slis",
                        "/healthz",
                        "/healthz/*",
                        "/livez",
                        "/livez/*",
                        "/readyz",
                        "/readyz/*",
                    ],
                ),
            ],
            None,
        ),
        role(
            "system:auth-delegator",
            json!({}),
            &[
                Rule::new(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                Rule::new(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
            ],
            None,
        ),
        role(
            "system:public-info-viewer",
            json!({}),
            &[Rule::non_resource(
                &["get"],
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
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
}

/// The default ClusterRoleBindings: (name, ClusterRole, group bound). Every authenticated user
/// may discover the API and review itself, in any workspace it may enter.
pub const CLUSTER_ROLE_BINDINGS: &[(&str, &str, &str)] = &[
    (
        "system:discovery",
        "system:discovery",
        crate::security::authn::AUTHENTICATED,
    ),
    (
        "system:basic-user",
        "system:basic-user",
        crate::security::authn::AUTHENTICATED,
    ),
    (
        "system:public-info-viewer",
        "system:public-info-viewer",
        crate::security::authn::AUTHENTICATED,
    ),
    (MONITORING, MONITORING, MONITORING),
];

/// kube-apiserver's monitoring role, and the group it is bound to.
pub const MONITORING: &str = "system:monitoring";
