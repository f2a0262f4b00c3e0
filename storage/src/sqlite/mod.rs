//! The SQLite backend: the zero-setup embedded store of single-node mode.
//!
//! Same tables and semantics as Postgres. SQLite allows one writer at a time (`BEGIN IMMEDIATE`
//! also serializes other processes on the same file), so revision order is commit order. The
//! database runs in WAL mode with `synchronous=FULL`: an acknowledged write survives a crash of
//! the process or the machine. Calls are blocking and run on tokio's blocking pool: one writer
//! connection, and a few reader connections that read WAL snapshots concurrently with it.

pub(crate) mod backup;
mod schema;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row};

use crate::backend::{self, Backend, EventsPage, Page, PageQuery, Revisions, Snapshot, WakeHint};
use crate::error::{Result, StorageError};
use crate::key::{ListScope, ObjectKey};
use crate::object::{assemble_event, Event, EventType, StoredObject};
use crate::restored::Restored;
use crate::sql::{self, Param, Placeholder};
use crate::write_plan::{plan, WriteOp, WritePlan};

/// Idle reader connections kept open.
const MAX_IDLE_READERS: usize = 8;
const COMPACTION_BATCH: i64 = 5000;

pub(crate) struct SqliteBackend {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    readers: Arc<Mutex<Vec<Connection>>>,
}

fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

/// Creates or migrates the store file at `path` up to schema `version` only.
pub(crate) async fn migrate_path_to(path: &Path, version: i64) -> Result<()> {
    let path = path.to_path_buf();
    blocking(move || schema::migrate_to(&mut connect(&path)?, version)).await
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Internal(format!("storage task failed: {e}")))?
}

impl SqliteBackend {
    pub(crate) async fn open(path: &Path) -> Result<Self> {
        let path = path.to_path_buf();
        let writer = blocking({
            let path = path.clone();
            move || {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        StorageError::Internal(format!("cannot create {}: {e}", dir.display()))
                    })?;
                }
                let mut conn = connect(&path)?;
                schema::migrate(&mut conn)?;
                Ok(conn)
            }
        })
        .await?;
        Ok(Self {
            path,
            writer: Arc::new(Mutex::new(writer)),
            readers: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// Runs `f` on a reader connection inside one read transaction (one WAL snapshot).
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let path = self.path.clone();
        let readers = self.readers.clone();
        blocking(move || {
            let pooled = readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let mut conn = match pooled {
                Some(conn) => conn,
                None => connect(&path)?,
            };
            let result = (|| {
                let tx = conn.transaction()?;
                let out = f(&tx)?;
                tx.commit()?;
                Ok(out)
            })();
            let mut idle = readers.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
            result
        })
        .await
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let writer = self.writer.clone();
        blocking(move || {
            let mut conn = writer.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut conn)
        })
        .await
    }
}

fn to_values(params: &[Param]) -> Vec<Value> {
    params
        .iter()
        .map(|p| match p {
            Param::Text(s) => Value::Text(s.clone()),
            Param::Int(i) => Value::Integer(*i),
        })
        .collect()
}

fn u64_at(row: &Row, i: usize) -> rusqlite::Result<u64> {
    Ok(row.get::<_, i64>(i)?.max(0) as u64)
}

/// Decodes a row laid out as [`sql::OBJECT_COLUMNS`].
fn object_from_row(row: &Row) -> rusqlite::Result<StoredObject> {
    Ok(StoredObject {
        key: ObjectKey {
            resource: row.get(0)?,
            cluster: row.get(1)?,
            namespace: row.get(2)?,
            name: row.get(3)?,
        },
        uid: row.get(4)?,
        create_revision: u64_at(row, 5)?,
        revision: u64_at(row, 6)?,
        value: Bytes::from(row.get::<_, Vec<u8>>(7)?),
    })
}

