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
        NameRule::PathSegment => {
            if name == "." || name == ".." {
                Some(format!("may not be '{name}'"))
            } else {
                ["/", "%"]
                    .into_iter()
                    .find(|bad| name.contains(bad))
                    .map(|bad| format!("may not contain '{bad}'"))
            }
        }
    }
}

/// Why `name` is not a DNS-1123 subdomain (or label, for namespaces), in kube-apiserver's words.
pub fn name_problem(name: &str, label_only: bool) -> Option<String> {
    let max = if label_only { 63 } else { 253 };
    if name.len() > max {
        return Some(format!("must be no more than {max} characters"));
    }
    let parts: Vec<&str> = if label_only {
        vec![name]
    } else {
        name.split('.').collect()
    };
    // A subdomain's dot-separated parts have no length limit of their own (kube-apiserver's
    // IsDNS1123Subdomain checks the regular expression and 253 characters): a pod's
    // generated ResourceClaim, say, is often longer than 63 without a dot.
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if parts.iter().all(|l| valid_label(l)) {
        return None;
    }
    Some(if label_only {
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".to_string()
    } else {
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string()
    })
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
    }
}
