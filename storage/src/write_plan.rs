//! Evaluating a batch of writes against the current state: the heart of group commit.
//!
//! A backend locks the shard's revision, reads the current rows of every key in the batch, and
//! hands both to [`plan`]. Every operation is decided here, in order, in memory: one that fails
//! (AlreadyExists, NotFound, Conflict) gets its error without disturbing the others, and the
//! successful ones get consecutive revisions. The backend then writes the plan's rows and events
//! in the same transaction. Pure function, no I/O.

use std::collections::HashMap;

use bytes::Bytes;

use crate::error::StorageError;
use crate::key::ObjectKey;
use crate::object::{Event, EventType, StoredObject};

/// Conditions an update or delete requires of the stored object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preconditions {
    /// The object's current revision must equal this.
    pub revision: Option<u64>,
    /// The object's uid must equal this.
    pub uid: Option<String>,
}

impl Preconditions {
    pub fn none() -> Self {
        Self::default()
    }

    pub fn revision(revision: u64) -> Self {
        Self {
            revision: Some(revision),
            uid: None,
        }
    }

    /// Whether `current` meets them; the error a write against it would fail with.
    pub fn check(&self, current: &StoredObject) -> Result<(), StorageError> {
        let conflict = |reason: String| StorageError::Conflict {
            key: describe(&current.key),
            reason,
        };
        if let Some(rev) = self.revision {
            if rev != current.revision {
                return Err(conflict(format!(
                    "expected revision {rev}, object is at {}",
                    current.revision
                )));
            }
        }
        if let Some(uid) = &self.uid {
            if *uid != current.uid {
                return Err(conflict(Self::uid_failure(uid, &current.uid)));
            }
        }
        Ok(())
    }

    /// Why a write whose uid precondition is `wanted` fails on an object whose uid is `actual`,
    /// in kube-apiserver's words.
    pub fn uid_failure(wanted: &str, actual: &str) -> String {
        format!("Precondition failed: UID in precondition: {wanted}, UID in object meta: {actual}")
    }
}

/// One write in a batch.
#[derive(Clone, Debug)]
pub enum WriteOp {
    Create {
        key: ObjectKey,
        uid: String,
        value: Bytes,
    },
    Update {
        key: ObjectKey,
        value: Bytes,
        preconditions: Preconditions,
    },
    Delete {
        key: ObjectKey,
        preconditions: Preconditions,
    },
}

impl WriteOp {
    /// `create`, `update` or `delete`.
    pub fn verb(&self) -> &'static str {
        match self {
            WriteOp::Create { .. } => "create",
            WriteOp::Update { .. } => "update",
            WriteOp::Delete { .. } => "delete",
        }
    }

    pub fn key(&self) -> &ObjectKey {
        match self {
            WriteOp::Create { key, .. }
            | WriteOp::Update { key, .. }
            | WriteOp::Delete { key, .. } => key,
        }
    }
}

/// What a batch does, once decided.
#[derive(Debug, Default)]
pub(crate) struct WritePlan {
    /// One per operation, in the order given.
    pub outcomes: Vec<Result<StoredObject, StorageError>>,
    /// The changes, with consecutive revisions starting at the old revision + 1.
    pub events: Vec<Event>,
    /// Final state of every key the batch created that did not exist before it.
    pub inserts: Vec<StoredObject>,
    /// Final state of every key that existed before the batch and still exists after it.
    pub updates: Vec<StoredObject>,
    /// Keys the batch leaves absent that existed before it.
    pub deletes: Vec<ObjectKey>,
    /// The shard revision after the batch.
    pub revision: u64,
}

pub(crate) fn describe(key: &ObjectKey) -> String {
    if key.namespace.is_empty() {
        format!("{}/{}", key.resource, key.name)
    } else {
        format!("{}/{}/{}", key.resource, key.namespace, key.name)
    }
}

