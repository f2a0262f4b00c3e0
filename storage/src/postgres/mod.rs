//! The Postgres backend: production shards.
//!
//! Writes: one transaction per group-commit batch. It locks the shard's revision row
//! (`trellis_meta`), reads the current state of the batch's keys, decides every operation in
//! memory ([`crate::write_plan`]), then writes events (each new value, once) and object rows
//! (pointers to them) with array parameters in a few statements and commits once. Reads run in
//! `REPEATABLE READ` snapshots, pipelined on one connection.

mod creates;
mod listen;
mod reachability;
mod schema;

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use reachability::Reachability;

use crate::backend::{Backend, EventsPage, Page, PageQuery, Revisions, Snapshot, WakeHint};
use crate::error::{Result, StorageError};
use crate::key::{ListScope, ObjectKey};
use crate::object::{Event, EventType, StoredObject};
use crate::restored::Restored;
use crate::sql::{self, Param, Placeholder};
use crate::write_plan::{plan, WriteOp, WritePlan};

/// How long a read keeps retrying while Postgres is unreachable.
pub(super) const READ_RETRY_FOR: Duration = Duration::from_secs(5);
/// How long opening a connection may take unless the URL says (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Rows removed per compaction statement: small enough never to hold locks for long.
const COMPACTION_BATCH: i64 = 5000;

pub(crate) struct PostgresBackend {
    pool: Pool,
    /// The group committer's connections, apart from the pool the readers share: they are
    /// made on the committer's thread and driven by its runtime (see `group_commit`).
    commits: Pool,
    reachability: Reachability,
    config: tokio_postgres::Config,
    /// Tags this store's notifications so that it ignores its own: it publishes its commits
    /// to its watchers directly.
    instance: u64,
    notifier: listen::Notifier,
    /// The revision this process last committed, for batches of creates that need no read.
    known: creates::KnownRevision,
}

impl PostgresBackend {
    pub(crate) async fn open(url: &str, max_connections: usize) -> Result<Self> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StorageError::Internal(format!("invalid Postgres URL: {e}")))?;
        // A host that does not answer at all must not hold a request for the OS's TCP timeout.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let pool_of = |size: usize| {
            let manager = Manager::from_config(
                config.clone(),
                NoTls,
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            );
            Pool::builder(manager)
                .max_size(size)
                .build()
                .map_err(|e| StorageError::Internal(format!("connection pool: {e}")))
        };
        let pool = pool_of(max_connections.max(2))?;
        // One for the commit in progress, one to learn the outcome of a commit whose
        // connection broke.
        let commits = pool_of(2)?;
        let mut client = pool.get().await?;
        schema::migrate(&mut client).await?;
        let instance = listen::new_instance_id();
        Ok(Self {
            notifier: listen::Notifier::start(config.clone(), instance),
            reachability: Reachability::default(),
            pool,
            commits,
            config,
            instance,
            known: creates::KnownRevision::default(),
        })
    }

    async fn client(&self) -> Result<Object> {
        self.checkout(&self.pool).await
    }

    /// A connection of the group committer's.
    async fn commit_client(&self) -> Result<Object> {
        self.checkout(&self.commits).await
    }

    async fn checkout(&self, pool: &Pool) -> Result<Object> {
        let client = pool.get().await;
        if client.is_err() {
            self.reachability.failed();
        }
        Ok(client?)
    }

    /// Runs an idempotent read, retrying while the database is unreachable (a restart, a
    /// failover, a pooled connection the server closed) for a bounded time.
    async fn read<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: Fn(Object) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let deadline = if self.reachability.down() {
            tokio::time::Instant::now()
        } else {
            tokio::time::Instant::now() + READ_RETRY_FOR
        };
        let mut delay = Duration::from_millis(20);
        loop {
            let attempt = match self.client().await {
                Ok(client) => op(client).await,
                Err(e) => Err(e),
            };
            match &attempt {
                Ok(_) => self.reachability.reached(),
                Err(StorageError::Unavailable(_)) => self.reachability.failed(),
                Err(_) => {}
            }
            match attempt {
                Err(StorageError::Unavailable(why)) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(error = %why, "read failed to reach Postgres; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(500));
                }
                other => return other,
            }
        }
    }
}

