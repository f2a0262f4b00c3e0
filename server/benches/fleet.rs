//! Placement end to end on the hub: from a ModelDeployment create being acknowledged to a
//! watcher seeing it `Scheduled=True`, with 1,000 deployments from 10 tenants at once, on
//! Postgres; against the same hub's plain path, a ConfigMap create → a watcher seeing it.
//!
//! Run with `cargo bench -p trellis-server --bench fleet`. Two phases, each of 1,000
//! deployments and, before them, 1,000 ConfigMaps for the baseline: creates paced at
//! `TRELLIS_BENCH_RATE` per second in all (default 200, the throughput target), then a burst
//! as fast as the clients go. Prints `bench: <name> <value> <unit>`:
//! - `place_e2e_p99_ms` (target ≤ 20) and `place_e2e_p50_ms` of the paced phase, with
//!   `create_watch_p99_ms`, the baseline, and their ratio; the same with `_burst`;
//! - `place_e2e_per_s` (target ≥ 200): deployments scheduled per second in the burst, first
//!   create to last `Scheduled` seen;
//! - `gpu_overcommit` (must be 0): GPUs booked beyond what a target's nodes have free, counting
//!   a replica of N GPUs only on a node with N free.
//!
//! The hub runs in this process on a throwaway Postgres cluster (`trellis-testkit`), with the
//! per-user rate limit off. The provider workspace has 100 SyncTargets of 50 nodes of eight
//! H200s each (the real reading: `NVIDIA H200`, 143771 MiB), reported as a syncer would, which
//! then never reports placements back: the hub's own bookkeeping keeps concurrent tenants
//! from double-booking. Each tenant creates 100 deployments of one replica (1, 2, 4 or 8 GPUs),
//! `TRELLIS_BENCH_IN_FLIGHT` (default 4) at a time; every client is kube-rs over HTTPS.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use serde_json::{json, Value};
use trellis_apis::compute::{GPUPool, Placement, SyncTarget};
use trellis_apis::serving::{
    GPURequest, ModelDeployment, ModelDeploymentSpec, ModelResources, ModelRuntime, ModelSource,
    PlacementPolicy,
};
use trellis_server::{start, StartOptions};
use trellis_testkit::bench::{env_or, percentile, report};
use trellis_testkit::{ClusterOptions, PostgresCluster};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

const PROVIDER: &str = "root:platform";
const TENANTS: usize = 10;
const PER_TENANT: usize = 100;
const TARGETS: usize = 100;
const NODES: i64 = 50;
const GPUS_PER_NODE: i64 = 8;
const H200: &str = "NVIDIA H200";
const H200_MIB: i64 = 143_771;
const SIZES: [i32; 4] = [1, 2, 4, 8];

/// A client for `workspace` (`*` for all of them) of the hub whose admin kubeconfig this is.
async fn client(kubeconfig: &Path, workspace: &str) -> Result<Client> {
    let kubeconfig = Kubeconfig::read_from(kubeconfig)?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    let server = config.cluster_url.to_string();
    let base = server.split("/clusters/").next().unwrap_or(&server);
    config.cluster_url = format!("{base}/clusters/{workspace}").parse()?;
    Ok(Client::try_from(config)?)
}

fn now() -> String {
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    k8s_openapi::jiff::Timestamp::from_second(now)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

async fn create_workspace(root: &Client, name: &str) -> Result<()> {
    let body = json!({
        "apiVersion": "tenancy.trellis.dev/v1alpha1", "kind": "Workspace",
        "metadata": {"name": name},
    });
    let request = axum::http::Request::post("/apis/tenancy.trellis.dev/v1alpha1/workspaces")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body)?)?;
    root.request::<Value>(request).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let request = axum::http::Request::get(format!(
            "/apis/tenancy.trellis.dev/v1alpha1/workspaces/{name}"
        ))
        .body(Vec::new())?;
        let ws = root.request::<Value>(request).await?;
        if ws.pointer("/status/phase").and_then(Value::as_str) == Some("Ready") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("workspace {name} not ready").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The provider's targets, reported Ready with every node's eight GPUs free.
