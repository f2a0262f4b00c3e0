//! The workspace controller's decisions: pure functions of a Workspace (and what the
//! controller found out), each with its tests. The controller ([`super`]) reads, calls these,
//! and writes what they return.

use serde_json::{json, Value};

use crate::machinery::deletion;
use crate::tenancy::workspaces::{Phase, CONTENT_FINALIZER};

/// What a Workspace needs next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing: Ready, or not ours to act on (no cluster id, no finalizer).
    Nothing,
    /// Choose its shard.
    Schedule,
    /// Create its logical cluster's content on `shard`, then mark it Ready.
    Initialize { shard: String },
    /// Delete its children, then its content, then let it go.
    Terminate,
}

/// The workspace's logical cluster id.
pub fn cluster_of(workspace: &Value) -> Option<&str> {
    workspace.pointer("/spec/cluster").and_then(Value::as_str)
}

pub fn decide(workspace: &Value) -> Step {
    if cluster_of(workspace).is_none() {
        return Step::Nothing;
    }
    if deletion::is_deleting(workspace) {
        return match has_content_finalizer(workspace) {
            true => Step::Terminate,
            false => Step::Nothing,
        };
    }
    match Phase::parse(workspace) {
        Phase::Scheduling | Phase::Initializing => {
            match workspace.pointer("/status/shard").and_then(Value::as_str) {
                Some(shard) => Step::Initialize {
                    shard: shard.to_string(),
                },
                None => Step::Schedule,
            }
        }
        Phase::Ready | Phase::Terminating => Step::Nothing,
    }
}

fn has_content_finalizer(workspace: &Value) -> bool {
    workspace
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|x| x.as_str() == Some(CONTENT_FINALIZER)))
}

fn status_of(workspace: &Value) -> Value {
    workspace
        .get("status")
        .filter(|s| s.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}))
}

/// The status after scheduling: the shard chosen, or why there is none (`None`: the status
/// says so already).
pub fn scheduled_status(workspace: &Value, placed: Option<&str>, now: &str) -> Option<Value> {
    let mut status = status_of(workspace);
    match placed {
        Some(shard) => {
            status["shard"] = json!(shard);
            status["conditions"] = json!([]);
        }
        None => {
            if workspace.pointer("/status/conditions/0/reason") == Some(&json!("Unschedulable")) {
                return None;
            }
            status["conditions"] = json!([{
                "type": "Scheduled", "status": "False", "reason": "Unschedulable",
                "message": "no shard matches spec.location.selector",
                "lastTransitionTime": now,
            }]);
        }
    }
    Some(status)
}

/// The `LogicalCluster` object a new workspace `name` (in `parent`, at `path`) gets inside
/// it; the server-set metadata (uid, creation time) is the committer's.
pub fn logical_cluster(path: &str, name: &str, parent: &str, workspace_uid: &str) -> Value {
    json!({
        "apiVersion": "core.trellis.dev/v1alpha1",
        "kind": "LogicalCluster",
        "metadata": {
            "name": "cluster",
            "annotations": {trellis_apis::PATH_ANNOTATION: path},
        },
        "spec": {"owner": {"name": name, "cluster": parent, "uid": workspace_uid}},
        "status": {"phase": "Ready"},
    })
}

/// The status of an initialized workspace, served at `url`.
pub fn ready_status(workspace: &Value, url: &str, now: &str) -> Value {
    json!({
        "phase": "Ready",
        "url": url,
        "shard": workspace.pointer("/status/shard").cloned(),
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "Initialized",
            "message": "the workspace is ready", "lastTransitionTime": now,
        }],
    })
}

/// What a terminating workspace waits for, as its status says it (`None`: it says so
/// already); `None` as well when nothing is left.
pub fn terminating_status(
    workspace: &Value,
    children: usize,
    objects: usize,
    now: &str,
) -> Option<Value> {
    if children == 0 && objects == 0 {
        return None;
    }
    let message =
        format!("waiting for {children} child workspaces and {objects} objects to be deleted");
    let phase_known =
        workspace.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating");
    let same = workspace
        .pointer("/status/conditions/0/message")
        .and_then(Value::as_str)
        == Some(message.as_str());
    if phase_known && same {
        return None;
    }
    let mut status = status_of(workspace);
    status["phase"] = json!("Terminating");
    status["conditions"] = json!([{
        "type": "ContentDeleted", "status": "False", "reason": "DeletionInProgress",
        "message": message, "lastTransitionTime": now,
    }]);
    Some(status)
}

