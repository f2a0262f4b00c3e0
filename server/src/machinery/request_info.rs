//! What a request is about, from its method, path and query alone: the workspace, the API
//! group/version, the resource, namespace, name and subresource, and the Kubernetes verb.
//!
//! Mirrors kube-apiserver's `RequestInfo` so that routing, authorization and audit all agree:
//! - `watch=true` makes a collection's GET a watch; a named GET stays a get;
//! - the deprecated `/watch/` paths (`/api/v1/watch/namespaces/<ns>/pods[/<name>]`) are
//!   watches, of one object when named;
//! - a list or watch limited to one object by `fieldSelector=metadata.name=<name>` names it,
//!   so RBAC `resourceNames` apply (`kubectl get pod x -w` under a role for pod `x` only).
//!
//! Pure function, no I/O.

use crate::machinery::selectors::FieldSelector;
use crate::serving::query::Query;

/// The workspace part of a path: `/clusters/<path-or-id>/…`; bare paths mean `root`.
pub const ROOT_WORKSPACE: &str = "root";
/// Largest accepted request body, as kube-apiserver's default.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// The workspace part of `/clusters/*/…`: one resource across every workspace.
pub const ALL_WORKSPACES: &str = "*";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestInfo {
    /// Workspace path or id as written in the URL (`root` when absent).
    pub workspace: String,
    pub target: Target,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A resource request under `/api/v1` or `/apis/<group>/<version>`.
    Resource(ResourceRequest),
    /// Anything else (`/api`, `/apis`, `/version`, `/openapi/v3`, `/healthz`…): the path after
    /// the workspace prefix.
    NonResource(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceRequest {
    pub verb: Verb,
    /// Empty for the legacy core group.
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

/// Why a path could not be understood (answered with 404, as kube-apiserver does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownPath;

/// Parses `path` (without the query) and `query` for an HTTP `method`.
pub fn parse(method: &str, path: &str, query: &Query) -> Result<RequestInfo, UnknownPath> {
    let trimmed = path.trim_start_matches('/');
    let mut parts: Vec<&str> = if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.trim_end_matches('/').split('/').collect()
    };
    let mut workspace = ROOT_WORKSPACE.to_string();
    if parts.first() == Some(&"clusters") {
        let ws = parts.get(1).filter(|w| !w.is_empty()).ok_or(UnknownPath)?;
        // Clients may percent-encode the wildcard.
        workspace = if ws.eq_ignore_ascii_case("%2A") {
            "*".to_string()
        } else {
            ws.to_string()
        };
        parts.drain(..2);
    }
    let non_resource = |parts: &[&str]| RequestInfo {
        workspace: workspace.clone(),
        target: Target::NonResource(format!("/{}", parts.join("/"))),
    };
    let (group, version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] if !rest.is_empty() => ("", *version, rest),
        ["apis", group, version, rest @ ..] if !rest.is_empty() => (*group, *version, rest),
        _ => return Ok(non_resource(&parts)),
    };
    if rest.iter().any(|p| p.is_empty()) {
        return Err(UnknownPath);
    }
    let (watch_in_path, rest) = match rest {
        ["watch", tail @ ..] if !tail.is_empty() => (true, tail),
        _ => (false, rest),
    };
    // `namespaces/<ns>/<resource>…` is namespaced; `namespaces[/<name>[/<sub>]]` is the
    // namespaces resource itself.
    let (namespace, rest) = match rest {
        // …except the namespace's own subresources, as kube-apiserver reads them.
        ["namespaces", _, "status" | "finalize"] => (None, rest.to_vec()),
        ["namespaces", ns, resource, tail @ ..] => (Some(ns.to_string()), {
            let mut v = vec![*resource];
            v.extend_from_slice(tail);
            v
        }),
        other => (None, other.to_vec()),
    };
    let (resource, mut name, subresource) = match rest.as_slice() {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(name.to_string()), None),
        [resource, name, sub] => (*resource, Some(name.to_string()), Some(sub.to_string())),
        _ => return Err(UnknownPath),
    };
    let verb = match (method, name.is_some()) {
        ("GET" | "HEAD", _) if watch_in_path => Verb::Watch,
        _ if watch_in_path => return Err(UnknownPath),
        ("GET" | "HEAD", true) => Verb::Get,
        ("GET" | "HEAD", false) if query.flag("watch") => Verb::Watch,
        ("GET" | "HEAD", false) => Verb::List,
        ("POST", _) => Verb::Create,
        ("PUT", _) => Verb::Update,
        ("PATCH", _) => Verb::Patch,
        ("DELETE", true) => Verb::Delete,
        ("DELETE", false) => Verb::DeleteCollection,
        _ => return Err(UnknownPath),
    };
    if matches!(verb, Verb::List | Verb::Watch) && name.is_none() && !watch_in_path {
        name = query
            .get("fieldSelector")
            .and_then(selected_name)
            .map(str::to_string);
    }
    Ok(RequestInfo {
        workspace,
        target: Target::Resource(ResourceRequest {
            verb,
            group: group.to_string(),
            version: version.to_string(),
            resource: resource.to_string(),
            subresource,
            namespace,
            name,
        }),
    })
}

