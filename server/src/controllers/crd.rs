//! The CustomResourceDefinition controller, as kube-apiserver's apiextensions controllers:
//! - names: a CRD whose names clash with an accepted CRD of the same group in its workspace
//!   gets `NamesAccepted=False`; otherwise its names are accepted and it is `Established`
//!   (its resources are then served and discovered), and its storage version is recorded in
//!   `status.storedVersions`;
//! - cleanup: a deleted CRD (held by the `customresourcecleanup.apiextensions.k8s.io`
//!   finalizer) is `Terminating` while its objects are deleted; then the finalizer goes.
//!
//! Wiring ([`wire`]): one reflector of every workspace's CRDs on every shard, keeping only
//! what name conflicts are decided on ([`names_of`]); a change queues the CRD and the other
//! CRDs of its group in its workspace (a rival's names may have been freed). The reconcile
//! reads the CRD itself from storage, so it acts on the current state. The decisions are the
//! pure functions [`desired_status`], [`conflicts`] and [`cleanup_step`].

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use trellis_storage::{
    ListRequest, ListScope, ObjectKey, Preconditions, StorageError, Store, StoredObject,
};

use super::runtime::committer::{self, parse};
use super::runtime::{every_shard, Action, Controller, Error, Reconciler, Reflector, Running};
use crate::crds::served::{resource_types, CRD_RESOURCE};
use crate::machinery::deletion::{self, Deleted};
use crate::machinery::object_meta::now_rfc3339;
use crate::registry::{Registry, ResourceType};
use crate::tenancy::shards::ShardMap;

/// Held on every CRD until its objects are gone.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";
/// How soon a CRD whose objects are still going is looked at again.
const RETRY: Duration = Duration::from_secs(1);
/// A look at every CRD now and then, whatever the triggers said.
const RESYNC: Duration = Duration::from_secs(300);

pub fn wire(running: &mut Running, shards: &ShardMap, registry: Arc<Registry>) {
    let crds = Reflector::new(
        "customresourcedefinitions",
        ListScope::all_clusters(CRD_RESOURCE),
        every_shard(shards),
        |stored| {
            serde_json::from_slice::<Value>(&stored.value)
                .ok()
                .map(|crd| names_of(&crd))
        },
    );
    running.spawn(crds.run(running.token()));
    let siblings = crds.clone();
    let controller = Controller::new("customresourcedefinition")
        .for_objects(&crds, RESYNC)
        .watches(&crds, move |change| {
            // Another CRD of the group may take the names this one had (or wanted).
            let groups: Vec<&Value> = [&change.old, &change.new]
                .into_iter()
                .flatten()
                .map(|names| &names["spec"]["group"])
                .collect();
            siblings
                .list_cluster(&change.key.cluster)
                .into_iter()
                .filter(|(key, names)| {
                    key != change.key && groups.contains(&&names["spec"]["group"])
                })
                .map(|(key, _)| key)
                .collect::<Vec<_>>()
        })
        .workers(4);
    let reconciler = CrdReconciler { crds, registry };
    running.spawn(controller.run(Arc::new(reconciler), running.token()));
}

/// What name conflicts are decided on: the group, the names a CRD asks for and those it was
/// given, in the shape [`conflicts`] reads.
pub fn names_of(crd: &Value) -> Value {
    json!({
        "spec": {"group": crd["spec"]["group"], "names": crd["spec"]["names"]},
        "status": {"acceptedNames": crd["status"]["acceptedNames"]},
    })
}

struct CrdReconciler {
    /// Each CRD's [`names_of`].
    crds: Reflector<Value>,
    registry: Arc<Registry>,
}

fn crd_type(registry: &Registry) -> Result<&ResourceType, Error> {
    committer::builtin(
        registry.scheme(),
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
    )
}

