//! Aggregated ClusterRoles, as Kubernetes' ClusterRole aggregation controller keeps them: a
//! stored ClusterRole with an `aggregationRule` gets as its `rules` the rules of every
//! ClusterRole its selectors pick (stored ones and the built-in defaults), so `kubectl get
//! clusterrole -o yaml` shows what it grants. The authorizer computes the same union itself
//! (`authz::cache`) and does not wait for this.
//!
//! One watch over the ClusterRoles of every workspace; a change reconciles its workspace.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use trellis_storage::{ListRequest, ListScope, Preconditions, StorageError, Store};

use crate::authz::cache::{effective_cluster_roles, StoredClusterRole, CLUSTER_ROLES};
use crate::authz::defaults::DefaultRoles;
use crate::authz::rbac;

const RETRY: Duration = Duration::from_secs(1);

pub async fn run(store: Store, defaults: Arc<DefaultRoles>) {
    loop {
        if let Err(err) = follow(&store, defaults.cluster_roles()).await {
            tracing::warn!(error = %err, "clusterrole aggregation: watch failed; resyncing");
        }
        tokio::time::sleep(RETRY).await;
    }
}

async fn follow(store: &Store, defaults: &[Value]) -> Result<(), StorageError> {
    let scope = ListScope::all_clusters(CLUSTER_ROLES);
    let listed = store.list(ListRequest::new(scope.clone())).await?;
    let clusters: BTreeSet<String> = listed.items.iter().map(|i| i.key.cluster.clone()).collect();
    for cluster in clusters {
        reconcile(store, defaults, &cluster).await?;
    }
    let mut watch = store.watch(scope, Some(listed.revision)).await?;
    while let Some(event) = watch.next().await {
        reconcile(store, defaults, &event?.object.key.cluster).await?;
    }
    Ok(())
}

/// Brings the rules of `cluster`'s aggregated ClusterRoles up to date.
pub async fn reconcile(
    store: &Store,
    defaults: &[Value],
    cluster: &str,
) -> Result<(), StorageError> {
    let listed = store
        .list(ListRequest::new(ListScope::cluster(cluster, CLUSTER_ROLES)))
        .await?;
    let mut objects = Vec::new();
    let mut stored = HashMap::new();
    for item in listed.items {
        let Ok(object) = serde_json::from_slice::<Value>(&item.value) else {
            continue;
        };
        stored.insert(item.key.name.clone(), StoredClusterRole::of(&object));
        objects.push((item, object));
    }
    if !stored.values().any(|r| r.aggregation.is_some()) {
        return Ok(());
    }
    let effective = effective_cluster_roles(defaults, &stored);
    for (item, mut object) in objects {
        if rbac::aggregation_of(&object).is_none() {
            continue;
        }
        let Some(rules) = effective.get(&item.key.name) else {
            continue;
        };
        if rbac::rules_of(&object) == rules.to_vec() {
            continue;
        }
        object["rules"] = json!(rules.to_vec());
        let value = serde_json::to_vec(&object)
            .map(Bytes::from)
            .map_err(|e| StorageError::Internal(e.to_string()))?;
        match store
            .update(item.key, value, Preconditions::revision(item.revision))
            .await
        {
            // Changed meanwhile: the watch brings it back.
            Ok(_) | Err(StorageError::Conflict { .. } | StorageError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_storage::{ObjectKey, StoreOptions};

    #[tokio::test]
    async fn aggregated_roles_get_the_rules_of_the_roles_they_select() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path().join("store.db"), StoreOptions::default())
            .await
            .unwrap();
        let put = |name: &str, object: Value| {
            let store = store.clone();
            let key = ObjectKey::new("c1", CLUSTER_ROLES, "", name);
            async move {
                store
                    .create(key, "uid", Bytes::from(object.to_string()))
                    .await
                    .unwrap();
            }
        };
        put(
            "monitoring",
            json!({"metadata": {"name": "monitoring"}, "aggregationRule": {"clusterRoleSelectors": [
                {"matchLabels": {"example.com/aggregate-to-monitoring": "true"}}]}, "rules": []}),
        )
        .await;
        put(
            "pods-reader",
            json!({"metadata": {"name": "pods-reader", "labels": {"example.com/aggregate-to-monitoring": "true"}},
                   "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
        )
        .await;
        put(
            "unrelated",
            json!({"metadata": {"name": "unrelated"},
                   "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}),
        )
        .await;
        let defaults = crate::kinds::scheme::test_hub().default_roles().clone();
        reconcile(&store, defaults.cluster_roles(), "c1")
            .await
            .unwrap();
        let stored = store
            .get(&ObjectKey::new("c1", CLUSTER_ROLES, "", "monitoring"))
            .await
            .unwrap();
        let object: Value = serde_json::from_slice(&stored.value).unwrap();
        assert_eq!(
            object["rules"],
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}])
        );
        // Nothing to change the second time: no write.
        let defaults = crate::kinds::scheme::test_hub().default_roles().clone();
        reconcile(&store, defaults.cluster_roles(), "c1")
            .await
            .unwrap();
        let again = store
            .get(&ObjectKey::new("c1", CLUSTER_ROLES, "", "monitoring"))
            .await
            .unwrap();
        assert_eq!(again.revision, stored.revision);
    }
}
