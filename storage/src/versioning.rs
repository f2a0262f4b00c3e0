//! The storage schema's version: what this binary knows, and what it does with a store written
//! by another binary.
//!
//! Each backend keeps ordered forward migrations (`postgres/schema.rs`, `sqlite/schema.rs`, the
//! same version numbers on both) and records every applied one in `trellis_schema_migrations`.
//! At open, a store whose newest recorded migration is older than [`SCHEMA_VERSION`] is migrated
//! forward; one whose newest is newer was written by a newer binary, which may have changed
//! what the tables mean, so this binary refuses it ([`StorageError::SchemaTooNew`]) instead of
//! reading or writing it. The check is shared here so both backends refuse the same way.

use crate::error::{Result, StorageError};

/// The newest schema version this binary knows: the last migration of each backend.
pub const SCHEMA_VERSION: i64 = 4;

/// Creates or migrates the store at `location` (a Postgres URL, or an SQLite file path) up to
/// schema `version` only, as the binary that introduced that version left it. For tests of
/// migrations: open the store afterwards to migrate it the rest of the way.
#[doc(hidden)]
pub async fn migrate_location_to(location: &str, version: i64) -> Result<()> {
    match crate::ShardSpec::parse(location) {
        crate::ShardSpec::Postgres { url } => crate::postgres::migrate_url_to(&url, version).await,
        crate::ShardSpec::Sqlite { path } => crate::sqlite::migrate_path_to(&path, version).await,
    }
}

/// Refuses a store whose newest applied migration (`None`: a new store) is newer than this
/// binary's.
pub(crate) fn refuse_newer(recorded: Option<i64>) -> Result<()> {
    match recorded {
        Some(found) if found > SCHEMA_VERSION => Err(StorageError::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_equal_and_new_stores_open_newer_ones_are_refused() {
        assert!(refuse_newer(None).is_ok());
        assert!(refuse_newer(Some(1)).is_ok());
        assert!(refuse_newer(Some(SCHEMA_VERSION)).is_ok());
        let err = refuse_newer(Some(SCHEMA_VERSION + 1)).unwrap_err();
        assert!(matches!(
            err,
            StorageError::SchemaTooNew { found, known } if found == SCHEMA_VERSION + 1 && known == SCHEMA_VERSION
        ));
        let message = err.to_string();
        assert!(
            message.contains(&format!("version {}", SCHEMA_VERSION + 1))
                && message.contains(&format!("({SCHEMA_VERSION})"))
                && message.contains("newer trellis"),
            "{message}"
        );
    }
}
