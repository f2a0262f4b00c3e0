//! Keeps each `Shard` object's `status.workspaces` at the number of workspaces placed on it.
//!
//! Wiring ([`wire`]): a reflector of the Shard objects (root workspace, root shard) and the
//! Workspace reflector the workspace controller reads too; every Workspace change adjusts a
//! count per shard (kept here, from the same changes, so a count is never behind the trigger)
//! and queues the shards it names before and after. The decision is [`desired_status`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use trellis_storage::{ListScope, ObjectKey, Store, StoredObject};

use super::runtime::committer::{self, parse};
use super::runtime::{Action, Change, Controller, Error, Reconciler, Reflector, Running};
use crate::tenancy::shards::{ROOT_SHARD, SHARDS};
use crate::tenancy::workspaces::index::entry_of;
use crate::tenancy::workspaces::ROOT_CLUSTER;

/// A look at every Shard now and then, whatever the triggers said.
const RESYNC: Duration = Duration::from_secs(60);

/// Starts the controller on `root` (the root shard's store), counting `workspaces`.
pub fn wire(
    running: &mut Running,
    root: Store,
    workspaces: &Reflector<StoredObject>,
    scheme: Arc<crate::registry::Scheme>,
) {
    let shards = Reflector::whole(
        "shards",
        ListScope::cluster(ROOT_CLUSTER, SHARDS),
        vec![(ROOT_SHARD.to_string(), root.clone())],
    );
    running.spawn(shards.run(running.token()));
    let counts: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let counting = counts.clone();
    let controller = Controller::new("shard")
        .for_objects(&shards, RESYNC)
        .watches(workspaces, move |change| {
            let (before, after) = placement(change);
            let mut counts = counting.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(shard) = &before {
                if let Some(count) = counts.get_mut(shard) {
                    *count = count.saturating_sub(1);
                }
            }
            if let Some(shard) = &after {
                *counts.entry(shard.clone()).or_default() += 1;
            }
            [before, after]
                .into_iter()
                .flatten()
                .map(|name| ObjectKey::new(ROOT_CLUSTER, SHARDS, "", name))
                .collect::<Vec<_>>()
        });
    let reconciler = ShardReconciler {
        store: root,
        scheme,
        shards,
        counts,
    };
    running.spawn(controller.run(Arc::new(reconciler), running.token()));
}

/// The shard a Workspace change moves a workspace off and onto.
fn placement(change: &Change<'_, StoredObject>) -> (Option<String>, Option<String>) {
    let shard = |stored: &Option<Arc<StoredObject>>| {
        let stored = stored.as_ref()?;
        let workspace: Value = serde_json::from_slice(&stored.value).ok()?;
        entry_of(&stored.key.cluster, &workspace)?.shard
    };
    (shard(&change.old), shard(&change.new))
}

struct ShardReconciler {
    store: Store,
    scheme: Arc<crate::registry::Scheme>,
    shards: Reflector<StoredObject>,
    counts: Arc<Mutex<HashMap<String, u64>>>,
}

impl Reconciler for ShardReconciler {
    type Key = ObjectKey;

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, Error> {
        let Some(stored) = self.shards.get(key) else {
            return Ok(Action::await_change());
        };
        let count = self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key.name)
            .copied()
            .unwrap_or(0);
        if let Some(status) = desired_status(&parse(&stored)?, count) {
            let rt = committer::builtin(
                &self.scheme,
                trellis_apis::core::GROUP,
                "v1alpha1",
                "shards",
            )?;
            committer::update_status(&self.store, rt, &stored, status).await?;
        }
        Ok(Action::await_change())
    }
}

/// The status a Shard should have when `count` workspaces are placed on it; `None` when it
/// has it.
pub fn desired_status(shard: &Value, count: u64) -> Option<Value> {
    if shard.pointer("/status/workspaces").and_then(Value::as_u64) == Some(count) {
        return None;
    }
    let mut status = shard
        .get("status")
        .filter(|s| s.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}));
    status["workspaces"] = json!(count);
    Some(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_is_written_only_when_it_changes() {
        let shard = json!({"metadata": {"name": "s1"}, "status": {"workspaces": 2}});
        assert_eq!(desired_status(&shard, 2), None);
        assert_eq!(desired_status(&shard, 3), Some(json!({"workspaces": 3})));
        let new = json!({"metadata": {"name": "s1"}});
        assert_eq!(desired_status(&new, 0), Some(json!({"workspaces": 0})));
    }

    fn workspace(shard: Option<&str>) -> Arc<StoredObject> {
        let value = json!({"metadata": {"name": "w"}, "spec": {"cluster": "abc"},
            "status": {"shard": shard}});
        Arc::new(StoredObject {
            key: ObjectKey::new("root", "tenancy.trellis.dev/workspaces", "", "w"),
            uid: "u".into(),
            create_revision: 1,
            revision: 1,
            value: value.to_string().into(),
        })
    }

    #[test]
    fn a_change_names_the_shards_before_and_after() {
        let key = ObjectKey::new("root", "tenancy.trellis.dev/workspaces", "", "w");
        let placed = Change {
            key: &key,
            uid: None,
            old: Some(workspace(None)),
            new: Some(workspace(Some("s1"))),
            deleted: false,
        };
        assert_eq!(placement(&placed), (None, Some("s1".into())));
        let deleted = Change {
            key: &key,
            uid: None,
            old: Some(workspace(Some("s1"))),
            new: None,
            deleted: true,
        };
        assert_eq!(placement(&deleted), (Some("s1".into()), None));
    }
}