/// Creates or migrates the shard at `url` up to schema `version` only.
pub(crate) async fn migrate_url_to(url: &str, version: i64) -> Result<()> {
    let (mut client, connection) = tokio_postgres::connect(url, NoTls).await?;
    let connection = tokio::spawn(connection);
    let outcome = schema::migrate_to(&mut client, version).await;
    drop(client);
    let _ = connection.await;
    outcome
}

fn to_i64(v: u64) -> i64 {
    v as i64
}

fn to_u64(v: i64) -> u64 {
    v.max(0) as u64
}

fn params(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| match p {
            Param::Text(s) => s as &(dyn ToSql + Sync),
            Param::Int(i) => i as &(dyn ToSql + Sync),
        })
        .collect()
}

/// Decodes a row laid out as [`sql::OBJECT_COLUMNS`].
fn object_from_row(row: &Row) -> StoredObject {
    StoredObject {
        key: ObjectKey {
            resource: row.get(0),
            cluster: row.get(1),
            namespace: row.get(2),
            name: row.get(3),
        },
        uid: row.get(4),
        create_revision: to_u64(row.get(5)),
        revision: to_u64(row.get(6)),
        value: Bytes::from(row.get::<_, Vec<u8>>(7)),
    }
}

/// Decodes a row laid out as [`sql::EVENT_COLUMNS`].
fn event_from_row(row: &Row) -> Result<Event> {
    let revision = to_u64(row.get(0));
    let kind = EventType::from_code(row.get::<_, i16>(1) as i64)?;
    let key = ObjectKey {
        resource: row.get(2),
        cluster: row.get(3),
        namespace: row.get(4),
        name: row.get(5),
    };
    let uid: String = row.get(6);
    let create_revision = to_u64(row.get(7));
    let value: Option<Vec<u8>> = row.get(8);
    let prev_rev: Option<i64> = row.get(9);
    let prev_value: Option<Vec<u8>> = row.get(10);
    crate::object::assemble_event(
        revision,
        kind,
        key,
        uid,
        create_revision,
        value.map(Bytes::from),
        prev_rev.map(to_u64),
        prev_value.map(Bytes::from),
    )
}

/// Keeps one connection from being returned to the pool inside an open transaction.
async fn rollback(client: &Object) {
    if let Err(err) = client.batch_execute("ROLLBACK").await {
        tracing::debug!(error = %err, "rollback failed; the connection will be discarded");
    }
}

#[async_trait]
impl Backend for PostgresBackend {
    async fn revisions(&self) -> Result<Revisions> {
        self.read(|client| async move { read_revisions(&client).await })
            .await
    }

    async fn count_by_resource(&self) -> Result<Vec<(String, u64)>> {
        self.read(|client| async move {
            let stmt = client
                .prepare_cached(
                    "SELECT resource, count(*) FROM trellis_objects GROUP BY resource ORDER BY 1",
                )
                .await?;
            let rows = client.query(&stmt, &[]).await?;
            Ok(rows
                .iter()
                .map(|row| (row.get::<_, String>(0), to_u64(row.get(1))))
                .collect())
        })
        .await
    }

    async fn get(&self, key: &ObjectKey) -> Result<Option<StoredObject>> {
        self.read(|client| async move {
            let stmt = client
                .prepare_cached(&sql::get_object(Placeholder::Dollar))
                .await?;
            let row = client
                .query_opt(
                    &stmt,
                    &[&key.resource, &key.cluster, &key.namespace, &key.name],
                )
                .await?;
            Ok(row.as_ref().map(object_from_row))
        })
        .await
    }

    async fn list_page(&self, query: &PageQuery) -> Result<Page> {
        self.read(|client| async move {
            let result = list_in_snapshot(&client, query).await;
            if result.is_err() {
                rollback(&client).await;
            }
            result
        })
        .await
    }

