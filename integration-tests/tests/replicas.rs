//! Two `trellis start` processes on one Postgres database: both serve the same workspaces,
//! a write through one reaches a watch on the other quickly, and the controllers run on one
//! replica at a time and move to the other when the leader is killed.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use trellis_integration_tests::{wait_until, Replica};
use trellis_testkit::PostgresCluster;

async fn holder(replica: &Replica) -> String {
    let leases: Api<Lease> = Api::namespaced(replica.client().await, "kube-system");
    leases
        .get("trellis-controllers")
        .await
        .ok()
        .and_then(|l| l.spec?.holder_identity)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_state_and_hand_over_the_controllers() {
    let db = PostgresCluster::shared()
        .create_database("replicas")
        .await
        .unwrap();
    let mut a = Replica::start(db.url());
    let mut b = Replica::start(db.url());

    // A workspace created through one is served by the other at once.
    let ws =
        "apiVersion: tenancy.trellis.dev/v1alpha1\nkind: Workspace\nmetadata:\n  name: shared\n";
    let path = a.dir.path().join("ws.yaml");
    std::fs::write(&path, ws).unwrap();
    a.ok(&["create", "-f", path.to_str().unwrap()]);
    wait_until(|| {
        a.ok(&[
            "get",
            "workspace",
            "shared",
            "-o",
            "jsonpath={.status.phase}",
        ]) == "Ready"
    });
    let url = a.ok(&["get", "workspace", "shared", "-o", "jsonpath={.status.url}"]);
    let b_url = format!(
        "{}/clusters/root:shared",
        b.ok(&[
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server}"
        ])
        .trim_end_matches("/clusters/root")
    );
    assert!(url.ends_with("/clusters/root:shared"));
    assert!(b
        .ok(&["--server", &b_url, "get", "namespaces"])
        .contains("default"));

    // A write through A reaches a watch on B quickly.
    let on_b: Api<ConfigMap> = Api::namespaced(b.client().await, "default");
    let on_a: Api<ConfigMap> = Api::namespaced(a.client().await, "default");
    let mut watch = on_b
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let mut latencies = Vec::new();
    for i in 0..20 {
        let cm: ConfigMap =
            serde_json::from_value(serde_json::json!({"metadata": {"name": format!("cm{i}")}}))
                .unwrap();
        let sent = Instant::now();
        on_a.create(&PostParams::default(), &cm).await.unwrap();
        loop {
            match tokio::time::timeout(Duration::from_secs(5), watch.next()).await {
                Ok(Some(Ok(WatchEvent::Added(seen))))
                    if seen.metadata.name.as_deref() == Some(&format!("cm{i}")) =>
                {
                    break
                }
                Ok(Some(Ok(_))) => continue,
                other => panic!(
                    "watch on B ended: {:?}",
                    other.map(|e| e.map(|e| e.map(|_| ())))
                ),
            }
        }
        latencies.push(sent.elapsed());
    }
    latencies.sort();
    let p95 = latencies[latencies.len() * 95 / 100 - 1];
    assert!(
        p95 < Duration::from_millis(500),
        "write on A → watch on B p95 {p95:?}"
    );

    // One leader; SIGKILL it and the other takes over within 15 s, and its controllers work.
    let leader = holder(&a).await;
    let pid_a = a.child.id().to_string();
    let (leader_replica, follower) = if leader.contains(&format!("_{pid_a}_")) {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    leader_replica.kill();
    let killed_at = Instant::now();
    let follower_pid = follower.child.id().to_string();
    loop {
        if holder(follower)
            .await
            .contains(&format!("_{follower_pid}_"))
        {
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(15),
            "no takeover within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    follower.ok(&["create", "namespace", "after-failover"]);
    follower.ok(&["delete", "namespace", "after-failover", "--timeout=20s"]);
}
