//! The storage conformance suite: behaviour every backend must show, written once as generic
//! async functions over a [`Backing`]. `postgres.rs` and `sqlite.rs` instantiate it with
//! [`conformance_suite!`]; backend-specific failure tests live beside them.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use trellis_storage::{
    EventType, ListRequest, ListScope, ObjectKey, Preconditions, ReadRevision, ShardSpec,
    StorageError, Store, StoreOptions, StoredObject, SCHEMA_VERSION,
};
use trellis_testkit::{PostgresCluster, TestDatabase};

/// A database that several store instances (think: server replicas) can open.
pub enum Backing {
    Postgres(TestDatabase),
    Sqlite(tempfile::TempDir),
}

impl Backing {
    pub async fn postgres() -> Backing {
        let db = PostgresCluster::shared()
            .create_database("storage")
            .await
            .expect("create test database");
        Backing::Postgres(db)
    }

    pub async fn sqlite() -> Backing {
        Backing::Sqlite(tempfile::tempdir().expect("temp dir"))
    }

    /// A URL or file path that [`open_location`] understands.
    pub fn location(&self) -> String {
        match self {
            Backing::Postgres(db) => db.url().to_string(),
            Backing::Sqlite(dir) => dir.path().join("store.db").display().to_string(),
        }
    }

    pub async fn open(&self) -> Store {
        self.open_with(test_options()).await
    }

    pub fn spec(&self) -> ShardSpec {
        ShardSpec::parse(&self.location())
    }

