//! Aggregated ClusterRoles, as Kubernetes' ClusterRole aggregation controller keeps them: a
//! stored ClusterRole with an `aggregationRule` gets as its `rules` the rules of every
//! ClusterRole its selectors pick (stored ones and the built-in defaults), so `kubectl get
//! clusterrole -o yaml` shows what it grants. The authorizer computes the same union itself
//! (`authz::cache`) and does not wait for this.
//!
//! Wiring ([`wire`]): one reflector of the ClusterRoles of every workspace on every shard; a
//! change queues its workspace (the key is the logical cluster id). The decision is
//! [`desired_rules`].

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use trellis_storage::{ListScope, StoredObject};

use super::runtime::committer::{self, parse};
use super::runtime::{every_shard, Action, Controller, Error, Reconciler, Reflector, Running};
use crate::registry::Scheme;
use crate::security::authz::cache::{effective_cluster_roles, StoredClusterRole, CLUSTER_ROLES};
use crate::security::authz::defaults::DefaultRoles;
use crate::security::authz::rbac::{self, Rule};

/// A look at every workspace with ClusterRoles now and then, whatever the triggers said.
const RESYNC: Duration = Duration::from_secs(300);

pub fn wire(running: &mut Running, ctx: &super::ControllerContext) {
    let shards = &ctx.shards;
    let scheme = ctx.registry.scheme().clone();
    let roles = Reflector::whole(
        "clusterroles",
        ListScope::all_clusters(CLUSTER_ROLES),
        every_shard(shards),
    );
    running.spawn(roles.run(running.token()));
    let all = roles.clone();
    let controller = Controller::new("clusterrole-aggregation")
        .watches(&roles, |change| Some(change.key.cluster.clone()))
        .resync(RESYNC, move || {
            let mut clusters: Vec<String> = all.keys().into_iter().map(|k| k.cluster).collect();
            clusters.dedup();
            clusters
        });
    let defaults = ctx.default_roles.clone();
    running.spawn(controller.run(
        Arc::new(Aggregation {
            roles,
            scheme,
            defaults,
        }),
        running.token(),
    ));
}

struct Aggregation {
    roles: Reflector<StoredObject>,
    scheme: Arc<Scheme>,
    defaults: Arc<DefaultRoles>,
}

impl Reconciler for Aggregation {
    /// A logical cluster id.
    type Key = String;

    async fn reconcile(&self, cluster: &String) -> Result<Action, Error> {
        let stored = self.roles.list_cluster(cluster);
        let objects: Vec<(Arc<StoredObject>, Value)> = stored
            .into_iter()
            .filter_map(|(_, role)| Some((role.clone(), parse(&role).ok()?)))
            .collect();
        let named: Vec<(String, Value)> = objects
            .iter()
            .map(|(s, o)| (s.key.name.clone(), o.clone()))
            .collect();
        let rt = committer::builtin(
            &self.scheme,
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
        )?;
        let defaults = self.defaults.cluster_roles();
        for (name, rules) in desired_rules(defaults, &named) {
            let Some((stored, object)) = objects.iter().find(|(s, _)| s.key.name == name) else {
                continue;
            };
            let Some((_, store)) = self.roles.shard_of(&stored.key) else {
                continue;
            };
            let mut desired = object.clone();
            desired["rules"] = json!(rules);
            committer::update(store, rt, stored, desired).await?;
        }
        Ok(Action::await_change())
    }
}

/// The aggregated ClusterRoles among `roles` (name, object: every stored ClusterRole of one
/// workspace) whose rules are not what their selectors pick, with the rules they should have.
pub fn desired_rules(defaults: &[Value], roles: &[(String, Value)]) -> Vec<(String, Vec<Rule>)> {
    let stored: std::collections::HashMap<String, StoredClusterRole> = roles
        .iter()
        .map(|(name, object)| (name.clone(), StoredClusterRole::of(object)))
        .collect();
    if !stored.values().any(|r| r.aggregation.is_some()) {
        return Vec::new();
    }
    let effective = effective_cluster_roles(defaults, &stored);
    roles
        .iter()
        .filter(|(_, object)| rbac::aggregation_of(object).is_some())
        .filter_map(|(name, object)| {
            let rules = effective.get(name)?;
            (rbac::rules_of(object) != rules.to_vec()).then(|| (name.clone(), rules.to_vec()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles() -> Vec<(String, Value)> {
        vec![
            (
                "monitoring".into(),
                json!({"metadata": {"name": "monitoring"}, "aggregationRule": {"clusterRoleSelectors": [
                    {"matchLabels": {"example.com/aggregate-to-monitoring": "true"}}]}, "rules": []}),
            ),
            (
                "pods-reader".into(),
                json!({"metadata": {"name": "pods-reader", "labels": {"example.com/aggregate-to-monitoring": "true"}},
                       "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
            ),
            (
                "unrelated".into(),
                json!({"metadata": {"name": "unrelated"},
                       "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}),
            ),
        ]
    }

    fn defaults() -> &'static [Value] {
        crate::serving::hub::test_default_roles().cluster_roles()
    }

    #[test]
    fn aggregated_roles_get_the_rules_of_the_roles_they_select() {
        let desired = desired_rules(defaults(), &roles());
        assert_eq!(desired.len(), 1);
        assert_eq!(desired[0].0, "monitoring");
        assert_eq!(
            json!(desired[0].1),
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}])
        );
        // Once they have them, nothing is to change.
        let mut settled = roles();
        settled[0].1["rules"] = json!(desired[0].1);
        assert!(desired_rules(defaults(), &settled).is_empty());
    }

    #[test]
    fn workspaces_without_aggregated_roles_need_nothing() {
        assert!(desired_rules(defaults(), &roles()[1..]).is_empty());
        assert!(desired_rules(defaults(), &[]).is_empty());
    }
}
