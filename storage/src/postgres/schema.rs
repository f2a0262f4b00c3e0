//! Versioned schema migrations for a Postgres shard, applied at open.
//!
//! Replicas may open the same shard at once: a session advisory lock makes one of them apply
//! the migrations while the others wait. Each migration runs in its own transaction and is
//! recorded in `trellis_schema_migrations`; a shard recording a version newer than this binary
//! knows is refused ([`crate::versioning`]).

use deadpool_postgres::Object;

use crate::error::Result;

/// Arbitrary, fixed key of the advisory lock guarding migrations.
const MIGRATION_LOCK: i64 = 0x7472_656c_6c69_7301;

/// Ordered migrations; never edit a released one, add a new one.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        r#"
    -- The shard's revision counter. Writers lock this row for the whole transaction, which
    -- makes revision order equal commit order across every process writing the shard.
    CREATE TABLE trellis_meta (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        revision bigint NOT NULL
    );
    -- etcd starts at revision 1 too: no list ever reports the special resourceVersion "0".
    INSERT INTO trellis_meta (singleton, revision) VALUES (true, 1);

    -- Kept apart from trellis_meta so compaction never waits for the writers' lock.
    CREATE TABLE trellis_compaction (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        compacted bigint NOT NULL
    );
    INSERT INTO trellis_compaction (singleton, compacted) VALUES (true, 0);

    -- Current state: one row per live object.
    CREATE TABLE trellis_objects (
        resource   text COLLATE "C" NOT NULL,
        cluster    text COLLATE "C" NOT NULL,
        namespace  text COLLATE "C" NOT NULL,
        name       text COLLATE "C" NOT NULL,
        uid        text NOT NULL,
        create_rev bigint NOT NULL,
        mod_rev    bigint NOT NULL,
        value      bytea NOT NULL,
        PRIMARY KEY (resource, cluster, namespace, name)
    );

    -- The change log, one row per revision, compacted to a retention window. prev_* hold the
    -- object just before the change, which is also what a snapshot read at an older revision
    -- needs. value is NULL for deletions (the object is prev_value). No index but the
    -- revision: every reader scans a revision range (watch from n, snapshot at n), and each
    -- extra index is paid on every write.
    CREATE TABLE trellis_events (
        rev        bigint PRIMARY KEY,
        kind       smallint NOT NULL,
        resource   text COLLATE "C" NOT NULL,
        cluster    text COLLATE "C" NOT NULL,
        namespace  text COLLATE "C" NOT NULL,
        name       text COLLATE "C" NOT NULL,
        uid        text NOT NULL,
        create_rev bigint NOT NULL,
        value      bytea,
        prev_rev   bigint,
        prev_value bytea
    );
    "#,
    ),
    (
        2,
        r#"
    -- The compactor's samples: which revision was current when (ms since the Unix epoch),
    -- so that a restarted process compacts on the schedule its predecessors started.
    CREATE TABLE trellis_revision_marks (
        at  bigint NOT NULL,
        rev bigint NOT NULL
    );
    "#,
    ),
    (
        3,
        r#"
    -- Each time the shard was marked restored from a backup (crate::restore): when (ms since
    -- the Unix epoch), the revision the backup held, and the revision the shard jumped to.
    CREATE TABLE trellis_restores (
        at         bigint NOT NULL,
        backup_rev bigint NOT NULL,
        rev        bigint NOT NULL
    );
    "#,
    ),
    (
        4,
        r#"
    -- Each value is written once: into the change log. An object row only points at the
    -- revision holding its current state, and an event finds its previous state at prev_rev.
    -- Compaction keeps each key's newest revision at or below the compacted one (etcd's MVCC
    -- does the same), so the log can no longer be emptied below the mark: first put back the
    -- revisions that the old compaction removed but that are still somebody's state.
    INSERT INTO trellis_events (rev, kind, resource, cluster, namespace, name, uid, create_rev, value)
    SELECT o.mod_rev, CASE WHEN o.create_rev = o.mod_rev THEN 0 ELSE 1 END,
           o.resource, o.cluster, o.namespace, o.name, o.uid, o.create_rev, o.value
    FROM trellis_objects o
    WHERE NOT EXISTS (SELECT 1 FROM trellis_events e WHERE e.rev = o.mod_rev);

    INSERT INTO trellis_events (rev, kind, resource, cluster, namespace, name, uid, create_rev, value)
    SELECT DISTINCT ON (e.prev_rev) e.prev_rev, CASE WHEN e.create_rev = e.prev_rev THEN 0 ELSE 1 END,
           e.resource, e.cluster, e.namespace, e.name, e.uid, e.create_rev, e.prev_value
    FROM trellis_events e
    WHERE e.prev_rev IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM trellis_events p WHERE p.rev = e.prev_rev)
    ORDER BY e.prev_rev;

    ALTER TABLE trellis_objects DROP COLUMN uid, DROP COLUMN create_rev, DROP COLUMN value;
    ALTER TABLE trellis_events DROP COLUMN prev_value;

    -- How far compaction has swept the log: revisions up to here have had what they superseded
    -- removed. It trails `compacted` while a compaction is under way, and catches up after a crash.
    ALTER TABLE trellis_compaction ADD COLUMN swept bigint NOT NULL DEFAULT 0;
    UPDATE trellis_compaction SET swept = compacted;

    "#,
    ),
];

pub(crate) async fn migrate(client: &mut Object) -> Result<()> {
    migrate_to(client, crate::versioning::SCHEMA_VERSION).await
}

/// Applies the migrations up to `version` only (tests make stores as older binaries left them).
pub(crate) async fn migrate_to(client: &mut tokio_postgres::Client, version: i64) -> Result<()> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let outcome = apply(client, version).await;
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    outcome?;
    unlock?;
    Ok(())
}

async fn apply(client: &mut tokio_postgres::Client, upto: i64) -> Result<()> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS trellis_schema_migrations (
                 version integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await?;
    let applied: Vec<i32> = client
        .query("SELECT version FROM trellis_schema_migrations", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    crate::versioning::refuse_newer(applied.iter().max().map(|v| i64::from(*v)))?;
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) || i64::from(*version) > upto {
            continue;
        }
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO trellis_schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(version, "applied storage migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_are_ordered_and_end_at_the_schema_version() {
        let versions: Vec<i64> = super::MIGRATIONS.iter().map(|m| i64::from(m.0)).collect();
        let expected: Vec<i64> = (1..=crate::versioning::SCHEMA_VERSION).collect();
        assert_eq!(versions, expected);
    }
}
