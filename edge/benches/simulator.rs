//! How many nodes one simulator process holds with every pod Running, against the storage
//! layer's own write rate measured in the same run.
//!
//! Run with `cargo bench -p trellis-edge --bench simulator`. Results are lines
//! `bench: <name> <value> <unit>`; `#` lines are commentary.
//!
//! 1. baseline: `Store::create` of the objects the run ends with (N Nodes and N Pods, bound
//!    and Running, as the simulator writes them) into a fresh embedded SQLite store from 64
//!    tasks: `simulator_baseline_store_create_s` for all of them;
//! 2. starts `trellis-edge --nodes N --pod-start-delay 0s --pod-ready-delay 0s` (embedded
//!    store) and waits until it has created its nodes: `simulator_node_startup_s`;
//! 3. creates one Deployment of N replicas of one GPU each and waits until all are available
//!    (every pod bound, Running and Ready): `simulator_all_running_s`, then checks the pods
//!    through the API: `simulator_pods_running` and `simulator_nodes` (nodes holding a
//!    Running pod);
//! 4. the process' RSS then (`simulator_rss_mib`, and peak), and the ratio of the time to all
//!    Running to the baseline (`simulator_vs_baseline_ratio`: what the API, the controllers
//!    and their ~3 writes per pod cost over one raw create per object).
//!
//! Environment: `TRELLIS_BENCH_EDGE_NODES` (default 10,000).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};
use trellis_edge::gpu::fixture::Fixture;
use trellis_edge::SimulationOptions;
use trellis_server::controller::Scheme;
use trellis_storage::{ObjectKey, Store, StoreOptions};
use trellis_testkit::bench::{env_or, process_memory_kib, report};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

const TASKS: usize = 64;
const TIMEOUT: Duration = Duration::from_secs(1800);

