//! Impersonation: a request may act as another user with kube-apiserver's headers
//! `Impersonate-User`, `Impersonate-Group` (repeatable), `Impersonate-Uid` and
//! `Impersonate-Extra-<key>` (repeatable; the key percent-encoded), as `kubectl --as`,
//! `--as-group` and `--as-uid` send them.
//!
//! Each part is authorized for the authenticated user, inside the workspace of the request
//! (in root for `/clusters/*`), with the verb `impersonate` on what kube-apiserver names:
//! `users` and `groups` (core group, by name), `serviceaccounts` (core group, in the account's
//! namespace) for a user `system:serviceaccount:<ns>:<name>`, and `uids` and `userextras/<key>`
//! in `authentication.k8s.io`. One refusal is a 403 and the request does not run. Members of
//! `system:masters` and admins of the workspace may impersonate anyone.
//!
//! The request then runs as the impersonated user alone (none of the requester's groups or
//! extras), with `system:authenticated` added as kube-apiserver adds it. An impersonated
//! ServiceAccount is one of the workspace's own (bound to it like its tokens); naming another
//! workspace through the extra `trellis.dev/cluster` is refused, and so is a ServiceAccount
//! across all workspaces, where it would be nobody's. The audit log records both users: the
//! gate leaves [`Impersonated`] in the response's extensions.
//!
//! The step comes after the rate limit, so a requester's bucket is its own whoever it acts as.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::Request;
use axum::http::HeaderMap;
use axum::response::Response;

use super::service_account::CLUSTER_EXTRA;
use super::{UserInfo, ANONYMOUS, AUTHENTICATED, UNAUTHENTICATED};
use crate::machinery::request_info;
use crate::machinery::request_info::ALL_WORKSPACES;
use crate::machinery::status::Status;
use crate::security::authz::Authorizer;
use crate::security::authz::{self, Attributes, ResourceAttributes, SERVICE_ACCOUNT_PREFIX};
use crate::serving::response;
use crate::tenancy::workspaces::ROOT_CLUSTER;

pub const USER_HEADER: &str = "impersonate-user";
pub const GROUP_HEADER: &str = "impersonate-group";
pub const UID_HEADER: &str = "impersonate-uid";
pub const EXTRA_HEADER_PREFIX: &str = "impersonate-extra-";

/// The verb every impersonation is authorized with.
pub const VERB: &str = "impersonate";
const AUTHENTICATION_GROUP: &str = "authentication.k8s.io";

/// Who a request asks to act as, from its headers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requested {
    pub user: String,
    pub groups: Vec<String>,
    pub uid: Option<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The user a request was made as, and who made it; in the response's extensions for audit.
#[derive(Clone, Debug)]
pub struct Impersonated(pub UserInfo);

/// The impersonation a request asks for: `None` without impersonation headers; 400 for
/// headers that cannot be read, or groups, a uid or extras without a user.
pub fn requested(headers: &HeaderMap) -> Result<Option<Requested>, Status> {
    let mut requested = Requested::default();
    let mut any = false;
    let mut user = None;
    for (name, value) in headers {
        let name = name.as_str();
        let known = matches!(name, USER_HEADER | GROUP_HEADER | UID_HEADER)
            || name.starts_with(EXTRA_HEADER_PREFIX);
        if !known {
            continue;
        }
        any = true;
        let value = std::str::from_utf8(value.as_bytes())
            .map_err(|_| Status::bad_request(format!("the {name} header is not UTF-8")))?;
        match name {
            USER_HEADER if user.is_some() => {
                return Err(Status::bad_request(
                    "only one Impersonate-User header may be given",
                ))
            }
            USER_HEADER => user = Some(value.to_string()),
            GROUP_HEADER => requested.groups.push(value.to_string()),
            UID_HEADER if requested.uid.is_some() => {
                return Err(Status::bad_request(
                    "only one Impersonate-Uid header may be given",
                ))
            }
            UID_HEADER => requested.uid = Some(value.to_string()),
            _ => {
                let key = name.strip_prefix(EXTRA_HEADER_PREFIX).unwrap_or(name);
                let key = percent_decode(key).ok_or_else(|| {
                    Status::bad_request(format!("the header {name} is not percent-encoded"))
                })?;
                requested
                    .extra
                    .entry(key)
                    .or_default()
                    .push(value.to_string());
            }
        }
    }
    if !any {
        return Ok(None);
    }
    match user.filter(|u| !u.is_empty()) {
        Some(user) => requested.user = user,
        None => {
            return Err(Status::bad_request(
                "impersonating groups, a uid or extras requires impersonating a user \
                 (Impersonate-User)",
            ))
        }
    }
    Ok(Some(requested))
}

/// `%xx` escapes decoded (header names cannot hold `/` and the like otherwise).
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `system:serviceaccount:<ns>:<name>` → (ns, name).
fn service_account(user: &str) -> Option<(&str, &str)> {
    let (namespace, name) = user.strip_prefix(SERVICE_ACCOUNT_PREFIX)?.split_once(':')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains(':')).then_some((namespace, name))
}

