//! Kubernetes RBAC as pure functions: policy rules and whether one allows a request, subjects
//! and whether one names a user, and the label selectors of aggregated ClusterRoles.
//!
//! No I/O: [`super::cache`] keeps the compiled objects of every workspace, and this module
//! decides.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Attributes;

/// One rule of a Role or ClusterRole (`rbac.authorization.k8s.io/v1` `PolicyRule`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(default)]
    pub verbs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    #[serde(
        default,
        rename = "nonResourceURLs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub non_resource_urls: Vec<String>,
}

pub const ALL: &str = "*";

fn has(list: &[String], wanted: &str) -> bool {
    list.iter().any(|item| item == ALL || item == wanted)
}

impl Rule {
    /// A rule from string lists, for the built-in roles and tests.
    pub fn new(verbs: &[&str], api_groups: &[&str], resources: &[&str]) -> Rule {
        let owned = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        Rule {
            verbs: owned(verbs),
            api_groups: owned(api_groups),
            resources: owned(resources),
            ..Rule::default()
        }
    }

    pub fn non_resource(verbs: &[&str], urls: &[&str]) -> Rule {
        let owned = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        Rule {
            verbs: owned(verbs),
            non_resource_urls: owned(urls),
            ..Rule::default()
        }
    }

    /// Whether this rule allows the request, as kube-apiserver's RBAC authorizer decides.
    pub fn allows(&self, attrs: &Attributes) -> bool {
        if !has(&self.verbs, &attrs.verb) {
            return false;
        }
        match &attrs.resource {
            Some(r) => {
                has(&self.api_groups, &r.api_group)
                    && self.matches_resource(&r.resource, r.subresource.as_deref())
                    && (self.resource_names.is_empty()
                        || (!r.name.is_empty() && self.resource_names.contains(&r.name)))
            }
            None => self.non_resource_urls.iter().any(|url| {
                url == ALL
                    || *url == attrs.path
                    || url
                        .strip_suffix('*')
                        .is_some_and(|prefix| attrs.path.starts_with(prefix))
            }),
        }
    }

    /// `pods`, `pods/log`, `pods/*`, `*/scale` and `*`.
    fn matches_resource(&self, resource: &str, subresource: Option<&str>) -> bool {
        self.resources.iter().any(|rule| {
            if rule == ALL {
                return true;
            }
            match subresource {
                None => rule == resource,
                Some(sub) => match rule.split_once('/') {
                    Some((r, s)) => (r == resource || r == ALL) && (s == sub || s == ALL),
                    None => false,
                },
            }
        })
    }
}

/// The rules of a Role or ClusterRole object (`None` when it has none or they do not parse).
pub fn rules_of(object: &Value) -> Vec<Rule> {
    object
        .get("rules")
        .cloned()
        .and_then(|rules| serde_json::from_value(rules).ok())
        .unwrap_or_default()
}

/// Who a binding names, normalised so that a lookup is one map probe per user name or group.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SubjectKey {
    User(String),
    Group(String),
}

/// The subjects of a binding: a ServiceAccount becomes the user it authenticates as.
pub fn subjects_of(binding: &Value) -> Vec<SubjectKey> {
    let binding_namespace = binding
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(subjects) = binding.get("subjects").and_then(Value::as_array) else {
        return Vec::new();
    };
    subjects
        .iter()
        .filter_map(|s| {
            let name = s.get("name").and_then(Value::as_str)?;
            match s.get("kind").and_then(Value::as_str)? {
                "User" => Some(SubjectKey::User(name.to_string())),
                "Group" => Some(SubjectKey::Group(name.to_string())),
                "ServiceAccount" => {
                    let ns = s
                        .get("namespace")
                        .and_then(Value::as_str)
                        .filter(|ns| !ns.is_empty())
                        .unwrap_or(binding_namespace);
                    Some(SubjectKey::User(format!(
                        "system:serviceaccount:{ns}:{name}"
                    )))
                }
                _ => None,
            }
        })
        .collect()
}

/// What a binding grants: a Role of its namespace or a ClusterRole.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RoleRef {
    Role(String),
    ClusterRole(String),
}

pub fn role_ref_of(binding: &Value) -> Option<RoleRef> {
    let role = binding.get("roleRef")?;
    let name = role.get("name").and_then(Value::as_str)?.to_string();
    match role.get("kind").and_then(Value::as_str)? {
        "Role" => Some(RoleRef::Role(name)),
        "ClusterRole" => Some(RoleRef::ClusterRole(name)),
        _ => None,
    }
}

/// A label selector of an `aggregationRule` (matchLabels and matchExpressions).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub match_expressions: Vec<Requirement>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Requirement {
    pub key: String,
    pub operator: String,
    #[serde(default)]
    pub values: Vec<String>,
}