    async fn commit(&self, ops: &[WriteOp]) -> Result<WritePlan> {
        let client = self.commit_client().await?;
        if let Some(expected) = self.known.for_batch(ops) {
            match creates::commit(&client, &self.known, expected, ops).await {
                creates::Shortcut::Committed(plan) => return Ok(self.committed(plan)),
                creates::Shortcut::Declined => {}
                creates::Shortcut::Unknown(plan, err) => {
                    drop(client);
                    self.known.forget();
                    let plan = self.resolve_commit(plan, err).await?;
                    return Ok(self.committed(plan));
                }
            }
        }
        let decided = lock_and_plan(&client, ops).await;
        let plan = match decided {
            Ok(plan) if plan.events.is_empty() => {
                rollback(&client).await;
                return Ok(plan);
            }
            Ok(plan) => plan,
            Err(err) => {
                rollback(&client).await;
                return Err(err);
            }
        };
        match write_and_commit(&client, &plan).await {
            Committed::Yes => Ok(self.committed(plan)),
            Committed::No(err) => {
                rollback(&client).await;
                self.known.forget();
                Err(err)
            }
            Committed::Unknown(err) => {
                drop(client);
                self.known.forget();
                let plan = self.resolve_commit(plan, err).await?;
                Ok(self.committed(plan))
            }
        }
    }

    async fn events_after(
        &self,
        after: u64,
        scope: Option<&ListScope>,
        limit: usize,
    ) -> Result<EventsPage> {
        self.read(|client| async move {
            let result = events_in_snapshot(&client, after, scope, limit).await;
            if result.is_err() {
                rollback(&client).await;
            }
            result
        })
        .await
    }

    async fn compact_to(&self, revision: u64) -> Result<u64> {
        let client = self.client().await?;
        // Raise the mark first, so nobody reads a range that is about to disappear.
        client
            .execute(
                "UPDATE trellis_compaction SET compacted = GREATEST(compacted, $1)",
                &[&to_i64(revision)],
            )
            .await?;
        let mut removed = 0;
        loop {
            let swept = sweep(&client).await;
            if swept.is_err() {
                rollback(&client).await;
            }
            match swept? {
                Some(n) => removed += n,
                None => return Ok(removed),
            }
        }
    }

    async fn mark_revision(&self, at_ms: i64, revision: u64, spacing_ms: i64) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO trellis_revision_marks (at, rev) SELECT $1::bigint, $2::bigint \
                 WHERE NOT EXISTS \
                 (SELECT 1 FROM trellis_revision_marks WHERE at > $1::bigint - $3::bigint)",
                &[&at_ms, &to_i64(revision), &spacing_ms],
            )
            .await?;
        Ok(())
    }

    async fn marked_before(&self, horizon_ms: i64) -> Result<Option<u64>> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT MAX(rev) FROM trellis_revision_marks WHERE at <= $1",
                &[&horizon_ms],
            )
            .await?;
        let rev: Option<i64> = row.get(0);
        if let Some(rev) = rev {
            client
                .execute(
                    "DELETE FROM trellis_revision_marks WHERE at <= $1 AND rev < $2",
                    &[&horizon_ms, &rev],
                )
                .await?;
        }
        Ok(rev.map(to_u64))
    }

    async fn mark_restored(&self, at_ms: i64, now_micros: u64) -> Result<Restored> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_one("SELECT revision FROM trellis_meta FOR UPDATE", &[])
            .await?;
        let backup_revision = to_u64(row.get(0));
        let revision = crate::restored::restored_revision(backup_revision, now_micros);
        let rev = crate::backend::revision_param(revision)?;
        tx.execute("UPDATE trellis_meta SET revision = $1", &[&rev])
            .await?;
        tx.execute(
            "UPDATE trellis_compaction SET compacted = $1, swept = $1",
            &[&rev],
        )
        .await?;
        // Only the objects' current states stay: every revision before the jump is expired.
        tx.batch_execute(
            "DELETE FROM trellis_events e WHERE NOT EXISTS \
               (SELECT 1 FROM trellis_objects o WHERE o.mod_rev = e.rev); \
             DELETE FROM trellis_revision_marks",
        )
        .await?;
        tx.execute(
            "INSERT INTO trellis_restores (at, backup_rev, rev) VALUES ($1, $2, $3)",
            &[&at_ms, &to_i64(backup_revision), &rev],
        )
        .await?;
        tx.commit().await?;
        self.known.forget();
        Ok(Restored {
            backup_revision,
            revision,
        })
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn start_wakeups(&self, hint: WakeHint) {
        listen::spawn(self.config.clone(), self.instance, hint);
    }

    fn known_unreachable(&self) -> bool {
        self.reachability.down()
    }
}

impl PostgresBackend {
    fn committed(&self, plan: WritePlan) -> WritePlan {
        self.reachability.reached();
        self.known.committed(plan.revision);
        self.notifier.announce(plan.revision);
        plan
    }

