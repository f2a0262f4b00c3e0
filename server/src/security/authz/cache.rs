//! The RBAC objects of every workspace of a store, compiled for lookups: Roles and
//! ClusterRoles as rule lists (aggregated ClusterRoles resolved), bindings indexed by subject,
//! so a decision costs the bindings of the asking user and its groups, not all of them.
//!
//! Fed by one [`Reflector`] per RBAC resource across every logical cluster of the store (never
//! one per workspace), as [`crate::tenancy::namespace_cache`] is: each keeps the compiled piece of every
//! object ([`Piece`]) and hands each change to the cache. A question waits until the cache has
//! caught up with every change this process has published, so a binding this replica has
//! written or deleted counts at once; changes made through other replicas count as soon as
//! their watch events arrive (milliseconds).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::{CancellationToken, DropGuard};
use trellis_storage::{ListScope, ObjectKey, Store, StoredObject};

use crate::controllers::runtime::{Reflector, Subscription};

use super::defaults;
use super::rbac::{self, LabelSelector, RoleRef, Rule, SubjectKey};
use super::Attributes;
use crate::security::authn::UserInfo;

pub const ROLES: &str = "rbac.authorization.k8s.io/roles";
pub const ROLE_BINDINGS: &str = "rbac.authorization.k8s.io/rolebindings";
pub const CLUSTER_ROLES: &str = "rbac.authorization.k8s.io/clusterroles";
pub const CLUSTER_ROLE_BINDINGS: &str = "rbac.authorization.k8s.io/clusterrolebindings";
const RESOURCES: [&str; 4] = [ROLES, ROLE_BINDINGS, CLUSTER_ROLES, CLUSTER_ROLE_BINDINGS];

/// How long a question waits for the cache to catch up with this process's writes.
const CATCH_UP_WAIT: Duration = Duration::from_secs(2);
/// The reflectors' only source: the store the cache was made for.
const SOURCE: &str = "shard";

pub type Rules = Arc<[Rule]>;

#[derive(Debug)]
pub struct Binding {
    /// A RoleBinding's namespace; `None` for a ClusterRoleBinding.
    namespace: Option<String>,
    role: RoleRef,
    subjects: Vec<SubjectKey>,
}

/// (namespace, name); the namespace is empty for ClusterRoleBindings.
type BindingId = (String, String);

/// What aggregation needs of a stored ClusterRole.
#[derive(Clone, Debug)]
pub struct StoredClusterRole {
    pub labels: BTreeMap<String, String>,
    pub rules: Vec<Rule>,
    pub aggregation: Option<Vec<LabelSelector>>,
}

impl StoredClusterRole {
    pub fn of(object: &Value) -> StoredClusterRole {
        StoredClusterRole {
            labels: rbac::labels_of(object),
            rules: rbac::rules_of(object),
            aggregation: rbac::aggregation_of(object),
        }
    }
}

/// One workspace's stored RBAC objects.
#[derive(Default)]
struct ClusterPolicy {
    /// namespace → name → rules (nested, so lookups borrow instead of building keys).
    roles: HashMap<String, HashMap<String, Rules>>,
    cluster_roles: HashMap<String, StoredClusterRole>,
    /// Shared with the reflector that keeps them.
    bindings: HashMap<BindingId, Arc<Binding>>,
    /// user name → the bindings naming it; likewise for groups.
    users: HashMap<String, Vec<BindingId>>,
    groups: HashMap<String, Vec<BindingId>>,
    /// The default ClusterRoleBindings a stored one of the same name replaces here.
    replaced_defaults: Vec<&'static str>,
    /// The ClusterRoles in effect (defaults, stored, aggregated); `None`: the defaults alone.
    effective: Option<Arc<HashMap<String, Rules>>>,
}

impl ClusterPolicy {
    fn is_empty(&self) -> bool {
        self.roles.is_empty() && self.cluster_roles.is_empty() && self.bindings.is_empty()
    }