fn main() {
    if let Err(e) = run() {
        eprintln!("bench failed: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let nodes: usize = env_or("TRELLIS_BENCH_EDGE_NODES", 10_000)?;
    println!("# simulator: {nodes} nodes, one 1-GPU pod per node");

    let baseline = baseline(nodes)?;
    report(
        "simulator_baseline_store_create_s",
        baseline.as_secs_f64(),
        "s",
    );
    report(
        "simulator_baseline_store_create_per_s",
        (2 * nodes) as f64 / baseline.as_secs_f64(),
        "ops/s",
    );

    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("edge.kubeconfig");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_trellis-edge"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .args(["--nodes", &nodes.to_string()])
        .args(["--pod-start-delay", "0s", "--pod-ready-delay", "0s"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let result = (|| -> Result<()> {
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        // The node creator logs once every node exists.
        loop {
            let line = lines.next().ok_or("trellis-edge exited")??;
            if line.contains("nodes ready") {
                break;
            }
            if line.contains("ERROR") {
                return Err(line.into());
            }
        }
        std::thread::spawn(move || for _ in lines {});
        report(
            "simulator_node_startup_s",
            started.elapsed().as_secs_f64(),
            "s",
        );
        let (rss, _) = process_memory_kib(pid)?;
        report("simulator_nodes_only_rss_mib", rss / 1024.0, "MiB");

        let manifest = dir.path().join("sim.yaml");
        std::fs::write(&manifest, deployment(nodes))?;
        let created = Instant::now();
        kubectl(
            &kubeconfig,
            &["apply", "-f", &manifest.display().to_string()],
        )?;
        let deadline = created + TIMEOUT;
        loop {
            let d: Value = serde_json::from_str(&kubectl(
                &kubeconfig,
                &[
                    "get",
                    "--raw",
                    "/apis/apps/v1/namespaces/default/deployments/sim",
                ],
            )?)?;
            let available = d
                .pointer("/status/availableReplicas")
                .and_then(Value::as_u64);
            if available == Some(nodes as u64) {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("{available:?} of {nodes} available after {TIMEOUT:?}").into());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let all_running = created.elapsed();
        report("simulator_all_running_s", all_running.as_secs_f64(), "s");
        let pods: Value = serde_json::from_str(&kubectl(
            &kubeconfig,
            &[
                "get",
                "--raw",
                "/api/v1/pods?fieldSelector=status.phase%3DRunning",
            ],
        )?)?;
        let items = pods["items"].as_array().cloned().unwrap_or_default();
        let mut on: Vec<&str> = items
            .iter()
            .filter_map(|p| p.pointer("/spec/nodeName").and_then(Value::as_str))
            .collect();
        on.sort_unstable();
        on.dedup();
        println!("bench: simulator_pods_running {} pods", items.len());
        println!("bench: simulator_nodes {} nodes", on.len());
        let (rss, peak) = process_memory_kib(pid)?;
        report("simulator_rss_mib", rss / 1024.0, "MiB");
        report("simulator_peak_rss_mib", peak / 1024.0, "MiB");
        report(
            "simulator_vs_baseline_ratio",
            all_running.as_secs_f64() / baseline.as_secs_f64(),
            "x",
        );
        Ok(())
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// The Deployment the run creates: `replicas` pods of one GPU each.
fn deployment(replicas: usize) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: sim, namespace: default}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: sim}}}}
  template:
    metadata: {{labels: {{app: sim}}}}
    spec:
      containers:
      - name: main
        image: nvcr.io/nvidia/tritonserver:25.01-py3
        resources: {{limits: {{nvidia.com/gpu: "1"}}}}
"#
    )
}

fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> Result<String> {
    let out = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()?;
    if !out.status.success() {
        return Err(format!("kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// Creates N nodes and N bound, Running pods straight into a fresh SQLite store; how long
/// it took.
fn baseline(nodes: usize) -> Result<Duration> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let dir = tempfile::tempdir()?;
        let store =
            Store::open_sqlite(dir.path().join("store.db"), StoreOptions::default()).await?;
        let scheme = Scheme::of(trellis_edge::kinds::EDGE)?;
        let resource = |plural: &str| {
            scheme
                .lookup("", "v1", plural)
                .map(|rt| rt.storage_resource())
                .ok_or(format!("{plural} not served"))
        };
        let (node_resource, pod_resource) = (resource("nodes")?, resource("pods")?);
        let options = SimulationOptions::new(Fixture::h200()?);
        let now = k8s_openapi::jiff::Timestamp::now();
        let objects: Vec<(ObjectKey, Bytes)> = (1..=nodes)
            .flat_map(|i| {
                let node =
                    serde_json::to_vec(&trellis_edge::simulation::nodes::node(&options, i, now))
                        .unwrap_or_default();
                let name = format!("gpu-node-{i}");
                let pod = serde_json::to_vec(&pod(i, &name)).unwrap_or_default();
                [
                    (
                        ObjectKey::new("root", node_resource.clone(), "", name),
                        Bytes::from(node),
                    ),
                    (
                        ObjectKey::new("root", pod_resource.clone(), "default", format!("sim-{i}")),
                        Bytes::from(pod),
                    ),
                ]
            })
            .collect();
        let store = Arc::new(store);
        let started = Instant::now();
        let failures = futures::stream::iter(objects.into_iter().enumerate())
            .map(|(i, (key, value))| {
                let store = store.clone();
                async move { store.create(key, format!("uid-{i}"), value).await }
            })
            .buffer_unordered(TASKS)
            .filter(|r| futures::future::ready(r.is_err()))
            .count()
            .await;
        let elapsed = started.elapsed();
        if failures > 0 {
            return Err(format!("{failures} baseline creates failed").into());
        }
        Ok(elapsed)
    })
}

/// A bound, Running, Ready pod as the simulator leaves it.
fn pod(i: usize, node: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("sim-{i}"), "namespace": "default", "uid": format!("uid-pod-{i}"),
            "labels": {"app": "sim", "pod-template-hash": "7d4b9c8f6"},
            "creationTimestamp": "2026-12-05T00:00:00Z",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "sim-7d4b9c8f6",
                "uid": "rs-uid", "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"nodeName": node, "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
            "schedulerName": "default-scheduler", "terminationGracePeriodSeconds": 30, "securityContext": {},
            "containers": [{"name": "main", "image": "nvcr.io/nvidia/tritonserver:25.01-py3",
                "imagePullPolicy": "IfNotPresent", "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "resources": {"limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "1"}}}]},
        "status": {"phase": "Running", "qosClass": "BestEffort", "hostIP": "10.0.0.1", "podIP": "10.64.0.1",
            "startTime": "2026-12-05T00:00:00Z",
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": "2026-12-05T00:00:00Z"},
                {"type": "Initialized", "status": "True", "lastTransitionTime": "2026-12-05T00:00:00Z"},
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-05T00:00:00Z"},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": "2026-12-05T00:00:00Z"},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-12-05T00:00:00Z"}],
            "containerStatuses": [{"name": "main", "image": "nvcr.io/nvidia/tritonserver:25.01-py3",
                "imageID": "", "ready": true, "started": true, "restartCount": 0,
                "state": {"running": {"startedAt": "2026-12-05T00:00:00Z"}}}]}
    })
}