    /// The connection broke during COMMIT. Taking the shard lock waits for our transaction to
    /// end one way or the other; then its first event is in the log exactly if it committed.
    async fn resolve_commit(
        &self,
        plan: WritePlan,
        cause: tokio_postgres::Error,
    ) -> Result<WritePlan> {
        let Some(first) = plan.events.first() else {
            return Ok(plan);
        };
        let unknown = || StorageError::UnknownOutcome(cause.to_string());
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            match self.find_committed(first).await {
                Ok(true) => return Ok(plan),
                Ok(false) => return Err(StorageError::Unavailable(cause.to_string())),
                Err(err) if std::time::Instant::now() < deadline => {
                    tracing::warn!(error = %err, "checking the outcome of an interrupted commit");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(_) => return Err(unknown()),
            }
        }
    }

    async fn find_committed(&self, first: &Event) -> Result<bool> {
        let client = self.commit_client().await?;
        client
            .batch_execute("BEGIN; SELECT revision FROM trellis_meta FOR UPDATE")
            .await?;
        let row = client
            .query_opt(
                "SELECT resource, cluster, namespace, name, uid FROM trellis_events WHERE rev = $1",
                &[&to_i64(first.revision())],
            )
            .await;
        rollback(&client).await;
        let key = &first.object.key;
        Ok(row?.is_some_and(|row| {
            row.get::<_, String>(0) == key.resource
                && row.get::<_, String>(1) == key.cluster
                && row.get::<_, String>(2) == key.namespace
                && row.get::<_, String>(3) == key.name
                && row.get::<_, String>(4) == first.object.uid
        }))
    }
}

async fn read_revisions(client: &Object) -> Result<Revisions> {
    let stmt = client.prepare_cached(REVISIONS_SQL).await?;
    let row = client.query_one(&stmt, &[]).await?;
    Ok(Revisions {
        current: to_u64(row.get(0)),
        compacted: to_u64(row.get(1)),
    })
}

const REVISIONS_SQL: &str =
    "SELECT m.revision, c.compacted FROM trellis_meta m, trellis_compaction c";

/// A read snapshot. Reads join objects and events to the log rows holding their states by
/// primary key; a hash join would instead scan the whole log, which is the shard's bulk.
const BEGIN_READ: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
     SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off";

/// Removes from the log, in one bounded transaction, what the next stretch of compacted
/// revisions superseded; `None` once the sweep has caught up with the compaction mark.
///
/// A revision up to the mark is superseded when a later revision of its key, also up to the
/// mark, names it as `prev_rev`; a deletion up to the mark takes itself away too. What stays
/// below the mark is each key's newest state there, which the current objects and the first
/// changes after the mark point at. `swept` records progress in the same transaction, so a
/// crash leaves nothing behind for good; the row lock serializes replicas compacting at once.
async fn sweep(client: &Object) -> Result<Option<u64>> {
    client.batch_execute("BEGIN").await?;
    let row = client
        .query_one(
            "SELECT swept, compacted FROM trellis_compaction FOR UPDATE",
            &[],
        )
        .await?;
    let (swept, compacted): (i64, i64) = (row.get(0), row.get(1));
    if swept >= compacted {
        client.batch_execute("COMMIT").await?;
        return Ok(None);
    }
    let upto: Option<i64> = client
        .query_one(
            &sql::sweep_bound(Placeholder::Dollar),
            &[&swept, &compacted, &COMPACTION_BATCH],
        )
        .await?
        .get(0);
    let upto = upto.unwrap_or(compacted);
    let removed = client
        .execute(
            &sql::sweep_delete(Placeholder::Dollar),
            &[&swept, &upto, &EventType::Deleted.code()],
        )
        .await?;
    client
        .execute("UPDATE trellis_compaction SET swept = $1", &[&upto])
        .await?;
    client.batch_execute("COMMIT").await?;
    Ok(Some(removed))
}

/// Every statement of a write transaction addresses rows by primary key. Prepared statements
/// keep plans made while the shard was young and unanalyzed: with a batch of keys against a few
/// thousand rows the planner picks a hash join over a full scan, and keeps it until autovacuum
/// analyzes the table, so every commit scans the table. With only nested loops allowed the
/// primary key is used at any size. (Disabling sequential scans as well made sequential writes
/// ten times slower in the conformance tests.)
const BEGIN_WRITE: &str =
    "BEGIN; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off";