/// Decides a batch. `current` holds the stored row of every key the batch touches that exists.
pub(crate) fn plan(
    current_revision: u64,
    mut current: HashMap<ObjectKey, StoredObject>,
    ops: &[WriteOp],
) -> WritePlan {
    let existed: std::collections::HashSet<ObjectKey> = current.keys().cloned().collect();
    let mut touched: Vec<ObjectKey> = Vec::new();
    let mut revision = current_revision;
    let mut outcomes = Vec::with_capacity(ops.len());
    let mut events = Vec::new();

    for op in ops {
        let key = op.key();
        let outcome = match op {
            WriteOp::Create { uid, value, .. } => {
                if current.contains_key(key) {
                    Err(StorageError::AlreadyExists(describe(key)))
                } else {
                    revision += 1;
                    let object = StoredObject {
                        key: key.clone(),
                        uid: uid.clone(),
                        create_revision: revision,
                        revision,
                        value: value.clone(),
                    };
                    events.push(Event {
                        kind: EventType::Added,
                        object: object.clone(),
                        prev: None,
                        encoding: Default::default(),
                    });
                    current.insert(key.clone(), object.clone());
                    Ok(object)
                }
            }
            WriteOp::Update {
                value,
                preconditions,
                ..
            } => match current.get(key) {
                None => Err(StorageError::NotFound(describe(key))),
                Some(existing) => match preconditions.check(existing) {
                    Err(e) => Err(e),
                    // Writing identical bytes changes nothing: no new revision, no event.
                    Ok(()) if existing.value == *value => Ok(existing.clone()),
                    Ok(()) => {
                        revision += 1;
                        let object = StoredObject {
                            value: value.clone(),
                            revision,
                            ..existing.clone()
                        };
                        events.push(Event {
                            kind: EventType::Modified,
                            object: object.clone(),
                            prev: Some(existing.clone()),
                            encoding: Default::default(),
                        });
                        current.insert(key.clone(), object.clone());
                        Ok(object)
                    }
                },
            },
            WriteOp::Delete { preconditions, .. } => match current.get(key) {
                None => Err(StorageError::NotFound(describe(key))),
                Some(existing) => match preconditions.check(existing) {
                    Err(e) => Err(e),
                    Ok(()) => {
                        revision += 1;
                        let object = StoredObject {
                            revision,
                            ..existing.clone()
                        };
                        events.push(Event {
                            kind: EventType::Deleted,
                            object: object.clone(),
                            prev: Some(existing.clone()),
                            encoding: Default::default(),
                        });
                        current.remove(key);
                        Ok(object)
                    }
                },
            },
        };
        if outcome.is_ok() && !touched.contains(key) {
            touched.push(key.clone());
        }
        outcomes.push(outcome);
    }

    let (mut inserts, mut updates, mut deletes) = (Vec::new(), Vec::new(), Vec::new());
    for key in touched {
        match (current.remove(&key), existed.contains(&key)) {
            (Some(object), false) => inserts.push(object),
            (Some(object), true) => updates.push(object),
            (None, true) => deletes.push(key),
            (None, false) => {}
        }
    }
    WritePlan {
        outcomes,
        events,
        inserts,
        updates,
        deletes,
        revision,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new("c1", "core/configmaps", "default", name)
    }

    fn stored(name: &str, rev: u64, value: &str) -> StoredObject {
        StoredObject {
            key: key(name),
            uid: format!("uid-{name}"),
            create_revision: rev,
            revision: rev,
            value: Bytes::from(value.to_string()),
        }
    }

    fn create(name: &str) -> WriteOp {
        WriteOp::Create {
            key: key(name),
            uid: format!("uid-{name}"),
            value: Bytes::from_static(b"{}"),
        }
    }

    #[test]
    fn successful_ops_get_consecutive_revisions_and_failures_do_not_consume_one() {
        let current = HashMap::from([(key("a"), stored("a", 5, "{}"))]);
        let ops = vec![
            create("a"),
            create("b"),
            WriteOp::Update {
                key: key("b"),
                value: Bytes::from_static(b"{\"x\":1}"),
                preconditions: Preconditions::revision(11),
            },
            WriteOp::Delete {
                key: key("a"),
                preconditions: Preconditions::revision(5),
            },
        ];
        let plan = plan(10, current, &ops);
        assert!(matches!(
            plan.outcomes[0],
            Err(StorageError::AlreadyExists(_))
        ));
        assert_eq!(plan.outcomes[1].as_ref().unwrap().revision, 11);
        assert_eq!(plan.outcomes[2].as_ref().unwrap().revision, 12);
        assert_eq!(plan.outcomes[2].as_ref().unwrap().create_revision, 11);
        assert_eq!(plan.outcomes[3].as_ref().unwrap().revision, 13);
        assert_eq!(plan.revision, 13);
        let revs: Vec<u64> = plan.events.iter().map(Event::revision).collect();
        assert_eq!(revs, vec![11, 12, 13]);
        assert_eq!(plan.events[1].prev.as_ref().unwrap().revision, 11);
        assert!(plan.updates.is_empty());
        assert_eq!(plan.inserts.len(), 1);
        assert_eq!(plan.inserts[0].revision, 12);
        assert_eq!(plan.deletes, vec![key("a")]);
    }

    #[test]
    fn preconditions_conflict() {
        let current = HashMap::from([(key("a"), stored("a", 5, "{}"))]);
        let ops = vec![
            WriteOp::Update {
                key: key("a"),
                value: Bytes::from_static(b"{\"y\":1}"),
                preconditions: Preconditions::revision(4),
            },
            WriteOp::Delete {
                key: key("a"),
                preconditions: Preconditions {
                    revision: None,
                    uid: Some("someone-else".into()),
                },
            },
            WriteOp::Update {
                key: key("missing"),
                value: Bytes::from_static(b"{}"),
                preconditions: Preconditions::none(),
            },
        ];
        let plan = plan(5, current, &ops);
        assert!(matches!(
            plan.outcomes[0],
            Err(StorageError::Conflict { .. })
        ));
        assert!(matches!(
            plan.outcomes[1],
            Err(StorageError::Conflict { .. })
        ));
        assert!(matches!(plan.outcomes[2], Err(StorageError::NotFound(_))));
        assert!(plan.events.is_empty() && plan.inserts.is_empty() && plan.deletes.is_empty());
        assert!(plan.updates.is_empty());
        assert_eq!(plan.revision, 5);
    }

    #[test]
    fn identical_update_is_a_no_op() {
        let current = HashMap::from([(key("a"), stored("a", 5, "{\"v\":1}"))]);
        let ops = vec![WriteOp::Update {
            key: key("a"),
            value: Bytes::from_static(b"{\"v\":1}"),
            preconditions: Preconditions::none(),
        }];
        let plan = plan(9, current, &ops);
        assert_eq!(plan.outcomes[0].as_ref().unwrap().revision, 5);
        assert!(plan.events.is_empty());
        assert_eq!(plan.revision, 9);
    }

    #[test]
    fn recreating_an_existing_key_in_one_batch_is_an_update_of_its_row() {
        let current = HashMap::from([(key("a"), stored("a", 5, "{}"))]);
        let ops = vec![
            WriteOp::Delete {
                key: key("a"),
                preconditions: Preconditions::none(),
            },
            WriteOp::Create {
                key: key("a"),
                uid: "uid-new".into(),
                value: Bytes::from_static(b"{\"new\":true}"),
            },
        ];
        let plan = plan(5, current, &ops);
        assert!(plan.inserts.is_empty() && plan.deletes.is_empty());
        assert_eq!(plan.updates.len(), 1);
        assert_eq!(plan.updates[0].uid, "uid-new");
        assert_eq!(plan.updates[0].create_revision, 7);
    }

    #[test]
    fn create_then_delete_in_one_batch_leaves_nothing_to_write_but_two_events() {
        let ops = vec![
            create("a"),
            WriteOp::Delete {
                key: key("a"),
                preconditions: Preconditions::none(),
            },
        ];
        let plan = plan(0, HashMap::new(), &ops);
        assert_eq!(plan.events.len(), 2);
        assert_eq!(plan.events[1].kind, EventType::Deleted);
        assert!(plan.inserts.is_empty() && plan.updates.is_empty() && plan.deletes.is_empty());
    }
}