    /// Runs SQL on the database directly, as an operator or another binary would.
    pub async fn execute_sql(&self, sql: &str) {
        match self {
            Backing::Postgres(db) => {
                let (client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
                    .await
                    .expect("connect");
                let connection = tokio::spawn(connection);
                client.batch_execute(sql).await.expect("run SQL");
                drop(client);
                let _ = connection.await;
            }
            Backing::Sqlite(_) => rusqlite::Connection::open(self.location())
                .and_then(|conn| conn.execute_batch(sql))
                .expect("run SQL"),
        }
    }

    /// A literal of `bytes` in this database's SQL.
    pub fn blob(&self, bytes: &[u8]) -> String {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        match self {
            Backing::Postgres(_) => format!("'\\x{hex}'::bytea"),
            Backing::Sqlite(_) => format!("X'{hex}'"),
        }
    }

    /// The number of rows in `table`.
    pub async fn count_rows(&self, table: &str) -> i64 {
        let sql = format!("SELECT count(*) FROM {table}");
        match self {
            Backing::Postgres(db) => {
                let (client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
                    .await
                    .expect("connect");
                let connection = tokio::spawn(connection);
                let n: i64 = client.query_one(&sql, &[]).await.expect("count").get(0);
                drop(client);
                let _ = connection.await;
                n
            }
            Backing::Sqlite(_) => rusqlite::Connection::open(self.location())
                .and_then(|conn| conn.query_row(&sql, [], |r| r.get(0)))
                .expect("count"),
        }
    }

    /// The schema versions recorded in the database, in order.
    pub async fn recorded_versions(&self) -> Vec<i64> {
        match self {
            Backing::Postgres(db) => {
                let (client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
                    .await
                    .expect("connect");
                let connection = tokio::spawn(connection);
                let rows = client
                    .query(
                        "SELECT version FROM trellis_schema_migrations ORDER BY version",
                        &[],
                    )
                    .await
                    .expect("read versions");
                drop(client);
                let _ = connection.await;
                rows.iter().map(|r| i64::from(r.get::<_, i32>(0))).collect()
            }
            Backing::Sqlite(_) => {
                let conn = rusqlite::Connection::open(self.location()).expect("open");
                let mut stmt = conn
                    .prepare("SELECT version FROM trellis_schema_migrations ORDER BY version")
                    .expect("prepare");
                let versions = stmt
                    .query_map([], |r| r.get(0))
                    .expect("read versions")
                    .collect::<Result<Vec<i64>, _>>()
                    .expect("versions");
                versions
            }
        }
    }

    pub async fn open_with(&self, options: StoreOptions) -> Store {
        open_location(&self.location(), options)
            .await
            .expect("open store")
    }
}

pub async fn open_location(
    location: &str,
    options: StoreOptions,
) -> trellis_storage::Result<Store> {
    if location.starts_with("postgres") {
        Store::open_postgres(location, options).await
    } else {
        Store::open_sqlite(location, options).await
    }
}

pub fn test_options() -> StoreOptions {
    StoreOptions {
        fresh_wait: Duration::from_millis(300),
        compaction: None,
        ..StoreOptions::default()
    }
}

pub const CM: &str = "core/configmaps";

pub fn key(cluster: &str, namespace: &str, name: &str) -> ObjectKey {
    ObjectKey::new(cluster, CM, namespace, name)
}

pub fn value(n: u64) -> Bytes {
    Bytes::from(format!(
        r#"{{"data":{{"n":"{n}"}},"pad":"{}"}}"#,
        "x".repeat(64)
    ))
}

pub async fn list_all(store: &Store, scope: ListScope) -> Vec<StoredObject> {
    store
        .list(ListRequest::new(scope))
        .await
        .expect("list")
        .items
}

/// Reads every page of a list with the given page size.
pub async fn list_paged(
    store: &Store,
    request: ListRequest,
) -> trellis_storage::Result<(u64, Vec<StoredObject>)> {
    let mut request = request;
    let first = store.list(request.clone()).await?;
    let revision = first.revision;
    let mut items = first.items;
    let mut token = first.continue_token;
    while let Some(t) = token {
        request.continue_token = Some(t);
        let page = store.list(request.clone()).await?;
        assert_eq!(
            page.revision, revision,
            "every page reads the same revision"
        );
        items.extend(page.items);
        token = page.continue_token;
    }
    Ok((revision, items))
}

// ---------------------------------------------------------------------------------------------

pub async fn crud(b: Backing) {
    let store = b.open().await;
    let k = key("c1", "default", "a");
    let start = store.current_revision().await.unwrap();
    assert!(
        start >= 1,
        "revisions start at 1 like etcd, so no list reports \"0\""
    );

    let created = store.create(k.clone(), "uid-1", value(1)).await.unwrap();
    assert!(created.revision > start);
    assert_eq!(created.create_revision, created.revision);
    assert_eq!(store.get(&k).await.unwrap(), created);
    assert!(matches!(
        store.create(k.clone(), "uid-2", value(2)).await,
        Err(StorageError::AlreadyExists(_))
    ));

    let updated = store
        .update(
            k.clone(),
            value(2),
            Preconditions::revision(created.revision),
        )
        .await
        .unwrap();
    assert!(updated.revision > created.revision);
    assert_eq!(updated.create_revision, created.revision);
    assert_eq!(updated.uid, "uid-1");
    assert_eq!(store.get(&k).await.unwrap().value, value(2));

    // Stale revision and wrong uid are conflicts; nothing changes.
    for pre in [
        Preconditions::revision(created.revision),
        Preconditions {
            revision: None,
            uid: Some("uid-other".into()),
        },
    ] {
        assert!(matches!(
            store.update(k.clone(), value(3), pre.clone()).await,
            Err(StorageError::Conflict { .. })
        ));
        assert!(matches!(
            store.delete(k.clone(), pre).await,
            Err(StorageError::Conflict { .. })
        ));
    }
    assert_eq!(store.get(&k).await.unwrap(), updated);

    // Writing the same bytes again is not a change.
    let same = store
        .update(k.clone(), value(2), Preconditions::none())
        .await
        .unwrap();
    assert_eq!(same.revision, updated.revision);

    let deleted = store
        .delete(
            k.clone(),
            Preconditions {
                revision: Some(updated.revision),
                uid: Some("uid-1".into()),
            },
        )
        .await
        .unwrap();
    assert!(
        deleted.revision > updated.revision,
        "a delete has its own revision"
    );
    assert_eq!(deleted.value, value(2), "a delete returns the last state");
    assert!(store.get(&k).await.unwrap_err().is_not_found());
    assert!(store
        .delete(k.clone(), Preconditions::none())
        .await
        .unwrap_err()
        .is_not_found());
    assert!(store
        .update(k.clone(), value(1), Preconditions::none())
        .await
        .unwrap_err()
        .is_not_found());
    assert_eq!(store.current_revision().await.unwrap(), deleted.revision);

    // Recreated: a new incarnation.
    let again = store.create(k.clone(), "uid-3", value(4)).await.unwrap();
    assert_eq!(again.create_revision, again.revision);
    assert_eq!(again.uid, "uid-3");

    // Cluster-scoped objects have an empty namespace.
    let ns = ObjectKey::new("c1", "core/namespaces", "", "default");
    store
        .create(ns.clone(), "uid-ns", Bytes::from_static(b"{}"))
        .await
        .unwrap();
    assert_eq!(store.get(&ns).await.unwrap().key.namespace, "");
}

/// What metrics read: objects per resource (live ones only), batches and writes committed by
/// this process, and watch streams fed.
pub async fn counts_and_stats(b: Backing) {
    let store = b.open().await;
    let before = store.commit_stats();
    for name in ["a", "b", "c"] {
        store
            .create(key("c1", "default", name), "u", value(1))
            .await
            .unwrap();
    }
    let secret = ObjectKey::new("c2", "core/secrets", "default", "s");
    store.create(secret.clone(), "u", value(2)).await.unwrap();
    store
        .delete(key("c1", "default", "c"), Preconditions::none())
        .await
        .unwrap();
    let counts = store.count_by_resource().await.unwrap();
    assert_eq!(
        counts,
        vec![(CM.to_string(), 2), ("core/secrets".to_string(), 1)]
    );
    let after = store.commit_stats();
    assert_eq!(after.writes - before.writes, 5);
    assert!(after.batches > before.batches && after.batches - before.batches <= 5);
    assert_eq!(store.watchers(), 0);
    let watch = store
        .watch(ListScope::cluster("c1", CM), None)
        .await
        .unwrap();
    assert_eq!(store.watchers(), 1);
    drop(watch);
    assert_eq!(store.watchers(), 0);
}

pub async fn bad_input(b: Backing) {
    let store = b.open().await;
    let before = store.current_revision().await.unwrap();
    for bad in [&b"not json"[..], b"[1,2]", b"{\"a\":", b""] {
        assert!(matches!(
            store
                .create(key("c1", "default", "x"), "u", Bytes::copy_from_slice(bad))
                .await,
            Err(StorageError::InvalidValue(_))
        ));
    }
    for k in [
        ObjectKey::new("", CM, "default", "x"),
        ObjectKey::new("c1", CM, "default", ""),
        ObjectKey::new("c1", CM, "de\0fault", "x"),
    ] {
        assert!(matches!(
            store.create(k.clone(), "u", value(1)).await,
            Err(StorageError::InvalidKey(_))
        ));
        assert!(matches!(
            store.get(&k).await,
            Err(StorageError::InvalidKey(_))
        ));
    }
    for token in ["garbage", "eyJ2IjoxfQ"] {
        let mut req = ListRequest::new(ListScope::cluster("c1", CM));
        req.continue_token = Some(token.into());
        assert!(matches!(
            store.list(req).await,
            Err(StorageError::InvalidContinue(_))
        ));
    }
    // Unicode and odd characters in names and values are stored faithfully.
    let k = key("c1", "ns-ü", "name.with:odd/chars ✓");
    let v = Bytes::from(r#"{"emoji":"🚀","quote":"\"","nul":"\u0000"}"#);
    store.create(k.clone(), "u", v.clone()).await.unwrap();
    assert_eq!(store.get(&k).await.unwrap().value, v);
    assert_eq!(store.current_revision().await.unwrap(), before + 1);
}

pub async fn lists_are_scoped_and_ordered(b: Backing) {
    let store = b.open().await;
    for cluster in ["c2", "c1", "c3"] {
        for ns in ["b", "a"] {
            for name in ["y", "x"] {
                store
                    .create(key(cluster, ns, name), "u", value(1))
                    .await
                    .unwrap();
            }
        }
        store
            .create(
                ObjectKey::new(cluster, "core/secrets", "a", "x"),
                "u",
                value(1),
            )
            .await
            .unwrap();
    }
    let names = |items: Vec<StoredObject>| -> Vec<String> {
        items
            .iter()
            .map(|o| format!("{}/{}/{}", o.key.cluster, o.key.namespace, o.key.name))
            .collect()
    };
    assert_eq!(
        names(list_all(&store, ListScope::cluster("c1", CM)).await),
        ["c1/a/x", "c1/a/y", "c1/b/x", "c1/b/y"]
    );
    assert_eq!(
        names(list_all(&store, ListScope::namespace("c2", CM, "b")).await),
        ["c2/b/x", "c2/b/y"]
    );
    let all = names(list_all(&store, ListScope::all_clusters(CM)).await);
    assert_eq!(all.len(), 12);
    assert_eq!(all[0], "c1/a/x");
    assert_eq!(all[11], "c3/b/y");
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted);
    assert!(list_all(&store, ListScope::cluster("nope", CM))
        .await
        .is_empty());

    // Paging through every cluster with a small page size returns the same, once each.
    let mut req = ListRequest::new(ListScope::all_clusters(CM));
    req.limit = Some(5);
    let (_, paged) = list_paged(&store, req).await.unwrap();
    assert_eq!(names(paged), all);
}

/// Pages read after the first one show the first page's snapshot, whatever writers do meanwhile.
pub async fn paging_is_one_consistent_snapshot(b: Backing) {
    let store = b.open().await;
    let scope = ListScope::namespace("c1", CM, "default");
    let mut original = BTreeMap::new();
    for i in 0..120u64 {
        let o = store
            .create(
                key("c1", "default", &format!("obj-{i:03}")),
                format!("u{i}"),
                value(i),
            )
            .await
            .unwrap();
        original.insert(o.key.name.clone(), o);
    }
    let mut request = ListRequest::new(scope.clone());
    request.limit = Some(7);
    let first = store.list(request.clone()).await.unwrap();
    let snapshot = first.revision;
    assert_eq!(first.items.len(), 7);

    // Writers change everything after the first page: update, delete, recreate, create.
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..120u64 {
                let k = key("c1", "default", &format!("obj-{i:03}"));
                match i % 4 {
                    0 => {
                        store
                            .update(k, value(1000 + i), Preconditions::none())
                            .await
                            .unwrap();
                    }
                    1 => {
                        store.delete(k, Preconditions::none()).await.unwrap();
                    }
                    2 => {
                        store
                            .delete(k.clone(), Preconditions::none())
                            .await
                            .unwrap();
                        store.create(k, "new", value(2000 + i)).await.unwrap();
                    }
                    _ => {
                        store
                            .create(
                                key("c1", "default", &format!("obj-{i:03}-new")),
                                "n",
                                value(i),
                            )
                            .await
                            .unwrap();
                    }
                }
            }
        })
    };
    let mut items = first.items;
    let mut token = first.continue_token;
    let mut pages = 1;
    while let Some(t) = token {
        request.continue_token = Some(t);
        let page = store.list(request.clone()).await.unwrap();
        assert_eq!(page.revision, snapshot);
        items.extend(page.items);
        token = page.continue_token;
        pages += 1;
        if pages == 3 {
            // Make sure the later pages really are read while the data has changed.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    writer.await.unwrap();
    let got: BTreeMap<String, StoredObject> =
        items.into_iter().map(|o| (o.key.name.clone(), o)).collect();
    assert_eq!(
        got, original,
        "the paged list is exactly the state at its revision"
    );

    // An exact-revision list of the old snapshot agrees; a latest list sees the new state.
    let mut exact = ListRequest::new(scope.clone());
    exact.revision = ReadRevision::Exact(snapshot);
    exact.limit = Some(50);
    let (_, at_snapshot) = list_paged(&store, exact).await.unwrap();
    assert_eq!(at_snapshot, original.values().cloned().collect::<Vec<_>>());
    // The latest list shows exactly what the writers left.
    let latest: BTreeMap<String, (String, Bytes)> = list_all(&store, scope)
        .await
        .into_iter()
        .map(|o| (o.key.name, (o.uid, o.value)))
        .collect();
    let mut expected = BTreeMap::new();
    for i in 0..120u64 {
        let name = format!("obj-{i:03}");
        match i % 4 {
            0 => drop(expected.insert(name, (format!("u{i}"), value(1000 + i)))),
            1 => {}
            2 => drop(expected.insert(name, ("new".to_string(), value(2000 + i)))),
            _ => {
                expected.insert(name.clone(), (format!("u{i}"), value(i)));
                expected.insert(format!("{name}-new"), ("n".to_string(), value(i)));
            }
        }
    }
    assert_eq!(latest, expected);
}

pub async fn read_revision_bounds(b: Backing) {
    let store = b.open().await;
    store
        .create(key("c1", "default", "a"), "u", value(1))
        .await
        .unwrap();
    let current = store.current_revision().await.unwrap();
    let mut ahead = ListRequest::new(ListScope::cluster("c1", CM));
    ahead.revision = ReadRevision::Exact(current + 100);
    match store.list(ahead.clone()).await {
        Err(StorageError::TooLargeRevision {
            requested,
            current: c,
        }) => {
            assert_eq!(requested, current + 100);
            assert_eq!(c, current);
        }
        other => panic!("expected TooLargeRevision, got {other:?}"),
    }
    ahead.revision = ReadRevision::NotOlderThan(current + 100);
    assert!(matches!(
        store.list(ahead).await,
        Err(StorageError::TooLargeRevision { .. })
    ));
    assert!(matches!(
        store
            .watch(ListScope::cluster("c1", CM), Some(current + 100))
            .await
            .err(),
        Some(StorageError::TooLargeRevision { .. })
    ));

    // A revision that arrives within the wait is served.
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut req = ListRequest::new(ListScope::cluster("c1", CM));
            req.revision = ReadRevision::NotOlderThan(current + 1);
            store.list(req).await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    store
        .create(key("c1", "default", "b"), "u", value(2))
        .await
        .unwrap();
    let listed = waiter.await.unwrap().unwrap();
    assert!(listed.revision > current);
    assert_eq!(listed.items.len(), 2);
}

pub async fn watch_delivers_changes_with_previous_state(b: Backing) {
    let store = b.open().await;
    let start = store.current_revision().await.unwrap();
    let mut ns_watch = store
        .watch(ListScope::namespace("c1", CM, "default"), Some(start))
        .await
        .unwrap();
    let mut all_watch = store
        .watch(ListScope::all_clusters(CM), None)
        .await
        .unwrap();

    let a = store
        .create(key("c1", "default", "a"), "ua", value(1))
        .await
        .unwrap();
    store
        .create(key("c1", "other", "b"), "ub", value(1))
        .await
        .unwrap();
    store
        .create(key("c2", "default", "c"), "uc", value(1))
        .await
        .unwrap();
    store
        .create(
            ObjectKey::new("c1", "core/secrets", "default", "s"),
            "us",
            value(1),
        )
        .await
        .unwrap();
    let a2 = store
        .update(key("c1", "default", "a"), value(2), Preconditions::none())
        .await
        .unwrap();
    let gone = store
        .delete(key("c1", "default", "a"), Preconditions::none())
        .await
        .unwrap();

    let e = next_event(&mut ns_watch).await;
    assert_eq!(
        (e.kind, e.object.clone(), e.prev.clone()),
        (EventType::Added, a.clone(), None)
    );
    let e = next_event(&mut ns_watch).await;
    assert_eq!(e.kind, EventType::Modified);
    assert_eq!(e.object, a2);
    assert_eq!(e.prev.as_ref(), Some(&a));
    let e = next_event(&mut ns_watch).await;
    assert_eq!(e.kind, EventType::Deleted);
    assert_eq!(e.object, gone);
    assert_eq!(
        e.object.value,
        value(2),
        "a deletion carries the last state"
    );
    assert_eq!(e.prev.as_ref(), Some(&a2));
    assert_eq!(ns_watch.revision(), gone.revision);

    let mut kinds = Vec::new();
    for _ in 0..5 {
        let e = next_event(&mut all_watch).await;
        kinds.push((
            e.object.key.cluster.clone(),
            e.object.key.name.clone(),
            e.kind,
        ));
    }
    assert_eq!(
        kinds,
        [
            ("c1".to_string(), "a".to_string(), EventType::Added),
            ("c1".into(), "b".into(), EventType::Added),
            ("c2".into(), "c".into(), EventType::Added),
            ("c1".into(), "a".into(), EventType::Modified),
            ("c1".into(), "a".into(), EventType::Deleted),
        ]
    );

    // A watch from an older revision replays from the log.
    let mut replay = store
        .watch(ListScope::cluster("c2", CM), Some(start))
        .await
        .unwrap();
    let e = next_event(&mut replay).await;
    assert_eq!(e.object.key.name, "c");
}

/// Two store instances on one database (two server replicas), concurrent writers on both: every
/// watcher on either sees every change exactly once, in revision order.
pub async fn watch_order_with_writers_in_two_instances(b: Backing) {
    let replica_a = b.open().await;
    let replica_b = b.open().await;
    let start = replica_a.current_revision().await.unwrap();
    let scope = ListScope::all_clusters(CM);
    let mut watchers = [
        replica_a.watch(scope.clone(), Some(start)).await.unwrap(),
        replica_b.watch(scope.clone(), Some(start)).await.unwrap(),
        replica_b.watch(scope.clone(), None).await.unwrap(),
    ];
    const WRITERS_PER_REPLICA: usize = 4;
    const WRITES: usize = 60;
    let mut tasks = Vec::new();
    for (r, store) in [replica_a.clone(), replica_b.clone()]
        .into_iter()
        .enumerate()
    {
        for w in 0..WRITERS_PER_REPLICA {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut revisions = Vec::new();
                for i in 0..WRITES {
                    let k = key(&format!("c{w}"), "default", &format!("r{r}-w{w}-{}", i / 3));
                    let o = match i % 3 {
                        0 => store.create(k, "u", value(i as u64)).await,
                        1 => {
                            store
                                .update(k, value(i as u64), Preconditions::none())
                                .await
                        }
                        _ => store.delete(k, Preconditions::none()).await,
                    }
                    .expect("write");
                    revisions.push(o.revision);
                }
                revisions
            }));
        }
    }
    let mut committed = Vec::new();
    for t in tasks {
        committed.extend(t.await.unwrap());
    }
    committed.sort_unstable();
    let total = committed.len();
    assert_eq!(total, 2 * WRITERS_PER_REPLICA * WRITES);
    let unique: HashSet<u64> = committed.iter().copied().collect();
    assert_eq!(unique.len(), total, "every write has its own revision");
    assert_eq!(
        *committed.last().unwrap() - start,
        total as u64,
        "revisions have no gaps"
    );

    for (i, watcher) in watchers.iter_mut().take(2).enumerate() {
        let mut seen = Vec::with_capacity(total);
        while seen.len() < total {
            let e = tokio::time::timeout(Duration::from_secs(20), watcher.next())
                .await
                .unwrap_or_else(|_| panic!("watcher {i} stalled after {} events", seen.len()))
                .expect("open")
                .expect("no error");
            seen.push(e.revision());
        }
        assert_eq!(seen, committed, "watcher {i}: every change once, in order");
    }
    // The watcher started "now" sees a gap-free, ordered suffix.
    let w = &mut watchers[2];
    let mut last = 0;
    while last < *committed.last().unwrap() {
        let e = tokio::time::timeout(Duration::from_secs(20), w.next())
            .await
            .expect("in time")
            .unwrap()
            .unwrap();
        assert!(e.revision() > last);
        last = e.revision();
    }
}

