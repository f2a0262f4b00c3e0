//! What kube-apiserver checks and defaults in RBAC objects, rule for rule as
//! `pkg/apis/rbac/validation` (`ValidateRole`, `ValidateClusterRole`, `ValidatePolicyRule`,
//! `ValidateRoleBinding`, `ValidateClusterRoleBinding`, `ValidateRoleBindingSubject` and their
//! `…Update`s) and `pkg/apis/rbac/v1/defaults.go` (`SetDefaults_RoleBinding`,
//! `SetDefaults_ClusterRoleBinding`, `SetDefaults_Subject`) have them. Names are checked
//! elsewhere (`NameRule::PathSegment`), as `ValidateObjectMeta` does.
//!
//! The messages are kube-apiserver's, values printed as Go prints them: a list of URLs as
//! `[]string{"/healthz"}`, a roleRef as `rbac.RoleRef{APIGroup:"…", Kind:"…", Name:"…"}`.

use serde_json::{Map, Value};

use super::GROUP;
use crate::machinery::names::{path_segment_problems, subdomain_problems};
use crate::machinery::schema::field_error::{self, child, index, quote, FieldError};
use crate::machinery::selectors::{has_invalid_label_value, validate_label_selector};

const SERVICE_ACCOUNT: &str = "ServiceAccount";
const USER: &str = "User";
const GROUP_KIND: &str = "Group";

/// The strings of a list field (none when absent or null).
fn strings<'a>(object: &'a Value, key: &str) -> Vec<&'a str> {
    object
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// A string field, empty when absent or null (Go's zero value).
fn text<'a>(object: &'a Value, key: &str) -> &'a str {
    object.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// A list of strings as Go's `%#v` prints it: `[]string{"a", "b"}`.
fn go_strings(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| quote(v)).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// An invalid value printed as Go prints a value without a `String` method (`%#v`).
fn invalid_go(field: String, go_value: String, detail: &str) -> FieldError {
    FieldError {
        kind: field_error::INVALID,
        field,
        message: format!("Invalid value: {go_value}: {detail}"),
    }
}

fn not_supported(field: String, value: &str, supported: &[&str]) -> FieldError {
    let supported: Vec<String> = supported.iter().map(|s| s.to_string()).collect();
    FieldError::not_supported(field, &Value::from(value), &supported)
}

/// `SetDefaults_RoleBinding` / `SetDefaults_ClusterRoleBinding`, then `SetDefaults_Subject`
/// for each subject: the roleRef's and Users' and Groups' `apiGroup` is the RBAC group when
/// left empty (a ServiceAccount's stays empty).
pub fn default_binding(binding: &mut Value) {
    let Some(binding) = binding.as_object_mut() else {
        return;
    };
    // roleRef is a struct, not a pointer, in Go: it always exists to be defaulted.
    let role_ref = binding
        .entry("roleRef")
        .or_insert_with(|| Value::Object(Map::new()));
    if role_ref.is_null() {
        *role_ref = Value::Object(Map::new());
    }
    if let Some(role_ref) = role_ref.as_object_mut() {
        default_api_group(role_ref, GROUP);
    }
    for subject in binding
        .get_mut("subjects")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
    {
        // A ServiceAccount's API group stays empty.
        if let Some(USER | GROUP_KIND) = subject.get("kind").and_then(Value::as_str) {
            default_api_group(subject, GROUP);
        }
    }
}

fn default_api_group(object: &mut Map<String, Value>, group: &str) {
    let empty = object
        .get("apiGroup")
        .is_none_or(|g| g.is_null() || g.as_str() == Some(""));
    if empty {
        object.insert("apiGroup".into(), Value::from(group));
    }
}

