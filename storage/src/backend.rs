//! The contract between [`crate::Store`] and a database backend.
//!
//! A backend knows SQL and connections; everything above it (group commit, the watch hub,
//! revision waits, continue tokens) is shared so both backends behave identically.

use async_trait::async_trait;

use crate::error::Result;
use crate::key::{ListPosition, ListScope, ObjectKey};
use crate::object::{Event, StoredObject};
use crate::restored::Restored;
use crate::write_plan::{WriteOp, WritePlan};

/// The shard's current and compacted revisions, read together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Revisions {
    /// The revision of the last committed change.
    pub current: u64,
    /// Changes at or below this revision may be gone from the event log.
    pub compacted: u64,
}

/// Which state a list page reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Snapshot {
    /// The latest committed state; the page reports its revision.
    Latest,
    /// The state as of this revision (must be ≥ compacted and ≤ current).
    At(u64),
}

#[derive(Clone, Debug)]
pub(crate) struct PageQuery {
    pub scope: ListScope,
    pub snapshot: Snapshot,
    pub after: Option<ListPosition>,
    /// At most this many items (a backend may return one more, which tells there are more).
    pub limit: Option<usize>,
}

#[derive(Debug)]
pub(crate) struct Page {
    /// In list order; `limit + 1` items at most.
    pub items: Vec<StoredObject>,
    pub revision: u64,
}

/// Consecutive changes read from the event log.
#[derive(Debug)]
pub(crate) struct EventsPage {
    /// Every matching change in `(after, through]`, in revision order.
    pub events: Vec<Event>,
    pub through: u64,
}

#[async_trait]
pub(crate) trait Backend: Send + Sync + 'static {
    async fn revisions(&self) -> Result<Revisions>;

    /// How many live objects each resource has, across every cluster (for metrics).
    async fn count_by_resource(&self) -> Result<Vec<(String, u64)>>;

    async fn get(&self, key: &ObjectKey) -> Result<Option<StoredObject>>;

    async fn list_page(&self, query: &PageQuery) -> Result<Page>;

    /// Decides and commits a batch atomically, holding the shard's write lock so that revision
    /// order is commit order. `Unavailable` promises that nothing was committed (safe to retry);
    /// `UnknownOutcome` does not.
    async fn commit(&self, ops: &[WriteOp]) -> Result<WritePlan>;

    /// Changes after `after` (optionally only those in `scope`), at most `limit`, from one
    /// consistent read. `Expired` when `after` is older than the compacted revision.
    async fn events_after(
        &self,
        after: u64,
        scope: Option<&ListScope>,
        limit: usize,
    ) -> Result<EventsPage>;

    /// Removes events at or below `revision`, in bounded batches. Returns how many were removed.
    async fn compact_to(&self, revision: u64) -> Result<u64>;

    /// Records that `revision` was current at `at_ms` (milliseconds since the Unix epoch),
    /// unless another mark was recorded less than `spacing_ms` before it: the compactor's
    /// samples, kept in the store so that they outlive the process.
    async fn mark_revision(&self, at_ms: i64, revision: u64, spacing_ms: i64) -> Result<()>;

    /// The newest revision marked at or before `horizon_ms`, forgetting the marks older than
    /// it (compaction to it makes them useless).
    async fn marked_before(&self, horizon_ms: i64) -> Result<Option<u64>>;

    /// Marks the shard restored from a backup, in one transaction: its revision jumps to
    /// [`crate::restored::restored_revision`] of the current one, it is compacted to it (the
    /// event log and the compactor's marks emptied), and the restore is recorded.
    async fn mark_restored(&self, at_ms: i64, now_micros: u64) -> Result<Restored>;

    /// How often the watch hub polls the event log when no wake-up hint arrives.
    fn poll_interval(&self) -> std::time::Duration;

    /// Starts whatever tells this process that another one wrote (Postgres LISTEN); `wake` is
    /// called on each hint.
    fn start_wakeups(&self, hint: WakeHint);

    /// Whether the database has been unreachable for longer than a retry window: then an
    /// operation tries once instead of retrying, so that callers hear "unavailable" at once
    /// rather than after every retry window.
    fn known_unreachable(&self) -> bool {
        false
    }
}

/// Tells the watch hub that revision `Some(n)` (or something, `None`) was committed elsewhere;
/// returns false once the hub is gone.
pub(crate) type WakeHint = std::sync::Arc<dyn Fn(Option<u64>) -> bool + Send + Sync>;

/// A snapshot read at `rev` needs `compacted <= rev <= current`.
pub(crate) fn check_snapshot(rev: u64, current: u64, compacted: u64) -> Result<()> {
    if rev < compacted {
        return Err(crate::error::StorageError::Expired {
            requested: rev,
            compacted,
        });
    }
    if rev > current {
        return Err(crate::error::StorageError::TooLargeRevision {
            requested: rev,
            current,
        });
    }
    Ok(())
}

/// A revision as the databases store it (a signed 64-bit integer).
pub(crate) fn revision_param(revision: u64) -> Result<i64> {
    i64::try_from(revision).map_err(|_| {
        crate::error::StorageError::Internal(format!("revision {revision} is out of range"))
    })
}

/// Merges the objects unchanged since a snapshot with the snapshot state of those changed after
/// it (both in list order, disjoint) and keeps `limit + 1`.
pub(crate) fn merge_pages(
    unchanged: Vec<StoredObject>,
    changed: Vec<StoredObject>,
    limit: Option<usize>,
) -> Vec<StoredObject> {
    let mut merged = Vec::with_capacity(unchanged.len() + changed.len());
    let mut a = unchanged.into_iter().peekable();
    let mut b = changed.into_iter().peekable();
    loop {
        let take_a = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => x.key.position() <= y.key.position(),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_a { a.next() } else { b.next() };
        merged.extend(next);
    }
    if let Some(limit) = limit {
        merged.truncate(limit + 1);
    }
    merged
}

/// How far an events page read is complete: to its last event when it was cut at `limit`, else
/// to the revision current when it was read.
pub(crate) fn events_through(events: &[Event], limit: usize, current: u64) -> u64 {
    match events.last() {
        Some(last) if events.len() >= limit => last.revision(),
        _ => current,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn obj(name: &str, rev: u64) -> StoredObject {
        StoredObject {
            key: ObjectKey::new("c", "r", "ns", name),
            uid: name.into(),
            create_revision: rev,
            revision: rev,
            value: Bytes::from_static(b"{}"),
        }
    }

    #[test]
    fn merge_keeps_list_order_and_limit_plus_one() {
        let merged = merge_pages(
            vec![obj("a", 1), obj("c", 1), obj("e", 1)],
            vec![obj("b", 2), obj("d", 2)],
            Some(3),
        );
        let names: Vec<&str> = merged.iter().map(|o| o.key.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
    }

    #[test]
    fn snapshot_bounds() {
        assert!(check_snapshot(5, 10, 5).is_ok());
        assert!(matches!(
            check_snapshot(4, 10, 5),
            Err(crate::error::StorageError::Expired { .. })
        ));
        assert!(matches!(
            check_snapshot(11, 10, 5),
            Err(crate::error::StorageError::TooLargeRevision { .. })
        ));
    }
}