async fn lock_and_plan(client: &Object, ops: &[WriteOp]) -> Result<WritePlan> {
    let mut keys: Vec<&ObjectKey> = ops.iter().map(WriteOp::key).collect();
    keys.sort();
    keys.dedup();
    let resources: Vec<&str> = keys.iter().map(|k| k.resource.as_str()).collect();
    let clusters: Vec<&str> = keys.iter().map(|k| k.cluster.as_str()).collect();
    let namespaces: Vec<&str> = keys.iter().map(|k| k.namespace.as_str()).collect();
    let names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();

    let lock = client
        .prepare_cached("SELECT revision FROM trellis_meta FOR UPDATE")
        .await?;
    let read = client
        .prepare_cached(&format!(
            "SELECT {cols} FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) \
               AS k(resource, cluster, namespace, name) \
             JOIN trellis_objects o ON o.resource = k.resource AND o.cluster = k.cluster \
               AND o.namespace = k.namespace AND o.name = k.name \
             JOIN trellis_events e ON e.rev = o.mod_rev",
            cols = sql::OBJECT_COLUMNS
        ))
        .await?;
    // Pipelined: BEGIN, lock, read go out together.
    let read_params: [&(dyn ToSql + Sync); 4] = [&resources, &clusters, &namespaces, &names];
    let (_, locked, rows) = futures::try_join!(
        client.batch_execute(BEGIN_WRITE),
        client.query_one(&lock, &[]),
        client.query(&read, &read_params),
    )?;
    let current: HashMap<ObjectKey, StoredObject> = rows
        .iter()
        .map(object_from_row)
        .map(|o| (o.key.clone(), o))
        .collect();
    Ok(plan(to_u64(locked.get(0)), current, ops))
}

/// The outcome of sending a batch's writes and COMMIT together.
enum Committed {
    Yes,
    /// Rolled back: a statement failed inside the transaction, or COMMIT itself failed.
    No(StorageError),
    /// The connection broke after COMMIT may have reached the server.
    Unknown(tokio_postgres::Error),
}

/// Writes the plan's rows and events and commits, all pipelined: one round trip.
///
/// If a write fails inside the transaction, the server answers every later statement with an
/// error and COMMIT with ROLLBACK, so any database error means nothing was committed; a
/// connection error leaves the outcome unknown.
async fn write_and_commit(client: &Object, plan: &WritePlan) -> Committed {
    let statements = match prepare_writes(client).await {
        Ok(statements) => statements,
        Err(err) => return Committed::No(err.into()),
    };
    let revision = to_i64(plan.revision);
    let bump_params: [&(dyn ToSql + Sync); 1] = [&revision];
    let (writes, bumped, commit) = futures::join!(
        write_rows(client, &statements, plan),
        client.execute(&statements.bump, &bump_params),
        client.batch_execute("COMMIT"),
    );
    let failure = match (writes, bumped, commit) {
        (Ok(()), Ok(_), Ok(())) => return Committed::Yes,
        (Err(err), ..) | (_, Err(err), _) | (.., Err(err)) => err,
    };
    if failure.as_db_error().is_some() && !failure.is_closed() {
        Committed::No(StorageError::Internal(failure.to_string()))
    } else {
        Committed::Unknown(failure)
    }
}

struct WriteStatements {
    insert: tokio_postgres::Statement,
    update: tokio_postgres::Statement,
    delete: tokio_postgres::Statement,
    insert_events: tokio_postgres::Statement,
    bump: tokio_postgres::Statement,
}