/// Watchers are woken by their own resource's changes only, and what they have reached still
/// covers every other change, including those another replica committed.
pub async fn watches_reach_other_resources_without_hearing_them(b: Backing) {
    let replica_a = b.open().await;
    let replica_b = b.open().await;
    let start = replica_b.current_revision().await.unwrap();
    let mut configmaps = replica_b
        .watch(ListScope::all_clusters(CM), Some(start))
        .await
        .unwrap();
    let mut secrets = replica_b
        .watch(ListScope::all_clusters("core/secrets"), Some(start))
        .await
        .unwrap();
    let secret_key = |name: &str| ObjectKey::new("c1", "core/secrets", "default", name);
    let secret = replica_a
        .create(secret_key("s"), "us", value(1))
        .await
        .unwrap();
    // Replica b hears of it from the log.
    assert_eq!(next_event(&mut secrets).await.object, secret);
    let quiet = tokio::time::timeout(Duration::from_millis(300), configmaps.next()).await;
    assert!(quiet.is_err(), "a secret woke a watch of configmaps");
    assert_eq!(configmaps.revision(), secret.revision);
    assert_eq!(replica_b.watch_reached(CM, start), secret.revision);

    let configmap = replica_b
        .create(key("c1", "default", "a"), "ua", value(1))
        .await
        .unwrap();
    assert_eq!(
        replica_b.watch_reached(CM, secret.revision),
        secret.revision,
        "a change of the resource not yet taken is not reached"
    );
    assert_eq!(next_event(&mut configmaps).await.object, configmap);
    assert_eq!(configmaps.revision(), configmap.revision);
    let later = replica_b
        .create(secret_key("t"), "ut", value(1))
        .await
        .unwrap();
    assert_eq!(configmaps.revision(), later.revision);
    // Its own change is published but not taken: it has reached only what it took.
    assert_eq!(secrets.revision(), secret.revision);
    assert_eq!(next_event(&mut secrets).await.object, later);
    assert_eq!(secrets.revision(), later.revision);
}