/// The workspace without the content finalizer: once its content is gone, it may go.
pub fn without_content_finalizer(workspace: &Value) -> Value {
    let mut workspace = workspace.clone();
    if let Some(list) = workspace
        .pointer_mut("/metadata/finalizers")
        .and_then(Value::as_array_mut)
    {
        list.retain(|f| f.as_str() != Some(CONTENT_FINALIZER));
    }
    workspace
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(phase: &str) -> Value {
        json!({"apiVersion": "tenancy.trellis.dev/v1alpha1", "kind": "Workspace",
            "metadata": {"name": "acme", "finalizers": [CONTENT_FINALIZER]},
            "spec": {"cluster": "abc", "type": {"name": "universal"}},
            "status": {"phase": phase}})
    }

    #[test]
    fn each_phase_has_its_step() {
        assert_eq!(decide(&workspace("Scheduling")), Step::Schedule);
        let mut placed = workspace("Scheduling");
        placed["status"]["shard"] = json!("s1");
        assert_eq!(decide(&placed), Step::Initialize { shard: "s1".into() });
        assert_eq!(decide(&workspace("Ready")), Step::Nothing);
        let mut deleting = workspace("Ready");
        deleting["metadata"]["deletionTimestamp"] = json!("t");
        assert_eq!(decide(&deleting), Step::Terminate);
        assert_eq!(decide(&without_content_finalizer(&deleting)), Step::Nothing);
        let mut no_cluster = workspace("Scheduling");
        no_cluster["spec"]
            .as_object_mut()
            .unwrap()
            .remove("cluster");
        assert_eq!(decide(&no_cluster), Step::Nothing);
    }

    #[test]
    fn scheduling_records_the_shard_or_says_once_why_not() {
        let ws = workspace("Scheduling");
        let placed = scheduled_status(&ws, Some("s1"), "t").unwrap();
        assert_eq!(placed["shard"], "s1");
        assert_eq!(placed["phase"], "Scheduling");
        let unplaced = scheduled_status(&ws, None, "t").unwrap();
        assert_eq!(unplaced["conditions"][0]["reason"], "Unschedulable");
        let mut told = ws.clone();
        told["status"] = unplaced;
        assert_eq!(scheduled_status(&told, None, "t2"), None, "said already");
    }

    #[test]
    fn initialization_makes_the_logical_cluster_and_a_ready_status() {
        let lc = logical_cluster("root:acme", "acme", "root", "u1");
        assert_eq!(
            lc["metadata"]["annotations"][trellis_apis::PATH_ANNOTATION],
            "root:acme"
        );
        assert_eq!(
            lc["spec"]["owner"],
            json!({"name": "acme", "cluster": "root", "uid": "u1"})
        );
        let mut placed = workspace("Scheduling");
        placed["status"]["shard"] = json!("s1");
        let ready = ready_status(&placed, "https://hub/clusters/root:acme", "t");
        assert_eq!(ready["phase"], "Ready");
        assert_eq!(ready["shard"], "s1");
        assert_eq!(ready["url"], "https://hub/clusters/root:acme");
    }

    #[test]
    fn termination_reports_progress_once_per_change() {
        let mut deleting = workspace("Ready");
        deleting["metadata"]["deletionTimestamp"] = json!("t");
        let waiting = terminating_status(&deleting, 2, 0, "t").unwrap();
        assert_eq!(waiting["phase"], "Terminating");
        assert_eq!(
            waiting["conditions"][0]["message"],
            "waiting for 2 child workspaces and 0 objects to be deleted"
        );
        let mut shown = deleting.clone();
        shown["status"] = waiting;
        assert_eq!(terminating_status(&shown, 2, 0, "t2"), None);
        assert!(terminating_status(&shown, 0, 5, "t2").is_some());
        assert_eq!(terminating_status(&shown, 0, 0, "t2"), None, "nothing left");
    }
}
