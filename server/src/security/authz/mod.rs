//! Authorization: whether the authenticated user may make a request, by Kubernetes RBAC
//! evaluated inside the target workspace, after the workspace `access` check.
//!
//! - [`rbac`]: rules, subjects and selectors as pure functions;
//! - [`cache`]: every workspace's RBAC objects, compiled and fed by one watch per resource;
//! - [`defaults`]: the ClusterRoles and bindings every workspace has without storing them;
//! - [`reviews`]: SelfSubjectAccessReview, SubjectAccessReview and SelfSubjectRulesReview;
//! - [`owner`]: the creator of a workspace becomes its admin;
//! - [`escalation`]: nobody grants through a Role or binding more than they hold.
//!
//! **Entering a workspace.** Any request into workspace `W` (other than `/healthz`, `/livez`,
//! `/readyz` and `/version`, and self reviews) needs verb `access` on non-resource URL `/`
//! granted in `W` by a ClusterRoleBinding (`cluster-admin`, `admin`, `edit`, `view` and
//! `system:trellis:workspace-access` include it), unless the user is one of `W`'s own
//! ServiceAccounts; then RBAC in `W` decides the request.
//! Besides, whoever RBAC in `W`'s parent (or any ancestor's parent) grants verb `admin` on
//! `workspaces/content` (group `tenancy.trellis.dev`) named after the workspace is its admin:
//! every request in `W` is allowed, as for `cluster-admin` (`cluster-admin` in the parent
//! includes it). `system:masters` bypasses all of it.
//!
//! **Across all workspaces** (`/clusters/*`): `system:masters`, or a ClusterRoleBinding in
//! root granting the verb (`list` or `watch`) on the resource.

pub mod cache;
pub mod defaults;
pub mod escalation;
pub mod owner;
pub mod rbac;
pub mod reviews;

use std::collections::HashMap;
use std::sync::Arc;

use crate::machinery::request_info::{ResourceRequest, Target};
use crate::machinery::status::Status;
use crate::security::authn::UserInfo;
use crate::tenancy::shards::{Shard, ShardMap};
use crate::tenancy::workspaces::{WorkspaceIndex, ROOT_CLUSTER};
use cache::RbacCache;

/// What a request asks to do, as RBAC sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributes {
    pub verb: String,
    /// `None` for a non-resource request (then `path` is set).
    pub resource: Option<ResourceAttributes>,
    pub path: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceAttributes {
    /// Empty for the core group.
    pub api_group: String,
    pub resource: String,
    pub subresource: Option<String>,
    /// Empty for cluster-scoped requests.
    pub namespace: String,
    /// Empty for requests without a name (list, create, watch of a collection).
    pub name: String,
}

impl Attributes {
    pub fn of_request(request: &ResourceRequest) -> Attributes {
        Attributes {
            verb: request.verb.as_str().to_string(),
            resource: Some(ResourceAttributes {
                api_group: request.group.clone(),
                resource: request.resource.clone(),
                subresource: request.subresource.clone(),
                namespace: request.namespace.clone().unwrap_or_default(),
                name: request.name.clone().unwrap_or_default(),
            }),
            path: String::new(),
        }
    }

    pub fn non_resource(verb: &str, path: &str) -> Attributes {
        Attributes {
            verb: verb.to_string(),
            resource: None,
            path: path.to_string(),
        }
    }

    /// The namespace the request is in; empty when cluster-wide or non-resource.
    pub fn namespace(&self) -> &str {
        self.resource
            .as_ref()
            .map(|r| r.namespace.as_str())
            .unwrap_or_default()
    }

    /// kube-apiserver's wording of what was refused: `User "alice" cannot get resource
    /// "configmaps" in API group "" in the namespace "default"`.
    pub fn refusal(&self, user: &str) -> String {
        match &self.resource {
            None => format!("User {user:?} cannot {} path {:?}", self.verb, self.path),
            Some(r) => {
                let resource = match &r.subresource {
                    Some(sub) => format!("{}/{sub}", r.resource),
                    None => r.resource.clone(),
                };
                let scope = if r.namespace.is_empty() {
                    "at the cluster scope".to_string()
                } else {
                    format!("in the namespace {:?}", r.namespace)
                };
                format!(
                    "User {user:?} cannot {} resource {resource:?} in API group {:?} {scope}",
                    self.verb, r.api_group
                )
            }
        }
    }