/// A watcher that stops reading falls behind its buffer and catches up from the log.
pub async fn slow_watcher_catches_up(b: Backing) {
    let mut options = test_options();
    options.watch_buffer = 4;
    let store = b.open_with(options).await;
    let start = store.current_revision().await.unwrap();
    let mut slow = store
        .watch(ListScope::cluster("c1", CM), Some(start))
        .await
        .unwrap();
    let mut revisions = Vec::new();
    for i in 0..200u64 {
        let o = store
            .create(key("c1", "default", &format!("o{i}")), "u", value(i))
            .await
            .unwrap();
        revisions.push(o.revision);
    }
    let mut seen = Vec::new();
    while seen.len() < revisions.len() {
        let e = tokio::time::timeout(Duration::from_secs(10), slow.next())
            .await
            .expect("in time")
            .unwrap()
            .unwrap();
        seen.push(e.revision());
    }
    assert_eq!(seen, revisions);
}

pub async fn compaction_expires_old_revisions(b: Backing) {
    let store = b.open().await;
    for i in 0..20u64 {
        store
            .create(key("c1", "default", &format!("o{i:02}")), "u", value(i))
            .await
            .unwrap();
    }
    let mut req = ListRequest::new(ListScope::cluster("c1", CM));
    req.limit = Some(5);
    let first = store.list(req.clone()).await.unwrap();
    let old = first.revision;
    store
        .update(
            key("c1", "default", "o10"),
            value(99),
            Preconditions::none(),
        )
        .await
        .unwrap();
    let mid = store.current_revision().await.unwrap();
    store
        .update(
            key("c1", "default", "o11"),
            value(99),
            Preconditions::none(),
        )
        .await
        .unwrap();

    let compacted = store.compact_to(mid).await.unwrap();
    assert_eq!(compacted, mid);
    assert_eq!(store.revisions().await.unwrap().compacted, mid);

    // A continue token, an exact list and a watch from before the compaction are Expired.
    req.continue_token = first.continue_token.clone();
    assert!(matches!(
        store.list(req).await,
        Err(StorageError::Expired { .. })
    ));
    let mut exact = ListRequest::new(ListScope::cluster("c1", CM));
    exact.revision = ReadRevision::Exact(old);
    assert!(matches!(
        store.list(exact).await,
        Err(StorageError::Expired { .. })
    ));
    match store.watch(ListScope::cluster("c1", CM), Some(old)).await {
        Err(StorageError::Expired {
            requested,
            compacted,
        }) => {
            assert_eq!((requested, compacted), (old, mid));
        }
        Err(other) => panic!("expected Expired, got {other}"),
        Ok(_) => panic!("expected Expired, got a watch"),
    }
    // From the compacted revision on, the log is whole.
    let mut w = store
        .watch(ListScope::cluster("c1", CM), Some(mid))
        .await
        .unwrap();
    let e = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(e.object.key.name, "o11");
    assert_eq!(
        list_all(&store, ListScope::cluster("c1", CM)).await.len(),
        20
    );
    // Compaction never goes backwards or past the present.
    assert_eq!(store.compact_to(1).await.unwrap(), mid);
    let current = store.current_revision().await.unwrap();
    assert_eq!(store.compact_to(current + 1000).await.unwrap(), current);
}