/// `ValidatePolicyRule`: a rule names verbs, and either non-resource URLs (only in a
/// ClusterRole, and then nothing else) or API groups and resources.
pub fn validate_policy_rule(rule: &Value, namespaced: bool, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if strings(rule, "verbs").is_empty() {
        errors.push(FieldError::required(
            child(path, "verbs"),
            "verbs must contain at least one value",
        ));
    }
    let urls = strings(rule, "nonResourceURLs");
    if !urls.is_empty() {
        let urls_path = child(path, "nonResourceURLs");
        if namespaced {
            errors.push(invalid_go(
                urls_path.clone(),
                go_strings(&urls),
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        if ["apiGroups", "resources", "resourceNames"]
            .iter()
            .any(|key| !strings(rule, key).is_empty())
        {
            errors.push(invalid_go(
                urls_path,
                go_strings(&urls),
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return errors;
    }
    if strings(rule, "apiGroups").is_empty() {
        errors.push(FieldError::required(
            child(path, "apiGroups"),
            "resource rules must supply at least one api group",
        ));
    }
    if strings(rule, "resources").is_empty() {
        errors.push(FieldError::required(
            child(path, "resources"),
            "resource rules must supply at least one resource",
        ));
    }
    errors
}

/// `ValidateRole` (namespaced) or `ValidateClusterRole`: every rule, and a ClusterRole's
/// aggregation rule (which needs selectors, each a valid label selector). `old` is the stored
/// role on updates: label values it already had in its selectors stay allowed.
pub fn validate_role(role: &Value, namespaced: bool, old: Option<&Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (i, rule) in role
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        errors.extend(validate_policy_rule(rule, namespaced, &index("rules", i)));
    }
    if namespaced {
        return errors;
    }
    let Some(aggregation) = role.get("aggregationRule").filter(|a| !a.is_null()) else {
        return errors;
    };
    let selectors_path = "aggregationRule.clusterRoleSelectors";
    let selectors = aggregation
        .get("clusterRoleSelectors")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if selectors.is_empty() {
        errors.push(FieldError::required(
            selectors_path,
            "at least one clusterRoleSelector required if aggregationRule is non-nil",
        ));
    }
    // ClusterRoleValidationOptions.AllowInvalidLabelValueInSelector, as the strategy sets it.
    let allow_invalid_values = old
        .and_then(|o| o.pointer("/aggregationRule/clusterRoleSelectors"))
        .and_then(Value::as_array)
        .is_some_and(|old| old.iter().any(has_invalid_label_value));
    for (i, selector) in selectors.iter().enumerate() {
        let at = index(selectors_path, i);
        errors.extend(validate_label_selector(selector, allow_invalid_values, &at));
        // LabelSelectorAsSelector fails on whatever the strict validation finds; the
        // selector it returns then is nil.
        if !validate_label_selector(selector, false, &at).is_empty() {
            errors.push(invalid_go(at, quote("null"), "invalid label selector."));
        }
    }
    errors
}

/// The kinds of role a binding may refer to: a RoleBinding to a Role or a ClusterRole, a
/// ClusterRoleBinding to a ClusterRole only.
fn role_kinds(namespaced: bool) -> &'static [&'static str] {
    if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    }
}

/// `ValidateRoleBinding` (namespaced) or `ValidateClusterRoleBinding`: the roleRef names a role
/// of the RBAC group by a path-segment name, and every subject is valid.
pub fn validate_binding(binding: &Value, namespaced: bool) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let role_ref = binding.get("roleRef").unwrap_or(&Value::Null);
    let api_group = text(role_ref, "apiGroup");
    if api_group != GROUP {
        errors.push(not_supported(
            "roleRef.apiGroup".into(),
            api_group,
            &[GROUP],
        ));
    }
    let kind = text(role_ref, "kind");
    let kinds = role_kinds(namespaced);
    if !kinds.contains(&kind) {
        errors.push(not_supported("roleRef.kind".into(), kind, kinds));
    }
    let name = text(role_ref, "name");
    if name.is_empty() {
        errors.push(FieldError::required("roleRef.name", ""));
    } else {
        for problem in path_segment_problems(name) {
            errors.push(FieldError::invalid(
                "roleRef.name",
                &Value::from(name),
                &problem,
            ));
        }
    }
    for (i, subject) in binding
        .get("subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        errors.extend(validate_subject(subject, namespaced, &index("subjects", i)));
    }
    errors
}

/// The roleRef as Go prints `rbac.RoleRef` with `%#v`.
fn go_role_ref(role_ref: &Value) -> String {
    format!(
        "rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}",
        quote(text(role_ref, "apiGroup")),
        quote(text(role_ref, "kind")),
        quote(text(role_ref, "name"))
    )
}

/// What `ValidateRoleBindingUpdate` / `ValidateClusterRoleBindingUpdate` add to the checks of
/// the new binding: its roleRef may not change.
pub fn validate_binding_update(binding: &Value, old: &Value) -> Vec<FieldError> {
    let role_ref = binding.get("roleRef").unwrap_or(&Value::Null);
    let old_ref = old.get("roleRef").unwrap_or(&Value::Null);
    let changed = ["apiGroup", "kind", "name"]
        .iter()
        .any(|key| text(role_ref, key) != text(old_ref, key));
    if changed {
        vec![invalid_go(
            "roleRef".into(),
            go_role_ref(role_ref),
            "cannot change roleRef",
        )]
    } else {
        Vec::new()
    }
}

/// `ValidateRoleBindingSubject`: a subject has a name and is a ServiceAccount (a DNS subdomain
/// name, no API group, a namespace outside a namespace), a User or a Group (of the RBAC
/// group).
pub fn validate_subject(subject: &Value, namespaced: bool, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let name = text(subject, "name");
    if name.is_empty() {
        errors.push(FieldError::required(child(path, "name"), ""));
    }
    let api_group = text(subject, "apiGroup");
    match text(subject, "kind") {
        SERVICE_ACCOUNT => {
            if !name.is_empty() {
                for problem in subdomain_problems(name) {
                    errors.push(FieldError::invalid(
                        child(path, "name"),
                        &Value::from(name),
                        &problem,
                    ));
                }
            }
            if !api_group.is_empty() {
                errors.push(not_supported(child(path, "apiGroup"), api_group, &[""]));
            }
            if !namespaced && text(subject, "namespace").is_empty() {
                errors.push(FieldError::required(child(path, "namespace"), ""));
            }
        }
        USER | GROUP_KIND => {
            if api_group != GROUP {
                errors.push(not_supported(child(path, "apiGroup"), api_group, &[GROUP]));
            }
        }
        other => errors.push(not_supported(
            child(path, "kind"),
            other,
            &[SERVICE_ACCOUNT, USER, GROUP_KIND],
        )),
    }
    errors
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{CLUSTER_ROLE, CLUSTER_ROLE_BINDING, ROLE, ROLE_BINDING};
    use crate::kinds::{Kind, StatusCause};

    /// `field: message` of each cause, as kube-apiserver's message lists them.
    fn lines(causes: Vec<StatusCause>) -> Vec<String> {
        causes
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    fn role(rules: serde_json::Value) -> serde_json::Value {
        json!({"metadata": {"name": "r", "namespace": "ns"}, "rules": rules})
    }

    #[test]
    fn policy_rules() {
        // (rule, problems in a Role, problems in a ClusterRole)
        let cases: &[(serde_json::Value, &[&str], &[&str])] = &[
            (
                json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}),
                &[],
                &[],
            ),
            (
                json!({"apiGroups": [""], "resources": ["pods"]}),
                &["rules[0].verbs: Required value: verbs must contain at least one value"],
                &["rules[0].verbs: Required value: verbs must contain at least one value"],
            ),
            (
                json!({"apiGroups": [""], "resources": ["pods"], "verbs": []}),
                &["rules[0].verbs: Required value: verbs must contain at least one value"],
                &["rules[0].verbs: Required value: verbs must contain at least one value"],
            ),
            (
                json!({"nonResourceURLs": ["/healthz", "/livez"], "verbs": ["get"]}),
                &[r#"rules[0].nonResourceURLs: Invalid value: []string{"/healthz", "/livez"}: namespaced rules cannot apply to non-resource URLs"#],
                &[],
            ),
            (
                json!({"nonResourceURLs": ["/x"], "resources": ["pods"], "verbs": ["get"]}),
                &[
                    r#"rules[0].nonResourceURLs: Invalid value: []string{"/x"}: namespaced rules cannot apply to non-resource URLs"#,
                    r#"rules[0].nonResourceURLs: Invalid value: []string{"/x"}: rules cannot apply to both regular resources and non-resource URLs"#,
                ],
                &[r#"rules[0].nonResourceURLs: Invalid value: []string{"/x"}: rules cannot apply to both regular resources and non-resource URLs"#],
            ),
            (
                json!({"nonResourceURLs": ["/x"], "apiGroups": [""], "verbs": ["get"]}),
                &[
                    r#"rules[0].nonResourceURLs: Invalid value: []string{"/x"}: namespaced rules cannot apply to non-resource URLs"#,
                    r#"rules[0].nonResourceURLs: Invalid value: []string{"/x"}: rules cannot apply to both regular resources and non-resource URLs"#,
                ],
                &[r#"rules[0].nonResourceURLs: Invalid value: []string{"/x"}: rules cannot apply to both regular resources and non-resource URLs"#],
            ),
            (
                json!({"nonResourceURLs": ["/x"], "resourceNames": ["a"], "verbs": ["get"]}),
                &[
                    r#"rules[0].nonResourceURLs: Invalid value: []string{"/x"}: namespaced rules cannot apply to non-resource URLs"#,
                    r#"rules[0].nonResourceURLs: Invalid value: []string{"/x"}: rules cannot apply to both regular resources and non-resource URLs"#,
                ],
                &[r#"rules[0].nonResourceURLs: Invalid value: []string{"/x"}: rules cannot apply to both regular resources and non-resource URLs"#],
            ),
            (
                json!({"verbs": ["get"]}),
                &[
                    "rules[0].apiGroups: Required value: resource rules must supply at least one api group",
                    "rules[0].resources: Required value: resource rules must supply at least one resource",
                ],
                &[
                    "rules[0].apiGroups: Required value: resource rules must supply at least one api group",
                    "rules[0].resources: Required value: resource rules must supply at least one resource",
                ],
            ),
            (
                json!({"resources": ["pods"], "verbs": ["get"]}),
                &["rules[0].apiGroups: Required value: resource rules must supply at least one api group"],
                &["rules[0].apiGroups: Required value: resource rules must supply at least one api group"],
            ),
            // Resource names may go with several resources (the check upstream dropped).
            (
                json!({"apiGroups": [""], "resources": ["pods", "secrets"], "resourceNames": ["a"], "verbs": ["get"]}),
                &[],
                &[],
            ),
            (
                json!({}),
                &[
                    "rules[0].verbs: Required value: verbs must contain at least one value",
                    "rules[0].apiGroups: Required value: resource rules must supply at least one api group",
                    "rules[0].resources: Required value: resource rules must supply at least one resource",
                ],
                &[
                    "rules[0].verbs: Required value: verbs must contain at least one value",
                    "rules[0].apiGroups: Required value: resource rules must supply at least one api group",
                    "rules[0].resources: Required value: resource rules must supply at least one resource",
                ],
            ),
        ];
        for (rule, in_role, in_cluster_role) in cases {
            let object = role(json!([rule]));
            assert_eq!(lines(ROLE.validate(&object, None)), *in_role, "Role {rule}");
            assert_eq!(
                lines(CLUSTER_ROLE.validate(&object, None)),
                *in_cluster_role,
                "ClusterRole {rule}"
            );
        }
        // Every rule is checked, by its index.
        let object = role(json!([
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["pods"]},
        ]));
        assert_eq!(
            lines(ROLE.validate(&object, None)),
            ["rules[1].verbs: Required value: verbs must contain at least one value"]
        );
        // No rules at all is fine.
        assert!(ROLE
            .validate(&json!({"metadata": {"name": "r"}}), None)
            .is_empty());
    }

    #[test]
    fn updates_report_the_new_object_twice_as_kube_apiserver_does() {
        let old = role(json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]));
        let new = role(json!([{"apiGroups": [""], "resources": ["pods"]}]));
        let problem = "rules[0].verbs: Required value: verbs must contain at least one value";
        assert_eq!(lines(ROLE.validate(&new, Some(&old))), [problem, problem]);
        assert!(ROLE.validate(&old, Some(&new)).is_empty());
    }

    #[test]
    fn aggregation_rules() {
        let cluster_role = |aggregation: serde_json::Value| json!({"metadata": {"name": "agg"}, "aggregationRule": aggregation, "rules": []});
        let selector = "aggregationRule.clusterRoleSelectors";
        let bad_selector =
            format!(r#"{selector}[0]: Invalid value: "null": invalid label selector."#);
        let cases: Vec<(serde_json::Value, Vec<String>)> = vec![
            (
                json!({"clusterRoleSelectors": [{"matchLabels": {"rbac.example.com/aggregate-to-x": "true"}}]}),
                vec![],
            ),
            (json!(null), vec![]),
            (
                json!({}),
                vec![format!("{selector}: Required value: at least one clusterRoleSelector required if aggregationRule is non-nil")],
            ),
            (
                json!({"clusterRoleSelectors": []}),
                vec![format!("{selector}: Required value: at least one clusterRoleSelector required if aggregationRule is non-nil")],
            ),
            (
                json!({"clusterRoleSelectors": [{"matchExpressions": [{"key": "a", "operator": "In"}]}]}),
                vec![
                    format!("{selector}[0].matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"),
                    bad_selector.clone(),
                ],
            ),
            (
                json!({"clusterRoleSelectors": [{"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}]}),
                vec![
                    format!("{selector}[0].matchExpressions[0].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"),
                    bad_selector.clone(),
                ],
            ),
            (
                json!({"clusterRoleSelectors": [{"matchExpressions": [{"key": "a", "operator": "Near"}]}]}),
                vec![
                    format!(r#"{selector}[0].matchExpressions[0].operator: Invalid value: "Near": not a valid selector operator"#),
                    bad_selector.clone(),
                ],
            ),
            (
                json!({"clusterRoleSelectors": [{"matchLabels": {"a": "-bad"}}]}),
                vec![
                    format!(r#"{selector}[0].matchLabels: Invalid value: "-bad": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"#),
                    bad_selector.clone(),
                ],
            ),
            (
                json!({"clusterRoleSelectors": [{"matchLabels": {"/a": "x"}}]}),
                vec![
                    format!(r#"{selector}[0].matchLabels: Invalid value: "/a": prefix part must be non-empty"#),
                    bad_selector.clone(),
                ],
            ),
        ];
        for (aggregation, expected) in cases {
            let object = cluster_role(aggregation.clone());
            assert_eq!(
                lines(CLUSTER_ROLE.validate(&object, None)),
                expected,
                "{aggregation}"
            );
        }
        // An update may keep expression values an older server took; new ones are checked.
        let odd = cluster_role(json!({"clusterRoleSelectors": [
            {"matchExpressions": [{"key": "a", "operator": "In", "values": ["-odd"]}]}
        ]}));
        assert_eq!(CLUSTER_ROLE.validate(&odd, None).len(), 2);
        let fine = cluster_role(json!({"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]}));
        let kept = lines(CLUSTER_ROLE.validate(&odd, Some(&odd)));
        assert_eq!(
            kept,
            [bad_selector.clone(), bad_selector.clone()],
            "{kept:?}"
        );
        assert_eq!(CLUSTER_ROLE.validate(&odd, Some(&fine)).len(), 4);
    }

    fn binding(role_ref: serde_json::Value, subjects: serde_json::Value) -> serde_json::Value {
        json!({"metadata": {"name": "b"}, "roleRef": role_ref, "subjects": subjects})
    }

    const RBAC: &str = "rbac.authorization.k8s.io";

    #[test]
    fn role_refs() {
        let user = json!([{"apiGroup": RBAC, "kind": "User", "name": "u"}]);
        // (roleRef, problems in a RoleBinding, problems in a ClusterRoleBinding)
        let cases: &[(serde_json::Value, &[&str], &[&str])] = &[
            (
                json!({"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"}),
                &[],
                &[],
            ),
            (
                json!({"apiGroup": RBAC, "kind": "Role", "name": "system:x"}),
                &[],
                &[r#"roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole""#],
            ),
            (
                json!({"apiGroup": "example.com", "kind": "Role", "name": "x"}),
                &[
                    r#"roleRef.apiGroup: Unsupported value: "example.com": supported values: "rbac.authorization.k8s.io""#,
                ],
                &[
                    r#"roleRef.apiGroup: Unsupported value: "example.com": supported values: "rbac.authorization.k8s.io""#,
                    r#"roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole""#,
                ],
            ),
            (
                json!({"apiGroup": RBAC, "kind": "Pod", "name": "x"}),
                &[
                    r#"roleRef.kind: Unsupported value: "Pod": supported values: "Role", "ClusterRole""#,
                ],
                &[r#"roleRef.kind: Unsupported value: "Pod": supported values: "ClusterRole""#],
            ),
            (
                json!({"apiGroup": RBAC, "kind": "ClusterRole"}),
                &["roleRef.name: Required value"],
                &["roleRef.name: Required value"],
            ),
            (
                json!({"apiGroup": RBAC, "kind": "ClusterRole", "name": "a/b%"}),
                &[
                    r#"roleRef.name: Invalid value: "a/b%": may not contain '/'"#,
                    r#"roleRef.name: Invalid value: "a/b%": may not contain '%'"#,
                ],
                &[
                    r#"roleRef.name: Invalid value: "a/b%": may not contain '/'"#,
                    r#"roleRef.name: Invalid value: "a/b%": may not contain '%'"#,
                ],
            ),
            (
                json!({"apiGroup": RBAC, "kind": "ClusterRole", "name": ".."}),
                &[r#"roleRef.name: Invalid value: "..": may not be '..'"#],
                &[r#"roleRef.name: Invalid value: "..": may not be '..'"#],
            ),
        ];
        for (role_ref, in_role_binding, in_cluster_role_binding) in cases {
            let object = binding(role_ref.clone(), user.clone());
            assert_eq!(
                lines(ROLE_BINDING.validate(&object, None)),
                *in_role_binding,
                "RoleBinding {role_ref}"
            );
            assert_eq!(
                lines(CLUSTER_ROLE_BINDING.validate(&object, None)),
                *in_cluster_role_binding,
                "ClusterRoleBinding {role_ref}"
            );
        }
    }

    #[test]
    fn subjects() {
        let role_ref = json!({"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"});
        // (subject, problems in a RoleBinding, problems in a ClusterRoleBinding)
        let cases: &[(serde_json::Value, &[&str], &[&str])] = &[
            (
                json!({"kind": "User", "apiGroup": RBAC, "name": "alice@example.com"}),
                &[],
                &[],
            ),
            (
                json!({"kind": "Group", "apiGroup": RBAC, "name": "system:authenticated"}),
                &[],
                &[],
            ),
            (
                json!({"kind": "ServiceAccount", "name": "default", "namespace": "ns"}),
                &[],
                &[],
            ),
            (
                json!({"kind": "ServiceAccount", "name": "default"}),
                &[],
                &["subjects[0].namespace: Required value"],
            ),
            (
                json!({"kind": "ServiceAccount", "name": "Bad_Name", "namespace": "ns", "apiGroup": RBAC}),
                &[
                    r#"subjects[0].name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#,
                    r#"subjects[0].apiGroup: Unsupported value: "rbac.authorization.k8s.io": supported values: """#,
                ],
                &[
                    r#"subjects[0].name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#,
                    r#"subjects[0].apiGroup: Unsupported value: "rbac.authorization.k8s.io": supported values: """#,
                ],
            ),
            (
                json!({"kind": "ServiceAccount", "namespace": "ns"}),
                &["subjects[0].name: Required value"],
                &["subjects[0].name: Required value"],
            ),
            (
                json!({"kind": "User", "apiGroup": "", "name": ""}),
                &[
                    "subjects[0].name: Required value",
                    r#"subjects[0].apiGroup: Unsupported value: "": supported values: "rbac.authorization.k8s.io""#,
                ],
                &[
                    "subjects[0].name: Required value",
                    r#"subjects[0].apiGroup: Unsupported value: "": supported values: "rbac.authorization.k8s.io""#,
                ],
            ),
            (
                json!({"kind": "Group", "apiGroup": "example.com", "name": "g"}),
                &[
                    r#"subjects[0].apiGroup: Unsupported value: "example.com": supported values: "rbac.authorization.k8s.io""#,
                ],
                &[
                    r#"subjects[0].apiGroup: Unsupported value: "example.com": supported values: "rbac.authorization.k8s.io""#,
                ],
            ),
            (
                json!({"kind": "Robot", "name": "r"}),
                &[
                    r#"subjects[0].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group""#,
                ],
                &[
                    r#"subjects[0].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group""#,
                ],
            ),
        ];
        for (subject, in_role_binding, in_cluster_role_binding) in cases {
            let object = binding(role_ref.clone(), json!([subject]));
            assert_eq!(
                lines(ROLE_BINDING.validate(&object, None)),
                *in_role_binding,
                "RoleBinding {subject}"
            );
            assert_eq!(
                lines(CLUSTER_ROLE_BINDING.validate(&object, None)),
                *in_cluster_role_binding,
                "ClusterRoleBinding {subject}"
            );
        }
    }

    #[test]
    fn a_role_ref_cannot_change() {
        let subjects = json!([{"apiGroup": RBAC, "kind": "User", "name": "u"}]);
        let old = binding(
            json!({"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"}),
            subjects.clone(),
        );
        for kind in [&ROLE_BINDING, &CLUSTER_ROLE_BINDING] {
            assert!(kind.validate(&old, Some(&old)).is_empty());
            // Subjects may change.
            let more = binding(
                old["roleRef"].clone(),
                json!([{"apiGroup": RBAC, "kind": "Group", "name": "g"}]),
            );
            assert!(kind.validate(&more, Some(&old)).is_empty());
            let new = binding(
                json!({"apiGroup": RBAC, "kind": "ClusterRole", "name": "edit"}),
                subjects.clone(),
            );
            let causes = kind.validate(&new, Some(&old));
            assert_eq!(
                lines(causes.clone()),
                [
                    r#"roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", Name:"edit"}: cannot change roleRef"#
                ]
            );
            assert_eq!(causes[0].kind, "FieldValueInvalid");
        }
    }

    #[test]
    fn bindings_default_their_api_groups() {
        for kind in [&ROLE_BINDING, &CLUSTER_ROLE_BINDING] {
            let mut object = binding(
                json!({"kind": "ClusterRole", "name": "view"}),
                json!([
                    {"kind": "User", "name": "u"},
                    {"kind": "Group", "name": "g", "apiGroup": ""},
                    {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"},
                    {"kind": "User", "name": "v", "apiGroup": "example.com"},
                ]),
            );
            kind.prepare(&mut object);
            assert_eq!(object["roleRef"]["apiGroup"], RBAC);
            assert_eq!(object["subjects"][0]["apiGroup"], RBAC);
            assert_eq!(object["subjects"][1]["apiGroup"], RBAC);
            assert!(object["subjects"][2].get("apiGroup").is_none());
            assert_eq!(object["subjects"][3]["apiGroup"], "example.com", "kept");
            // What kubectl sends is then valid.
            object["subjects"].as_array_mut().unwrap().pop();
            assert!(kind.validate(&object, None).is_empty(), "{object}");
            // A roleRef left out altogether is defaulted, then found wanting.
            let mut bare = json!({"metadata": {"name": "b"}});
            kind.prepare(&mut bare);
            assert_eq!(bare["roleRef"]["apiGroup"], RBAC);
            assert!(lines(kind.validate(&bare, None))
                .contains(&"roleRef.name: Required value".to_string()));
        }
        // Roles have nothing to default.
        let mut role = json!({"metadata": {"name": "r"}, "rules": []});
        ROLE.prepare(&mut role);
        assert_eq!(role, json!({"metadata": {"name": "r"}, "rules": []}));
    }

    /// What the server writes itself passes: the default ClusterRoles and bindings (as
    /// stored by a first write), and what `trellis synctarget create` applies.
    #[test]
    fn the_servers_own_objects_are_valid() {
        use crate::security::authz::cache::{CLUSTER_ROLES, CLUSTER_ROLE_BINDINGS};
        let defaults = crate::serving::hub::test_default_roles();
        let roles = defaults.objects(CLUSTER_ROLES);
        let bindings = defaults.objects(CLUSTER_ROLE_BINDINGS);
        assert!(!roles.is_empty() && !bindings.is_empty());
        for (kind, objects) in [(&CLUSTER_ROLE, roles), (&CLUSTER_ROLE_BINDING, bindings)] {
            for object in objects {
                assert!(kind.validate(object, None).is_empty(), "{object}");
                assert!(kind.validate(object, Some(object)).is_empty(), "{object}");
            }
        }
        for mut object in crate::cli::synctarget::objects("t1") {
            let kind = match object["kind"].as_str().unwrap_or_default() {
                "Role" => &ROLE,
                "ClusterRole" => &CLUSTER_ROLE,
                "RoleBinding" => &ROLE_BINDING,
                "ClusterRoleBinding" => &CLUSTER_ROLE_BINDING,
                _ => continue,
            };
            kind.prepare(&mut object);
            assert!(kind.validate(&object, None).is_empty(), "{object}");
        }
    }
}