async fn create_targets(provider: &Client) -> Result<()> {
    let api: Api<SyncTarget> = Api::all(provider.clone());
    for i in 0..TARGETS {
        let name = format!("gpu-{i}");
        api.create(
            &PostParams::default(),
            &SyncTarget::new(&name, Default::default()),
        )
        .await?;
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status()))
            .await?;
    }
    Ok(())
}

fn status() -> Value {
    let now = now();
    json!({"status": {
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "SyncerReady", "message": "",
                "lastTransitionTime": now},
            {"type": "SyncerReady", "status": "True", "reason": "Connected", "message": "",
                "lastTransitionTime": now},
        ],
        "lastHeartbeatTime": now,
        "gpus": [{
            "productName": H200, "memoryMiB": H200_MIB, "architecture": "Hopper",
            "totalDevices": NODES * GPUS_PER_NODE, "allocatedDevices": 0,
            "availableDevices": NODES * GPUS_PER_NODE,
            "freeByNode": [{"freeDevices": GPUS_PER_NODE, "nodes": NODES}],
        }],
    }})
}

/// Heartbeats every target every 10 s, as their syncers would, until aborted.
fn heartbeats(provider: Client) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let api: Api<SyncTarget> = Api::all(provider);
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let beat = json!({"status": {"lastHeartbeatTime": now()}});
            for i in 0..TARGETS {
                let _ = api
                    .patch_status(
                        &format!("gpu-{i}"),
                        &PatchParams::default(),
                        &Patch::Merge(&beat),
                    )
                    .await;
            }
        }
    })
}

async fn create_pool(provider: &Client) -> Result<()> {
    let tenants: Vec<Value> = (0..TENANTS)
        .map(|t| {
            json!({"workspace": format!("root:tenant-{t}"),
                "quotas": [{"class": "h200", "nominalQuota": 1000}]})
        })
        .collect();
    let pool: GPUPool = serde_json::from_value(json!({
        "apiVersion": "compute.trellis.dev/v1alpha1", "kind": "GPUPool",
        "metadata": {"name": "h200"},
        "spec": {"classes": [{"name": "h200", "match": {"productName": H200}}],
            "tenants": tenants},
    }))?;
    Api::<GPUPool>::all(provider.clone())
        .create(&PostParams::default(), &pool)
        .await?;
    Ok(())
}

fn deployment(name: &str, gpus: i32) -> ModelDeployment {
    let mut md = ModelDeployment::new(
        name,
        ModelDeploymentSpec {
            model: ModelSource {
                uri: "hf://meta-llama/Llama-3.1-8B-Instruct".into(),
                served_name: None,
            },
            runtime: ModelRuntime {
                image: "vllm/vllm-openai:v0.9.1".into(),
                ..Default::default()
            },
            resources: ModelResources {
                gpu: GPURequest {
                    class: "h200".into(),
                    count: gpus,
                },
                ..Default::default()
            },
            replicas: Some(1),
            placement: PlacementPolicy {
                pool: format!("{PROVIDER}/h200"),
                ..Default::default()
            },
            ..Default::default()
        },
    );
    md.metadata.namespace = Some("default".into());
    md
}

fn config_map(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some([("bench".to_string(), "1".to_string())].into()),
            ..Default::default()
        },
        data: Some([("a".to_string(), "b".to_string())].into()),
        ..Default::default()
    }
}

fn scheduled(md: &ModelDeployment) -> bool {
    md.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Scheduled" && c.status == "True")
    })
}

/// When each object was first seen by a watcher, by uid.
type Seen = Arc<Mutex<HashMap<String, Instant>>>;

/// Watches `api` (all workspaces) and records when each object first passes `done`.
fn watch<K>(api: Api<K>, done: fn(&K) -> bool) -> (Seen, tokio::task::JoinHandle<()>)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let task = tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Some(object) = stream.next().await {
            let Ok(object) = object else { continue };
            if done(&object) {
                if let Some(uid) = object.meta().uid.clone() {
                    let mut seen = record.lock().expect("lock");
                    seen.entry(uid).or_insert_with(Instant::now);
                }
            }
        }
    });
    (seen, task)
}

