//! The conformance suite on Postgres, plus what only a server can do: go away and come back.

mod conformance;

use std::time::Duration;

use conformance::{key, test_options, value, Backing, CM};
use trellis_storage::{ListScope, Preconditions, Store};
use trellis_testkit::{ClusterOptions, PostgresCluster};

conformance_suite!(Backing::postgres());

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
