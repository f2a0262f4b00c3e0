//! Versioned schema migrations for the embedded SQLite store, applied at open under
//! `BEGIN IMMEDIATE` so two processes opening one file do not race.

use rusqlite::Connection;

use crate::error::{Result, StorageError};

/// Ordered migrations; never edit a released one, add a new one. Same tables as Postgres.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"
    CREATE TABLE trellis_meta (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        revision INTEGER NOT NULL
    );
    INSERT INTO trellis_meta (singleton, revision) VALUES (1, 1);
    CREATE TABLE trellis_compaction (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        compacted INTEGER NOT NULL
    );
    INSERT INTO trellis_compaction (singleton, compacted) VALUES (1, 0);
    CREATE TABLE trellis_objects (
        resource   TEXT NOT NULL,
        cluster    TEXT NOT NULL,
        namespace  TEXT NOT NULL,
        name       TEXT NOT NULL,
        uid        TEXT NOT NULL,
        create_rev INTEGER NOT NULL,
        mod_rev    INTEGER NOT NULL,
        value      BLOB NOT NULL,
        PRIMARY KEY (resource, cluster, namespace, name)
    );
    CREATE TABLE trellis_events (
        rev        INTEGER PRIMARY KEY,
        kind       INTEGER NOT NULL,
        resource   TEXT NOT NULL,
        cluster    TEXT NOT NULL,
        namespace  TEXT NOT NULL,
        name       TEXT NOT NULL,
        uid        TEXT NOT NULL,
        create_rev INTEGER NOT NULL,
        value      BLOB,
        prev_rev   INTEGER,
        prev_value BLOB
    );
    "#,
    ),
    (
        2,
        r#"
    -- The compactor's samples: which revision was current when (ms since the Unix epoch),
    -- so that a restarted process compacts on the schedule its predecessors started.
    CREATE TABLE trellis_revision_marks (
        at  INTEGER NOT NULL,
        rev INTEGER NOT NULL
    );
    "#,
    ),
];

pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS trellis_schema_migrations (
             version INTEGER PRIMARY KEY,
             applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
         )",
    )?;
    let applied: Vec<i64> = {
        let mut stmt = tx.prepare("SELECT version FROM trellis_schema_migrations")?;
        let rows = stmt.query_map([], |row| row.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let known = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if let Some(newest) = applied.iter().max().filter(|v| **v > known) {
        return Err(StorageError::Internal(format!(
            "database schema version {newest} is newer than this binary knows ({known})"
        )));
    }
    for (version, sql) in MIGRATIONS {
        if !applied.contains(version) {
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO trellis_schema_migrations (version) VALUES (?1)",
                [version],
            )?;
            tracing::info!(version, "applied storage migration");
        }
    }
    tx.commit()?;
    Ok(())
}