/// Creates `per_tenant` objects in each tenant, `in_flight` at a time per tenant, paced to
/// `rate` per second in all (as fast as they go with none); when each create was
/// acknowledged, by uid, and when the first was sent.
async fn create_all<K>(
    tenants: &[Client],
    per_tenant: usize,
    in_flight: usize,
    rate: Option<f64>,
    make: fn(usize) -> K,
) -> Result<(HashMap<String, Instant>, Instant)>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let started = Instant::now();
    // Each tenant's share of the rate, its creates offset from the others'.
    let every = rate.map(|r| Duration::from_secs_f64(tenants.len() as f64 / r));
    let mut tasks = tokio::task::JoinSet::new();
    for (t, client) in tenants.iter().enumerate() {
        let api: Api<K> = Api::namespaced(client.clone(), "default");
        let offset = every.map(|e| e.mul_f64(t as f64 / tenants.len() as f64));
        tasks.spawn(async move {
            let acked = futures::stream::iter(0..per_tenant)
                .map(|i| {
                    let api = api.clone();
                    let at = every
                        .zip(offset)
                        .map(|(every, offset)| started + offset + every * i as u32);
                    async move {
                        if let Some(at) = at {
                            tokio::time::sleep_until(at.into()).await;
                        }
                        let created = api.create(&PostParams::default(), &make(i)).await?;
                        Ok::<_, kube::Error>((created.meta().uid.clone(), Instant::now()))
                    }
                })
                .buffer_unordered(in_flight)
                .collect::<Vec<_>>()
                .await;
            acked
        });
    }
    let mut acked = HashMap::new();
    while let Some(done) = tasks.join_next().await {
        for created in done? {
            let (uid, at) = created?;
            acked.insert(uid.ok_or("no uid")?, at);
        }
    }
    Ok((acked, started))
}

