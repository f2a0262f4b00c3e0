//! The owner graph the garbage collector works from: for every object that takes part in
//! garbage collection (it names owners, or it is being deleted waiting on its dependents),
//! what it names, and for every owner uid, which objects name it. Kept up to date from the
//! collector's reflectors, change by change, so a change costs its own objects, never a
//! pass over everything.
//!
//! Objects that neither name an owner nor wait on dependents are not in it at all: most
//! objects of a hub, which an owner only needs looked up (live) when a dependent names it.
//! Pure data structure, no I/O.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;
use trellis_storage::{ObjectKey, StoredObject};

use crate::machinery::deletion::{self, FOREGROUND, ORPHAN};

/// One `ownerReferences` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerRef {
    pub uid: String,
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

/// What the collector keeps of an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub uid: String,
    pub owners: Vec<OwnerRef>,
    pub deleting: bool,
    /// Being deleted once its dependents are (the `foregroundDeletion` finalizer).
    pub foreground: bool,
    /// Being deleted once its dependents no longer name it (the `orphan` finalizer).
    pub orphan: bool,
}

impl Node {
    /// Whether it waits on its dependents.
    pub fn waits_on_dependents(&self) -> bool {
        self.foreground || self.orphan
    }
}

/// What the collector keeps of a stored object: nothing unless it names owners or waits on
/// its dependents (a byte search first: most objects do neither and are not parsed).
pub fn node_of(stored: &StoredObject) -> Option<Node> {
    let value = &stored.value;
    if !contains(value, b"\"ownerReferences\"") && !contains(value, b"\"finalizers\"") {
        return None;
    }
    let object: Value = serde_json::from_slice(value).ok()?;
    let node = node_of_value(&stored.uid, &object);
    (!node.owners.is_empty() || node.waits_on_dependents()).then_some(node)
}

/// [`node_of`], of a parsed object.
pub fn node_of_value(uid: &str, object: &Value) -> Node {
    let deleting = deletion::is_deleting(object);
    let has = |name: &str| {
        object
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|x| x.as_str() == Some(name)))
    };
    Node {
        uid: uid.to_string(),
        owners: owner_refs(object),
        deleting,
        foreground: deleting && has(FOREGROUND),
        orphan: deleting && has(ORPHAN),
    }
}