fn query_objects(tx: &rusqlite::Transaction, q: &sql::Query) -> Result<Vec<StoredObject>> {
    let mut stmt = tx.prepare_cached(&q.sql)?;
    let rows = stmt.query_map(
        rusqlite::params_from_iter(to_values(&q.params)),
        object_from_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn read_revisions(tx: &Connection) -> Result<Revisions> {
    let revs = tx.query_row(
        "SELECT m.revision, c.compacted FROM trellis_meta m, trellis_compaction c",
        [],
        |row| {
            Ok(Revisions {
                current: u64_at(row, 0)?,
                compacted: u64_at(row, 1)?,
            })
        },
    )?;
    Ok(revs)
}

#[async_trait]
impl Backend for SqliteBackend {
    async fn revisions(&self) -> Result<Revisions> {
        self.read(|tx| read_revisions(tx)).await
    }

    async fn count_by_resource(&self) -> Result<Vec<(String, u64)>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT resource, count(*) FROM trellis_objects GROUP BY resource ORDER BY 1",
            )?;
            let rows = stmt.query_map([], |row| Ok((row.get::<_, String>(0)?, u64_at(row, 1)?)))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn get(&self, key: &ObjectKey) -> Result<Option<StoredObject>> {
        let key = key.clone();
        self.read(move |tx| {
            let mut stmt = tx.prepare_cached(&sql::get_object(Placeholder::Question))?;
            Ok(stmt
                .query_row(
                    [&key.resource, &key.cluster, &key.namespace, &key.name],
                    object_from_row,
                )
                .optional()?)
        })
        .await
    }

    async fn list_page(&self, query: &PageQuery) -> Result<Page> {
        let query = query.clone();
        self.read(move |tx| {
            let revs = read_revisions(tx)?;
            let after = query.after.as_ref();
            match query.snapshot {
                Snapshot::Latest => {
                    let q = sql::list_objects(
                        Placeholder::Question,
                        &query.scope,
                        after,
                        None,
                        query.limit,
                    );
                    Ok(Page {
                        items: query_objects(tx, &q)?,
                        revision: revs.current,
                    })
                }
                Snapshot::At(rev) => {
                    backend::check_snapshot(rev, revs.current, revs.compacted)?;
                    let unchanged = sql::list_objects(
                        Placeholder::Question,
                        &query.scope,
                        after,
                        Some(rev),
                        query.limit,
                    );
                    let changed = sql::list_changed_since(
                        Placeholder::Question,
                        &query.scope,
                        after,
                        rev,
                        query.limit,
                    );
                    Ok(Page {
                        items: backend::merge_pages(
                            query_objects(tx, &unchanged)?,
                            query_objects(tx, &changed)?,
                            query.limit,
                        ),
                        revision: rev,
                    })
                }
            }
        })
        .await
    }

    async fn commit(&self, ops: &[WriteOp]) -> Result<WritePlan> {
        let ops = ops.to_vec();
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let plan = {
                let current_revision = read_revisions(&tx)?.current;
                let mut current = HashMap::new();
                let mut read = tx.prepare_cached(&sql::get_object(Placeholder::Question))?;
                for op in &ops {
                    let k = op.key();
                    if current.contains_key(k) {
                        continue;
                    }
                    if let Some(object) = read
                        .query_row(
                            [&k.resource, &k.cluster, &k.namespace, &k.name],
                            object_from_row,
                        )
                        .optional()?
                    {
                        current.insert(k.clone(), object);
                    }
                }
                plan(current_revision, current, &ops)
            };
            if plan.events.is_empty() {
                return Ok(plan);
            }
            write_plan(&tx, &plan)?;
            tx.commit()?;
            Ok(plan)
        })
        .await
    }

    async fn events_after(
        &self,
        after: u64,
        scope: Option<&ListScope>,
        limit: usize,
    ) -> Result<EventsPage> {
        let scope = scope.cloned();
        self.read(move |tx| {
            let revs = read_revisions(tx)?;
            if after < revs.compacted {
                return Err(StorageError::Expired {
                    requested: after,
                    compacted: revs.compacted,
                });
            }
            let q = sql::events_after(Placeholder::Question, after, scope.as_ref(), limit);
            let mut stmt = tx.prepare_cached(&q.sql)?;
            let mut rows = stmt.query(rusqlite::params_from_iter(to_values(&q.params)))?;
            let mut events = Vec::new();
            while let Some(row) = rows.next()? {
                events.push(event_from_row(row)?);
            }
            let through = backend::events_through(&events, limit, revs.current);
            Ok(EventsPage { events, through })
        })
        .await
    }

    async fn compact_to(&self, revision: u64) -> Result<u64> {
        let rev = revision as i64;
        self.write(move |conn| {
            conn.execute(
                "UPDATE trellis_compaction SET compacted = MAX(compacted, ?1)",
                [rev],
            )?;
            Ok(())
        })
        .await?;
        let mut removed = 0u64;
        loop {
            // One bounded batch per writer turn, so writes interleave with compaction.
            match self.write(sweep).await? {
                Some(n) => removed += n,
                None => return Ok(removed),
            }
        }
    }

    async fn mark_revision(&self, at_ms: i64, revision: u64, spacing_ms: i64) -> Result<()> {
        let rev = revision as i64;
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO trellis_revision_marks (at, rev) SELECT ?1, ?2 \
                 WHERE NOT EXISTS (SELECT 1 FROM trellis_revision_marks WHERE at > ?1 - ?3)",
                [at_ms, rev, spacing_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn marked_before(&self, horizon_ms: i64) -> Result<Option<u64>> {
        self.write(move |conn| {
            let rev: Option<i64> = conn.query_row(
                "SELECT MAX(rev) FROM trellis_revision_marks WHERE at <= ?1",
                [horizon_ms],
                |row| row.get(0),
            )?;
            if let Some(rev) = rev {
                conn.execute(
                    "DELETE FROM trellis_revision_marks WHERE at <= ?1 AND rev < ?2",
                    [horizon_ms, rev],
                )?;
            }
            Ok(rev.map(|r| r as u64))
        })
        .await
    }

    async fn mark_restored(&self, at_ms: i64, now_micros: u64) -> Result<Restored> {
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let backup_revision = read_revisions(&tx)?.current;
            let revision = crate::restored::restored_revision(backup_revision, now_micros);
            let rev = backend::revision_param(revision)?;
            tx.execute("UPDATE trellis_meta SET revision = ?1", [rev])?;
            tx.execute(
                "UPDATE trellis_compaction SET compacted = ?1, swept = ?1",
                [rev],
            )?;
            // Only the objects' current states stay: every revision before the jump expires.
            tx.execute(
                "DELETE FROM trellis_events WHERE rev NOT IN (SELECT mod_rev FROM trellis_objects)",
                [],
            )?;
            tx.execute("DELETE FROM trellis_revision_marks", [])?;
            tx.execute(
                "INSERT INTO trellis_restores (at, backup_rev, rev) VALUES (?1, ?2, ?3)",
                [at_ms, backend::revision_param(backup_revision)?, rev],
            )?;
            tx.commit()?;
            Ok(Restored {
                backup_revision,
                revision,
            })
        })
        .await
    }

    fn poll_interval(&self) -> Duration {
        // Only other processes on the same file need polling; this process publishes directly.
        Duration::from_millis(250)
    }

    fn start_wakeups(&self, _hint: WakeHint) {}
}