/// Waits until every acknowledged object was seen (at most a minute); the latencies in µs.
async fn latencies(acked: &HashMap<String, Instant>, seen: &Seen) -> Result<Vec<u64>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        {
            let seen = seen.lock().expect("lock");
            if acked.keys().all(|uid| seen.contains_key(uid)) {
                let mut out: Vec<u64> = acked
                    .iter()
                    .map(|(uid, at)| seen[uid].saturating_duration_since(*at).as_micros() as u64)
                    .collect();
                out.sort_unstable();
                return Ok(out);
            }
            if Instant::now() > deadline {
                let missing = acked.keys().filter(|u| !seen.contains_key(*u)).count();
                return Err(format!("{missing} objects never seen").into());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// GPUs booked beyond what the targets' nodes have free, replica by replica on whole nodes
/// (first fit by decreasing size: exact for sizes 1, 2, 4 and 8).
async fn overcommit(provider: &Client) -> Result<(i64, i64)> {
    let placements: Api<Placement> = Api::all(provider.clone());
    let mut by_target: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for p in placements.list(&ListParams::default()).await?.items {
        let sizes = by_target
            .entry(p.metadata.namespace.clone().unwrap_or_default())
            .or_default();
        for _ in 0..p.spec.replicas {
            sizes.push(i64::from(p.spec.resources.gpu.count));
        }
    }
    let (mut over, mut booked) = (0, 0);
    for sizes in by_target.values_mut() {
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        let mut free = vec![GPUS_PER_NODE; NODES as usize];
        for size in sizes.iter() {
            booked += size;
            free.sort_unstable();
            match free.iter_mut().find(|f| **f >= *size) {
                Some(f) => *f -= size,
                None => over += size,
            }
        }
    }
    Ok((over, booked))
}

fn main() -> Result<()> {
    // `RUST_LOG=trellis_server=debug` shows the placement controller's passes.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> Result<()> {
    let in_flight: usize = env_or("TRELLIS_BENCH_IN_FLIGHT", 4)?;
    let rate: f64 = env_or("TRELLIS_BENCH_RATE", 200.0)?;
    let pg = PostgresCluster::start(ClusterOptions::default())?;
    let db = pg.create_database("bench_fleet").await?;
    let dir = tempfile::Builder::new()
        .prefix("trellis-bench-")
        .tempdir()?;
    let hub = start(StartOptions {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse()?,
        store: Some(db.url().to_string()),
        tls_sans: Vec::new(),
        shards: Vec::new(),
        security: trellis_server::SecurityOptions {
            max_requests_per_second_per_user: 0.0,
            connections: trellis_server::ConnectionLimits {
                max_per_client: 0,
                ..Default::default()
            },
            ..Default::default()
        },
    })
    .await?;
    println!("# hub: https://{} on Postgres", hub.addr);
    let kubeconfig = hub.kubeconfig.clone();
    let root = client(&kubeconfig, "root").await?;
    create_workspace(&root, "platform").await?;
    let mut tenants = Vec::new();
    for t in 0..TENANTS {
        create_workspace(&root, &format!("tenant-{t}")).await?;
        tenants.push(client(&kubeconfig, &format!("root:tenant-{t}")).await?);
    }
    let provider = client(&kubeconfig, PROVIDER).await?;
    create_targets(&provider).await?;
    let beat = heartbeats(provider.clone());
    create_pool(&provider).await?;
    let all = client(&kubeconfig, "*").await?;
    println!(
        "# {TARGETS} targets of {NODES} nodes of {GPUS_PER_NODE} H200s; {TENANTS} tenants × \
         {PER_TENANT} deployments, {in_flight} in flight per tenant"
    );

    // Paced at `rate`: the latency of one deployment among a steady stream; then a burst of
    // as many as the clients send, for throughput (and latency under it, for context).
    for (phase, rate) in [("", Some(rate)), ("_burst", None)] {
        match rate {
            Some(rate) => println!("# creates paced at {rate}/s in all"),
            None => println!("# creates as fast as {in_flight} in flight per tenant go"),
        }
        // Baseline: a plain object's create → watch on the same hub.
        let (cm_seen, cm_watch) = watch::<ConfigMap>(Api::all(all.clone()), |cm| {
            cm.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key("bench"))
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        let make_cm: fn(usize) -> ConfigMap = if rate.is_some() {
            |i| config_map(&format!("p-{i}"))
        } else {
            |i| config_map(&format!("b-{i}"))
        };
        let (acked, _) = create_all(&tenants, PER_TENANT, in_flight, rate, make_cm).await?;
        let baseline = latencies(&acked, &cm_seen).await?;
        cm_watch.abort();

        // Deployments: create → Scheduled seen.
        let (md_seen, md_watch) = watch::<ModelDeployment>(Api::all(all.clone()), scheduled);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let make_md: fn(usize) -> ModelDeployment = if rate.is_some() {
            |i| deployment(&format!("p-{i}"), SIZES[i % SIZES.len()])
        } else {
            |i| deployment(&format!("b-{i}"), SIZES[i % SIZES.len()])
        };
        let (acked, started) = create_all(&tenants, PER_TENANT, in_flight, rate, make_md).await?;
        let placed = latencies(&acked, &md_seen).await?;
        let last = md_seen
            .lock()
            .expect("lock")
            .values()
            .max()
            .copied()
            .unwrap_or(started);
        md_watch.abort();

        let ms = |us: u64| us as f64 / 1000.0;
        let p99 = ms(percentile(&placed, 0.99));
        let base_p99 = ms(percentile(&baseline, 0.99));
        report(
            &format!("place_e2e{phase}_p50_ms"),
            ms(percentile(&placed, 0.50)),
            "ms",
        );
        report(&format!("place_e2e{phase}_p99_ms"), p99, "ms");
        report(
            &format!("create_watch{phase}_p50_ms"),
            ms(percentile(&baseline, 0.50)),
            "ms",
        );
        report(&format!("create_watch{phase}_p99_ms"), base_p99, "ms");
        report(
            &format!("place_e2e{phase}_p99_vs_create_watch"),
            p99 / base_p99.max(0.001),
            "x",
        );
        let elapsed = last.saturating_duration_since(started).as_secs_f64();
        let name = if rate.is_some() {
            "place_e2e_paced_per_s"
        } else {
            "place_e2e_per_s"
        };
        report(name, placed.len() as f64 / elapsed.max(1e-9), "ops/s");
    }
    let (over, booked) = overcommit(&provider).await?;
    beat.abort();
    println!("# {booked} GPUs booked on {TARGETS} targets");
    report("gpu_overcommit", over as f64, "gpus");
    hub.shutdown().await;
    Ok(())
}