    fn index(&mut self, subject: &SubjectKey) -> (&mut HashMap<String, Vec<BindingId>>, String) {
        match subject {
            SubjectKey::User(name) => (&mut self.users, name.clone()),
            SubjectKey::Group(name) => (&mut self.groups, name.clone()),
        }
    }

    fn remove_binding(&mut self, id: &BindingId) {
        if let Some(old) = self.bindings.remove(id) {
            for subject in &old.subjects {
                let (index, name) = self.index(subject);
                if let Some(ids) = index.get_mut(&name) {
                    ids.retain(|i| i != id);
                    if ids.is_empty() {
                        index.remove(&name);
                    }
                }
            }
        }
    }

    fn insert_binding(&mut self, id: BindingId, binding: Arc<Binding>) {
        self.remove_binding(&id);
        for subject in &binding.subjects {
            let (index, name) = self.index(subject);
            let ids = index.entry(name).or_default();
            if !ids.contains(&id) {
                ids.push(id.clone());
            }
        }
        self.bindings.insert(id, binding);
    }

    fn note_replaced_defaults(&mut self) {
        self.replaced_defaults = defaults::CLUSTER_ROLE_BINDINGS
            .iter()
            .map(|(name, _, _)| *name)
            .filter(|name| {
                self.bindings
                    .contains_key(&(String::new(), name.to_string()))
            })
            .collect();
    }

    fn recompute(&mut self, defaults: &[Value]) {
        self.effective = if self.cluster_roles.is_empty() {
            None
        } else {
            Some(Arc::new(effective_cluster_roles(
                defaults,
                &self.cluster_roles,
            )))
        };
    }
}