impl LabelSelector {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let value = labels.get(&r.key);
                match r.operator.as_str() {
                    "In" => value.is_some_and(|v| r.values.contains(v)),
                    "NotIn" => value.is_none_or(|v| !r.values.contains(v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    _ => false,
                }
            })
    }

    /// A selector that matches nothing would select every role if left empty; Kubernetes
    /// treats an empty selector in an aggregation rule as selecting nothing.
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }
}

/// The selectors of a ClusterRole's `aggregationRule`; `None` if it is not aggregated.
pub fn aggregation_of(object: &Value) -> Option<Vec<LabelSelector>> {
    let selectors = object.pointer("/aggregationRule/clusterRoleSelectors")?;
    serde_json::from_value(selectors.clone()).ok()
}

pub fn labels_of(object: &Value) -> BTreeMap<String, String> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `held` grants everything `requested` does (Kubernetes' escalation rule: nobody
/// grants more than they hold). `*` requested is covered only by `*` held.
pub fn covers(held: &[Rule], requested: &Rule) -> bool {
    if !requested.non_resource_urls.is_empty() {
        return requested.verbs.iter().all(|verb| {
            requested.non_resource_urls.iter().all(|url| {
                held.iter().any(|h| {
                    has(&h.verbs, verb)
                        && h.non_resource_urls.iter().any(|mine| url_covers(mine, url))
                })
            })
        });
    }
    let names: Vec<Option<&String>> = if requested.resource_names.is_empty() {
        vec![None]
    } else {
        requested.resource_names.iter().map(Some).collect()
    };
    requested.verbs.iter().all(|verb| {
        requested.api_groups.iter().all(|group| {
            requested.resources.iter().all(|resource| {
                names.iter().all(|name| {
                    held.iter().any(|h| {
                        has(&h.verbs, verb)
                            && has(&h.api_groups, group)
                            && h.resources
                                .iter()
                                .any(|mine| resource_covers(mine, resource))
                            && (h.resource_names.is_empty()
                                || name.is_some_and(|n| h.resource_names.contains(n)))
                    })
                })
            })
        })
    })
}

fn url_covers(held: &str, requested: &str) -> bool {
    held == ALL
        || held == requested
        || held
            .strip_suffix('*')
            .is_some_and(|prefix| requested.starts_with(prefix))
}

/// `pods/*` covers `pods/log`, `*/scale` covers `deployments/scale`, `*` everything.
fn resource_covers(held: &str, requested: &str) -> bool {
    if held == ALL || held == requested {
        return true;
    }
    match (held.split_once('/'), requested.split_once('/')) {
        (Some((hr, hs)), Some((rr, rs))) => (hr == ALL || hr == rr) && (hs == ALL || hs == rs),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::authz::ResourceAttributes;
    use serde_json::json;

    fn res(verb: &str, group: &str, resource: &str, sub: Option<&str>, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource: Some(ResourceAttributes {
                api_group: group.into(),
                resource: resource.into(),
                subresource: sub.map(str::to_string),
                namespace: "default".into(),
                name: name.into(),
            }),
            path: String::new(),
        }
    }

    fn path(verb: &str, path: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource: None,
            path: path.into(),
        }
    }

    #[test]
    fn verbs_groups_and_resources_must_all_match() {
        let rule = Rule::new(&["get", "list"], &[""], &["configmaps"]);
        assert!(rule.allows(&res("get", "", "configmaps", None, "a")));
        assert!(rule.allows(&res("list", "", "configmaps", None, "")));
        assert!(!rule.allows(&res("watch", "", "configmaps", None, "")));
        assert!(!rule.allows(&res("get", "apps", "configmaps", None, "a")));
        assert!(!rule.allows(&res("get", "", "secrets", None, "a")));
        // A resource rule never allows a path, nor the other way round.
        assert!(!rule.allows(&path("get", "/api")));
        let everything = Rule::new(&["*"], &["*"], &["*"]);
        assert!(everything.allows(&res("delete", "x.io", "things", Some("status"), "n")));
        assert!(!everything.allows(&path("get", "/api")));
    }

    #[test]
    fn subresources_need_their_own_rule() {
        let main = Rule::new(&["get"], &[""], &["pods"]);
        assert!(!main.allows(&res("get", "", "pods", Some("log"), "p")));
        let log = Rule::new(&["get"], &[""], &["pods/log"]);
        assert!(log.allows(&res("get", "", "pods", Some("log"), "p")));
        assert!(!log.allows(&res("get", "", "pods", None, "p")));
        assert!(!log.allows(&res("get", "", "pods", Some("exec"), "p")));
        let any_sub = Rule::new(&["get"], &[""], &["pods/*"]);
        assert!(any_sub.allows(&res("get", "", "pods", Some("exec"), "p")));
        assert!(!any_sub.allows(&res("get", "", "pods", None, "p")));
        let any_scale = Rule::new(&["update"], &["*"], &["*/scale"]);
        assert!(any_scale.allows(&res("update", "apps", "deployments", Some("scale"), "d")));
        assert!(!any_scale.allows(&res("update", "apps", "deployments", Some("status"), "d")));
    }

    #[test]
    fn resource_names_restrict_named_requests_only() {
        let rule = Rule {
            resource_names: vec!["mine".into()],
            ..Rule::new(&["get", "list", "create", "delete"], &[""], &["configmaps"])
        };
        assert!(rule.allows(&res("get", "", "configmaps", None, "mine")));
        assert!(rule.allows(&res("delete", "", "configmaps", None, "mine")));
        assert!(!rule.allows(&res("get", "", "configmaps", None, "other")));
        // Requests without a name (list, create) are never allowed by a named rule.
        assert!(!rule.allows(&res("list", "", "configmaps", None, "")));
        assert!(!rule.allows(&res("create", "", "configmaps", None, "")));
    }

    #[test]
    fn non_resource_urls_with_a_trailing_star_are_prefixes() {
        let rule = Rule::non_resource(&["get"], &["/apis/*", "/api", "/healthz"]);
        assert!(rule.allows(&path("get", "/api")));
        assert!(!rule.allows(&path("get", "/api/v1")));
        assert!(rule.allows(&path("get", "/apis/apps/v1")));
        assert!(rule.allows(&path("get", "/apis/")));
        assert!(!rule.allows(&path("get", "/apis")));
        assert!(!rule.allows(&path("post", "/healthz")));
        assert!(Rule::non_resource(&["*"], &["*"]).allows(&path("access", "/")));
    }

    #[test]
    fn subjects_service_accounts_and_role_refs() {
        let binding = json!({
            "metadata": {"name": "b", "namespace": "team"},
            "subjects": [
                {"kind": "User", "name": "alice"},
                {"kind": "Group", "name": "devs"},
                {"kind": "ServiceAccount", "name": "robot"},
                {"kind": "ServiceAccount", "name": "other", "namespace": "ci"},
                {"kind": "Martian", "name": "x"},
            ],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
        });
        assert_eq!(
            subjects_of(&binding),
            [
                SubjectKey::User("alice".into()),
                SubjectKey::Group("devs".into()),
                SubjectKey::User("system:serviceaccount:team:robot".into()),
                SubjectKey::User("system:serviceaccount:ci:other".into()),
            ]
        );
        assert_eq!(role_ref_of(&binding), Some(RoleRef::Role("r".into())));
    }

    #[test]
    fn what_a_user_holds_covers_what_it_may_grant() {
        let held = [
            Rule::new(&["get", "list"], &[""], &["configmaps", "pods/*"]),
            Rule::non_resource(&["get"], &["/apis/*"]),
        ];
        assert!(covers(&held, &Rule::new(&["get"], &[""], &["configmaps"])));
        assert!(covers(&held, &Rule::new(&["list"], &[""], &["pods/log"])));
        assert!(!covers(&held, &Rule::new(&["get"], &[""], &["pods"])));
        assert!(!covers(
            &held,
            &Rule::new(&["delete"], &[""], &["configmaps"])
        ));
        assert!(!covers(&held, &Rule::new(&["*"], &[""], &["configmaps"])));
        assert!(!covers(
            &held,
            &Rule::new(&["get"], &["*"], &["configmaps"])
        ));
        let named = Rule {
            resource_names: vec!["a".into()],
            ..Rule::new(&["get"], &[""], &["configmaps"])
        };
        assert!(covers(&held, &named));
        assert!(!covers(
            std::slice::from_ref(&named),
            &Rule::new(&["get"], &[""], &["configmaps"])
        ));
        assert!(covers(std::slice::from_ref(&named), &named));
        assert!(covers(
            &held,
            &Rule::non_resource(&["get"], &["/apis/apps"])
        ));
        assert!(!covers(&held, &Rule::non_resource(&["get"], &["/api"])));
        let everything = [
            Rule::new(&["*"], &["*"], &["*"]),
            Rule::non_resource(&["*"], &["*"]),
        ];
        assert!(covers(&everything, &Rule::new(&["*"], &["*"], &["*"])));
        assert!(covers(
            &everything,
            &Rule::non_resource(&["access"], &["/"])
        ));
    }

    #[test]
    fn aggregation_selectors() {
        let role = json!({"aggregationRule": {"clusterRoleSelectors": [
            {"matchLabels": {"agg": "true"}},
            {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]},
        ]}});
        let selectors = aggregation_of(&role).unwrap();
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(selectors[0].matches(&labels(&[("agg", "true"), ("x", "y")])));
        assert!(!selectors[0].matches(&labels(&[("agg", "false")])));
        assert!(selectors[1].matches(&labels(&[("tier", "b")])));
        assert!(!selectors[1].matches(&labels(&[])));
        assert!(aggregation_of(&json!({"rules": []})).is_none());
    }
}
