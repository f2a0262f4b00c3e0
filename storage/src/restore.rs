//! Backups and restores of a shard, and the rule that keeps a restored shard's revisions from
//! ever meaning two things.
//!
//! A backup holds the shard as of some revision `B`. The server it was taken from went on to
//! `R > B` before it was lost, and its clients hold resourceVersions up to `R`: in lists, in
//! watches, in informers' caches. Restored as is, the shard would hand out `B+1 … R` again for
//! different changes, and a client resuming a watch at, say, `B+3` would be told "nothing
//! happened since" about changes it never saw, or would silently skip some. So a restore does
//! what etcd's `snapshot restore --bump-revision --mark-compacted` does (kube-apiserver's
//! documented restore procedure), in one transaction ([`mark_restored`]):
//!
//! - the revision jumps forward to [`restored_revision`], beyond anything the lost server can
//!   have reached, so that no revision is ever issued twice;
//! - the shard is compacted to that revision and its event log emptied: every resourceVersion
//!   from before the restore is "too old", so a watch or an exact list at one gets 410 Gone and
//!   the client relists (what informers do on 410), reading the restored state;
//! - objects keep their own resourceVersions (`metadata.resourceVersion` is the revision that
//!   last changed the object), so a read-modify-write with a precondition taken before the
//!   backup still works on an object the backup holds unchanged;
//! - the restore is recorded in `trellis_restores` (when, `B`, the new revision).
//!
//! etcd leaves the size of the jump to the operator. Here it is the later of two bounds, so that
//! nobody has to guess how many writes happened after the backup: `B` plus a billion (etcd's
//! usual `--bump-revision`), and the wall clock in microseconds. A shard that has never been
//! restored is far below the clock (a million writes a second for fifty years), and a shard
//! restored at time `T` reaches the clock of a later restore `T'` only after more than one write
//! per microsecond on average in between, so even the same backup restored twice, each copy
//! written to, does not issue a revision twice. Revisions stay below 2^53 (exact in JSON
//! numbers) for two centuries.
//!
//! Taking backups: [`backup_sqlite`] copies a live embedded store with SQLite's online backup
//! API (one consistent snapshot; writers go on meanwhile); a Postgres shard is dumped with
//! `pg_dump -Fc` and loaded with `pg_restore`, after which [`mark_restored`] is run on it before
//! any hub starts. [`restore_sqlite`] does both steps for the embedded store.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::backend::Backend;
use crate::error::{Result, StorageError};
use crate::shards::ShardSpec;

pub use crate::restored::{restored_revision, Restored, RESTORE_GAP};

/// Marks a shard just loaded from a backup as restored (see the module's documentation): run
/// it once per restore, before a hub opens the shard. Migrates the shard's schema forward first
/// if the backup is older than this binary.
pub async fn mark_restored(spec: &ShardSpec) -> Result<Restored> {
    let backend: Box<dyn Backend> = match spec {
        ShardSpec::Postgres { url } => {
            Box::new(crate::postgres::PostgresBackend::open(url, 2).await?)
        }
        ShardSpec::Sqlite { path } => {
            require_file(path, "no embedded store at")?;
            Box::new(crate::sqlite::SqliteBackend::open(path).await?)
        }
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let at_ms = i64::try_from(now.as_millis()).unwrap_or(i64::MAX);
    let now_micros = u64::try_from(now.as_micros()).unwrap_or(u64::MAX);
    let restored = backend.mark_restored(at_ms, now_micros).await?;
    tracing::info!(
        backup_revision = restored.backup_revision,
        revision = restored.revision,
        "marked the shard restored: earlier resourceVersions are now expired"
    );
    Ok(restored)
}

/// Copies the embedded store at `store` (which a hub may be using) into a new file `to` with
/// SQLite's online backup API: one consistent snapshot, taken without stopping writers.
/// Returns the revision the copy holds. Refuses to overwrite `to`.
pub async fn backup_sqlite(store: &Path, to: &Path) -> Result<u64> {
    require_file(store, "no embedded store at")?;
    if to.exists() {
        return Err(StorageError::InvalidValue(format!(
            "{} already exists; name a new file for the backup",
            to.display()
        )));
    }
    crate::sqlite::backup::backup(store, to).await
}

/// Restores the embedded store at `store` from the backup file `from` (made by
/// [`backup_sqlite`]) and marks it restored. The hub using `store` must be stopped.
pub async fn restore_sqlite(from: &Path, store: &Path) -> Result<Restored> {
    require_file(from, "no backup at")?;
    crate::sqlite::backup::restore(from, store).await?;
    mark_restored(&ShardSpec::Sqlite {
        path: store.to_path_buf(),
    })
    .await
}

fn require_file(path: &Path, what: &str) -> Result<()> {
    if path.is_file() {
        Ok(())
    } else {
        Err(StorageError::InvalidValue(format!(
            "{what} {}",
            path.display()
        )))
    }
}