async fn prepare_writes(client: &Object) -> Result<WriteStatements, tokio_postgres::Error> {
    // Under the shard lock nobody else inserts: new keys are plain inserts, known ones updates
    // (cheaper than ON CONFLICT's speculative insertion). Object rows only point at the log.
    let insert = client
        .prepare_cached(
            "INSERT INTO trellis_objects (resource, cluster, namespace, name, mod_rev) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[])",
        )
        .await?;
    let update = client
        .prepare_cached(
            "UPDATE trellis_objects o SET mod_rev = k.mod_rev \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[]) \
               AS k(resource, cluster, namespace, name, mod_rev) \
             WHERE o.resource = k.resource AND o.cluster = k.cluster AND o.namespace = k.namespace AND o.name = k.name",
        )
        .await?;
    let delete = client
        .prepare_cached(
            "DELETE FROM trellis_objects o \
             USING unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS k(resource, cluster, namespace, name) \
             WHERE o.resource = k.resource AND o.cluster = k.cluster AND o.namespace = k.namespace AND o.name = k.name",
        )
        .await?;
    let insert_events = client
        .prepare_cached(
            "INSERT INTO trellis_events (rev, kind, resource, cluster, namespace, name, uid, create_rev, value, prev_rev) \
             SELECT * FROM unnest($1::int8[], $2::int2[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int8[], $9::bytea[], $10::int8[])",
        )
        .await?;
    let bump = client
        .prepare_cached("UPDATE trellis_meta SET revision = $1")
        .await?;
    Ok(WriteStatements {
        insert,
        update,
        delete,
        insert_events,
        bump,
    })
}

/// Sends the plan's events and object rows (not the revision: the caller moves it).
async fn write_rows(
    client: &Object,
    statements: &WriteStatements,
    plan: &WritePlan,
) -> Result<(), tokio_postgres::Error> {
    let WriteStatements {
        insert,
        update,
        delete,
        insert_events,
        bump: _,
    } = statements;
    let inserted = write_objects(client, insert, &plan.inserts);
    let updated = write_objects(client, update, &plan.updates);

    let d = &plan.deletes;
    let d_resource: Vec<&str> = d.iter().map(|k| k.resource.as_str()).collect();
    let d_cluster: Vec<&str> = d.iter().map(|k| k.cluster.as_str()).collect();
    let d_namespace: Vec<&str> = d.iter().map(|k| k.namespace.as_str()).collect();
    let d_name: Vec<&str> = d.iter().map(|k| k.name.as_str()).collect();

    let events = EventColumns::of(&plan.events);
    let event_params = events.params();

    let deleted = async {
        if d.is_empty() {
            return Ok(0);
        }
        client
            .execute(delete, &[&d_resource, &d_cluster, &d_namespace, &d_name])
            .await
    };
    // Pipelined: all statements go out before the first answer comes back.
    futures::try_join!(
        inserted,
        updated,
        deleted,
        client.execute(insert_events, &event_params),
    )?;
    Ok(())
}

/// A batch's events as column arrays, the parameters of `INSERT … SELECT * FROM unnest(…)`.
pub(super) struct EventColumns<'a> {
    rev: Vec<i64>,
    kind: Vec<i16>,
    resource: Vec<&'a str>,
    cluster: Vec<&'a str>,
    namespace: Vec<&'a str>,
    name: Vec<&'a str>,
    uid: Vec<&'a str>,
    create: Vec<i64>,
    /// None for deletions: the deleted state is the one at `prev_rev`.
    value: Vec<Option<&'a [u8]>>,
    prev_rev: Vec<Option<i64>>,
}

impl<'a> EventColumns<'a> {
    pub(super) fn of(events: &'a [Event]) -> Self {
        let column = |f: fn(&'a Event) -> &'a str| events.iter().map(f).collect::<Vec<_>>();
        EventColumns {
            rev: events.iter().map(|e| to_i64(e.revision())).collect(),
            kind: events.iter().map(|e| e.kind.code()).collect(),
            resource: column(|e| &e.object.key.resource),
            cluster: column(|e| &e.object.key.cluster),
            namespace: column(|e| &e.object.key.namespace),
            name: column(|e| &e.object.key.name),
            uid: column(|e| &e.object.uid),
            create: events
                .iter()
                .map(|e| to_i64(e.object.create_revision))
                .collect(),
            value: events
                .iter()
                .map(|e| (e.kind != EventType::Deleted).then_some(e.object.value.as_ref()))
                .collect(),
            prev_rev: events
                .iter()
                .map(|e| e.prev.as_ref().map(|p| to_i64(p.revision)))
                .collect(),
        }
    }

    /// In the order of `trellis_events`' columns.
    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 10] {
        [
            &self.rev,
            &self.kind,
            &self.resource,
            &self.cluster,
            &self.namespace,
            &self.name,
            &self.uid,
            &self.create,
            &self.value,
            &self.prev_rev,
        ]
    }
}

/// Object rows as column arrays: key and current revision (their values are in the events).
pub(super) struct ObjectColumns<'a> {
    resource: Vec<&'a str>,
    cluster: Vec<&'a str>,
    namespace: Vec<&'a str>,
    name: Vec<&'a str>,
    modified: Vec<i64>,
}