    /// The 403 for a refused request.
    pub fn forbidden(&self, user: &str) -> Status {
        let why = self.refusal(user);
        match &self.resource {
            None => Status::new(403, "Forbidden", format!("forbidden: {why}")),
            Some(r) => {
                let qualified = if r.api_group.is_empty() {
                    r.resource.clone()
                } else {
                    format!("{}.{}", r.resource, r.api_group)
                };
                let subject = crate::machinery::status::Subject {
                    group: &r.api_group,
                    resource: &r.resource,
                    name: &r.name,
                };
                if r.name.is_empty() {
                    // kube-apiserver leaves the quoted name out when there is none.
                    Status::new(403, "Forbidden", format!("{qualified} is forbidden: {why}"))
                        .with_subject_details(&subject)
                } else {
                    Status::forbidden(&subject, &why)
                }
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(String),
}

/// The hub's authorizer: the RBAC cache of its store.
pub struct Authorizer {
    shards: Arc<ShardMap>,
    /// For the paths of workspaces, whose ancestors' admins are admins here.
    workspaces: Arc<WorkspaceIndex>,
    /// shard name → the RBAC cache of its store.
    caches: HashMap<String, Arc<RbacCache>>,
}

impl Authorizer {
    /// Starts the RBAC cache of every shard (each watches only its own store).
    pub fn spawn(
        shards: &Arc<ShardMap>,
        workspaces: &Arc<WorkspaceIndex>,
        defaults: &Arc<defaults::DefaultRoles>,
        stop: &tokio_util::sync::CancellationToken,
    ) -> Arc<Authorizer> {
        Arc::new(Authorizer {
            caches: shards
                .iter()
                .map(|shard| {
                    let cache =
                        RbacCache::spawn(shard.store.clone(), defaults.clone(), stop.clone());
                    (shard.name.clone(), cache)
                })
                .collect(),
            shards: shards.clone(),
            workspaces: workspaces.clone(),
        })
    }

    /// The index of workspaces this authorizer reads paths from.
    pub fn workspaces(&self) -> &Arc<WorkspaceIndex> {
        &self.workspaces
    }

    /// The RBAC cache of a shard, as it is (for a request whose workspace's cache
    /// [`Authorizer::cache_for`] already caught up).
    pub fn cache_of_shard(&self, shard: &str) -> Option<&Arc<RbacCache>> {
        self.caches.get(shard)
    }

    /// The RBAC cache holding `cluster`'s policy, once it has seen every RBAC change this
    /// process made.
    pub async fn cache_for(&self, cluster: &str) -> Result<Arc<RbacCache>, Status> {
        let shard = self
            .shards
            .shard_for(cluster)
            .await
            .map_err(|e| e.into_status(cluster))?;
        self.cache_of(&shard).await
    }

    /// The RBAC cache of `shard`, caught up with what this process wrote.
    pub async fn cache_of(&self, shard: &Shard) -> Result<Arc<RbacCache>, Status> {
        let cache = self.caches.get(&shard.name).cloned().ok_or_else(|| {
            Status::unavailable(format!("no RBAC cache for shard {}", shard.name), 1)
        })?;
        cache
            .catch_up(&shard.store)
            .await
            .map_err(|e| Status::unavailable(e.to_string(), 1))?;
        Ok(cache)
    }
}

/// Whether RBAC in `cluster` allows `user` the request (`system:masters` always).
pub async fn authorize(
    authz: &Authorizer,
    user: &UserInfo,
    cluster: &str,
    attrs: &Attributes,
) -> Result<Decision, Status> {
    if user.is_master() {
        return Ok(Decision::Allow);
    }
    let cache = authz.cache_for(cluster).await?;
    Ok(if cache.allows(cluster, user, attrs) {
        Decision::Allow
    } else {
        Decision::Deny(attrs.refusal(&user.name))
    })
}

/// How far `user` gets into a workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// May not enter.
    Denied,
    /// May enter; RBAC inside decides the rest.
    Member,
    /// Admin of it from an ancestor (or `system:masters`): everything.
    Admin,
}

/// Whether `user` may enter the workspace `cluster`, and as what (see the module
/// documentation).
pub async fn entry(authz: &Authorizer, user: &UserInfo, cluster: &str) -> Result<Entry, Status> {
    if user.is_master() {
        return Ok(Entry::Admin);
    }
    let cache = authz.cache_for(cluster).await?;
    if ancestor_admin(authz, user, cluster).await {
        return Ok(Entry::Admin);
    }
    Ok(if may_enter(&cache, user, cluster) {
        Entry::Member
    } else {
        Entry::Denied
    })
}

/// Whether `user` may do `attrs` in workspace `cluster` as a request there would be decided:
/// admins of it (and `system:masters`) may; members as RBAC inside says; others may not.
/// For checks that are not the request itself (impersonation).
pub async fn allows_in(
    authz: &Authorizer,
    user: &UserInfo,
    cluster: &str,
    attrs: &Attributes,
) -> Result<bool, Status> {
    Ok(match entry(authz, user, cluster).await? {
        Entry::Admin => true,
        Entry::Denied => false,
        Entry::Member => authz.cache_for(cluster).await?.allows(cluster, user, attrs),
    })
}

/// `access` on `/`, granted inside the workspace; a workspace's own ServiceAccounts need
/// none (as in kcp): they may enter, and RBAC decides each of their requests.
fn may_enter(cache: &RbacCache, user: &UserInfo, cluster: &str) -> bool {
    own_service_account(user, cluster)
        || cache.allows(
            cluster,
            user,
            &Attributes::non_resource(defaults::ACCESS_VERB, "/"),
        )
}

/// Whether `user` is a ServiceAccount of the workspace `cluster` (its token, or an
/// impersonation there, binds it to that logical cluster).
fn own_service_account(user: &UserInfo, cluster: &str) -> bool {
    user.name.starts_with(SERVICE_ACCOUNT_PREFIX)
        && user
            .extra
            .get(crate::security::authn::service_account::CLUSTER_EXTRA)
            .is_some_and(|bound| bound.len() == 1 && bound[0] == cluster)
}

/// The user names of ServiceAccounts: `system:serviceaccount:<namespace>:<name>`.
pub const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// Whether RBAC in the parent of `cluster` (or further up) grants `user` verb `admin` on the
/// workspace's `workspaces/content`.
async fn ancestor_admin(authz: &Authorizer, user: &UserInfo, cluster: &str) -> bool {
    let Some(mut path) = authz.workspaces.path_of(cluster).await else {
        return false;
    };
    while let Some((parent_path, name)) = path.rsplit_once(':') {
        let Ok(parent) = authz.workspaces.resolve(parent_path).await else {
            return false;
        };
        let Ok(cache) = authz.cache_for(&parent.cluster).await else {
            return false;
        };
        if cache.allows(&parent.cluster, user, &parent_admin(name)) {
            return true;
        }
        path = parent_path.to_string();
    }
    false
}

/// What an admin of a workspace's parent holds over it, kcp-style.
pub fn parent_admin(name: &str) -> Attributes {
    Attributes {
        verb: "admin".into(),
        resource: Some(ResourceAttributes {
            api_group: trellis_apis::tenancy::GROUP.into(),
            resource: "workspaces".into(),
            subresource: Some("content".into()),
            namespace: String::new(),
            name: name.into(),
        }),
        path: String::new(),
    }
}

/// Whether a request is for a path anyone may read, even unauthenticated.
pub fn is_public_target(target: &Target) -> bool {
    matches!(target, Target::NonResource(path) if is_public(path))
}

/// Paths anyone may read in any workspace, without entering it.
fn is_public(path: &str) -> bool {
    crate::security::authn::is_public_path(path)
}

/// The authorization step of the request pipeline: the access check, then RBAC on the
/// request, in workspace `cluster` (written `workspace` in the URL). Whether the user is admin
/// there from above (or `system:masters`), which [`escalation`] needs to know for RBAC writes.
pub async fn check_request(
    authz: &Authorizer,
    user: &UserInfo,
    (workspace, cluster, shard): (&str, &str, &Shard),
    target: &Target,
    method: &str,
) -> Result<bool, Status> {
    if user.is_master() {
        return Ok(true);
    }
    let attrs = match target {
        Target::NonResource(path) if is_public(path) => return Ok(false),
        Target::NonResource(path) => Attributes::non_resource(&method.to_ascii_lowercase(), path),
        Target::Resource(request) => Attributes::of_request(request),
    };
    let cache = authz.cache_of(shard).await?;
    let member = may_enter(&cache, user, cluster);
    // The common case first: a member whose request RBAC in the workspace allows.
    if member && cache.allows(cluster, user, &attrs) {
        let rbac_write = attrs
            .resource
            .as_ref()
            .is_some_and(|r| r.api_group == defaults::RBAC_GROUP)
            && matches!(attrs.verb.as_str(), "create" | "update" | "patch");
        return Ok(rbac_write && ancestor_admin(authz, user, cluster).await);
    }
    // Self reviews are open to anyone authenticated: they only tell users about themselves,
    // and say "no" where the user may not enter.
    if !member && reviews::is_self_review(target) && cache.allows(cluster, user, &attrs) {
        return Ok(false);
    }
    if ancestor_admin(authz, user, cluster).await {
        return Ok(true);
    }
    if !member {
        return Err(Status::new(
            403,
            "Forbidden",
            format!(
                "forbidden: User {:?} cannot access workspace {workspace:?}: it needs verb \
                 \"access\" on \"/\" there, or admin rights on the workspace in its parent",
                user.name
            ),
        ));
    }
    Err(attrs.forbidden(&user.name))
}

/// The authorization of a request across all workspaces (`/clusters/*`): cluster-wide grants
/// in root only.
pub async fn check_wildcard(
    authz: &Authorizer,
    user: &UserInfo,
    target: &Target,
    method: &str,
) -> Result<(), Status> {
    if user.is_master() {
        return Ok(());
    }
    let attrs = match target {
        Target::NonResource(path) if is_public(path) => return Ok(()),
        Target::NonResource(path) => Attributes::non_resource(&method.to_ascii_lowercase(), path),
        Target::Resource(request) => Attributes::of_request(request),
    };
    match authorize(authz, user, ROOT_CLUSTER, &attrs).await? {
        Decision::Allow => Ok(()),
        Decision::Deny(_) => Err(Status::new(
            403,
            "Forbidden",
            format!(
                "forbidden: {} across all workspaces (/clusters/*): it needs a \
                 ClusterRoleBinding in root granting it",
                attrs.refusal(&user.name)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machinery::request_info::Verb;

    #[test]
    fn only_a_workspaces_own_service_accounts_enter_without_access() {
        let mut sa = UserInfo {
            name: "system:serviceaccount:default:builder".into(),
            ..UserInfo::default()
        };
        assert!(!own_service_account(&sa, "ws1"), "unbound");
        sa.extra.insert(
            crate::security::authn::service_account::CLUSTER_EXTRA.into(),
            vec!["ws1".into()],
        );
        assert!(own_service_account(&sa, "ws1"));
        assert!(!own_service_account(&sa, "ws2"));
        let user = UserInfo {
            name: "alice".into(),
            extra: sa.extra.clone(),
            ..UserInfo::default()
        };
        assert!(!own_service_account(&user, "ws1"), "not a ServiceAccount");
    }

    #[test]
    fn refusals_read_as_kube_apiserver_words_them() {
        let request = ResourceRequest {
            verb: Verb::Get,
            group: String::new(),
            version: "v1".into(),
            resource: "configmaps".into(),
            subresource: None,
            namespace: Some("default".into()),
            name: Some("cm".into()),
        };
        let status = Attributes::of_request(&request).forbidden("alice");
        assert_eq!(status.code, 403);
        assert_eq!(
            status.message,
            "configmaps \"cm\" is forbidden: User \"alice\" cannot get resource \"configmaps\" \
             in API group \"\" in the namespace \"default\""
        );
        let list = ResourceRequest {
            verb: Verb::List,
            group: "rbac.authorization.k8s.io".into(),
            resource: "clusterroles".into(),
            namespace: None,
            name: None,
            ..request
        };
        assert_eq!(
            Attributes::of_request(&list).forbidden("bob").message,
            "clusterroles.rbac.authorization.k8s.io is forbidden: User \"bob\" cannot list \
             resource \"clusterroles\" in API group \"rbac.authorization.k8s.io\" at the \
             cluster scope"
        );
        assert_eq!(
            Attributes::non_resource("get", "/apis")
                .forbidden("bob")
                .message,
            "forbidden: User \"bob\" cannot get path \"/apis\""
        );
    }
}