/// Compaction keeps what the log must still answer and removes the rest, as etcd's does: for
/// every key, its newest state at or below the mark. Exact lists at the mark and watches from
/// it answer after compaction exactly as before, superseded states and deletions up to the mark
/// are gone from the log, and compacting again is a no-op.
pub async fn compaction_keeps_each_keys_state_at_the_mark(b: Backing) {
    let store = b.open().await;
    let scope = || ListScope::cluster("c1", CM);
    for i in 0..6u64 {
        store
            .create(key("c1", "default", &format!("k{i}")), "u", value(i))
            .await
            .unwrap();
    }
    for round in 0..3u64 {
        for i in 0..3u64 {
            store
                .update(
                    key("c1", "default", &format!("k{i}")),
                    value(100 * (round + 1) + i),
                    Preconditions::none(),
                )
                .await
                .unwrap();
        }
    }
    store
        .delete(key("c1", "default", "k3"), Preconditions::none())
        .await
        .unwrap();
    store
        .create(key("c1", "default", "k3"), "u2", value(33))
        .await
        .unwrap();
    store
        .delete(key("c1", "default", "k4"), Preconditions::none())
        .await
        .unwrap();
    let mark = store.current_revision().await.unwrap();
    // After the mark: k0 changes, k5 goes.
    store
        .update(
            key("c1", "default", "k0"),
            value(999),
            Preconditions::none(),
        )
        .await
        .unwrap();
    store
        .delete(key("c1", "default", "k5"), Preconditions::none())
        .await
        .unwrap();

    let exact = |rev: u64| {
        let mut request = ListRequest::new(scope());
        request.revision = ReadRevision::Exact(rev);
        request.limit = Some(2);
        request
    };
    let watched = |store: &Store| {
        let store = store.clone();
        async move {
            let mut w = store.watch(scope(), Some(mark)).await.unwrap();
            let mut events = Vec::new();
            for _ in 0..2 {
                let e = next_event(&mut w).await;
                events.push((e.kind, e.object, e.prev));
            }
            events
        }
    };
    let before = (
        list_paged(&store, exact(mark)).await.unwrap(),
        watched(&store).await,
    );
    let rows_before = b.count_rows("trellis_events").await;

    assert_eq!(store.compact_to(mark).await.unwrap(), mark);
    let after = (
        list_paged(&store, exact(mark)).await.unwrap(),
        watched(&store).await,
    );
    assert_eq!(after, before);
    assert_eq!(before.0 .1.len(), 5, "k0–k3 and k5 at the mark");
    // Left in the log: the five states at the mark, and the two changes after it.
    assert_eq!(rows_before, 6 + 9 + 3 + 2);
    assert_eq!(b.count_rows("trellis_events").await, 5 + 2);
    assert_eq!(store.compact_to(mark).await.unwrap(), mark);
    assert_eq!(b.count_rows("trellis_events").await, 5 + 2);

    // Once everything is compacted, only the current objects' states remain.
    let current = store.current_revision().await.unwrap();
    store.compact_to(current).await.unwrap();
    assert_eq!(b.count_rows("trellis_events").await, 4);
    assert_eq!(list_all(&store, scope()).await.len(), 4);
}