impl Reconciler for CrdReconciler {
    type Key = ObjectKey;

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, Error> {
        let Some((_, store)) = self.crds.shard_of(key) else {
            return Ok(Action::await_change());
        };
        // The reflector keeps names only: read the CRD as it is now.
        let stored = match store.get(key).await {
            Ok(stored) => stored,
            Err(StorageError::NotFound(_)) => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        };
        let crd = parse(&stored)?;
        if deletion::is_deleting(&crd) {
            return self.clean_up(store, &stored, crd).await;
        }
        let others: Vec<Value> = self
            .crds
            .list_cluster(&key.cluster)
            .into_iter()
            .filter(|(other, _)| other != key)
            .map(|(_, names)| (*names).clone())
            .collect();
        let status = desired_status(&crd, &others, &now_rfc3339());
        if crd.get("status") == Some(&status) {
            return Ok(Action::await_change());
        }
        committer::update_status(store, crd_type(&self.registry)?, &stored, status).await?;
        self.registry.invalidate(&key.cluster);
        Ok(Action::await_change())
    }
}

/// The next step of a CRD's cleanup.
#[derive(Debug)]
pub enum Cleanup {
    /// Not ours to clean (no finalizer).
    Nothing,
    /// Show that objects are being deleted: the CRD with its new status.
    MarkTerminating(Value),
    /// Delete the objects of this type.
    DeleteObjects(Box<ResourceType>),
    /// Nothing (left) to delete: the CRD without the finalizer.
    RemoveFinalizer(Value),
}

/// What to do next about the CRD `crd`, being deleted.
pub fn cleanup_step(crd: &Value, now: &str) -> Cleanup {
    if !has_finalizer(crd) {
        return Cleanup::Nothing;
    }
    let Some(rt) = resource_types(&json_with_accepted(crd)).into_iter().next() else {
        return Cleanup::RemoveFinalizer(without_finalizer(crd));
    };
    let mut marked = crd.clone();
    if set_condition(
        &mut marked,
        "Terminating",
        "True",
        "InstanceDeletionInProgress",
        "CustomResource deletion is in progress",
        now,
    ) {
        return Cleanup::MarkTerminating(marked);
    }
    Cleanup::DeleteObjects(Box::new(rt))
}

fn without_finalizer(crd: &Value) -> Value {
    let mut crd = crd.clone();
    if let Some(list) = crd
        .pointer_mut("/metadata/finalizers")
        .and_then(Value::as_array_mut)
    {
        list.retain(|f| f.as_str() != Some(CLEANUP_FINALIZER));
    }
    crd
}

impl CrdReconciler {
    /// Deletes the CRD's objects; once none is left, drops the finalizer.
    async fn clean_up(
        &self,
        store: &Store,
        stored: &StoredObject,
        crd: Value,
    ) -> Result<Action, Error> {
        let cluster = &stored.key.cluster;
        let rt = match cleanup_step(&crd, &now_rfc3339()) {
            Cleanup::Nothing => return Ok(Action::await_change()),
            Cleanup::MarkTerminating(desired) => {
                committer::update(store, crd_type(&self.registry)?, stored, desired).await?;
                self.registry.invalidate(cluster);
                return Ok(Action::requeue(RETRY));
            }
            Cleanup::RemoveFinalizer(desired) => {
                committer::update(store, crd_type(&self.registry)?, stored, desired).await?;
                self.registry.invalidate(cluster);
                return Ok(Action::await_change());
            }
            Cleanup::DeleteObjects(rt) => rt,
        };
        let scope = ListScope::cluster(cluster.clone(), rt.storage_resource());
        let mut remaining = 0;
        for item in store.list(ListRequest::new(scope)).await?.items {
            match deletion::delete(
                store,
                &rt,
                item.key.clone(),
                &item,
                Preconditions::none(),
                deletion::Propagation::Background,
            )
            .await
            {
                Ok(Deleted::Gone(_)) | Err(StorageError::NotFound(_)) => {}
                Ok(Deleted::Pending(_)) | Err(StorageError::Conflict { .. }) => remaining += 1,
                Err(e) => return Err(e.into()),
            }
        }
        if remaining > 0 {
            return Ok(Action::requeue(RETRY));
        }
        committer::update(
            store,
            crd_type(&self.registry)?,
            stored,
            without_finalizer(&crd),
        )
        .await?;
        self.registry.invalidate(cluster);
        Ok(Action::await_change())
    }
}

