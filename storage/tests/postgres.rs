//! The conformance suite on Postgres, plus what only a server can do: go away and come back.

mod conformance;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use conformance::{key, list_all, test_options, value, Backing, CM};
use trellis_storage::{ListScope, Preconditions, ShardSpec, StorageError, Store};
use trellis_testkit::{ClusterOptions, PostgresCluster};

conformance_suite!(Backing::postgres());

/// Postgres crashes under sixteen writers creating objects (batches of creates, on the
/// one-statement path) and recovers from its WAL: every create that was answered is there, with
/// its revision. A batch is answered only once its commit is durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_creates_survive_a_postgres_crash() {
    let cluster =
        PostgresCluster::start(ClusterOptions { durable: true }).expect("private cluster");
    let db = cluster.create_database("crash").await.expect("database");
    let store = Store::open_postgres(db.url(), test_options())
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..16u64)
        .map(|w| {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                let mut answered = Vec::new();
                let mut failed = 0;
                for i in 0u64.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let name = format!("w{w}-{i}");
                    match store
                        .create(key("c1", "default", &name), "u", value(i))
                        .await
                    {
                        Ok(o) => answered.push((name, o.revision)),
                        // Refused or unknown while the server is down: not acknowledged.
                        Err(_) => failed += 1,
                    }
                }
                (answered, failed)
            })
        })
        .collect();
    let answered_before_crash = || async {
        let revision = store.current_revision().await.unwrap();
        assert!(revision > 200, "only {revision} revisions before the crash");
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    answered_before_crash().await;
    tokio::task::block_in_place(|| cluster.crash()).expect("crash postgres");
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::task::block_in_place(|| cluster.start_again()).expect("start postgres");
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);
    let mut answered = Vec::new();
    for writer in writers {
        let (mut got, _failed) = tokio::time::timeout(Duration::from_secs(60), writer)
            .await
            .expect("writers stop")
            .unwrap();
        answered.append(&mut got);
    }
    // Read back through a store of its own: nothing of the writers' process is consulted.
    let reader = Store::open_postgres(db.url(), test_options())
        .await
        .unwrap();
    let mut missing = Vec::new();
    for (name, revision) in &answered {
        match reader.get(&key("c1", "default", name)).await {
            Ok(o) => assert_eq!(o.revision, *revision, "{name}"),
            Err(StorageError::NotFound(_)) => missing.push(name.clone()),
            Err(e) => panic!("reading {name}: {e}"),
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged creates lost in the crash: {:?}",
        missing.len(),
        answered.len(),
        &missing[..missing.len().min(10)]
    );
}

/// Postgres restarts under a running store: writes issued while it is down are retried and
/// succeed once it is back, reads recover, and a watch resumes without losing or duplicating.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_after_postgres_restart() {
    let cluster = PostgresCluster::start(ClusterOptions::default()).expect("private cluster");
    let db = cluster.create_database("restart").await.expect("database");
    let store = Store::open_postgres(db.url(), test_options())
        .await
        .unwrap();
    let start = store.current_revision().await.unwrap();
    let mut watch = store
        .watch(ListScope::cluster("c1", CM), Some(start))
        .await
        .unwrap();

    let mut revisions = Vec::new();
    for i in 0..10u64 {
        let o = store
            .create(key("c1", "default", &format!("before-{i}")), "u", value(i))
            .await
            .unwrap();
        revisions.push(o.revision);
    }

    cluster.stop().expect("stop postgres");
    let writers: Vec<_> = (0..5u64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .create(key("c1", "default", &format!("during-{i}")), "u", value(i))
                    .await
            })
        })
        .collect();
    let reader = {
        let store = store.clone();
        tokio::spawn(async move { store.get(&key("c1", "default", "before-3")).await })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.start_again().expect("start postgres");
    let read = reader
        .await
        .unwrap()
        .expect("a read issued during the outage succeeds after it");
    assert_eq!(read.value, value(3));
    for w in writers {
        let o = w
            .await
            .unwrap()
            .expect("write issued during the outage succeeds after it");
        revisions.push(o.revision);
    }
    // Reads keep working (stale pooled connections are replaced).
    assert_eq!(
        store
            .get(&key("c1", "default", "before-3"))
            .await
            .unwrap()
            .value,
        value(3)
    );
    for i in 0..10u64 {
        let o = store
            .update(
                key("c1", "default", &format!("before-{i}")),
                value(100 + i),
                Preconditions::none(),
            )
            .await
            .unwrap();
        revisions.push(o.revision);
    }
    revisions.sort_unstable();

    let mut seen = Vec::new();
    while seen.len() < revisions.len() {
        let e = tokio::time::timeout(Duration::from_secs(20), watch.next())
            .await
            .expect("watch resumes after the restart")
            .expect("open")
            .expect("no error");
        seen.push(e.revision());
    }
    assert_eq!(
        seen, revisions,
        "no event lost or repeated across the restart"
    );
}