fn attributes(
    api_group: &str,
    resource: &str,
    subresource: Option<&str>,
    namespace: &str,
    name: &str,
) -> Attributes {
    Attributes {
        verb: VERB.to_string(),
        resource: Some(ResourceAttributes {
            api_group: api_group.to_string(),
            resource: resource.to_string(),
            subresource: subresource.map(str::to_string),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }),
        path: String::new(),
    }
}

/// What the requester must be allowed, in kube-apiserver's order: the user (or the
/// ServiceAccount), each group, each extra value, the uid.
pub fn checks(requested: &Requested) -> Vec<Attributes> {
    let mut checks = vec![match service_account(&requested.user) {
        Some((namespace, name)) => attributes("", "serviceaccounts", None, namespace, name),
        None => attributes("", "users", None, "", &requested.user),
    }];
    for group in &requested.groups {
        checks.push(attributes("", "groups", None, "", group));
    }
    for (key, values) in &requested.extra {
        for value in values {
            checks.push(attributes(
                AUTHENTICATION_GROUP,
                "userextras",
                Some(key),
                "",
                value,
            ));
        }
    }
    if let Some(uid) = &requested.uid {
        checks.push(attributes(AUTHENTICATION_GROUP, "uids", None, "", uid));
    }
    checks
}

/// The user a request runs as once every check passed; a ServiceAccount is bound to
/// `cluster`, the workspace it was impersonated in.
pub fn impersonated_user(requested: &Requested, cluster: &str) -> UserInfo {
    let mut groups = requested.groups.clone();
    let mut extra = requested.extra.clone();
    if let Some((namespace, _)) = service_account(&requested.user) {
        if groups.is_empty() {
            groups = vec![
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{namespace}"),
            ];
        }
        extra.insert(CLUSTER_EXTRA.to_string(), vec![cluster.to_string()]);
    }
    let marker = if requested.user == ANONYMOUS {
        UNAUTHENTICATED
    } else {
        AUTHENTICATED
    };
    let marked = groups
        .iter()
        .any(|g| g == UNAUTHENTICATED || (marker == AUTHENTICATED && g == AUTHENTICATED));
    if !marked {
        groups.push(marker.to_string());
    }
    UserInfo {
        name: requested.user.clone(),
        uid: requested.uid.clone().unwrap_or_default(),
        groups,
        extra,
    }
}

/// Refusals that are not RBAC's: a ServiceAccount of another workspace, or of none.
fn check_binding(requested: &Requested, cluster: &str, wildcard: bool) -> Result<(), Status> {
    let foreign = requested
        .extra
        .get(CLUSTER_EXTRA)
        .is_some_and(|bound| wildcard || bound.iter().any(|c| c != cluster));
    if foreign {
        return Err(Status::new(
            403,
            "Forbidden",
            format!(
                "forbidden: cannot impersonate {:?} bound to another workspace: only the \
                 workspace's own ServiceAccounts may be impersonated in it",
                requested.user
            ),
        ));
    }
    if wildcard && service_account(&requested.user).is_some() {
        return Err(Status::new(
            403,
            "Forbidden",
            format!(
                "forbidden: cannot impersonate ServiceAccount {:?} across all workspaces \
                 (/clusters/*): a ServiceAccount belongs to one workspace",
                requested.user
            ),
        ));
    }
    Ok(())
}

/// Impersonation, the gate's last step before dispatch (`serving::gate`): when the
/// request asks to act as someone, authorizes it in the request's workspace and replaces the
/// user (answering who, for the audit log), or answers the 400/403.
pub async fn admit(
    authz: &Authorizer,
    request: &mut Request<Body>,
) -> Result<Option<UserInfo>, Response> {
    let requested = match requested(request.headers()) {
        Ok(Some(requested)) => requested,
        Ok(None) => return Ok(None),
        Err(status) => return Err(response::status(status)),
    };
    let real = request.extensions().get::<UserInfo>().cloned();
    let workspace = request_info::parse(
        request.method().as_str(),
        request.uri().path(),
        &Default::default(),
    )
    .map(|info| info.workspace);
    let user = act_as(authz, real, workspace, &requested)
        .await
        .map_err(response::status)?;
    let headers = request.headers_mut();
    let names: Vec<_> = headers
        .keys()
        .filter(|n| n.as_str().starts_with("impersonate-"))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
    request.extensions_mut().insert(user.clone());
    Ok(Some(user))
}

