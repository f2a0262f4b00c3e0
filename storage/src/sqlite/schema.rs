//! Versioned schema migrations for the embedded SQLite store, applied at open under
//! `BEGIN IMMEDIATE` so two processes opening one file do not race; a file recording a version
//! newer than this binary knows is refused ([`crate::versioning`]).

use rusqlite::Connection;

use crate::error::Result;

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
    (
        3,
        r#"
    -- Each time the store was marked restored from a backup (crate::restore).
    CREATE TABLE trellis_restores (
        at         INTEGER NOT NULL,
        backup_rev INTEGER NOT NULL,
        rev        INTEGER NOT NULL
    );
    "#,
    ),
    (
        4,
        r#"
    -- Each value is written once, into the change log (see the Postgres migration 4).
    INSERT INTO trellis_events (rev, kind, resource, cluster, namespace, name, uid, create_rev, value)
    SELECT o.mod_rev, CASE WHEN o.create_rev = o.mod_rev THEN 0 ELSE 1 END,
           o.resource, o.cluster, o.namespace, o.name, o.uid, o.create_rev, o.value
    FROM trellis_objects o
    WHERE NOT EXISTS (SELECT 1 FROM trellis_events e WHERE e.rev = o.mod_rev);

    INSERT INTO trellis_events (rev, kind, resource, cluster, namespace, name, uid, create_rev, value)
    SELECT e.prev_rev, CASE WHEN e.create_rev = e.prev_rev THEN 0 ELSE 1 END,
           e.resource, e.cluster, e.namespace, e.name, e.uid, e.create_rev, e.prev_value
    FROM trellis_events e
    WHERE e.prev_rev IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM trellis_events p WHERE p.rev = e.prev_rev)
    GROUP BY e.prev_rev;

    ALTER TABLE trellis_objects DROP COLUMN uid;
    ALTER TABLE trellis_objects DROP COLUMN create_rev;
    ALTER TABLE trellis_objects DROP COLUMN value;
    ALTER TABLE trellis_events DROP COLUMN prev_value;

    ALTER TABLE trellis_compaction ADD COLUMN swept INTEGER NOT NULL DEFAULT 0;
    UPDATE trellis_compaction SET swept = compacted;
    "#,
    ),
];

pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    migrate_to(conn, crate::versioning::SCHEMA_VERSION)
}

/// Applies the migrations up to `upto` only (tests make stores as older binaries left them).
pub(crate) fn migrate_to(conn: &mut Connection, upto: i64) -> Result<()> {
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
    crate::versioning::refuse_newer(applied.iter().max().copied())?;
    for (version, sql) in MIGRATIONS {
        if !applied.contains(version) && *version <= upto {
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

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_are_ordered_and_end_at_the_schema_version() {
        let versions: Vec<i64> = super::MIGRATIONS.iter().map(|m| m.0).collect();
        let expected: Vec<i64> = (1..=crate::versioning::SCHEMA_VERSION).collect();
        assert_eq!(versions, expected);
    }
}