/// Shards are independent databases with their own revision sequences.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_have_independent_revisions() {
    use trellis_storage::{ShardSpec, Shards};
    let cluster = PostgresCluster::shared();
    let (a, b) = (
        cluster.create_database("shard").await.unwrap(),
        cluster.create_database("shard").await.unwrap(),
    );
    let shards = Shards::open(
        [
            ("root".to_string(), ShardSpec::parse(a.url())),
            ("s1".to_string(), ShardSpec::parse(b.url())),
        ],
        test_options(),
    )
    .await
    .unwrap();
    assert_eq!(shards.names().collect::<Vec<_>>(), ["root", "s1"]);
    let root = shards.get("root").unwrap();
    let s1 = shards.get("s1").unwrap();
    for i in 0..5u64 {
        root.create(key("c1", "default", &format!("o{i}")), "u", value(i))
            .await
            .unwrap();
    }
    let r0 = s1.current_revision().await.unwrap();
    let o = s1
        .create(key("c1", "default", "o0"), "u", value(0))
        .await
        .unwrap();
    assert_eq!(o.revision, r0 + 1);
    assert_eq!(root.current_revision().await.unwrap(), r0 + 5);
    assert!(s1
        .get(&key("c1", "default", "o1"))
        .await
        .unwrap_err()
        .is_not_found());
}

/// A commit in one process wakes the watchers of another at once, through NOTIFY: without the
/// hint they would wait for the next poll of the log (every second).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_replicas_commits_reach_watchers_without_waiting_for_the_poll() {
    let b = Backing::postgres().await;
    let (watching, writing) = (b.open().await, b.open().await);
    let start = watching.current_revision().await.unwrap();
    let mut w = watching
        .watch(ListScope::cluster("c1", CM), Some(start))
        .await
        .unwrap();
    // The first write may race the LISTEN being set up; the poll covers it.
    for i in 0..6u64 {
        let sent = std::time::Instant::now();
        writing
            .create(key("c1", "hinted", &format!("o{i}")), "u", value(i))
            .await
            .unwrap();
        let e = conformance::next_event(&mut w).await;
        assert_eq!(e.object.key.name, format!("o{i}"));
        let took = sent.elapsed();
        assert!(
            i == 0 || took < Duration::from_millis(600),
            "write {i} reached the other replica's watcher after {took:?}"
        );
    }
}

