//! Committing a batch of creates in one round trip.
//!
//! A batch normally takes two round trips: lock the revision and read the batch's keys, then
//! write and commit what [`crate::write_plan`] decided. A batch of creates needs nothing from the
//! read when none of its keys exist and nobody else has written since this process's last
//! commit; both are what usually holds when one hub creates objects. So such a batch is decided
//! on the revision this process last committed, and sent with its writes and `COMMIT` at once,
//! guarded by the database: `trellis_claim_revisions` takes the revision lock and fails the
//! transaction if the revision moved, and the objects' primary key fails it if a key exists.
//! Either failure costs one round trip, after which the batch goes the usual way and gets its
//! exact answer (AlreadyExists, or revisions after the other writer's). After the revision
//! moved under it, the shortcut stays off for a while: another process is writing the shard.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use deadpool_postgres::Object;
use tokio_postgres::error::SqlState;
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
    let statements = match super::prepare_writes(client).await {
        Ok(statements) => statements,
        Err(_) => return Shortcut::Declined,
    };
    let claim = match client
        .prepare_cached("SELECT trellis_claim_revisions($1, $2)")
        .await
    {
        Ok(claim) => claim,
        Err(_) => return Shortcut::Declined,
    };
    let (from, upto) = (super::to_i64(expected), super::to_i64(decided.revision));
    let claim_params: [&(dyn ToSql + Sync); 2] = [&from, &upto];
    let (begun, claimed, written, committed) = futures::join!(
        client.batch_execute("BEGIN"),
        client.execute(&claim, &claim_params),
        super::write_rows(client, &statements, &decided),
        client.batch_execute("COMMIT"),
    );
    let failure = match (begun, claimed, written, committed) {
        (Ok(()), Ok(_), Ok(()), Ok(())) => return Shortcut::Committed(decided),
        (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => e,
    };
    if failure.as_db_error().is_none() || failure.is_closed() {
        return Shortcut::Unknown(decided, failure);
    }
    if failure.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE) {
        tracing::debug!("another writer moved the shard's revision; creates take the long way");
        known.moved();
    } else {
        // A key exists (unique violation), or anything else: the usual way tells exactly.
        known.forget();
    }
    super::rollback(client).await;
    Shortcut::Declined
}
