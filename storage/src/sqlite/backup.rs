//! Copying an embedded store file with SQLite's online backup API, both ways: a backup of a
//! live store, and a restore into a store's file (through SQLite, so that the target's WAL and
//! locks are respected, rather than by replacing the file under them).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::Connection;

use super::{blocking, connect, read_revisions};
use crate::error::{Result, StorageError};

/// How long a copy waits for the other side's locks (a writer of the live store) in all.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// Backs `store` up into the new file `to`; the revision the copy holds.
pub(crate) async fn backup(store: &Path, to: &Path) -> Result<u64> {
    let (store, to) = (store.to_path_buf(), to.to_path_buf());
    blocking(move || {
        let source = connect(&store)?;
        let dir = to
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        std::fs::create_dir_all(&dir)
            .map_err(|e| StorageError::Internal(format!("cannot create {}: {e}", dir.display())))?;
        // Written under a temporary name and renamed: a crash never leaves a half backup at `to`.
        let partial = partial_name(&to);
        let _ = std::fs::remove_file(&partial);
        let copied = (|| {
            let mut copy = Connection::open(&partial)?;
            copy_all(&source, &mut copy)?;
            // A plain rollback-journal file: self-contained, readable from read-only media.
            copy.pragma_update(None, "journal_mode", "DELETE")?;
            let revision = read_revisions(&copy)?.current;
            drop(copy);
            // The copy's pages were synced by its commit; the rename is made durable too.
            std::fs::rename(&partial, &to)
                .and_then(|()| std::fs::File::open(&dir)?.sync_all())
                .map_err(|e| {
                    StorageError::Internal(format!("cannot write {}: {e}", to.display()))
                })?;
            Ok(revision)
        })();
        if copied.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        copied
    })
    .await
}

/// Copies the backup `from` over the store at `store` (created if missing). The schema version
/// of the backup is checked first: a backup from a newer binary is refused before anything is
/// overwritten.
pub(crate) async fn restore(from: &Path, store: &Path) -> Result<()> {
    let (from, store) = (from.to_path_buf(), store.to_path_buf());
    blocking(move || {
        let source =
            Connection::open_with_flags(&from, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let recorded: Option<i64> = source
            .query_row(
                "SELECT MAX(version) FROM trellis_schema_migrations",
                [],
                |r| r.get(0),
            )
            .map_err(|e| {
                StorageError::InvalidValue(format!(
                    "{} is not a trellis store backup: {e}",
                    from.display()
                ))
            })?;
        crate::versioning::refuse_newer(recorded)?;
        if let Some(dir) = store.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StorageError::Internal(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let mut target = connect(&store)?;
        copy_all(&source, &mut target)
    })
    .await
}

/// Every page of `from` into `to` in one step (one read snapshot of `from`), waiting while
/// either side is locked.
fn copy_all(from: &Connection, to: &mut Connection) -> Result<()> {
    let backup = Backup::new(from, to)?;
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match backup.step(-1)? {
            StepResult::Done => return Ok(()),
            StepResult::More => {}
            StepResult::Busy | StepResult::Locked if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            StepResult::Busy | StepResult::Locked => {
                return Err(StorageError::Unavailable(
                    "the store stayed locked; is another process writing it?".into(),
                ))
            }
            // StepResult is non-exhaustive.
            _ => {}
        }
    }
}

fn partial_name(to: &Path) -> PathBuf {
    let mut name = to.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}
