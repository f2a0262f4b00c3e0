//! Graceful shutdown with real processes: two `trellis start` replicas on one Postgres
//! database; SIGTERM to the leader. It turns unready at once while still serving (for its
//! `--shutdown-delay-duration`), releases the leader Lease so the other replica leads within
//! 2 s (not a lease duration later), ends an open watch cleanly (the stream ends, no reset),
//! keeps every write it acknowledged, and exits 0.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchParams};
use trellis_integration_tests::{kubectl_with_kubeconfig, Replica};
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

fn holds(holder: &str, replica: &Replica) -> bool {
    holder.contains(&format!("_{}_", replica.child.id()))
}

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_hands_over_the_lease_and_exits_zero() {
    let db = PostgresCluster::shared()
        .create_database("shutdown")
        .await
        .unwrap();
    let mut a = Replica::start_with_args(db.url(), None, &["--shutdown-delay-duration", "2s"]);
    let started = Instant::now();
    while !holds(&holder(&a).await, &a) {
        assert!(started.elapsed() < Duration::from_secs(20), "A never led");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let b = Replica::start(db.url());

    // A watch open on A, and a writer creating through A until A stops answering.
    let on_a: Api<ConfigMap> = Api::namespaced(a.client().await, "default");
    let mut watch = on_a
        .watch(&WatchParams::default().timeout(290), "0")
        .await
        .unwrap()
        .boxed();
    let watcher = tokio::spawn(async move {
        let mut events = 0usize;
        while let Some(event) = watch.next().await {
            if let Err(e) = event {
                return Err(format!("after {events} events: {e}"));
            }
            events += 1;
        }
        Ok(events)
    });
    let terminated = Arc::new(AtomicBool::new(false));
    let writer = {
        let (on_a, terminated) = (on_a.clone(), terminated.clone());
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0.. {
                let name = format!("w-{i}");
                match on_a.create(&PostParams::default(), &configmap(&name)).await {
                    Ok(_) => acknowledged.push(name),
                    // Refused connections once A has closed: the end of this writer.
                    Err(_) if terminated.load(Ordering::Relaxed) => break,
                    Err(e) => panic!("a write failed before SIGTERM: {e}"),
                }
            }
            acknowledged
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;

    // step: SIGTERM.
    terminated.store(true, Ordering::Relaxed);
    let status = std::process::Command::new("kill")
        .args(["-TERM", &a.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let sent = Instant::now();

    // step: unready at once (as soon as the signal is handled), still alive and serving
    // during the delay.
    loop {
        let (ready, _, err) =
            kubectl_with_kubeconfig(&a.kubeconfig(), &["get", "--raw", "/readyz"]);
        if !ready {
            assert!(err.contains("shutdown"), "{err}");
            break;
        }
        assert!(
            sent.elapsed() < Duration::from_millis(1500),
            "A is still ready 1.5 s after SIGTERM"
        );
    }
    let (live, _, err) = kubectl_with_kubeconfig(&a.kubeconfig(), &["get", "--raw", "/livez"]);
    assert!(live, "A is not live during the delay: {err}");
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "the probes took the whole delay"
    );

    // step: B leads within 2 s of the SIGTERM.
    loop {
        let now = holder(&b).await;
        if holds(&now, &b) {
            break;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(2),
            "B does not lead 2 s after A's SIGTERM (holder {now:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took_over = sent.elapsed();

    // step: A exits 0.
    let exited = loop {
        if let Some(status) = a.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(30),
            "A did not exit within 30 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(exited.code(), Some(0), "A's exit: {exited:?}");

    // step: the watch ended cleanly, not with a reset.
    let watched = tokio::time::timeout(Duration::from_secs(10), watcher)
        .await
        .expect("the watch on A did not end")
        .unwrap();
    assert!(watched.is_ok(), "the watch on A broke: {watched:?}");

    // step: every write A acknowledged is stored.
    let acknowledged = writer.await.unwrap();
    assert!(
        acknowledged.len() > 1,
        "too few writes to tell: {acknowledged:?}"
    );
    let on_b: Api<ConfigMap> = Api::namespaced(b.client().await, "default");
    let stored: std::collections::HashSet<String> = on_b
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|cm| cm.metadata.name)
        .collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|n| !stored.contains(*n))
        .collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    eprintln!(
        "B led {took_over:?} after SIGTERM; A acknowledged {} writes",
        acknowledged.len()
    );
}
