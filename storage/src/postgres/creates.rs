//! Committing a batch of creates in one round trip.
//!
//! A batch normally takes two round trips: lock the revision and read the batch's keys, then
//! write and commit what [`crate::write_plan`] decided. A batch of creates needs nothing from the
//! read when none of its keys exist and nobody else has written since this process's last
//! commit; both are what usually holds when one hub creates objects. So such a batch is decided
//! on the revision this process last committed and sent as one statement, a transaction of its
//! own (no `BEGIN` or `COMMIT` to send), guarded by the database: the statement moves the
//! revision only from the one expected (waiting for the revision lock like every writer) and
//! inserts its rows only if it did, and the objects' primary key fails it if a key exists.
//! Either failure costs one round trip, after which the batch goes the usual way and gets its
//! exact answer (AlreadyExists, or revisions after the other writer's). After the revision
//! moved under it, the shortcut stays off for a while: another process is writing the shard.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use deadpool_postgres::Object;
use tokio_postgres::types::ToSql;

use crate::write_plan::{plan, WriteOp, WritePlan};

/// How long the shortcut stays off after another writer moved the revision under it.
const STAND_DOWN: Duration = Duration::from_secs(1);

/// What this process knows of the shard's revision between its commits.
#[derive(Default)]
pub(super) struct KnownRevision {
    /// The revision this process last committed; 0 when it may be stale.
    revision: AtomicU64,
    /// Until when the shortcut is off.
    off_until: Mutex<Option<Instant>>,
}

impl KnownRevision {
    /// The revision to decide `ops` on, if they may take the shortcut.
    pub(super) fn for_batch(&self, ops: &[WriteOp]) -> Option<u64> {
        if !ops.iter().all(|op| matches!(op, WriteOp::Create { .. })) {
            return None;
        }
        let off = self.off_until.lock().unwrap_or_else(|e| e.into_inner());
        if off.is_some_and(|until| Instant::now() < until) {
            return None;
        }
        Some(self.revision.load(Ordering::Acquire)).filter(|r| *r > 0)
    }

    /// This process committed up to `revision` (under the revision lock).
    pub(super) fn committed(&self, revision: u64) {
        self.revision.store(revision, Ordering::Release);
    }

    /// The revision may have moved without this process knowing.
    pub(super) fn forget(&self) {
        self.revision.store(0, Ordering::Release);
    }

    fn moved(&self) {
        self.forget();
        *self.off_until.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Instant::now() + STAND_DOWN);
    }
}

/// The outcome of trying the shortcut.
pub(super) enum Shortcut {
    Committed(WritePlan),
    /// Not committed, nothing written: decide the batch the usual way.
    Declined,
    /// The connection broke after COMMIT may have reached the server.
    Unknown(WritePlan, tokio_postgres::Error),
}

/// Decides `ops` (all creates) on `expected` as if none of their keys existed, then claims the
/// revisions, writes and commits in one round trip.
pub(super) async fn commit(
    client: &Object,
    known: &KnownRevision,
    expected: u64,
    ops: &[WriteOp],
) -> Shortcut {
    let decided = plan(expected, Default::default(), ops);
    if decided.events.is_empty() {
        return Shortcut::Declined;
    }
    debug_assert!(decided.updates.is_empty() && decided.deletes.is_empty());
    let statement = match client.prepare_cached(CLAIM_AND_INSERT).await {
        Ok(statement) => statement,
        Err(_) => return Shortcut::Declined,
    };
    let (from, upto) = (super::to_i64(expected), super::to_i64(decided.revision));
    let events = super::EventColumns::of(&decided.events);
    let objects = super::ObjectColumns::of(&decided.inserts);
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&from, &upto];
    params.extend(events.params());
    params.extend(objects.params());
    // One statement outside a transaction block is a transaction of its own, committed at the
    // protocol's Sync; the answer ends with the ReadyForQuery that follows the commit, so it
    // comes once the commit is durable. A failed statement is rolled back by the server.
    let failure = match client.query_one(&statement, &params).await {
        Ok(row) => {
            if row.get::<_, i64>(0) == 1 {
                return Shortcut::Committed(decided);
            }
            // Nothing was written: somebody else moved the revision first.
            tracing::debug!("another writer moved the shard's revision; creates take the long way");
            known.moved();
            return Shortcut::Declined;
        }
        Err(e) => e,
    };
    if failure.as_db_error().is_none() || failure.is_closed() {
        return Shortcut::Unknown(decided, failure);
    }
    // A key exists (unique violation), or anything else: the usual way tells exactly.
    known.forget();
    Shortcut::Declined
}

/// Moves the shard's revision from $1 to $2 and inserts the batch's events ($3–$12) and object
/// rows ($13–$17), all only if the revision was still $1; answers 1 if it was, 0 if not.
/// Data-modifying `WITH` statements all run to completion, and the inserts read the claim's
/// result, so the claim (and its wait for the revision lock) comes first.
const CLAIM_AND_INSERT: &str = "\
    WITH claim AS ( \
        UPDATE trellis_meta SET revision = $2 WHERE revision = $1 RETURNING revision \
    ), events AS ( \
        INSERT INTO trellis_events \
            (rev, kind, resource, cluster, namespace, name, uid, create_rev, value, prev_rev) \
        SELECT * FROM unnest($3::int8[], $4::int2[], $5::text[], $6::text[], $7::text[], \
            $8::text[], $9::text[], $10::int8[], $11::bytea[], $12::int8[]) \
        WHERE EXISTS (SELECT 1 FROM claim) \
    ), objects AS ( \
        INSERT INTO trellis_objects (resource, cluster, namespace, name, mod_rev) \
        SELECT * FROM unnest($13::text[], $14::text[], $15::text[], $16::text[], $17::int8[]) \
        WHERE EXISTS (SELECT 1 FROM claim) \
    ) \
    SELECT count(*) FROM claim";
