//! `trellis backup` and `trellis restore`: the command line over [`trellis_storage::restore`].
//!
//! The embedded store is backed up by the hub's binary itself (SQLite's online backup API, while
//! the hub runs) and restored by it. A Postgres shard is backed up and loaded with Postgres' own
//! tools (`pg_dump -Fc`, `pg_restore`); `trellis restore --store URL` then marks the loaded shard
//! restored, so that resourceVersions from before the restore are answered 410 Gone and never
//! reused (see `trellis_storage::restore` for why and how).

use std::path::Path;

use anyhow::{bail, Context};
use trellis_storage::restore::{self, Restored};
use trellis_storage::ShardSpec;

use crate::serving::start::EMBEDDED_STORE_FILE;

/// Copies the embedded store (or, with `store`, refuses and names `pg_dump`) into the new file
/// `to`; the revision the backup holds.
pub async fn backup(data_dir: &Path, store: Option<&str>, to: &Path) -> anyhow::Result<u64> {
    if store.is_some() {
        bail!(
            "a Postgres shard is backed up with Postgres' own tool: \
             `pg_dump -Fc -f FILE --dbname URL` (see the README, Backup and restore)"
        );
    }
    let path = data_dir.join(EMBEDDED_STORE_FILE);
    restore::backup_sqlite(&path, to)
        .await
        .with_context(|| format!("backing up {} to {}", path.display(), to.display()))
}

/// Restores the embedded store from `from`, or marks the Postgres shard `store` (already loaded
/// with `pg_restore`) restored. The hub must be stopped.
pub async fn restore(
    data_dir: &Path,
    store: Option<&str>,
    from: Option<&Path>,
) -> anyhow::Result<Restored> {
    match (store, from) {
        (None, Some(from)) => {
            let path = data_dir.join(EMBEDDED_STORE_FILE);
            restore::restore_sqlite(from, &path)
                .await
                .with_context(|| format!("restoring {} from {}", path.display(), from.display()))
        }
        (None, None) => bail!("name the backup to restore the embedded store from: --from FILE"),
        (Some(_), Some(_)) => bail!(
            "a Postgres shard is loaded with `pg_restore --dbname URL FILE`; then run \
             `trellis restore --store URL` (without --from) to mark it restored"
        ),
        (Some(url), None) => {
            let spec = ShardSpec::parse(url);
            if !matches!(spec, ShardSpec::Postgres { .. }) {
                bail!("--store must be a postgres:// URL, got {url:?}");
            }
            restore::mark_restored(&spec)
                .await
                .context("marking the Postgres shard restored")
        }
    }
}