fn has_finalizer(crd: &Value) -> bool {
    crd.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|x| x.as_str() == Some(CLEANUP_FINALIZER)))
}

/// The CRD as if its names were accepted, to find its storage resource while it goes.
fn json_with_accepted(crd: &Value) -> Value {
    let mut crd = crd.clone();
    crd["status"]["conditions"] = json!([{"type": "NamesAccepted", "status": "True"}]);
    crd
}

/// Sets a condition; whether anything changed. The transition time moves only when the
/// status does.
fn set_condition(
    crd: &mut Value,
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &str,
) -> bool {
    if !crd.get("status").is_some_and(Value::is_object) {
        crd["status"] = json!({});
    }
    if !crd["status"].get("conditions").is_some_and(Value::is_array) {
        crd["status"]["conditions"] = json!([]);
    }
    let Some(conditions) = crd["status"]["conditions"].as_array_mut() else {
        return false;
    };
    let wanted = |time: &str| json!({"type": kind, "status": status, "lastTransitionTime": time, "reason": reason, "message": message});
    match conditions.iter_mut().find(|c| c["type"] == kind) {
        Some(existing) => {
            let time = if existing["status"] == status {
                existing["lastTransitionTime"]
                    .as_str()
                    .unwrap_or(now)
                    .to_string()
            } else {
                now.to_string()
            };
            let new = wanted(&time);
            if *existing == new {
                return false;
            }
            *existing = new;
        }
        None => conditions.push(wanted(now)),
    }
    true
}

/// The names `crd` claims: plural, singular, kind, list kind and short names.
fn claimed_names(names: &Value) -> Vec<(&'static str, String)> {
    let text = |field: &str| names[field].as_str().unwrap_or_default().to_string();
    let mut claimed = vec![
        ("plural", text("plural")),
        ("singular", text("singular")),
        ("kind", text("kind")),
        ("listKind", text("listKind")),
    ];
    if let Some(short) = names["shortNames"].as_array() {
        claimed.extend(
            short
                .iter()
                .filter_map(Value::as_str)
                .map(|s| ("shortNames", s.to_string())),
        );
    }
    claimed.retain(|(_, n)| !n.is_empty());
    claimed
}

/// What of `crd`'s names another accepted CRD of the same group already has, as
/// kube-apiserver's naming controller reports it (`"plural" is already in use`).
pub fn conflicts(crd: &Value, others: &[Value]) -> Vec<String> {
    let group = &crd["spec"]["group"];
    let mine = claimed_names(&crd["spec"]["names"]);
    let mut found = Vec::new();
    for other in others.iter().filter(|o| o["spec"]["group"] == *group) {
        let accepted = &other["status"]["acceptedNames"];
        if !accepted.is_object() {
            continue;
        }
        let theirs: Vec<String> = claimed_names(accepted)
            .into_iter()
            .map(|(_, n)| n)
            .collect();
        for (field, name) in &mine {
            if theirs.contains(name) {
                found.push(format!("{field} {name:?} is already in use"));
            }
        }
    }
    found
}