impl<'a> ObjectColumns<'a> {
    pub(super) fn of(rows: &'a [StoredObject]) -> Self {
        let column = |f: fn(&'a StoredObject) -> &'a str| rows.iter().map(f).collect::<Vec<_>>();
        ObjectColumns {
            resource: column(|o| &o.key.resource),
            cluster: column(|o| &o.key.cluster),
            namespace: column(|o| &o.key.namespace),
            name: column(|o| &o.key.name),
            modified: rows.iter().map(|o| to_i64(o.revision)).collect(),
        }
    }

    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 5] {
        [
            &self.resource,
            &self.cluster,
            &self.namespace,
            &self.name,
            &self.modified,
        ]
    }
}

/// Runs `statement` (insert or update) with the rows' keys and revisions as arrays; nothing
/// when empty. Their values are in the events.
async fn write_objects(
    client: &Object,
    statement: &tokio_postgres::Statement,
    rows: &[StoredObject],
) -> Result<u64, tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    client
        .execute(statement, &ObjectColumns::of(rows).params())
        .await
}

async fn list_in_snapshot(client: &Object, query: &PageQuery) -> Result<Page> {
    let scope = &query.scope;
    let after = query.after.as_ref();
    let begin = client.batch_execute(BEGIN_READ);
    let revs_stmt = client.prepare_cached(REVISIONS_SQL).await?;
    match query.snapshot {
        Snapshot::Latest => {
            let q = sql::list_objects(Placeholder::Dollar, scope, after, None, query.limit);
            let stmt = client.prepare_cached(&q.sql).await?;
            let p = params(&q.params);
            let (_, revs, rows) = futures::try_join!(
                begin,
                client.query_one(&revs_stmt, &[]),
                client.query(&stmt, &p),
            )?;
            client.batch_execute("COMMIT").await?;
            Ok(Page {
                items: rows.iter().map(object_from_row).collect(),
                revision: to_u64(revs.get(0)),
            })
        }
        Snapshot::At(rev) => {
            let current_q =
                sql::list_objects(Placeholder::Dollar, scope, after, Some(rev), query.limit);
            let past_q =
                sql::list_changed_since(Placeholder::Dollar, scope, after, rev, query.limit);
            let current_stmt = client.prepare_cached(&current_q.sql).await?;
            let past_stmt = client.prepare_cached(&past_q.sql).await?;
            let (cp, pp) = (params(&current_q.params), params(&past_q.params));
            let (_, revs, unchanged, past) = futures::try_join!(
                begin,
                client.query_one(&revs_stmt, &[]),
                client.query(&current_stmt, &cp),
                client.query(&past_stmt, &pp),
            )?;
            client.batch_execute("COMMIT").await?;
            let (current, compacted) = (to_u64(revs.get(0)), to_u64(revs.get(1)));
            crate::backend::check_snapshot(rev, current, compacted)?;
            let items = crate::backend::merge_pages(
                unchanged.iter().map(object_from_row).collect(),
                past.iter().map(object_from_row).collect(),
                query.limit,
            );
            Ok(Page {
                items,
                revision: rev,
            })
        }
    }
}

async fn events_in_snapshot(
    client: &Object,
    after: u64,
    scope: Option<&ListScope>,
    limit: usize,
) -> Result<EventsPage> {
    let q = sql::events_after(Placeholder::Dollar, after, scope, limit);
    let stmt = client.prepare_cached(&q.sql).await?;
    let revs_stmt = client.prepare_cached(REVISIONS_SQL).await?;
    let p = params(&q.params);
    let (_, revs, rows) = futures::try_join!(
        client.batch_execute(BEGIN_READ),
        client.query_one(&revs_stmt, &[]),
        client.query(&stmt, &p),
    )?;
    client.batch_execute("COMMIT").await?;
    let (current, compacted) = (to_u64(revs.get(0)), to_u64(revs.get(1)));
    if after < compacted {
        return Err(StorageError::Expired {
            requested: after,
            compacted,
        });
    }
    let events = rows
        .iter()
        .map(event_from_row)
        .collect::<Result<Vec<_>>>()?;
    let through = crate::backend::events_through(&events, limit, current);
    Ok(EventsPage { events, through })
}