/// Removes what the next stretch of compacted revisions superseded, in one transaction; `None`
/// once the sweep has caught up with the compaction mark. Same rule as the Postgres sweep: a
/// revision up to the mark goes when a later one up to the mark names it as `prev_rev`, and a
/// deletion up to the mark goes with it.
fn sweep(conn: &mut Connection) -> Result<Option<u64>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let (swept, compacted): (i64, i64) = tx.query_row(
        "SELECT swept, compacted FROM trellis_compaction",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    if swept >= compacted {
        return Ok(None);
    }
    let upto: Option<i64> = tx.query_row(
        &sql::sweep_bound(Placeholder::Question),
        [swept, compacted, COMPACTION_BATCH],
        |row| row.get(0),
    )?;
    let upto = upto.unwrap_or(compacted);
    let removed = tx.execute(
        &sql::sweep_delete(Placeholder::Question),
        [swept, upto, i64::from(EventType::Deleted.code())],
    )?;
    tx.execute("UPDATE trellis_compaction SET swept = ?1", [upto])?;
    tx.commit()?;
    Ok(Some(removed as u64))
}

fn event_from_row(row: &Row) -> Result<Event> {
    let value: Option<Vec<u8>> = row.get(8)?;
    let prev_rev: Option<i64> = row.get(9)?;
    let prev_value: Option<Vec<u8>> = row.get(10)?;
    assemble_event(
        u64_at(row, 0)?,
        EventType::from_code(row.get(1)?)?,
        ObjectKey {
            resource: row.get(2)?,
            cluster: row.get(3)?,
            namespace: row.get(4)?,
            name: row.get(5)?,
        },
        row.get(6)?,
        u64_at(row, 7)?,
        value.map(Bytes::from),
        prev_rev.map(|r| r.max(0) as u64),
        prev_value.map(Bytes::from),
    )
}

fn write_plan(tx: &rusqlite::Transaction, plan: &WritePlan) -> Result<()> {
    // Object rows only point at the log, where each value is written once.
    let mut upsert = tx.prepare_cached(
        "INSERT INTO trellis_objects (resource, cluster, namespace, name, mod_rev) \
         VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (resource, cluster, namespace, name) DO UPDATE SET mod_rev = excluded.mod_rev",
    )?;
    for o in plan.inserts.iter().chain(&plan.updates) {
        upsert.execute(rusqlite::params![
            o.key.resource,
            o.key.cluster,
            o.key.namespace,
            o.key.name,
            o.revision as i64,
        ])?;
    }
    let mut delete = tx.prepare_cached(
        "DELETE FROM trellis_objects WHERE resource = ?1 AND cluster = ?2 AND namespace = ?3 AND name = ?4",
    )?;
    for k in &plan.deletes {
        delete.execute([&k.resource, &k.cluster, &k.namespace, &k.name])?;
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO trellis_events (rev, kind, resource, cluster, namespace, name, uid, create_rev, value, prev_rev) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for e in &plan.events {
        let o = &e.object;
        insert.execute(rusqlite::params![
            e.revision() as i64,
            e.kind.code(),
            o.key.resource,
            o.key.cluster,
            o.key.namespace,
            o.key.name,
            o.uid,
            o.create_revision as i64,
            (e.kind != EventType::Deleted).then_some(o.value.as_ref()),
            e.prev.as_ref().map(|p| p.revision as i64),
        ])?;
    }
    tx.execute(
        "UPDATE trellis_meta SET revision = ?1",
        [plan.revision as i64],
    )?;
    Ok(())
}