/// The status a CRD should have, given the other CRDs of its workspace.
pub fn desired_status(crd: &Value, others: &[Value], now: &str) -> Value {
    let mut target = crd.clone();
    let clashes = conflicts(crd, others);
    let mut names = crd["spec"]["names"].clone();
    if names.is_object() {
        if names.get("singular").is_none_or(|s| s.as_str() == Some("")) {
            let kind = names["kind"].as_str().unwrap_or_default().to_lowercase();
            names["singular"] = json!(kind);
        }
        if names.get("listKind").is_none() {
            let kind = names["kind"].as_str().unwrap_or_default();
            names["listKind"] = json!(format!("{kind}List"));
        }
    }
    if clashes.is_empty() {
        target["status"]["acceptedNames"] = names;
        set_condition(
            &mut target,
            "NamesAccepted",
            "True",
            "NoConflicts",
            "no conflicts found",
            now,
        );
        set_condition(
            &mut target,
            "Established",
            "True",
            "InitialNamesAccepted",
            "the initial names have been accepted",
            now,
        );
    } else {
        if target["status"].get("acceptedNames").is_none() {
            target["status"]["acceptedNames"] = json!({"plural": "", "kind": ""});
        }
        set_condition(
            &mut target,
            "NamesAccepted",
            "False",
            "NameConflict",
            &clashes.join(", "),
            now,
        );
        set_condition(
            &mut target,
            "Established",
            "False",
            "NotAccepted",
            "not all names are accepted",
            now,
        );
    }
    let storage = crd["spec"]["versions"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["storage"] == true))
        .and_then(|v| v["name"].as_str())
        .map(str::to_string);
    let mut stored: Vec<Value> = target["status"]["storedVersions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if let Some(storage) = storage {
        if !stored.iter().any(|v| v.as_str() == Some(&storage)) {
            stored.push(json!(storage));
        }
    }
    target["status"]["storedVersions"] = Value::Array(stored);
    target["status"].clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(plural: &str, kind: &str) -> Value {
        json!({
            "metadata": {"name": format!("{plural}.example.com")},
            "spec": {
                "group": "example.com",
                "names": {"plural": plural, "kind": kind, "shortNames": ["w"]},
                "versions": [{"name": "v1", "served": true, "storage": true}],
            },
        })
    }

    #[test]
    fn a_new_crd_is_accepted_and_established() {
        let status = desired_status(&crd("widgets", "Widget"), &[], "2026-11-27T06:00:00Z");
        assert_eq!(status["acceptedNames"]["singular"], "widget");
        assert_eq!(status["acceptedNames"]["listKind"], "WidgetList");
        assert_eq!(status["storedVersions"], json!(["v1"]));
        let conditions = status["conditions"].as_array().unwrap();
        assert!(conditions
            .iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True"));
        // Repeating the step changes nothing, times included.
        let mut again = crd("widgets", "Widget");
        again["status"] = status.clone();
        assert_eq!(desired_status(&again, &[], "2026-11-27T07:00:00Z"), status);
    }

    #[test]
    fn a_deleted_crd_is_marked_then_emptied_then_let_go() {
        let mut deleting = crd("widgets", "Widget");
        deleting["status"] = desired_status(&deleting, &[], "t");
        deleting["metadata"]["deletionTimestamp"] = json!("t2");
        deleting["metadata"]["finalizers"] = json!([CLEANUP_FINALIZER]);
        let Cleanup::MarkTerminating(marked) = cleanup_step(&deleting, "t3") else {
            panic!("expected the Terminating condition first")
        };
        let terminating = marked["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Terminating")
            .unwrap();
        assert_eq!(terminating["status"], "True");
        let Cleanup::DeleteObjects(rt) = cleanup_step(&marked, "t4") else {
            panic!("expected the objects to be deleted next")
        };
        assert_eq!(rt.storage_resource(), "example.com/widgets");
        // Its objects are gone (the controller saw none left): the finalizer goes.
        let let_go = without_finalizer(&marked);
        assert_eq!(let_go["metadata"]["finalizers"], json!([]));
        assert!(matches!(cleanup_step(&let_go, "t5"), Cleanup::Nothing));
    }

    #[test]
    fn names_of_keeps_what_conflicts_are_decided_on() {
        let mut first = crd("widgets", "Widget");
        first["status"] = desired_status(&first, &[], "t");
        let second = crd("gadgets", "Widget");
        assert_eq!(
            conflicts(&second, &[names_of(&first)]),
            conflicts(&second, &[first])
        );
    }

    #[test]
    fn clashing_names_are_not_accepted() {
        let mut first = crd("widgets", "Widget");
        first["status"] = desired_status(&first, &[], "t");
        let second = crd("gadgets", "Widget");
        let status = desired_status(&second, &[first], "t");
        let accepted = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "NamesAccepted")
            .unwrap();
        assert_eq!(accepted["status"], "False");
        let message = accepted["message"].as_str().unwrap();
        assert!(
            message.contains("kind \"Widget\" is already in use"),
            "{message}"
        );
        assert!(message.contains("shortNames \"w\""), "{message}");
    }
}