/// Batches of creates skip the read when this process wrote the shard last (postgres/creates.rs).
/// Whoever wrote last, every create gets its own revision in commit order, with no gaps, and a
/// create of a key that exists is refused: two replicas create on one shard, in turn and at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_from_two_replicas_keep_revisions_in_commit_order() {
    let b = Backing::postgres().await;
    let (one, two) = (b.open().await, b.open().await);
    let start = one.current_revision().await.unwrap();
    let mut w = one
        .watch(ListScope::cluster("c1", CM), Some(start))
        .await
        .unwrap();
    // In turn: after its own commits a replica takes the shortcut; after the other's, the
    // revision moved under it and the long way answers.
    let mut revisions = Vec::new();
    for (i, store) in [&one, &one, &one, &two, &one, &two, &two, &one]
        .iter()
        .enumerate()
    {
        let created = store
            .create(key("c1", "turns", &format!("o{i}")), "u", value(i as u64))
            .await
            .unwrap();
        revisions.push(created.revision);
    }
    assert_eq!(revisions, (start + 1..=start + 8).collect::<Vec<_>>());
    assert!(matches!(
        one.create(key("c1", "turns", "o0"), "u", value(0)).await,
        Err(StorageError::AlreadyExists(_))
    ));
    assert!(matches!(
        two.create(key("c1", "turns", "o7"), "u", value(0)).await,
        Err(StorageError::AlreadyExists(_))
    ));

    // At once: 8 writers on each replica.
    let mut writers = Vec::new();
    for (r, store) in [one.clone(), two.clone()].into_iter().enumerate() {
        for t in 0..8 {
            let store = store.clone();
            writers.push(tokio::spawn(async move {
                for i in 0..25u64 {
                    store
                        .create(key("c1", "race", &format!("r{r}-{t}-{i}")), "u", value(i))
                        .await
                        .unwrap();
                }
            }));
        }
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let end = one.current_revision().await.unwrap();
    assert_eq!(end, start + 8 + 400);
    let mut seen = Vec::new();
    while seen.len() < 408 {
        seen.push(conformance::next_event(&mut w).await.revision());
    }
    assert_eq!(seen, (start + 1..=end).collect::<Vec<_>>());
    assert_eq!(
        list_all(&two, ListScope::cluster("c1", CM)).await.len(),
        408
    );
}

/// A shard dumped with `pg_dump -Fc` while it is written to, loaded into a new database with
/// `pg_restore` and marked restored: every object the dump holds is back with its
/// resourceVersion, and a watch from any revision of the old shard is Expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_dump_and_pg_restore() {
    let cluster = PostgresCluster::shared();
    let source = cluster.create_database("dumped").await.expect("database");
    let store = Store::open_postgres(source.url(), test_options())
        .await
        .unwrap();
    for i in 0..20u64 {
        store
            .create(key("c1", "default", &format!("o{i:02}")), "u", value(i))
            .await
            .unwrap();
    }
    store
        .update(
            key("c1", "default", "o03"),
            value(33),
            Preconditions::none(),
        )
        .await
        .unwrap();
    let backed_up = list_all(&store, ListScope::cluster("c1", CM)).await;
    let backup_revision = store.current_revision().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("shard.dump");
    let output = std::process::Command::new(trellis_testkit::postgres_binary("pg_dump").unwrap())
        .args(["-Fc", "--no-owner", "-f"])
        .arg(&dump)
        .args(["--dbname", source.url()])
        .output()
        .expect("run pg_dump");
    assert!(
        output.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The shard goes on after the backup; these changes are lost with it.
    let lost = store
        .create(key("c1", "default", "after-dump"), "u", value(99))
        .await
        .unwrap();
    drop(store);

    let target = cluster.create_database("restored").await.expect("database");
    let output =
        std::process::Command::new(trellis_testkit::postgres_binary("pg_restore").unwrap())
            .args(["--no-owner", "--exit-on-error", "--dbname", target.url()])
            .arg(&dump)
            .output()
            .expect("run pg_restore");
    assert!(
        output.status.success(),
        "pg_restore: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let restored = trellis_storage::restore::mark_restored(&ShardSpec::Postgres {
        url: target.url().to_string(),
    })
    .await
    .unwrap();
    assert_eq!(restored.backup_revision, backup_revision);

    let store = Store::open_postgres(target.url(), test_options())
        .await
        .unwrap();
    assert_eq!(
        list_all(&store, ListScope::cluster("c1", CM)).await,
        backed_up
    );
    for old in [backup_revision, lost.revision] {
        assert!(matches!(
            store.watch(ListScope::cluster("c1", CM), Some(old)).await,
            Err(StorageError::Expired { .. })
        ));
    }
    let next = store
        .create(key("c1", "default", "after-restore"), "u", value(1))
        .await
        .unwrap();
    assert_eq!(next.revision, restored.revision + 1);
}