/// Every ClusterRole's rules: the defaults, replaced by stored roles of the same name, with
/// aggregated roles holding the rules of every role their selectors pick (transitively, as
/// Kubernetes' aggregation controller converges to).
pub fn effective_cluster_roles(
    defaults: &[Value],
    stored: &HashMap<String, StoredClusterRole>,
) -> HashMap<String, Rules> {
    let mut all: HashMap<String, StoredClusterRole> = defaults
        .iter()
        .filter_map(|object| {
            let name = object.pointer("/metadata/name")?.as_str()?.to_string();
            Some((
                name,
                StoredClusterRole {
                    labels: rbac::labels_of(object),
                    rules: rbac::rules_of(object),
                    aggregation: rbac::aggregation_of(object),
                },
            ))
        })
        .collect();
    for (name, role) in stored {
        all.insert(
            name.clone(),
            StoredClusterRole {
                labels: role.labels.clone(),
                rules: role.rules.clone(),
                aggregation: role.aggregation.clone(),
            },
        );
    }
    fn resolve(
        name: &str,
        all: &HashMap<String, StoredClusterRole>,
        visiting: &mut Vec<String>,
        out: &mut Vec<Rule>,
    ) {
        let Some(role) = all.get(name) else { return };
        if visiting.iter().any(|v| v == name) {
            return;
        }
        visiting.push(name.to_string());
        match &role.aggregation {
            None => out.extend(role.rules.iter().cloned()),
            Some(selectors) => {
                let mut picked: Vec<&String> = all
                    .iter()
                    .filter(|(n, r)| {
                        n.as_str() != name
                            && selectors
                                .iter()
                                .any(|s| !s.is_empty() && s.matches(&r.labels))
                    })
                    .map(|(n, _)| n)
                    .collect();
                picked.sort();
                for n in picked {
                    resolve(n, all, visiting, out);
                }
            }
        }
        visiting.pop();
    }
    all.keys()
        .map(|name| {
            let mut rules = Vec::new();
            resolve(name, &all, &mut Vec::new(), &mut rules);
            let mut unique: Vec<Rule> = Vec::with_capacity(rules.len());
            for rule in rules {
                if !unique.contains(&rule) {
                    unique.push(rule);
                }
            }
            (name.clone(), Rules::from(unique))
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
#[error("the authorization cache has not loaded the RBAC objects yet")]
pub struct NotReady;

pub struct RbacCache {
    /// The server's default roles (`authz::defaults`).
    defaults: Arc<defaults::DefaultRoles>,
    clusters: RwLock<HashMap<String, ClusterPolicy>>,
    /// One per RBAC resource; none for a cache not fed from a store (tests).
    reflectors: Vec<Reflector<Piece>>,
    /// Set once, right after the cache is made (they hold a weak reference to it).
    subscriptions: std::sync::OnceLock<Vec<Subscription>>,
    /// Stops the reflectors when the cache goes.
    _stop: Option<DropGuard>,
}

impl RbacCache {
    /// Starts the cache and the tasks keeping it fresh; they end with the cache, or when `stop`
    /// is cancelled.
    pub fn spawn(
        store: Store,
        defaults: Arc<defaults::DefaultRoles>,
        stop: CancellationToken,
    ) -> Arc<Self> {
        let stop = stop.child_token();
        let cache = Self::following(
            reflectors(&store),
            defaults,
            Some(stop.clone().drop_guard()),
        );
        for reflector in &cache.reflectors {
            reflector.spawn(stop.clone());
        }
        cache
    }

    /// A cache fed by `reflectors` (started or not): what they keep now, then every change
    /// ([`Reflector::subscribe_into`]: built inside `Arc::new_cyclic`, the cache dropped what
    /// a reflector had listed before the subscription, after a restart until each object
    /// changed again).
    fn following(
        reflectors: Vec<Reflector<Piece>>,
        defaults: Arc<defaults::DefaultRoles>,
        stop: Option<DropGuard>,
    ) -> Arc<Self> {
        let cache = Arc::new(RbacCache {
            defaults,
            clusters: RwLock::new(HashMap::new()),
            reflectors,
            subscriptions: std::sync::OnceLock::new(),
            _stop: stop,
        });
        let subscriptions = cache
            .reflectors
            .iter()
            .map(|reflector| {
                reflector.subscribe_into(&cache, |cache, change| {
                    let mut clusters = cache.clusters.write().unwrap_or_else(|e| e.into_inner());
                    let defaults = cache.defaults.cluster_roles();
                    apply(&mut clusters, defaults, change.key, change.new.as_deref());
                })
            })
            .collect();
        let _ = cache.subscriptions.set(subscriptions);
        cache
    }

    #[cfg(test)]
    fn empty(defaults: Arc<defaults::DefaultRoles>) -> RbacCache {
        RbacCache {
            defaults,
            clusters: RwLock::new(HashMap::new()),
            reflectors: Vec::new(),
            subscriptions: std::sync::OnceLock::new(),
            _stop: None,
        }
    }

    /// Waits until every change this process published before the call is applied.
    pub async fn catch_up(&self, store: &Store) -> Result<(), NotReady> {
        let needed = store.delivered_revision().max(1);
        let deadline = tokio::time::Instant::now() + CATCH_UP_WAIT;
        for reflector in &self.reflectors {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            reflector.wait_for_revision(SOURCE, needed, left).await;
        }
        // Behind (a burst of writes): answer from what is applied, unless nothing is.
        if self.reflectors.iter().any(|r| r.revision(SOURCE) == 0) {
            return Err(NotReady);
        }
        Ok(())
    }

    /// Whether RBAC in `cluster` allows `user` the request.
    pub fn allows(&self, cluster: &str, user: &UserInfo, attrs: &Attributes) -> bool {
        let mut allowed = false;
        self.visit(cluster, user, attrs.namespace(), |rules| {
            allowed = rules.iter().any(|r| r.allows(attrs));
            allowed
        });
        allowed
    }

    /// The rules of a Role (in `namespace`) or ClusterRole of `cluster`.
    pub fn role_rules(&self, cluster: &str, namespace: &str, role: &RoleRef) -> Option<Rules> {
        let clusters = self.clusters.read().unwrap_or_else(|e| e.into_inner());
        let policy = clusters.get(cluster);
        match role {
            RoleRef::Role(name) => policy?.roles.get(namespace)?.get(name).cloned(),
            RoleRef::ClusterRole(name) => policy
                .and_then(|p| p.effective.clone())
                .unwrap_or_else(|| self.defaults.effective().clone())
                .get(name)
                .cloned(),
        }
    }

    /// Every rule granted to `user` in `cluster` that applies in `namespace` (cluster-wide
    /// grants, plus RoleBindings of that namespace).
    pub fn rules(&self, cluster: &str, user: &UserInfo, namespace: &str) -> Vec<Rule> {
        let mut all: Vec<Rule> = Vec::new();
        self.visit(cluster, user, namespace, |rules| {
            for rule in rules {
                if !all.contains(rule) {
                    all.push(rule.clone());
                }
            }
            false
        });
        all
    }

    /// Calls `f` with the rules of each binding naming `user` that applies in `namespace`
    /// (empty: cluster-wide), until it returns true.
    fn visit(
        &self,
        cluster: &str,
        user: &UserInfo,
        namespace: &str,
        mut f: impl FnMut(&[Rule]) -> bool,
    ) {
        let clusters = self.clusters.read().unwrap_or_else(|e| e.into_inner());
        let policy = clusters.get(cluster);
        let effective = policy
            .and_then(|p| p.effective.clone())
            .unwrap_or_else(|| self.defaults.effective().clone());
        // The user's bindings, then each group's (with the default bindings of groups).
        let subjects = std::iter::once((false, user.name.as_str()))
            .chain(user.groups.iter().map(|g| (true, g.as_str())));
        for (is_group, subject) in subjects {
            if let Some(policy) = policy {
                let index = if is_group {
                    &policy.groups
                } else {
                    &policy.users
                };
                for id in index.get(subject).into_iter().flatten() {
                    let Some(binding) = policy.bindings.get(id) else {
                        continue;
                    };
                    let rules = match (&binding.namespace, &binding.role) {
                        // A RoleBinding grants only inside its namespace.
                        (Some(ns), _) if ns != namespace => continue,
                        (Some(ns), RoleRef::Role(name)) => {
                            policy.roles.get(ns).and_then(|roles| roles.get(name))
                        }
                        (None, RoleRef::Role(_)) => None,
                        (_, RoleRef::ClusterRole(name)) => effective.get(name),
                    };
                    if rules.is_some_and(|rules| f(rules)) {
                        return;
                    }
                }
            }
            if is_group {
                for (name, role, bound) in defaults::CLUSTER_ROLE_BINDINGS {
                    let replaced = policy.is_some_and(|p| p.replaced_defaults.contains(name));
                    if *bound == subject && !replaced {
                        if let Some(rules) = effective.get(*role) {
                            if f(rules) {
                                return;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One reflector per RBAC resource, across every logical cluster of `store`.
fn reflectors(store: &Store) -> Vec<Reflector<Piece>> {
    RESOURCES
        .iter()
        .map(|resource| {
            Reflector::new(
                format!("rbac:{resource}"),
                ListScope::all_clusters(*resource),
                vec![(SOURCE.to_string(), store.clone())],
                |stored: &StoredObject| piece_of(&stored.key, &stored.value),
            )
        })
        .collect()
}

/// What the cache keeps of one stored RBAC object, compiled once per change.
pub enum Piece {
    Role(Rules),
    ClusterRole(StoredClusterRole),
    Binding(Arc<Binding>),
}

/// The piece of the object at `key`; `None` when it is unreadable (it then grants nothing).
fn piece_of(key: &ObjectKey, value: &[u8]) -> Option<Piece> {
    let object: Value = serde_json::from_slice(value).ok()?;
    match key.resource.as_str() {
        ROLES => Some(Piece::Role(Rules::from(rbac::rules_of(&object)))),
        CLUSTER_ROLES => Some(Piece::ClusterRole(StoredClusterRole::of(&object))),
        ROLE_BINDINGS | CLUSTER_ROLE_BINDINGS => Some(Piece::Binding(Arc::new(Binding {
            namespace: (key.resource == ROLE_BINDINGS).then(|| key.namespace.clone()),
            role: rbac::role_ref_of(&object)?,
            subjects: rbac::subjects_of(&object),
        }))),
        _ => None,
    }
}

/// Records what is kept of one stored RBAC object (`None`: gone, or unreadable) in its
/// workspace's policy.
fn apply(
    clusters: &mut HashMap<String, ClusterPolicy>,
    defaults: &[Value],
    key: &ObjectKey,
    piece: Option<&Piece>,
) {
    let policy = clusters.entry(key.cluster.clone()).or_default();
    let namespaced = (key.namespace.clone(), key.name.clone());
    match key.resource.as_str() {
        ROLES => match piece {
            Some(Piece::Role(rules)) => {
                policy
                    .roles
                    .entry(key.namespace.clone())
                    .or_default()
                    .insert(key.name.clone(), rules.clone());
            }
            _ => {
                if let Some(roles) = policy.roles.get_mut(&key.namespace) {
                    roles.remove(&key.name);
                    if roles.is_empty() {
                        policy.roles.remove(&key.namespace);
                    }
                }
            }
        },
        CLUSTER_ROLES => {
            match piece {
                Some(Piece::ClusterRole(role)) => {
                    policy.cluster_roles.insert(key.name.clone(), role.clone());
                }
                _ => {
                    policy.cluster_roles.remove(&key.name);
                }
            }
            policy.recompute(defaults);
        }
        ROLE_BINDINGS | CLUSTER_ROLE_BINDINGS => {
            match piece {
                Some(Piece::Binding(binding)) => policy.insert_binding(namespaced, binding.clone()),
                _ => policy.remove_binding(&namespaced),
            }
            if key.resource == CLUSTER_ROLE_BINDINGS {
                policy.note_replaced_defaults();
            }
        }
        _ => {}
    }
    if policy.is_empty() {
        clusters.remove(&key.cluster);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::authz::ResourceAttributes;
    use bytes::Bytes;
    use serde_json::json;
    use trellis_storage::{Preconditions, StoreOptions};

    fn test_defaults() -> Arc<defaults::DefaultRoles> {
        Arc::new(defaults::DefaultRoles::new(
            crate::registry::scheme::test_scheme().resources(),
        ))
    }

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..UserInfo::default()
        }
    }

    fn get(resource: &str, namespace: &str, name: &str) -> Attributes {
        verb("get", "", resource, namespace, name)
    }

    fn verb(verb: &str, group: &str, resource: &str, namespace: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource: Some(ResourceAttributes {
                api_group: group.into(),
                resource: resource.into(),
                subresource: None,
                namespace: namespace.into(),
                name: name.into(),
            }),
            path: String::new(),
        }
    }

    fn put(cache: &RbacCache, cluster: &str, resource: &str, ns: &str, object: Value) {
        let mut clusters = cache.clusters.write().unwrap();
        let name = object["metadata"]["name"].as_str().unwrap().to_string();
        let key = ObjectKey::new(cluster, resource, ns, name);
        let piece = piece_of(&key, object.to_string().as_bytes());
        apply(
            &mut clusters,
            cache.defaults.cluster_roles(),
            &key,
            piece.as_ref(),
        );
    }

    fn remove(cache: &RbacCache, cluster: &str, resource: &str, ns: &str, name: &str) {
        let mut clusters = cache.clusters.write().unwrap();
        apply(
            &mut clusters,
            cache.defaults.cluster_roles(),
            &ObjectKey::new(cluster, resource, ns, name),
            None,
        );
    }

    fn binding(name: &str, ns: Option<&str>, kind: &str, role: &str, subjects: Value) -> Value {
        json!({
            "metadata": {"name": name, "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
            "subjects": subjects,
        })
    }

    #[test]
    fn role_bindings_grant_in_their_namespace_and_workspace_only() {
        let cache = RbacCache::empty(test_defaults());
        put(
            &cache,
            "a",
            ROLES,
            "team",
            json!({"metadata": {"name": "reader"}, "rules": [
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}
            ]}),
        );
        put(
            &cache,
            "a",
            ROLE_BINDINGS,
            "team",
            binding(
                "rb",
                Some("team"),
                "Role",
                "reader",
                json!([{"kind": "User", "name": "alice"}]),
            ),
        );
        let alice = user("alice", &["system:authenticated"]);
        assert!(cache.allows("a", &alice, &get("configmaps", "team", "x")));
        assert!(!cache.allows("a", &alice, &get("configmaps", "other", "x")));
        assert!(!cache.allows("a", &alice, &get("configmaps", "", "x")));
        assert!(!cache.allows("b", &alice, &get("configmaps", "team", "x")));
        assert!(!cache.allows("a", &alice, &get("secrets", "team", "x")));
        assert!(!cache.allows("a", &user("bob", &[]), &get("configmaps", "team", "x")));
        remove(&cache, "a", ROLE_BINDINGS, "team", "rb");
        assert!(!cache.allows("a", &alice, &get("configmaps", "team", "x")));
    }

    #[test]
    fn default_cluster_roles_are_aggregated_and_extended_by_labels() {
        let cache = RbacCache::empty(test_defaults());
        put(
            &cache,
            "a",
            CLUSTER_ROLE_BINDINGS,
            "",
            binding(
                "viewers",
                None,
                "ClusterRole",
                "view",
                json!([{"kind": "Group", "name": "devs"}]),
            ),
        );
        put(
            &cache,
            "a",
            ROLE_BINDINGS,
            "team",
            binding(
                "editors",
                Some("team"),
                "ClusterRole",
                "admin",
                json!([{"kind": "ServiceAccount", "name": "robot"}]),
            ),
        );
        let dev = user("carol", &["devs"]);
        assert!(cache.allows("a", &dev, &verb("list", "", "configmaps", "any", "")));
        assert!(!cache.allows("a", &dev, &get("secrets", "any", "s")));
        assert!(!cache.allows("a", &dev, &verb("create", "", "configmaps", "any", "")));
        let robot = user("system:serviceaccount:team:robot", &[]);
        // admin ⊇ edit ⊇ view, by the aggregation labels.
        assert!(cache.allows("a", &robot, &get("secrets", "team", "s")));
        assert!(cache.allows("a", &robot, &verb("create", "", "configmaps", "team", "")));
        // A stored role labelled to aggregate into view extends it at once.
        let widgets = verb("get", "example.com", "widgets", "any", "w");
        assert!(!cache.allows("a", &dev, &widgets));
        put(
            &cache,
            "a",
            CLUSTER_ROLES,
            "",
            json!({"metadata": {"name": "widget-viewer", "labels": {
                "rbac.authorization.k8s.io/aggregate-to-view": "true"}},
                "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]}]}),
        );
        assert!(cache.allows("a", &dev, &widgets));
        assert!(cache.allows(
            "a",
            &robot,
            &verb("get", "example.com", "widgets", "team", "w")
        ));
        remove(&cache, "a", CLUSTER_ROLES, "", "widget-viewer");
        assert!(!cache.allows("a", &dev, &widgets));
    }

    #[test]
    fn authenticated_users_get_discovery_but_not_access() {
        let cache = RbacCache::empty(test_defaults());
        let path = |verb: &str, path: &str| Attributes {
            verb: verb.into(),
            resource: None,
            path: path.into(),
        };
        let anyone = user("zed", &["system:authenticated"]);
        assert!(cache.allows("a", &anyone, &path("get", "/apis/apps/v1")));
        assert!(!cache.allows("a", &anyone, &path("access", "/")));
        assert!(cache.allows(
            "a",
            &anyone,
            &verb(
                "create",
                "authorization.k8s.io",
                "selfsubjectaccessreviews",
                "",
                ""
            )
        ));
        assert!(!cache.allows("a", &user("zed", &[]), &path("get", "/api")));
    }

    #[test]
    fn a_hundred_bindings_of_others_are_not_looked_at() {
        let cache = RbacCache::empty(test_defaults());
        for i in 0..100 {
            put(
                &cache,
                "a",
                ROLE_BINDINGS,
                "ns",
                binding(
                    &format!("rb{i}"),
                    Some("ns"),
                    "ClusterRole",
                    "edit",
                    json!([{"kind": "User", "name": format!("user{i}")}]),
                ),
            );
        }
        let clusters = cache.clusters.read().unwrap();
        let policy = clusters.get("a").unwrap();
        assert_eq!(
            policy.users["user7"],
            [("ns".to_string(), "rb7".to_string())]
        );
        drop(clusters);
        assert!(cache.allows("a", &user("user7", &[]), &get("configmaps", "ns", "x")));
        assert!(!cache.allows("a", &user("user7", &[]), &get("configmaps", "other", "x")));
    }

    /// A cache whose reflectors listed before it subscribed (as after a restart, when the
    /// listing wins the race) grants what they listed: a Role and its RoleBinding stored
    /// before the cache existed.
    #[tokio::test]
    async fn what_the_reflectors_listed_before_the_cache_subscribed_counts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path().join("store.db"), StoreOptions::default())
            .await
            .unwrap();
        let role = json!({"metadata": {"name": "reader", "namespace": "ns"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]});
        let role_binding = binding(
            "reader",
            Some("ns"),
            "Role",
            "reader",
            json!([{"kind": "User", "name": "alice"}]),
        );
        for (resource, object) in [(ROLES, role), (ROLE_BINDINGS, role_binding)] {
            let key = ObjectKey::new("a", resource, "ns", "reader");
            store
                .create(key, "u", Bytes::from(object.to_string()))
                .await
                .unwrap();
        }
        let stop = CancellationToken::new();
        let listed = reflectors(&store);
        for reflector in &listed {
            reflector.spawn(stop.clone());
            reflector.wait_synced().await;
        }
        let cache = RbacCache::following(listed, test_defaults(), None);
        cache.catch_up(&store).await.unwrap();
        let alice = user("alice", &[]);
        assert!(cache.allows("a", &alice, &get("configmaps", "ns", "x")));
        assert!(!cache.allows("a", &alice, &get("configmaps", "other", "x")));
        stop.cancel();
    }

    /// Through storage: a deleted binding stops counting as soon as the delete is answered.
    #[tokio::test]
    async fn the_watch_keeps_the_cache_current() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path().join("store.db"), StoreOptions::default())
            .await
            .unwrap();
        let cache = RbacCache::spawn(store.clone(), test_defaults(), CancellationToken::new());
        let key = ObjectKey::new("a", CLUSTER_ROLE_BINDINGS, "", "alice-admin");
        let object = binding(
            "alice-admin",
            None,
            "ClusterRole",
            "cluster-admin",
            json!([{"kind": "User", "name": "alice"}]),
        );
        store
            .create(key.clone(), "u1", Bytes::from(object.to_string()))
            .await
            .unwrap();
        let alice = user("alice", &[]);
        let attrs = get("secrets", "ns", "s");
        cache.catch_up(&store).await.unwrap();
        assert!(cache.allows("a", &alice, &attrs));
        store.delete(key, Preconditions::none()).await.unwrap();
        cache.catch_up(&store).await.unwrap();
        assert!(!cache.allows("a", &alice, &attrs));
    }
}
