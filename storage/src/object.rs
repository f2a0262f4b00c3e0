//! Stored objects and the change events a watch yields.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::error::StorageError;
use crate::key::ObjectKey;

/// One object as stored: its key, identity, revisions and JSON value.
///
/// `revision` is the revision of the object's last write (Kubernetes' `metadata.resourceVersion`);
/// for an object returned by a delete, or carried by a `Deleted` event, it is the revision of the
/// deletion, as etcd-backed Kubernetes reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    pub key: ObjectKey,
    pub uid: String,
    pub create_revision: u64,
    pub revision: u64,
    /// A JSON object, as written.
    pub value: Bytes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub(crate) fn code(self) -> i16 {
        match self {
            EventType::Added => 0,
            EventType::Modified => 1,
            EventType::Deleted => 2,
        }
    }

    pub(crate) fn from_code(code: i64) -> Result<Self, StorageError> {
        match code {
            0 => Ok(EventType::Added),
            1 => Ok(EventType::Modified),
            2 => Ok(EventType::Deleted),
            other => Err(StorageError::Internal(format!(
                "unknown event kind {other}"
            ))),
        }
    }
}

/// One change. `object.revision` is the revision of the change; `prev` is the object as it was
/// just before (absent for `Added`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventType,
    pub object: StoredObject,
    pub prev: Option<StoredObject>,
    /// Shared by every clone of this event, so by every watcher the hub hands it to.
    pub encoding: SharedEncoding,
}

/// A slot for the bytes a reader derives from an event (the API server's watch line), filled
/// by the first watcher and reused by the others: with many watchers of the same changes, the
/// encoding is done once per event instead of once per watcher. What the bytes mean is up to
/// the reader; storage never looks at them. Events read from the log by one watcher (catching
/// up) get a slot of their own.
#[derive(Clone, Default)]
pub struct SharedEncoding(Arc<OnceLock<Bytes>>);

impl SharedEncoding {
    /// The bytes in the slot, computing them with `encode` if no watcher has yet.
    pub fn get_or_init(&self, encode: impl FnOnce() -> Bytes) -> Bytes {
        self.0.get_or_init(encode).clone()
    }
}

/// A cache, not part of the change: two events are equal whatever their slots hold.
impl PartialEq for SharedEncoding {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for SharedEncoding {}

impl std::fmt::Debug for SharedEncoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedEncoding")
    }
}

impl Event {
    pub fn revision(&self) -> u64 {
        self.object.revision
    }
}

/// Rebuilds an event from its log row. Deletions store no value of their own: the object
/// carried by a `Deleted` event is the previous state at the deletion's revision.
#[allow(clippy::too_many_arguments)]
pub(crate) fn assemble_event(
    revision: u64,
    kind: EventType,
    key: ObjectKey,
    uid: String,
    create_revision: u64,
    value: Option<Bytes>,
    prev_revision: Option<u64>,
    prev_value: Option<Bytes>,
) -> Result<Event, StorageError> {
    let prev = match (prev_revision, prev_value) {
        (Some(rev), Some(value)) => Some(StoredObject {
            key: key.clone(),
            uid: uid.clone(),
            create_revision,
            revision: rev,
            value,
        }),
        _ => None,
    };
    let value = match (kind, value, &prev) {
        (EventType::Deleted, _, Some(prev)) => prev.value.clone(),
        (_, Some(value), _) => value,
        _ => {
            return Err(StorageError::Internal(format!(
                "event {revision} has no value"
            )))
        }
    };
    Ok(Event {
        kind,
        object: StoredObject {
            key,
            uid,
            create_revision,
            revision,
            value,
        },
        prev,
        encoding: SharedEncoding::default(),
    })
}

/// Values must be JSON objects: checked once on write so that readers can trust them.
pub(crate) fn validate_value(value: &[u8]) -> Result<(), StorageError> {
    let first = value.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(StorageError::InvalidValue(
            "value must be a JSON object".into(),
        ));
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(value)
        .map(|_| ())
        .map_err(|e| StorageError::InvalidValue(format!("value is not valid JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_json_objects_are_values() {
        assert!(validate_value(br#" {"a": [1, 2]}"#).is_ok());
        assert!(validate_value(b"[1]").is_err());
        assert!(validate_value(b"{\"a\":").is_err());
        assert!(validate_value(b"").is_err());
        assert!(validate_value(b"{} trailing").is_err());
    }

    #[test]
    fn event_kind_codes_round_trip() {
        for kind in [EventType::Added, EventType::Modified, EventType::Deleted] {
            assert_eq!(EventType::from_code(kind.code() as i64).unwrap(), kind);
        }
        assert!(EventType::from_code(7).is_err());
    }
}
