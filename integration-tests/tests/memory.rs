//! Memory a large request takes comes back once it is answered: the `trellis` binary (its own
//! process, with the allocator it ships with) serves lists that decode tens of megabytes of
//! objects, and its resident memory falls back near where it started once the hub idles.
//! Prints `bench:` lines with the figures.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, PostParams};
use kube::Api;
use trellis_integration_tests::{client_from, kubectl_with_kubeconfig, trellis_binary, wait_until};

/// A field of `/proc/<pid>/status`, in MiB.
fn status_mib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    kib / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_of_a_large_request_is_given_back() {
    let dir = tempfile::tempdir().unwrap();
    let port = trellis_testkit::free_loopback_port();
    let mut child = Command::new(trellis_binary())
        .args(["start", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start trellis");
    let pid = child.id();
    let kubeconfig = dir.path().join("admin.kubeconfig");
    wait_until(|| {
        kubeconfig.is_file() && kubectl_with_kubeconfig(&kubeconfig, &["get", "--raw", "/readyz"]).0
    });
    let client = client_from(&kubeconfig).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    // Thirty ConfigMaps of a million bytes each (just under the 1 MiB a ConfigMap may hold).
    let blob = "m".repeat(1_000_000);
    for i in 0..30 {
        let cm = ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some(format!("big-{i}")),
                ..Default::default()
            },
            data: Some(BTreeMap::from([("blob".to_string(), blob.clone())])),
            ..Default::default()
        };
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = status_mib(pid, "VmRSS");
    // Lists with a selector decode every object; eight at once, three times.
    for _ in 0..3 {
        let lists = (0..8).map(|_| {
            let api = api.clone();
            async move {
                let list = api
                    .list(&ListParams::default().labels("absent!=x"))
                    .await
                    .unwrap();
                assert_eq!(list.items.len(), 30);
            }
        });
        futures::future::join_all(lists).await;
    }
    let peak = status_mib(pid, "VmHWM");
    // Idle for 15 s: the allocator gives the memory back (jemalloc's background threads
    // purge what was freed within about ten seconds).
    let idle_since = Instant::now();
    let soon = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss = status_mib(pid, "VmRSS");
        if rss <= before + (peak - before) / 4 || idle_since.elapsed() > Duration::from_secs(15) {
            break (rss, idle_since.elapsed());
        }
    };
    tokio::time::sleep(Duration::from_secs(15).saturating_sub(idle_since.elapsed())).await;
    let after = status_mib(pid, "VmRSS");
    println!("bench: rss_before_lists {before} MiB");
    println!("bench: rss_peak {peak} MiB");
    println!(
        "bench: rss_back_down_after {} ms ({} MiB)",
        soon.1.as_millis(),
        soon.0
    );
    println!("bench: rss_after_15s_idle {after} MiB");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        peak > before + 100,
        "the lists took memory: {before} → {peak} MiB"
    );
    assert!(
        after <= before + (peak - before) / 4,
        "resident memory stayed up: {before} MiB before, {peak} MiB peak, {after} MiB after idling"
    );
}
