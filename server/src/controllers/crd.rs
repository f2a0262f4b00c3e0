//! The CustomResourceDefinition controller, as kube-apiserver's apiextensions controllers:
//! - names: a CRD whose names clash with an accepted CRD of the same group in its workspace
//!   gets `NamesAccepted=False`; otherwise its names are accepted and it is `Established`
//!   (its resources are then served and discovered), and its storage version is recorded in
//!   `status.storedVersions`;
//! - cleanup: a deleted CRD (held by the `customresourcecleanup.apiextensions.k8s.io`
//!   finalizer) is `Terminating` while its objects are deleted; then the finalizer goes.
//!
//! The decisions are the pure functions [`desired_status`] and [`conflicts`]; `reconcile`
//! only reads and writes. Woken by every CRD change; waiting deletions are retried every
//! second, and everything is looked at every 30 s.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use trellis_storage::{ListRequest, ListScope, Preconditions, StorageError, Store, StoredObject};

use crate::deletion::{self, Deleted};
use crate::object_meta::now_rfc3339;
use crate::registry::custom::{resource_types, CRD_RESOURCE};
use crate::registry::Registry;

/// Held on every CRD until its objects are gone.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";
const RETRY: Duration = Duration::from_secs(1);
const RESYNC: Duration = Duration::from_secs(30);

pub async fn run(store: Store, registry: Arc<Registry>) {
    loop {
        let watch = store
            .watch(ListScope::all_clusters(CRD_RESOURCE), None)
            .await;
        let mut waiting = match resync(&store, &registry).await {
            Ok(waiting) => waiting,
            Err(err) => {
                tracing::warn!(error = %err, "crd controller: resync failed");
                true
            }
        };
        let Ok(mut watch) = watch else {
            tokio::time::sleep(RETRY).await;
            continue;
        };
        loop {
            let wait = if waiting { RETRY } else { RESYNC };
            match tokio::time::timeout(wait, watch.next()).await {
                Ok(Some(Ok(event))) => {
                    if event.kind == trellis_storage::EventType::Deleted {
                        continue;
                    }
                    match reconcile(&store, &registry, &event.object).await {
                        Ok(again) => waiting |= again,
                        Err(err) => {
                            tracing::warn!(crd = %event.object.key.name, error = %err, "crd controller: will retry");
                            waiting = true;
                        }
                    }
                }
                // The watch ended or fell behind, or it is time to look at everything.
                _ => break,
            }
        }
    }
}

/// Reconciles every CRD; whether any is waiting for its objects to go.
async fn resync(store: &Store, registry: &Registry) -> Result<bool, StorageError> {
    let crds = store
        .list(ListRequest::new(ListScope::all_clusters(CRD_RESOURCE)))
        .await?;
    let mut waiting = false;
    for crd in &crds.items {
        match reconcile(store, registry, crd).await {
            Ok(again) => waiting |= again,
            Err(err) => {
                tracing::warn!(crd = %crd.key.name, error = %err, "crd controller: will retry");
                waiting = true;
            }
        }
    }
    Ok(waiting)
}

fn parse(stored: &StoredObject) -> Result<Value, StorageError> {
    serde_json::from_slice(&stored.value)
        .map_err(|e| StorageError::Internal(format!("stored CRD is not JSON: {e}")))
}

/// One step for one CRD (as `stored` was when the event was sent); whether to look again soon.
pub async fn reconcile(
    store: &Store,
    registry: &Registry,
    stored: &StoredObject,
) -> Result<bool, StorageError> {
    // The event may be old: act on the current state.
    let stored = match store.get(&stored.key).await {
        Ok(current) => current,
        Err(StorageError::NotFound(_)) => return Ok(false),
        Err(e) => return Err(e),
    };
    let crd = parse(&stored)?;
    let cluster = stored.key.cluster.clone();
    if deletion::is_deleting(&crd) {
        return clean_up(store, registry, &stored, crd).await;
    }
    let others = store
        .list(ListRequest::new(ListScope::cluster(
            cluster.clone(),
            CRD_RESOURCE,
        )))
        .await?;
    let others: Vec<Value> = others
        .items
        .iter()
        .filter(|o| o.key.name != stored.key.name)
        .filter_map(|o| serde_json::from_slice(&o.value).ok())
        .collect();
    let status = desired_status(&crd, &others, &now_rfc3339());
    if crd.get("status") == Some(&status) {
        return Ok(false);
    }
    let mut updated = crd;
    updated["status"] = status;
    write(store, &stored, &updated).await?;
    registry.invalidate(&cluster);
    Ok(false)
}

async fn write(store: &Store, stored: &StoredObject, object: &Value) -> Result<(), StorageError> {
    let bytes =
        Bytes::from(serde_json::to_vec(object).map_err(|e| StorageError::Internal(e.to_string()))?);
    match store
        .update(
            stored.key.clone(),
            bytes,
            Preconditions::revision(stored.revision),
        )
        .await
    {
        // Changed meanwhile: the change's own event brings it back here.
        Ok(_) | Err(StorageError::Conflict { .. } | StorageError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Deletes the CRD's objects; once none is left, drops the finalizer.
async fn clean_up(
    store: &Store,
    registry: &Registry,
    stored: &StoredObject,
    mut crd: Value,
) -> Result<bool, StorageError> {
    if !has_finalizer(&crd) {
        return Ok(false);
    }
    let Some(rt) = resource_types(&json_with_accepted(&crd)).into_iter().next() else {
        return deletion::remove_finalizer(store, stored, CLEANUP_FINALIZER)
            .await
            .map(|()| false);
    };
    let now = now_rfc3339();
    if set_condition(
        &mut crd,
        "Terminating",
        "True",
        "InstanceDeletionInProgress",
        "CustomResource deletion is in progress",
        &now,
    ) {
        write(store, stored, &crd).await?;
        registry.invalidate(&stored.key.cluster);
        return Ok(true);
    }
    let scope = ListScope::cluster(stored.key.cluster.clone(), rt.storage_resource());
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
            Err(e) => return Err(e),
        }
    }
    if remaining > 0 {
        return Ok(true);
    }
    deletion::remove_finalizer(store, stored, CLEANUP_FINALIZER).await?;
    registry.invalidate(&stored.key.cluster);
    Ok(false)
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
