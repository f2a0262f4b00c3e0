//! What object names must look like, as kube-apiserver validates them: DNS-1123 subdomains
//! for most resources, labels for Namespaces, path segments for RBAC objects.

/// What names of a resource must look like, as kube-apiserver validates them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NameRule {
    /// A DNS-1123 subdomain: most resources.
    #[default]
    Subdomain,
    /// A DNS-1123 label: Namespaces.
    Label,
    /// Anything usable as a URL path segment: RBAC objects (`system:aggregate-to-view`).
    PathSegment,
}

/// Why `name` breaks `rule`, in kube-apiserver's words.
pub fn name_problem_by(name: &str, rule: NameRule) -> Option<String> {
    match rule {
        NameRule::Subdomain => name_problem(name, false),
        NameRule::Label => name_problem(name, true),
        NameRule::PathSegment => path_segment_problems(name).into_iter().next(),
    }
}

/// Why `name` is not a DNS-1123 subdomain (or label, for namespaces), in kube-apiserver's words.
pub fn name_problem(name: &str, label_only: bool) -> Option<String> {
    let max = if label_only { 63 } else { 253 };
    if name.len() > max {
        return Some(format!("must be no more than {max} characters"));
    }
    let matches = if label_only {
        label_pattern(name)
    } else {
        subdomain_pattern(name)
    };
    if matches {
        return None;
    }
    Some(if label_only {
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".to_string()
    } else {
        SUBDOMAIN_MESSAGE.to_string()
    })
}

const SUBDOMAIN_MESSAGE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, with no length limit.
fn label_pattern(l: &str) -> bool {
    !l.is_empty()
        && l.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

/// Dot-separated [`label_pattern`]s. A subdomain's parts have no length limit of their own
/// (kube-apiserver's IsDNS1123Subdomain checks the regular expression and 253 characters): a
/// pod's generated ResourceClaim, say, is often longer than 63 without a dot.
fn subdomain_pattern(name: &str) -> bool {
    name.split('.').all(label_pattern)
}

/// Every reason `name` is not a DNS-1123 subdomain, as `IsDNS1123Subdomain` lists them: too
/// long and badly formed are both reported.
pub fn subdomain_problems(name: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if name.len() > 253 {
        problems.push("must be no more than 253 characters".to_string());
    }
    if !subdomain_pattern(name) {
        problems.push(SUBDOMAIN_MESSAGE.to_string());
    }
    problems
}

/// Every reason `name` may not be a URL path segment, as `IsValidPathSegmentName` lists them
/// (the names of RBAC objects and of the roles bindings refer to).
pub fn path_segment_problems(name: &str) -> Vec<String> {
    if name == "." || name == ".." {
        return vec![format!("may not be '{name}'")];
    }
    ["/", "%"]
        .into_iter()
        .filter(|bad| name.contains(bad))
        .map(|bad| format!("may not contain '{bad}'"))
        .collect()
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`: the name part of a label key, and a non-empty
/// label value.
fn qualified_pattern(name: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    !name.is_empty()
        && name.chars().all(|c| alnum(c) || "-_.".contains(c))
        && name.starts_with(alnum)
        && name.ends_with(alnum)
}

const QUALIFIED_MESSAGE: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// Why `key` is not a label key (`[prefix/]name`), in the words of `IsQualifiedName`.
pub fn qualified_name_problems(key: &str) -> Vec<String> {
    let parts: Vec<&str> = key.split('/').collect();
    let mut problems = Vec::new();
    let name = match parts[..] {
        [name] => name,
        [prefix, name] => {
            if prefix.is_empty() {
                problems.push("prefix part must be non-empty".to_string());
            } else {
                problems.extend(
                    subdomain_problems(prefix)
                        .into_iter()
                        .map(|p| format!("prefix part {p}")),
                );
            }
            name
        }
        _ => {
            return vec![format!(
                "a qualified name {QUALIFIED_MESSAGE} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )]
        }
    };
    if name.is_empty() {
        problems.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        problems.push("name part must be no more than 63 characters".to_string());
    }
    if !qualified_pattern(name) {
        problems.push(format!("name part {QUALIFIED_MESSAGE}"));
    }
    problems
}

/// Why `value` is not a label value, in the words of `IsValidLabelValue`.
pub fn label_value_problems(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > 63 {
        problems.push("must be no more than 63 characters".to_string());
    }
    if !value.is_empty() && !qualified_pattern(value) {
        problems.push("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".to_string());
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(name_problem("my-config.v1", false).is_none());
        assert!(name_problem("My_Config", false).is_some());
        assert!(name_problem("a.b", true).is_some(), "namespaces are labels");
        assert!(name_problem(&"a".repeat(64), true).is_some());
        assert!(
            name_problem(&"a".repeat(64), false).is_none(),
            "parts may be long"
        );
        assert!(name_problem(&"a".repeat(254), false).is_some());
        assert!(name_problem("-a", false).is_some());
        assert!(name_problem_by("system:aggregate-to-view", NameRule::PathSegment).is_none());
        assert!(name_problem_by("a/b", NameRule::PathSegment).is_some());
        assert!(name_problem_by("..", NameRule::PathSegment).is_some());
        assert!(name_problem_by("system:x", NameRule::Subdomain).is_some());
        assert_eq!(
            path_segment_problems("a/b%c"),
            ["may not contain '/'", "may not contain '%'"]
        );
        assert_eq!(subdomain_problems(&"A".repeat(254)).len(), 2);
        assert!(subdomain_problems("a.b-c").is_empty());
    }

    #[test]
    fn label_keys_and_values() {
        assert!(qualified_name_problems("rbac.authorization.k8s.io/aggregate-to-view").is_empty());
        assert!(qualified_name_problems("My_Key.1").is_empty());
        assert_eq!(
            qualified_name_problems("/x"),
            ["prefix part must be non-empty"]
        );
        let empty = qualified_name_problems("");
        assert_eq!(empty.len(), 2, "{empty:?}");
        assert_eq!(empty[0], "name part must be non-empty");
        assert!(empty[1].starts_with("name part must consist of alphanumeric characters"));
        assert!(qualified_name_problems("a/b/c")[0].starts_with("a qualified name must consist"));
        assert!(qualified_name_problems("Bad_Prefix/x")[0]
            .starts_with("prefix part a lowercase RFC 1123 subdomain"));
        assert!(label_value_problems("").is_empty());
        assert!(label_value_problems("My_value.1").is_empty());
        assert_eq!(label_value_problems("-x").len(), 1);
        assert_eq!(
            label_value_problems(&"a".repeat(64)),
            ["must be no more than 63 characters"]
        );
    }
}