/// The user `request` may act as, after every check.
async fn act_as(
    authz: &Authorizer,
    real: Option<UserInfo>,
    workspace: Result<String, request_info::UnknownPath>,
    requested: &Requested,
) -> Result<UserInfo, Status> {
    let real = real.ok_or_else(super::unauthorized)?;
    let workspace = workspace.map_err(|_| Status::not_found_path())?;
    let wildcard = workspace == ALL_WORKSPACES;
    let cluster = if wildcard {
        ROOT_CLUSTER.to_string()
    } else {
        authz
            .workspaces()
            .resolve(&workspace)
            .await
            .map_err(|unroutable| unroutable.into_status(&workspace))?
            .cluster
    };
    // A ServiceAccount token only counts in its own workspace, for impersonating too.
    super::check_bound_cluster(Some(&real), (!wildcard).then_some(cluster.as_str()))?;
    check_binding(requested, &cluster, wildcard)?;
    for attrs in checks(requested) {
        if !authz::allows_in(authz, &real, &cluster, &attrs).await? {
            return Err(attrs.forbidden(&real.name));
        }
    }
    tracing::debug!(user = %real.name, as = %requested.user, "impersonating");
    Ok(impersonated_user(requested, &cluster))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn headers_name_who_to_act_as() {
        assert_eq!(requested(&headers(&[("accept", "x")])).unwrap(), None);
        // Other headers of the prefix are not impersonation, as in kube-apiserver.
        assert_eq!(
            requested(&headers(&[("impersonate-nonsense", "x")])).unwrap(),
            None
        );
        let r = requested(&headers(&[
            ("Impersonate-User", "alice"),
            ("Impersonate-Group", "dev"),
            ("Impersonate-Group", "ops"),
            ("Impersonate-Uid", "u1"),
            ("Impersonate-Extra-Scopes", "a"),
            ("Impersonate-Extra-Scopes", "b"),
            ("Impersonate-Extra-example.com%2fteam", "ml"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(r.user, "alice");
        assert_eq!(r.groups, ["dev", "ops"]);
        assert_eq!(r.uid.as_deref(), Some("u1"));
        assert_eq!(r.extra["scopes"], ["a", "b"]);
        assert_eq!(r.extra["example.com/team"], ["ml"]);
        for bad in [
            vec![("Impersonate-Group", "dev")],
            vec![("Impersonate-Uid", "u")],
            vec![("Impersonate-User", "")],
            vec![("Impersonate-User", "a"), ("Impersonate-User", "b")],
            vec![("Impersonate-User", "a"), ("Impersonate-Extra-x%zz", "b")],
        ] {
            assert_eq!(requested(&headers(&bad)).unwrap_err().code, 400, "{bad:?}");
        }
    }

    #[test]
    fn each_part_is_checked_as_kube_apiserver_names_it() {
        let r = Requested {
            user: "system:serviceaccount:ci:builder".into(),
            groups: vec!["dev".into()],
            uid: Some("u1".into()),
            extra: [("scopes".to_string(), vec!["view".to_string()])].into(),
        };
        let described: Vec<_> = checks(&r)
            .iter()
            .map(|a| {
                let r = a.resource.as_ref().unwrap();
                format!(
                    "{} {}/{}/{} {} {}",
                    a.verb,
                    r.api_group,
                    r.resource,
                    r.subresource.as_deref().unwrap_or(""),
                    r.namespace,
                    r.name
                )
            })
            .collect();
        assert_eq!(
            described,
            [
                "impersonate /serviceaccounts/ ci builder",
                "impersonate /groups/  dev",
                "impersonate authentication.k8s.io/userextras/scopes  view",
                "impersonate authentication.k8s.io/uids/  u1",
            ]
        );
        let user = checks(&Requested {
            user: "nobody".into(),
            ..Requested::default()
        });
        assert_eq!(
            user[0].forbidden("alice").message,
            "users \"nobody\" is forbidden: User \"alice\" cannot impersonate resource \
             \"users\" in API group \"\" at the cluster scope"
        );
    }

    #[test]
    fn the_impersonated_user_is_authenticated_and_bound() {
        let plain = impersonated_user(
            &Requested {
                user: "nobody".into(),
                ..Requested::default()
            },
            "ws1",
        );
        assert_eq!(plain.groups, [AUTHENTICATED]);
        assert!(plain.extra.is_empty());
        let sa = impersonated_user(
            &Requested {
                user: "system:serviceaccount:ci:builder".into(),
                ..Requested::default()
            },
            "ws1",
        );
        assert_eq!(
            sa.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:ci",
                AUTHENTICATED
            ]
        );
        assert_eq!(sa.extra[CLUSTER_EXTRA], ["ws1"]);
        let anonymous = impersonated_user(
            &Requested {
                user: ANONYMOUS.into(),
                ..Requested::default()
            },
            "ws1",
        );
        assert_eq!(anonymous.groups, [UNAUTHENTICATED]);
    }

    #[test]
    fn service_accounts_of_other_workspaces_are_refused() {
        let mut r = Requested {
            user: "system:serviceaccount:ci:builder".into(),
            ..Requested::default()
        };
        assert!(check_binding(&r, "ws1", false).is_ok());
        assert_eq!(check_binding(&r, "root", true).unwrap_err().code, 403);
        r.extra
            .insert(CLUSTER_EXTRA.into(), vec!["other".to_string()]);
        assert_eq!(check_binding(&r, "ws1", false).unwrap_err().code, 403);
        r.extra
            .insert(CLUSTER_EXTRA.into(), vec!["ws1".to_string()]);
        assert!(check_binding(&r, "ws1", false).is_ok());
    }
}