/// An object's owner references (those with a uid).
pub fn owner_refs(object: &Value) -> Vec<OwnerRef> {
    let text = |r: &Value, field: &str| {
        r.get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter(|r| r.get("uid").and_then(Value::as_str).is_some())
                .map(|r| OwnerRef {
                    uid: text(r, "uid"),
                    api_version: text(r, "apiVersion"),
                    kind: text(r, "kind"),
                    name: text(r, "name"),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// Owner uid → dependents, and uid → key, of the objects kept.
#[derive(Default)]
pub struct Graph {
    dependents: HashMap<String, BTreeSet<ObjectKey>>,
    keys: HashMap<String, ObjectKey>,
}

impl Graph {
    /// Records the change of the object at `key` (uid `uid` when known) from `old` to `new`
    /// (what was and is kept of it); the keys of the objects it may give work to: the object
    /// itself, its owners (a dependent came or went) and its dependents (their owner changed
    /// or went).
    pub fn apply(
        &mut self,
        key: &ObjectKey,
        uid: Option<&str>,
        old: Option<&Node>,
        new: Option<&Node>,
    ) -> Vec<ObjectKey> {
        if let Some(old) = old {
            for owner in &old.owners {
                if let Some(dependents) = self.dependents.get_mut(&owner.uid) {
                    dependents.remove(key);
                    if dependents.is_empty() {
                        self.dependents.remove(&owner.uid);
                    }
                }
            }
            if self.keys.get(&old.uid) == Some(key) {
                self.keys.remove(&old.uid);
            }
        }
        if let Some(new) = new {
            for owner in &new.owners {
                self.dependents
                    .entry(owner.uid.clone())
                    .or_default()
                    .insert(key.clone());
            }
            self.keys.insert(new.uid.clone(), key.clone());
        }
        let mut affected: BTreeSet<ObjectKey> = BTreeSet::new();
        if new.is_some() {
            affected.insert(key.clone());
        }
        for owner in old.into_iter().chain(new).flat_map(|n| &n.owners) {
            if let Some(owner_key) = self.keys.get(&owner.uid) {
                affected.insert(owner_key.clone());
            }
        }
        let uid = uid
            .or(new.map(|n| n.uid.as_str()))
            .or(old.map(|n| n.uid.as_str()));
        if let Some(dependents) = uid.and_then(|uid| self.dependents.get(uid)) {
            affected.extend(dependents.iter().cloned());
        }
        affected.into_iter().collect()
    }

    /// The kept objects naming `uid` as an owner.
    pub fn dependents_of(&self, uid: &str) -> Vec<ObjectKey> {
        self.dependents
            .get(uid)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The key of the kept object with `uid`.
    pub fn key_of(&self, uid: &str) -> Option<&ObjectKey> {
        self.keys.get(uid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new("c1", "core/configmaps", "ns", name)
    }

    fn owned_by(uid: &str, owners: &[&str]) -> Node {
        Node {
            uid: uid.into(),
            owners: owners
                .iter()
                .map(|o| OwnerRef {
                    uid: o.to_string(),
                    api_version: "v1".into(),
                    kind: "ConfigMap".into(),
                    name: format!("owner-{o}"),
                })
                .collect(),
            deleting: false,
            foreground: false,
            orphan: false,
        }
    }

    #[test]
    fn only_objects_taking_part_are_kept() {
        let stored = |value: Value| StoredObject {
            key: key("x"),
            uid: "u".into(),
            create_revision: 1,
            revision: 1,
            value: value.to_string().into(),
        };
        assert_eq!(node_of(&stored(json!({"metadata": {"name": "x"}}))), None);
        let owned = node_of(&stored(json!({"metadata": {"ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "ou"}]}})))
        .unwrap();
        assert_eq!(owned.owners[0].uid, "ou");
        let waiting = node_of(&stored(json!({"metadata": {"deletionTimestamp": "t",
            "finalizers": [FOREGROUND]}})))
        .unwrap();
        assert!(waiting.foreground && !waiting.orphan);
        // A finalizer of someone else's: not ours to wait for.
        assert_eq!(
            node_of(&stored(json!({"metadata": {"deletionTimestamp": "t",
                "finalizers": ["example.com/x"]}}))),
            None
        );
    }

    #[test]
    fn changes_reach_the_object_its_owners_and_its_dependents() {
        let mut graph = Graph::default();
        // The owner waits on its dependents, so it is kept.
        let owner = Node {
            foreground: true,
            deleting: true,
            ..owned_by("o", &[])
        };
        assert_eq!(
            graph.apply(&key("owner"), Some("o"), None, Some(&owner)),
            [key("owner")]
        );
        // A new dependent: itself and its owner.
        let dependent = owned_by("d", &["o"]);
        assert_eq!(
            graph.apply(&key("dep"), Some("d"), None, Some(&dependent)),
            [key("dep"), key("owner")]
        );
        assert_eq!(graph.dependents_of("o"), [key("dep")]);
        // The owner changes: itself and its dependent.
        assert_eq!(
            graph.apply(&key("owner"), Some("o"), Some(&owner), Some(&owner)),
            [key("dep"), key("owner")]
        );
        // The dependent goes: its owner may now let go.
        assert_eq!(
            graph.apply(&key("dep"), Some("d"), Some(&dependent), None),
            [key("owner")]
        );
        assert!(graph.dependents_of("o").is_empty());
        // An owner that was never kept goes: the dependents naming it hear of it.
        graph.apply(
            &key("dep2"),
            Some("d2"),
            None,
            Some(&owned_by("d2", &["x"])),
        );
        assert_eq!(
            graph.apply(&key("plain"), Some("x"), None, None),
            [key("dep2")]
        );
        assert_eq!(graph.key_of("d2"), Some(&key("dep2")));
    }
}
