//! The garbage collector's decisions, as kube-controller-manager's collector takes them: pure
//! functions of an object's graph node and what its owners turned out to be, each with its
//! tests.

use serde_json::Value;

use super::graph::Node;
use crate::machinery::deletion::{Propagation, FOREGROUND, ORPHAN};

/// What a dependent's owner turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerState {
    Present,
    /// Gone, or replaced by another object of the same name (another uid).
    Gone,
    /// Being deleted in the foreground: its dependents go first.
    Foreground,
    /// Being deleted, orphaning its dependents.
    Orphaning,
    /// Of a kind not served in the workspace: never presumed gone.
    Unknown,
}

/// What to do with a dependent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DependentAction {
    Nothing,
    Delete(Propagation),
    /// Drop its references to these owner uids.
    DropRefs(Vec<String>),
}

/// A dependent (`node`) given each of its owners (uid, state).
pub fn dependent_action(node: &Node, owners: &[(String, OwnerState)]) -> DependentAction {
    if owners.iter().any(|(_, s)| *s == OwnerState::Foreground) {
        return DependentAction::Delete(Propagation::Foreground);
    }
    if !owners.is_empty() && owners.iter().all(|(_, s)| *s == OwnerState::Gone) {
        return match node.deleting {
            // Going already.
            true => DependentAction::Nothing,
            false => DependentAction::Delete(Propagation::Background),
        };
    }
    let orphaning: Vec<String> = owners
        .iter()
        .filter(|(_, s)| *s == OwnerState::Orphaning)
        .map(|(uid, _)| uid.clone())
        .collect();
    if !orphaning.is_empty() {
        return DependentAction::DropRefs(orphaning);
    }
    DependentAction::Nothing
}

/// Whether an owner waiting on its dependents may let go: none is left.
pub fn owner_may_go(owner: &Node, dependents_left: usize) -> bool {
    owner.waits_on_dependents() && dependents_left == 0
}

/// The owner without the finalizers it waited on its dependents with.
pub fn released(owner: &Value) -> Value {
    let mut owner = owner.clone();
    if let Some(list) = owner
        .pointer_mut("/metadata/finalizers")
        .and_then(Value::as_array_mut)
    {
        list.retain(|f| !matches!(f.as_str(), Some(FOREGROUND | ORPHAN)));
    }
    owner
}

/// The dependent without its references to `uids` (an empty list is left out, as
/// Kubernetes does).
pub fn without_owner_refs(object: &Value, uids: &[String]) -> Value {
    let mut object = object.clone();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if let Some(refs) = meta
            .get_mut("ownerReferences")
            .and_then(Value::as_array_mut)
        {
            refs.retain(|r| {
                r.get("uid")
                    .and_then(Value::as_str)
                    .is_none_or(|u| !uids.iter().any(|x| x == u))
            });
            if refs.is_empty() {
                meta.remove("ownerReferences");
            }
        }
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dependent(deleting: bool) -> Node {
        Node {
            uid: "d".into(),
            owners: Vec::new(),
            deleting,
            foreground: false,
            orphan: false,
        }
    }

    fn owners(states: &[OwnerState]) -> Vec<(String, OwnerState)> {
        states
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("o{i}"), *s))
            .collect()
    }

    #[test]
    fn a_dependent_goes_when_all_its_owners_are_gone() {
        use OwnerState::*;
        assert_eq!(
            dependent_action(&dependent(false), &owners(&[Gone, Gone])),
            DependentAction::Delete(Propagation::Background)
        );
        assert_eq!(
            dependent_action(&dependent(false), &owners(&[Gone, Present])),
            DependentAction::Nothing
        );
        assert_eq!(
            dependent_action(&dependent(false), &owners(&[Gone, Unknown])),
            DependentAction::Nothing,
            "an unknown kind is never presumed gone"
        );
        assert_eq!(
            dependent_action(&dependent(true), &owners(&[Gone])),
            DependentAction::Nothing,
            "going already"
        );
        assert_eq!(
            dependent_action(&dependent(false), &[]),
            DependentAction::Nothing
        );
    }

    #[test]
    fn owners_being_deleted_take_or_leave_their_dependents() {
        use OwnerState::*;
        assert_eq!(
            dependent_action(&dependent(false), &owners(&[Present, Foreground])),
            DependentAction::Delete(Propagation::Foreground)
        );
        assert_eq!(
            dependent_action(&dependent(false), &owners(&[Present, Orphaning])),
            DependentAction::DropRefs(vec!["o1".into()])
        );
        let orphaned = without_owner_refs(
            &json!({"metadata": {"ownerReferences": [{"uid": "o1"}]}}),
            &["o1".into()],
        );
        assert_eq!(orphaned, json!({"metadata": {}}));
        let kept = without_owner_refs(
            &json!({"metadata": {"ownerReferences": [{"uid": "o1"}, {"uid": "o2"}]}}),
            &["o1".into()],
        );
        assert_eq!(kept["metadata"]["ownerReferences"], json!([{"uid": "o2"}]));
    }

    #[test]
    fn an_owner_lets_go_once_no_dependent_is_left() {
        let waiting = Node {
            deleting: true,
            foreground: true,
            ..dependent(true)
        };
        assert!(!owner_may_go(&waiting, 1));
        assert!(owner_may_go(&waiting, 0));
        assert!(
            !owner_may_go(&dependent(true), 0),
            "not waiting on anything"
        );
        let owner = json!({"metadata": {"finalizers": [FOREGROUND, "example.com/x", ORPHAN]}});
        assert_eq!(
            released(&owner)["metadata"]["finalizers"],
            json!(["example.com/x"])
        );
    }
}