/// Background compaction follows the schedule kept in the store: a process that restarts
/// more often than the compaction interval still compacts, at each start, what is older than
/// the retention window, up to what its predecessors saw.
pub async fn compaction_survives_restarts(b: Backing) {
    let options = StoreOptions {
        compaction: Some(trellis_storage::CompactionPolicy {
            retention: Duration::from_millis(300),
            // Never comes round in this test: only the tick at each start runs.
            interval: Duration::from_secs(3600),
        }),
        ..test_options()
    };
    // The revision each run found at its start, and left at its end.
    let (mut opened, mut closed) = (Vec::new(), Vec::new());
    for run in 0..3u64 {
        let store = b.open_with(options.clone()).await;
        opened.push(store.current_revision().await.unwrap());
        // Each start marks the revision it finds (let the compactor's first tick run).
        tokio::time::sleep(Duration::from_millis(100)).await;
        for i in 0..3 {
            store
                .create(key("c1", "default", &format!("r{run}-{i}")), "u", value(i))
                .await
                .unwrap();
        }
        closed.push(store.current_revision().await.unwrap());
        drop(store);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // The fourth start compacts at once to what an earlier run marked, more than the
    // retention ago (the third's start, unless a busy machine delayed its first tick).
    let store = b.open_with(options).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let compacted = store.revisions().await.unwrap().compacted;
        if compacted >= opened[1] {
            assert!(
                compacted <= closed[2],
                "compacted {compacted}: more than was marked ({closed:?})"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not compacted after restarts: compacted {compacted}, runs began at {opened:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(matches!(
        store
            .watch(ListScope::cluster("c1", CM), Some(opened[0]))
            .await,
        Err(StorageError::Expired { .. })
    ));
    assert_eq!(
        list_all(&store, ListScope::cluster("c1", CM)).await.len(),
        9
    );
}

/// A store written before values were stored once (schema version 3: object rows holding
/// their values, events holding the state they replaced, compaction removing every event up to
/// its mark) is migrated forward at open. Every object keeps its value and revisions, and the
/// log still answers from the compacted revision on: a watch with previous states, exact
/// lists, and a later compaction. A store recording a version newer than this binary knows is
/// refused with an error naming both versions, and left as it was.
pub async fn schema_migrates_forward_and_refuses_newer(b: Backing) {
    trellis_storage::migrate_location_to(&b.location(), 3)
        .await
        .unwrap();
    assert_eq!(b.recorded_versions().await, [1, 2, 3]);
    // o1 created at 2, changed at 4 and 7; o2 created at 3; o3 created at 5, deleted at 8;
    // o4 created at 6, changed at 9. Compacted at 5: the events up to 5 are gone.
    let v = |n: u64| b.blob(&value(n));
    let row = |name: &str, create: u64, rev: u64| {
        format!(
            "('{CM}', 'c1', 'default', '{name}', 'u-{name}', {create}, {rev}, {})",
            v(rev)
        )
    };
    let event = |rev: u64, kind: i16, name: &str, create: u64, prev: Option<u64>| {
        let value = if kind == 2 {
            "NULL".to_string()
        } else {
            v(rev)
        };
        let (prev_rev, prev_value) = match prev {
            Some(p) => (p.to_string(), v(p)),
            None => ("NULL".into(), "NULL".into()),
        };
        format!(
            "({rev}, {kind}, '{CM}', 'c1', 'default', '{name}', 'u-{name}', {create}, {value}, {prev_rev}, {prev_value})"
        )
    };
    b.execute_sql(&format!(
        "UPDATE trellis_meta SET revision = 9; UPDATE trellis_compaction SET compacted = 5; \
         INSERT INTO trellis_objects (resource, cluster, namespace, name, uid, create_rev, mod_rev, value) \
           VALUES {}, {}, {}; \
         INSERT INTO trellis_events (rev, kind, resource, cluster, namespace, name, uid, create_rev, value, prev_rev, prev_value) \
           VALUES {}, {}, {}, {};",
        row("o1", 2, 7),
        row("o2", 3, 3),
        row("o4", 6, 9),
        event(6, 0, "o4", 6, None),
        event(7, 1, "o1", 2, Some(4)),
        event(8, 2, "o3", 5, Some(5)),
        event(9, 1, "o4", 6, Some(6)),
    ))
    .await;

    let store = b.open().await;
    assert_eq!(
        b.recorded_versions().await,
        (1..=SCHEMA_VERSION).collect::<Vec<_>>()
    );
    let object = |name: &str, create: u64, rev: u64| StoredObject {
        key: key("c1", "default", name),
        uid: format!("u-{name}"),
        create_revision: create,
        revision: rev,
        value: value(rev),
    };
    let scope = || ListScope::cluster("c1", CM);
    assert_eq!(
        list_all(&store, scope()).await,
        [object("o1", 2, 7), object("o2", 3, 3), object("o4", 6, 9)]
    );
    assert_eq!(
        store.get(&key("c1", "default", "o1")).await.unwrap(),
        object("o1", 2, 7)
    );
    let at = |rev: u64| {
        let mut request = ListRequest::new(scope());
        request.revision = ReadRevision::Exact(rev);
        request
    };
    let at_5 = [object("o1", 2, 4), object("o2", 3, 3), object("o3", 5, 5)];
    assert_eq!(store.list(at(5)).await.unwrap().items, at_5);
    let at_8 = [object("o1", 2, 7), object("o2", 3, 3), object("o4", 6, 6)];
    assert_eq!(store.list(at(8)).await.unwrap().items, at_8);

    let mut w = store.watch(scope(), Some(5)).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let e = next_event(&mut w).await;
        seen.push((
            e.kind,
            e.object.key.name.clone(),
            e.object.revision,
            e.prev.map(|p| (p.revision, p.value)),
        ));
    }
    assert_eq!(
        seen,
        [
            (EventType::Added, "o4".to_string(), 6, None),
            (EventType::Modified, "o1".into(), 7, Some((4, value(4)))),
            (EventType::Deleted, "o3".into(), 8, Some((5, value(5)))),
            (EventType::Modified, "o4".into(), 9, Some((6, value(6)))),
        ]
    );

    // Compacting past the migrated stretch keeps what the newer revisions still need.
    assert_eq!(store.compact_to(8).await.unwrap(), 8);
    assert_eq!(store.list(at(8)).await.unwrap().items, at_8);
    let mut w = store.watch(scope(), Some(8)).await.unwrap();
    let e = next_event(&mut w).await;
    assert_eq!(
        (e.object.revision, e.prev.map(|p| p.value)),
        (9, Some(value(6)))
    );
    let next = store
        .create(key("c1", "default", "after-upgrade"), "u", value(10))
        .await
        .unwrap();
    assert_eq!(next.revision, 10);
    drop(store);

    // A newer binary has been here.
    let newer = SCHEMA_VERSION + 1;
    b.execute_sql(&format!(
        "INSERT INTO trellis_schema_migrations (version) VALUES ({newer})"
    ))
    .await;
    match open_location(&b.location(), test_options()).await {
        Err(err @ StorageError::SchemaTooNew { found, known }) => {
            assert_eq!((found, known), (newer, SCHEMA_VERSION));
            let message = err.to_string();
            assert!(
                message.contains(&format!("schema version {newer} is newer"))
                    && message.contains(&format!("({SCHEMA_VERSION})")),
                "{message}"
            );
        }
        Err(other) => panic!("expected SchemaTooNew, got {other}"),
        Ok(_) => panic!("a store of schema version {newer} was opened"),
    }
    assert_eq!(b.recorded_versions().await, (1..=newer).collect::<Vec<_>>());
}

/// A shard marked restored (after loading a backup) keeps every object and its
/// resourceVersion, continues from a revision beyond any the lost server can have issued, and
/// answers Expired (410) to a watch or an exact list at any earlier revision; a watch from the
/// new revision works. Restoring again jumps further still.
pub async fn restore_expires_earlier_revisions(b: Backing) {
    let store = b.open().await;
    let mut written = Vec::new();
    for i in 0..4u64 {
        written.push(
            store
                .create(key("c1", "default", &format!("o{i}")), "u", value(i))
                .await
                .unwrap(),
        );
    }
    let first = written[0].revision;
    let backup_revision = store.current_revision().await.unwrap();
    drop(store);

    let restored = trellis_storage::restore::mark_restored(&b.spec())
        .await
        .unwrap();
    assert_eq!(restored.backup_revision, backup_revision);
    assert!(restored.revision >= backup_revision + trellis_storage::restore::RESTORE_GAP);

    let store = b.open().await;
    let revs = store.revisions().await.unwrap();
    assert_eq!(
        (revs.current, revs.compacted),
        (restored.revision, restored.revision)
    );
    assert_eq!(
        list_all(&store, ListScope::cluster("c1", CM)).await,
        written
    );
    for old in [first, backup_revision] {
        match store.watch(ListScope::cluster("c1", CM), Some(old)).await {
            Err(StorageError::Expired {
                requested,
                compacted,
            }) => {
                assert_eq!((requested, compacted), (old, restored.revision));
            }
            Err(other) => panic!("watch at {old}: expected Expired, got {other}"),
            Ok(_) => panic!("watch at {old}: expected Expired, got a watch"),
        }
        let mut exact = ListRequest::new(ListScope::cluster("c1", CM));
        exact.revision = ReadRevision::Exact(old);
        assert!(matches!(
            store.list(exact).await,
            Err(StorageError::Expired { .. })
        ));
    }
    // A precondition taken before the backup still holds on an unchanged object.
    let updated = store
        .update(
            key("c1", "default", "o1"),
            value(11),
            Preconditions::revision(written[1].revision),
        )
        .await
        .unwrap();
    assert_eq!(updated.revision, restored.revision + 1);
    // A relist and a watch from its revision see what follows.
    let mut w = store
        .watch(ListScope::cluster("c1", CM), Some(updated.revision))
        .await
        .unwrap();
    let created = store
        .create(key("c1", "default", "new"), "u", value(5))
        .await
        .unwrap();
    assert_eq!(next_event(&mut w).await.object, created);
    drop(w);
    drop(store);

    let again = trellis_storage::restore::mark_restored(&b.spec())
        .await
        .unwrap();
    assert_eq!(again.backup_revision, created.revision);
    assert!(again.revision > created.revision);
}

/// The SIGKILL test's parent side: a child process writes and reports each acknowledged write;
/// it is killed mid-flight; every acknowledged write must be there afterwards.
pub async fn no_acknowledged_write_lost_on_sigkill(b: Backing, child_test_name: &str) {
    use tokio::io::AsyncBufReadExt;
    // This process watches while another one writes: the watch must see the other process's
    // changes exactly once and in order.
    let observer = b.open().await;
    let start = observer.current_revision().await.unwrap();
    let mut watch = observer
        .watch(ListScope::namespace("c1", CM, "default"), Some(start))
        .await
        .unwrap();
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = tokio::process::Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            child_test_name,
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_STORE_ENV, b.location())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn child writer");
    let stdout = child.stdout.take().expect("child stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut acked: Vec<(String, u64)> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while acked.len() < 300 {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("child acknowledged writes in time")
            .expect("read child output");
        let Some(line) = line else {
            panic!("child exited early")
        };
        if let Some(ack) = parse_ack(&line) {
            acked.push(ack);
        }
    }
    child.start_kill().expect("SIGKILL the writer");
    // Lines already written before the kill are acknowledgements too.
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(ack) = parse_ack(&line) {
            acked.push(ack);
        }
    }
    let status = child.wait().await.expect("reap child");
    assert!(!status.success(), "the child was killed, not finished");

    let mut acked_revisions: Vec<u64> = acked.iter().map(|(_, r)| *r).collect();
    acked_revisions.sort_unstable();
    let newest_acked = *acked_revisions.last().unwrap();
    let mut watched = Vec::new();
    while watched.last().is_none_or(|r| *r < newest_acked) {
        let event = next_event(&mut watch).await;
        assert!(
            watched.last().is_none_or(|r| *r < event.revision()),
            "watch events in revision order, each once"
        );
        watched.push(event.revision());
    }
    let watched: HashSet<u64> = watched.into_iter().collect();
    for revision in &acked_revisions {
        assert!(
            watched.contains(revision),
            "the watch saw acknowledged write {revision}"
        );
    }

    let store = b.open().await;
    for (name, revision) in &acked {
        let o = store
            .get(&key("c1", "default", name))
            .await
            .unwrap_or_else(|e| panic!("acknowledged write {name} lost: {e}"));
        assert_eq!(
            o.revision, *revision,
            "{name} has the acknowledged revision"
        );
    }
    // And the store still takes writes.
    store
        .create(key("c1", "default", "after-kill"), "u", value(1))
        .await
        .unwrap();
}

pub async fn next_event(w: &mut trellis_storage::WatchStream) -> trellis_storage::Event {
    tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("event in time")
        .expect("stream open")
        .expect("no error")
}

pub const CHILD_STORE_ENV: &str = "TRELLIS_CHILD_STORE";

fn parse_ack(line: &str) -> Option<(String, u64)> {
    let mut parts = line.strip_prefix("ack ")?.split(' ');
    Some((parts.next()?.to_string(), parts.next()?.parse().ok()?))
}

/// The SIGKILL test's child side: writes until killed (bounded), printing each acknowledgement.
pub async fn child_writer() {
    let Ok(location) = std::env::var(CHILD_STORE_ENV) else {
        return;
    };
    let store = open_location(&location, test_options())
        .await
        .expect("child opens store");
    let mut tasks = Vec::new();
    for w in 0..8u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..5_000u64 {
                let name = format!("w{w}-{i}");
                let o = store
                    .create(key("c1", "default", &name), "u", value(i))
                    .await
                    .expect("write");
                println!("ack {name} {}", o.revision);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Instantiates the suite for one backend: `conformance_suite!(Backing::postgres());`
#[macro_export]
macro_rules! conformance_suite {
    ($backing:expr) => {
        $crate::conformance_suite!(@tests $backing;
            crud, counts_and_stats, bad_input, lists_are_scoped_and_ordered, paging_is_one_consistent_snapshot,
            read_revision_bounds, watch_delivers_changes_with_previous_state,
            watch_order_with_writers_in_two_instances, slow_watcher_catches_up,
            watches_reach_other_resources_without_hearing_them,
            compaction_expires_old_revisions, compaction_keeps_each_keys_state_at_the_mark,
            compaction_survives_restarts,
            schema_migrates_forward_and_refuses_newer, restore_expires_earlier_revisions);

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn no_acknowledged_write_lost_on_sigkill() {
            conformance::no_acknowledged_write_lost_on_sigkill($backing.await, "child_writer").await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[ignore = "the child process of no_acknowledged_write_lost_on_sigkill"]
        async fn child_writer() {
            conformance::child_writer().await;
        }
    };
    (@tests $backing:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                conformance::$name($backing.await).await;
            }
        )*
    };
}