/// The one name `selector` requires (`metadata.name=<name>` or `==`, ANDed with anything),
/// when it is a valid path segment; kube-apiserver's `RequiresExactMatch("metadata.name")`.
pub fn selected_name(selector: &str) -> Option<&str> {
    FieldSelector::required_value(selector, "metadata.name")
        .filter(|name| !matches!(*name, "" | "." | "..") && !name.contains(['/', '%']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wildcard_workspace_may_be_percent_encoded() {
        for path in [
            "/clusters/*/api/v1/configmaps",
            "/clusters/%2A/api/v1/configmaps",
        ] {
            let info = parse("GET", path, &query(false)).unwrap();
            assert_eq!(info.workspace, "*");
        }
    }

    fn query(watch: bool) -> Query {
        Query::parse(Some(if watch { "watch=true" } else { "" }))
    }

    fn resource(method: &str, path: &str, watch: bool) -> (String, ResourceRequest) {
        let info = parse(method, path, &query(watch)).expect("parses");
        match info.target {
            Target::Resource(r) => (info.workspace, r),
            other => panic!("not a resource request: {other:?}"),
        }
    }

    #[test]
    fn legacy_and_group_paths() {
        let (ws, r) = resource("GET", "/api/v1/namespaces/default/configmaps/cm1", false);
        assert_eq!(ws, "root");
        assert_eq!(
            r,
            ResourceRequest {
                verb: Verb::Get,
                group: "".into(),
                version: "v1".into(),
                resource: "configmaps".into(),
                subresource: None,
                namespace: Some("default".into()),
                name: Some("cm1".into()),
            }
        );
        let (_, r) = resource("GET", "/apis/coordination.k8s.io/v1/leases", false);
        assert_eq!(
            (r.verb, r.group.as_str(), r.namespace),
            (Verb::List, "coordination.k8s.io", None)
        );
    }

    #[test]
    fn workspace_prefix() {
        let (ws, r) = resource("POST", "/clusters/root:acme:ml/api/v1/namespaces", false);
        assert_eq!(ws, "root:acme:ml");
        assert_eq!(
            (r.verb, r.resource.as_str(), r.name),
            (Verb::Create, "namespaces", None)
        );
        let info = parse("GET", "/clusters/root/version", &query(false)).unwrap();
        assert_eq!(info.target, Target::NonResource("/version".into()));
        assert!(parse("GET", "/clusters/", &query(false)).is_err());
    }

    #[test]
    fn namespaces_resource_and_its_subresources() {
        let (_, r) = resource("GET", "/api/v1/namespaces/kube-system", false);
        assert_eq!(
            (r.resource.as_str(), r.name.as_deref(), r.namespace),
            ("namespaces", Some("kube-system"), None)
        );
        let (_, r) = resource("PUT", "/api/v1/namespaces/ns1/finalize", false);
        assert_eq!(
            (r.resource.as_str(), r.name.as_deref()),
            ("namespaces", Some("ns1"))
        );
        assert_eq!(r.subresource.as_deref(), Some("finalize"));
    }

    #[test]
    fn verbs() {
        let v = |m, p, w| resource(m, p, w).1.verb;
        assert_eq!(
            v("GET", "/api/v1/namespaces/d/configmaps", true),
            Verb::Watch
        );
        assert_eq!(
            v("DELETE", "/api/v1/namespaces/d/configmaps", false),
            Verb::DeleteCollection
        );
        assert_eq!(
            v("DELETE", "/api/v1/namespaces/d/configmaps/x", false),
            Verb::Delete
        );
        assert_eq!(v("PATCH", "/apis/g/v1/things/x/status", false), Verb::Patch);
        assert_eq!(
            v("PUT", "/apis/g/v1/namespaces/d/things/x/scale", false),
            Verb::Update
        );
        assert!(parse("OPTIONS", "/api/v1/namespaces", &query(false)).is_err());
    }

    #[test]
    fn a_named_get_stays_a_get_when_asked_to_watch() {
        let (_, r) = resource("GET", "/api/v1/namespaces/d/configmaps/x", true);
        assert_eq!((r.verb, r.name.as_deref()), (Verb::Get, Some("x")));
    }

    #[test]
    fn deprecated_watch_paths() {
        let (ws, r) = resource(
            "GET",
            "/clusters/root:a/api/v1/watch/namespaces/d/configmaps",
            false,
        );
        assert_eq!(ws, "root:a");
        assert_eq!(
            (r.verb, r.resource.as_str(), r.namespace.as_deref(), r.name),
            (Verb::Watch, "configmaps", Some("d"), None)
        );
        let (_, r) = resource("GET", "/api/v1/watch/namespaces/d/configmaps/x", false);
        assert_eq!((r.verb, r.name.as_deref()), (Verb::Watch, Some("x")));
        let (_, r) = resource("GET", "/apis/apps/v1/watch/deployments", false);
        assert_eq!((r.verb, r.group.as_str()), (Verb::Watch, "apps"));
        let (_, r) = resource("GET", "/api/v1/watch/namespaces", false);
        assert_eq!(
            (r.verb, r.resource.as_str(), r.namespace),
            (Verb::Watch, "namespaces", None)
        );
        let (_, r) = resource("GET", "/api/v1/watch/namespaces/d", false);
        assert_eq!(
            (r.resource.as_str(), r.name.as_deref()),
            ("namespaces", Some("d"))
        );
        // Only reads; and `watch` alone is a resource's name, not a prefix.
        assert!(parse(
            "DELETE",
            "/api/v1/watch/namespaces/d/configmaps",
            &query(false)
        )
        .is_err());
        let (_, r) = resource("GET", "/api/v1/watch", false);
        assert_eq!((r.verb, r.resource.as_str()), (Verb::List, "watch"));
    }

    #[test]
    fn a_field_selector_on_the_name_names_the_object() {
        let named = |q: &str| {
            let info = parse(
                "GET",
                "/api/v1/namespaces/d/configmaps",
                &Query::parse(Some(q)),
            );
            match info.unwrap().target {
                Target::Resource(r) => (r.verb, r.name),
                other => panic!("{other:?}"),
            }
        };
        let x = Some("x".to_string());
        assert_eq!(
            named("fieldSelector=metadata.name%3Dx"),
            (Verb::List, x.clone())
        );
        assert_eq!(
            named("watch=1&fieldSelector=metadata.namespace%3Dd,metadata.name%3D%3Dx"),
            (Verb::Watch, x)
        );
        for not_one in [
            "fieldSelector=metadata.name%21%3Dx",
            "fieldSelector=metadata.namespace%3Dd",
            "fieldSelector=metadata.name%3D",
            "fieldSelector=metadata.name%3D..",
            "fieldSelector=metadata.name%3Da%2Fb",
            "labelSelector=metadata.name%3Dx",
        ] {
            assert_eq!(named(not_one), (Verb::List, None), "{not_one}");
        }
    }

    #[test]
    fn discovery_paths_are_not_resources() {
        for p in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps",
            "/apis/apps/v1",
            "/openapi/v3",
            "/healthz",
            "/",
        ] {
            let info = parse("GET", p, &query(false)).unwrap();
            assert!(matches!(info.target, Target::NonResource(_)), "{p}");
        }
        assert!(parse("GET", "/api/v1/a/b/c/d", &query(false)).is_err());
        assert!(parse("GET", "/api/v1/namespaces//configmaps", &query(false)).is_err());
    }
}
