//! Every namespace has a ServiceAccount `default`, as Kubernetes' service account controller
//! keeps it: created with the namespace, created again if deleted.
//!
//! Wiring ([`wire`]): the namespaces come from each shard's namespace cache (one reflector per
//! shard, shared); the `default` accounts from one reflector across shards that keeps their
//! keys only (other accounts are not kept at all). A namespace change queues the namespace; the
//! deletion of a `default` account queues its namespace. The decision is
//! [`needs_default_account`].

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use trellis_storage::{ListScope, ObjectKey};

use super::runtime::committer;
use super::runtime::{every_shard, Action, Controller, Error, Reconciler, Reflector, Running};
use crate::tenancy::namespace_cache::{NamespaceState, NAMESPACES};
use crate::tenancy::shards::ShardMap;

const SERVICE_ACCOUNTS: &str = "core/serviceaccounts";
const DEFAULT: &str = "default";
/// Every namespace again now and then, whatever the triggers said.
const RESYNC: Duration = Duration::from_secs(600);

pub fn wire(running: &mut Running, ctx: &super::ControllerContext) {
    let shards = ctx.shards.clone();
    let scheme = ctx.registry.scheme().clone();
    let accounts = Reflector::new(
        "default-serviceaccounts",
        ListScope::all_clusters(SERVICE_ACCOUNTS),
        every_shard(&shards),
        |stored| (stored.key.name == DEFAULT).then_some(()),
    );
    running.spawn(accounts.run(running.token()));
    let mut controller = Controller::new("serviceaccount")
        .watches(&accounts, |change| {
            let key = change.key;
            (change.deleted && key.name == DEFAULT)
                .then(|| namespace_key(&key.cluster, &key.namespace))
        })
        .workers(4);
    for shard in shards.iter() {
        controller = controller.watches(shard.namespaces.reflector(), |change| {
            change
                .new
                .as_ref()
                .filter(|n| !n.deleting)
                .map(|_| change.key.clone())
        });
    }
    let all = shards.clone();
    let controller = controller.resync(RESYNC, move || {
        all.iter()
            .flat_map(|shard| shard.namespaces.reflector().keys())
            .collect()
    });
    let reconciler = DefaultAccounts {
        shards,
        scheme,
        accounts,
    };
    running.spawn(controller.run(Arc::new(reconciler), running.token()));
}

fn namespace_key(cluster: &str, namespace: &str) -> ObjectKey {
    ObjectKey::new(cluster, NAMESPACES, "", namespace)
}

/// Whether a namespace (as kept by the namespace cache; `None`: gone) needs its `default`
/// account created.
pub fn needs_default_account(namespace: Option<&NamespaceState>, has_default: bool) -> bool {
    namespace.is_some_and(|n| !n.deleting) && !has_default
}

struct DefaultAccounts {
    shards: Arc<ShardMap>,
    scheme: Arc<crate::registry::Scheme>,
    /// The `default` accounts (keys only).
    accounts: Reflector<()>,
}

impl Reconciler for DefaultAccounts {
    /// A namespace.
    type Key = ObjectKey;

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, Error> {
        let found = self.shards.iter().find_map(|shard| {
            let state = shard.namespaces.reflector().get(key)?;
            Some((shard.clone(), state))
        });
        let account = ObjectKey::new(
            key.cluster.clone(),
            SERVICE_ACCOUNTS,
            key.name.clone(),
            DEFAULT,
        );
        let has_default = self.accounts.contains(&account);
        let Some((shard, state)) = found else {
            return Ok(Action::await_change());
        };
        if !needs_default_account(Some(&state), has_default) {
            return Ok(Action::await_change());
        }
        let rt = committer::builtin(&self.scheme, "", "v1", "serviceaccounts")?;
        let object = json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": DEFAULT},
        });
        // Already there (the reflector had not seen it yet) is as good as created.
        committer::create(&shard.store, rt, &key.cluster, Some(&key.name), object).await?;
        Ok(Action::await_change())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_namespaces_without_an_account_get_one() {
        let live = NamespaceState { deleting: false };
        let going = NamespaceState { deleting: true };
        assert!(needs_default_account(Some(&live), false));
        assert!(!needs_default_account(Some(&live), true));
        assert!(!needs_default_account(Some(&going), false));
        assert!(!needs_default_account(None, false));
    }
}
