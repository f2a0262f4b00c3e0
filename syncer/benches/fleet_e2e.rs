//! The GPU fleet end to end as real processes, as `tests/gpu_fleet_e2e.rs` runs it: the hub
//! (`trellis start` on a private Postgres cluster, per-user rate and connection limits off),
//! simulated edge clusters (`trellis-edge`, pods bound, Running and Ready at once) and
//! `trellis-syncer` processes registered with `trellis synctarget create`, all on 127.0.0.1.
//!
//! Run with `cargo bench -p trellis-syncer --bench fleet_e2e [SECTION…]`; the sections (all
//! when none is named) print `bench: <name> <value> <unit>`, each with its baseline measured
//! in the same run:
//! - `e2e_ready`: three edges of 8 nodes × 8 H200s and their syncers; 100 ModelDeployments of
//!   one 1-GPU replica created in a tenant workspace, paced at `TRELLIS_BENCH_RATE` per second
//!   (default 10), each timed from its create being acknowledged to a watcher on the tenant
//!   workspace seeing it `Ready` (placed, applied on an edge, its Deployment available there,
//!   the Placement's status written back): `e2e_ready_p99_ms` (target ≤ 500). Baseline: 100
//!   ConfigMaps created the same way in the same workspace, create → watch
//!   (`create_watch_p99_ms`), and the ratio.
//! - `register_ready`: an edge of 5,000 nodes; `TRELLIS_BENCH_STARTS` (default 10) times a new
//!   syncer process for a new SyncTarget, timed from its start to a watcher on the provider
//!   workspace seeing the target `Ready` with all 40,000 GPUs in its inventory:
//!   `register_ready_p99_ms` (target ≤ 2,000). Baseline (`register_floor_p99_ms`): the I/O
//!   the registration cannot do without, from this process with fresh clients: list the
//!   edge's nodes and pods, write a SyncTarget status, see it on the watch.
//! - `syncer_rss`: on the same 5,000-node edge a syncer whose target 1,000 ModelDeployments
//!   of one 1-GPU replica select; once all are `Ready` (every Placement applied and its status
//!   reported), the syncer's `VmRSS` (`syncer_rss_mib`, target ≤ 64) and `VmHWM`. Baseline:
//!   the same process's RSS with the edge read and no Placements (`syncer_idle_rss_mib`).
//! - `hub_cpu`: `TRELLIS_BENCH_IDLE_SYNCERS` (default 100) syncers, twenty to an edge of two
//!   nodes, heartbeating every 10 s (the default) with nothing to run; the hub's CPU time
//!   (`utime + stime` in `/proc/<pid>/stat`) over `TRELLIS_BENCH_WINDOW_S` (default 60)
//!   seconds with them, minus the same window before any syncer started (the baseline),
//!   per syncer and minute: `hub_cpu_ms_per_idle_syncer_min`.
//!
//! Process logs go to a temporary directory, printed as a `#` line; `TRELLIS_BENCH_KEEP=1`
//! keeps it, `TRELLIS_SYNCER_LOG=trellis_syncer=debug` logs each syncer work pass there. The
//! hub and edge binaries are built on first use with the `bench` profile, or taken from
//! `TRELLIS_BINARIES_DIR` (see `trellis_integration_tests::BINARIES_VARIABLE`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use serde_json::json;
use trellis_apis::compute::placement::ORIGIN_UID_LABEL;
use trellis_apis::compute::{Placement, SyncTarget};
use trellis_apis::serving::ModelDeployment;
use trellis_integration_tests::processes::{
    kubectl_ok, start_syncer, EdgeProcess, HubProcess, Process,
};
use trellis_integration_tests::{write_file, BUILD_PROFILE_VARIABLE};
use trellis_testkit::bench::{env_or, percentile, process_memory_kib, report, Sections};
use trellis_testkit::{ClusterOptions, PostgresCluster};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

const PROVIDER: &str = "root:platform";
const TENANT: &str = "root:acme";
const GPUS_PER_NODE: usize = 8;

fn syncer_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_trellis-syncer"))
}

fn main() -> Result<()> {
    // The hub and edge binaries are built like this one (before any thread starts).
    if std::env::var_os(BUILD_PROFILE_VARIABLE).is_none() && !cfg!(debug_assertions) {
        std::env::set_var(BUILD_PROFILE_VARIABLE, "bench");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> Result<()> {
    let sections = Sections::from_args();
    let pg = PostgresCluster::start(ClusterOptions::default())?;
    let dir = tempfile::Builder::new()
        .prefix("trellis-fleet-bench-")
        .tempdir()?;
    println!("# logs in {}", dir.path().display());
    if sections.runs("e2e_ready") {
        e2e_ready(&pg, &dir.path().join("e2e")).await?;
    }
    if sections.runs("register_ready") || sections.runs("syncer_rss") {
        large_edge(&pg, &dir.path().join("large"), &sections).await?;
    }
    if sections.runs("hub_cpu") {
        hub_cpu(&pg, &dir.path().join("idle")).await?;
    }
    if env_or("TRELLIS_BENCH_KEEP", 0)? == 1 {
        let _ = dir.keep();
    }
    Ok(())
}

/// A hub on a fresh database of `pg`, in `dir`, with the provider and tenant workspaces.
async fn hub(pg: &PostgresCluster, dir: &Path, name: &str) -> Result<HubProcess> {
    std::fs::create_dir_all(dir)?;
    let db = pg.create_database(name).await?;
    let store = db.url().to_string();
    // The database lives as long as the cluster, which this process stops when it ends.
    std::mem::forget(db);
    let hub = HubProcess::start_with(
        store,
        dir.join("hub"),
        dir.join("hub.log"),
        [
            "--max-requests-per-second-per-user",
            "0",
            "--max-connections-per-client",
            "0",
        ]
        .map(String::from)
        .to_vec(),
    );
    for ws in ["platform", "acme"] {
        kubectl_ok(&hub.kubeconfig(), &["ws", "create", ws]);
    }
    Ok(hub)
}

/// The pool every part uses: H200s, the tenant's quota `quota`.
fn apply_pool(hub: &HubProcess, dir: &Path, quota: usize) {
    let pool = format!(
        r#"
apiVersion: compute.trellis.dev/v1alpha1
kind: GPUPool
metadata: {{name: h200}}
spec:
  classes:
  - name: h200
    match: {{productName: NVIDIA H200}}
  tenants:
  - workspace: {TENANT}
    quotas: [{{class: h200, nominalQuota: {quota}}}]
"#
    );
    hub.ok(
        PROVIDER,
        &["apply", "-f", &write_file(dir, "pool.yaml", &pool)],
    );
}

/// A deployment of one replica of one H200, on targets labelled `selector` if given.
fn model_deployment(name: &str, selector: Option<(&str, &str)>) -> Result<ModelDeployment> {
    let mut placement = json!({"pool": format!("{PROVIDER}/h200")});
    if let Some((key, value)) = selector {
        placement["targetSelector"] = json!({"matchLabels": {key: value}});
    }
    Ok(serde_json::from_value(json!({
        "apiVersion": "serving.trellis.dev/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "model": {"uri": "hf://meta-llama/Llama-3.1-8B-Instruct"},
            "runtime": {"image": "vllm/vllm-openai:v0.9.1"},
            "resources": {"gpu": {"class": "h200", "count": 1}},
            "replicas": 1,
            "placement": placement,
        },
    }))?)
}

fn config_map(name: &str) -> ConfigMap {
    let mut cm = ConfigMap {
        data: Some([("a".to_string(), "b".to_string())].into()),
        ..Default::default()
    };
    cm.metadata.name = Some(name.to_string());
    cm.metadata.namespace = Some("default".to_string());
    cm
}

fn condition_true(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: &str,
) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

fn md_ready(md: &ModelDeployment) -> bool {
    md.status
        .as_ref()
        .is_some_and(|s| condition_true(&s.conditions, "Ready"))
}

/// Ready with `gpus` GPUs in its inventory.
fn target_ready(target: &SyncTarget, gpus: usize) -> bool {
    target.status.as_ref().is_some_and(|s| {
        condition_true(&s.conditions, "Ready")
            && s.gpus
                .iter()
                .map(|g| g.total_devices as usize)
                .sum::<usize>()
                == gpus
    })
}

/// When a watcher first saw each key.
type Seen = Arc<Mutex<HashMap<String, Instant>>>;

/// A task aborted when dropped.
struct Watching(tokio::task::JoinHandle<()>);

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Watches `api` and records when each key `key` gives an object is first seen.
fn watch<K>(api: Api<K>, key: impl Fn(&K) -> Option<String> + Send + 'static) -> (Seen, Watching)
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let task = tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(object) = stream.next().await {
            let Ok(object) = object else { continue };
            if let Some(key) = key(&object) {
                let now = Instant::now();
                record.lock().expect("lock").entry(key).or_insert(now);
            }
        }
    });
    (seen, Watching(task))
}

/// The uid of `object`, for watchers keyed by it.
fn uid<K: Resource>(object: &K) -> Option<String> {
    object.meta().uid.clone()
}

/// Creates `count` objects `make` gives, `in_flight` at a time, paced at `rate` per second
/// (as fast as they go with none); when each create was acknowledged, by uid.
async fn create_all<K>(
    api: &Api<K>,
    count: usize,
    in_flight: usize,
    rate: Option<f64>,
    make: impl Fn(usize) -> Result<K>,
) -> Result<HashMap<String, Instant>>
where
    K: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let started = Instant::now();
    let objects = (0..count).map(&make).collect::<Result<Vec<K>>>()?;
    let acked = futures::stream::iter(objects.into_iter().enumerate())
        .map(|(i, object)| async move {
            if let Some(rate) = rate {
                let at = started + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(at.into()).await;
            }
            let created = api.create(&PostParams::default(), &object).await?;
            Ok::<_, kube::Error>((uid(&created), Instant::now()))
        })
        .buffer_unordered(in_flight)
        .collect::<Vec<_>>()
        .await;
    let mut out = HashMap::new();
    for created in acked {
        let (uid, at) = created?;
        out.insert(uid.ok_or("no uid")?, at);
    }
    Ok(out)
}

/// Waits (up to `limit`) until every key of `started` was seen; the latencies in µs, sorted.
async fn latencies(
    started: &HashMap<String, Instant>,
    seen: &Seen,
    limit: Duration,
) -> Result<Vec<u64>> {
    let deadline = Instant::now() + limit;
    loop {
        {
            let seen = seen.lock().expect("lock");
            let missing = started.keys().filter(|k| !seen.contains_key(*k)).count();
            if missing == 0 {
                let mut out: Vec<u64> = started
                    .iter()
                    .map(|(k, at)| seen[k].saturating_duration_since(*at).as_micros() as u64)
                    .collect();
                out.sort_unstable();
                return Ok(out);
            }
            if Instant::now() > deadline {
                return Err(
                    format!("{missing} of {} never seen in {limit:?}", started.len()).into(),
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// A kube-rs client for a kubeconfig file (a new connection pool each time).
async fn client_from(kubeconfig: &Path) -> Result<Client> {
    let file = Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// A registered target and its syncer.
struct Syncer {
    process: Process,
    name: String,
}

/// Registers `name` in the provider workspace and starts its syncer against the edge of
/// `edge_kubeconfig`, the credentials and log in `dir`.
fn register_and_start(
    hub: &HubProcess,
    dir: &Path,
    name: &str,
    edge_kubeconfig: &Path,
    labels: &[&str],
) -> Syncer {
    let credentials = dir.join(format!("{name}.kubeconfig"));
    hub.register_target(PROVIDER, name, &credentials);
    if !labels.is_empty() {
        let mut args = vec!["label", "synctarget", name];
        args.extend_from_slice(labels);
        hub.ok(PROVIDER, &args);
    }
    Syncer {
        process: start_syncer(
            syncer_binary(),
            &credentials,
            &format!("{PROVIDER}:{name}"),
            edge_kubeconfig,
            &[],
            &dir.join(format!("{name}-syncer.log")),
        ),
        name: name.to_string(),
    }
}

/// 1. ModelDeployment create → Ready, against a plain object's create → watch.
async fn e2e_ready(pg: &PostgresCluster, dir: &Path) -> Result<()> {
    let count: usize = env_or("TRELLIS_BENCH_DEPLOYMENTS", 100)?;
    let rate: f64 = env_or("TRELLIS_BENCH_RATE", 10.0)?;
    std::fs::create_dir_all(dir)?;
    let edges: Vec<EdgeProcess> = ["eu-1", "eu-2", "eu-3"]
        .iter()
        .map(|name| {
            EdgeProcess::start(
                name,
                dir,
                &[
                    "--nodes",
                    "8",
                    "--gpu-mode",
                    "device-plugin",
                    "--pod-start-delay",
                    "0s",
                    "--pod-ready-delay",
                    "0s",
                ],
            )
        })
        .collect();
    let hub = hub(pg, dir, "bench_e2e").await?;
    let mut syncers = Vec::new();
    for (name, edge) in ["eu-1", "eu-2", "eu-3"].iter().zip(&edges) {
        edge.wait_serving(Duration::from_secs(30));
        syncers.push(register_and_start(&hub, dir, name, &edge.kubeconfig, &[]));
    }
    apply_pool(&hub, dir, 1000);
    let provider = hub.client(PROVIDER).await;
    let targets: Api<SyncTarget> = Api::all(provider);
    let (ready, _watching) = watch(targets, |t: &SyncTarget| {
        target_ready(t, 8 * GPUS_PER_NODE).then(|| t.metadata.name.clone().unwrap_or_default())
    });
    wait_seen(
        &ready,
        syncers.iter().map(|s| s.name.as_str()),
        Duration::from_secs(60),
    )
    .await?;
    println!(
        "# 3 edges of 8 nodes × {GPUS_PER_NODE} H200s, their syncers Ready; {count} creates \
         paced at {rate}/s"
    );

    let tenant = hub.client(TENANT).await;
    // Baseline: a plain object's create → watch, on the same hub and workspace.
    let (cm_seen, cm_watch) = watch(Api::<ConfigMap>::all(tenant.clone()), uid);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let acked = create_all(
        &Api::<ConfigMap>::namespaced(tenant.clone(), "default"),
        count,
        4,
        Some(rate),
        |i| Ok(config_map(&format!("base-{i}"))),
    )
    .await?;
    let baseline = latencies(&acked, &cm_seen, Duration::from_secs(60)).await?;
    drop(cm_watch);

    let (md_seen, _md_watch) = watch(Api::<ModelDeployment>::all(tenant.clone()), |md| {
        md_ready(md).then(|| uid(md)).flatten()
    });
    // Where the time goes: each step seen by a watcher, keyed by the deployment's uid.
    let origin = |meta: &kube::core::ObjectMeta| {
        meta.labels
            .as_ref()
            .and_then(|l| l.get(ORIGIN_UID_LABEL).cloned())
    };
    let all_placements: Api<Placement> = Api::all(hub.client(PROVIDER).await);
    let (placed, _w1) = watch(all_placements.clone(), move |p: &Placement| {
        origin(&p.metadata)
    });
    let (reported, _w2) = watch(all_placements, move |p: &Placement| {
        let available = p
            .status
            .as_ref()
            .is_some_and(|s| condition_true(&s.conditions, "Available"));
        available.then(|| origin(&p.metadata)).flatten()
    });
    let mut edge_watches = Vec::new();
    let (applied, edge_available): (Seen, Seen) = Default::default();
    for edge in &edges {
        let api: Api<Deployment> = Api::all(client_from(&edge.kubeconfig).await?);
        let (seen, w) = watch(api.clone(), move |d: &Deployment| origin(&d.metadata));
        edge_watches.push((seen, w));
        let (seen, w) = watch(api, move |d: &Deployment| {
            let available = d
                .status
                .as_ref()
                .and_then(|s| s.available_replicas)
                .unwrap_or(0)
                >= 1;
            available.then(|| origin(&d.metadata)).flatten()
        });
        edge_watches.push((seen, w));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let acked = create_all(
        &Api::<ModelDeployment>::namespaced(tenant.clone(), "default"),
        count,
        4,
        Some(rate),
        |i| model_deployment(&format!("md-{i}"), None),
    )
    .await?;
    let ready = latencies(&acked, &md_seen, Duration::from_secs(120)).await?;
    for (i, (seen, _)) in edge_watches.iter().enumerate() {
        let into = if i % 2 == 0 {
            &applied
        } else {
            &edge_available
        };
        let seen = seen.lock().expect("lock").clone();
        into.lock().expect("lock").extend(seen);
    }
    println!("# p50 / p99 from the create acknowledged to each step, seen by a watcher:");
    for (step, seen) in [
        ("Placement written on the hub", &placed),
        ("Deployment applied on the edge", &applied),
        ("Deployment available on the edge", &edge_available),
        ("Placement status Available on the hub", &reported),
        ("ModelDeployment Ready", &md_seen),
    ] {
        let times = latencies(&acked, seen, Duration::from_secs(1)).await?;
        println!(
            "#   {step}: {:.0} / {:.0} ms",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99))
        );
    }

    // Where they went.
    let mut by_target: BTreeMap<String, usize> = BTreeMap::new();
    let mds = Api::<ModelDeployment>::namespaced(tenant, "default")
        .list(&ListParams::default())
        .await?;
    for md in &mds.items {
        for p in md.status.iter().flat_map(|s| &s.placements) {
            *by_target.entry(p.target.clone()).or_default() += 1;
        }
    }
    println!("# replicas by target: {by_target:?}");
    let p99 = ms(percentile(&ready, 0.99));
    let base_p99 = ms(percentile(&baseline, 0.99));
    report("e2e_ready_p50_ms", ms(percentile(&ready, 0.50)), "ms");
    report("e2e_ready_p99_ms", p99, "ms");
    report("e2e_ready_max_ms", ms(*ready.last().unwrap_or(&0)), "ms");
    report("create_watch_p50_ms", ms(percentile(&baseline, 0.50)), "ms");
    report("create_watch_p99_ms", base_p99, "ms");
    report(
        "e2e_ready_p99_vs_create_watch",
        p99 / base_p99.max(0.001),
        "x",
    );
    drop(syncers);
    drop(edges);
    drop(hub);
    Ok(())
}

/// Waits until each of `names` was seen.
async fn wait_seen<'a>(
    seen: &Seen,
    names: impl Iterator<Item = &'a str> + Clone,
    limit: Duration,
) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let missing: Vec<&str> = {
            let seen = seen.lock().expect("lock");
            names.clone().filter(|n| !seen.contains_key(*n)).collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("not Ready in {limit:?}: {missing:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// 2 and 3: a 5,000-node edge; syncer starts → Ready with inventory; a syncer's memory
/// with 1,000 Placements.
async fn large_edge(pg: &PostgresCluster, dir: &Path, sections: &Sections) -> Result<()> {
    let nodes: usize = env_or("TRELLIS_BENCH_EDGE_NODES", 5000)?;
    let gpus = nodes * GPUS_PER_NODE;
    std::fs::create_dir_all(dir)?;
    let started = Instant::now();
    let edge = EdgeProcess::start(
        "large",
        dir,
        &[
            "--nodes",
            &nodes.to_string(),
            "--pod-start-delay",
            "0s",
            "--pod-ready-delay",
            "0s",
        ],
    );
    let hub = hub(pg, dir, "bench_large").await?;
    edge.wait_serving(Duration::from_secs(120));
    let edge_client = client_from(&edge.kubeconfig).await?;
    let node_api: Api<Node> = Api::all(edge_client);
    let deadline = Instant::now() + Duration::from_secs(300);
    while node_api.list(&ListParams::default()).await?.items.len() < nodes {
        if Instant::now() > deadline {
            return Err(format!("the edge has not created {nodes} nodes").into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "# an edge of {nodes} nodes × {GPUS_PER_NODE} H200s, up in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let provider = hub.client(PROVIDER).await;
    let targets: Api<SyncTarget> = Api::all(provider);
    let (ready, _watching) = watch(targets.clone(), move |t: &SyncTarget| {
        let name = t.metadata.name.clone().unwrap_or_default();
        if name == "floor" {
            // The baseline's writes, by the version it wrote.
            let version = t.status.as_ref()?.kubernetes_version.clone()?;
            return Some(format!("floor/{version}"));
        }
        target_ready(t, gpus).then_some(name)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    if sections.runs("register_ready") {
        let starts: usize = env_or("TRELLIS_BENCH_STARTS", 10)?;
        let floor_credentials = dir.join("floor.kubeconfig");
        hub.register_target(PROVIDER, "floor", &floor_credentials);
        let mut registered = Vec::new();
        let mut floor = Vec::new();
        for i in 0..starts {
            // Baseline: the reads and the write the registration needs, with fresh clients.
            let t0 = Instant::now();
            let edge_client = client_from(&edge.kubeconfig).await?;
            let hub_client = client_from(&floor_credentials).await?;
            let listed = Api::<Node>::all(edge_client.clone())
                .list(&ListParams::default())
                .await?
                .items
                .len();
            let _ = Api::<Pod>::all(edge_client)
                .list(&ListParams::default())
                .await?;
            assert_eq!(listed, nodes);
            let key = format!("floor-{i}");
            Api::<SyncTarget>::all(hub_client)
                .patch_status(
                    "floor",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": {"kubernetesVersion": key}})),
                )
                .await?;
            let key = format!("floor/{key}");
            wait_seen(
                &ready,
                std::iter::once(key.as_str()),
                Duration::from_secs(30),
            )
            .await?;
            let seen = ready.lock().expect("lock")[&key];
            floor.push(seen.saturating_duration_since(t0).as_micros() as u64);

            // A new syncer process for a new target.
            let name = format!("reg-{i}");
            let credentials = dir.join(format!("{name}.kubeconfig"));
            hub.register_target(PROVIDER, &name, &credentials);
            let t0 = Instant::now();
            let mut process = start_syncer(
                syncer_binary(),
                &credentials,
                &format!("{PROVIDER}:{name}"),
                &edge.kubeconfig,
                &[],
                &dir.join(format!("{name}-syncer.log")),
            );
            wait_seen(
                &ready,
                std::iter::once(name.as_str()),
                Duration::from_secs(60),
            )
            .await?;
            let seen = ready.lock().expect("lock")[&name];
            registered.push(seen.saturating_duration_since(t0).as_micros() as u64);
            process.kill();
        }
        registered.sort_unstable();
        floor.sort_unstable();
        println!("# {starts} syncer starts, each a new process and SyncTarget");
        let p99 = ms(percentile(&registered, 0.99));
        let floor_p99 = ms(percentile(&floor, 0.99));
        report(
            "register_ready_p50_ms",
            ms(percentile(&registered, 0.50)),
            "ms",
        );
        report("register_ready_p99_ms", p99, "ms");
        report("register_floor_p50_ms", ms(percentile(&floor, 0.50)), "ms");
        report("register_floor_p99_ms", floor_p99, "ms");
        report(
            "register_ready_p99_vs_floor",
            p99 / floor_p99.max(0.001),
            "x",
        );
    }

    if sections.runs("syncer_rss") {
        let placements: usize = env_or("TRELLIS_BENCH_PLACEMENTS", 1000)?;
        let syncer = register_and_start(&hub, dir, "rss", &edge.kubeconfig, &["bench=rss"]);
        wait_seen(&ready, std::iter::once("rss"), Duration::from_secs(60)).await?;
        let pid = syncer.process.id().ok_or("the syncer is not running")?;
        // Settled: every store listed, the first heartbeats written.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (idle, _) = process_memory_kib(pid)?;
        apply_pool(&hub, dir, placements * 2);
        let tenant = hub.client(TENANT).await;
        let (md_seen, _md_watch) = watch(Api::<ModelDeployment>::all(tenant.clone()), |md| {
            md_ready(md).then(|| uid(md)).flatten()
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        let t0 = Instant::now();
        let acked = create_all(
            &Api::<ModelDeployment>::namespaced(tenant, "default"),
            placements,
            8,
            None,
            |i| model_deployment(&format!("rss-{i}"), Some(("bench", "rss"))),
        )
        .await?;
        latencies(&acked, &md_seen, Duration::from_secs(900)).await?;
        println!(
            "# {placements} ModelDeployments Ready on the syncer's target in {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (rss, peak) = process_memory_kib(pid)?;
        report("syncer_rss_mib", rss / 1024.0, "MiB");
        report("syncer_peak_rss_mib", peak / 1024.0, "MiB");
        report("syncer_idle_rss_mib", idle / 1024.0, "MiB");
        report("syncer_rss_vs_idle", rss / idle.max(1.0), "x");
    }
    drop(edge);
    drop(hub);
    Ok(())
}

/// A process's CPU time (user + system) in ms, from `/proc/<pid>/stat`.
fn cpu_ms(pid: u32, ticks_per_s: f64) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces: the fields start after its closing parenthesis.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // Fields 14 and 15 of stat(5), 3 being the first after the name.
    let tick = |n: usize| -> Result<f64> {
        Ok(fields
            .get(n - 3)
            .ok_or("short /proc/<pid>/stat")?
            .parse::<f64>()?)
    };
    Ok((tick(14)? + tick(15)?) * 1000.0 / ticks_per_s)
}

fn clock_ticks() -> Result<f64> {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()?;
    Ok(String::from_utf8(out.stdout)?.trim().parse()?)
}

/// 4. The hub's CPU per idle syncer.
async fn hub_cpu(pg: &PostgresCluster, dir: &Path) -> Result<()> {
    let count: usize = env_or("TRELLIS_BENCH_IDLE_SYNCERS", 100)?;
    let window = Duration::from_secs(env_or("TRELLIS_BENCH_WINDOW_S", 60)?);
    const PER_EDGE: usize = 20;
    std::fs::create_dir_all(dir)?;
    let ticks = clock_ticks()?;
    let edges: Vec<EdgeProcess> = (0..count.div_ceil(PER_EDGE))
        .map(|e| EdgeProcess::start(&format!("idle-{e}"), dir, &["--nodes", "2"]))
        .collect();
    let hub = hub(pg, dir, "bench_idle").await?;
    let pid = hub.process.id().ok_or("the hub is not running")?;
    for edge in &edges {
        edge.wait_serving(Duration::from_secs(30));
    }
    // Baseline: the hub with its workspaces and nothing else.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = cpu_ms(pid, ticks)?;
    tokio::time::sleep(window).await;
    let baseline = cpu_ms(pid, ticks)? - before;

    let provider = hub.client(PROVIDER).await;
    let targets: Api<SyncTarget> = Api::all(provider);
    let (ready, _watching) = watch(targets, |t: &SyncTarget| {
        target_ready(t, 2 * GPUS_PER_NODE).then(|| t.metadata.name.clone().unwrap_or_default())
    });
    let mut syncers = Vec::new();
    for i in 0..count {
        let edge = &edges[i / PER_EDGE];
        syncers.push(register_and_start(
            &hub,
            dir,
            &format!("idle-{i}"),
            &edge.kubeconfig,
            &[],
        ));
    }
    wait_seen(
        &ready,
        syncers.iter().map(|s| s.name.as_str()),
        Duration::from_secs(120),
    )
    .await?;
    // Past the start (lists, first reports): idle from here.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let before = cpu_ms(pid, ticks)?;
    tokio::time::sleep(window).await;
    let with = cpu_ms(pid, ticks)? - before;
    let alive = syncers.iter().filter(|s| s.process.id().is_some()).count();
    let syncer_rss: f64 = syncers
        .iter()
        .filter_map(|s| s.process.id())
        .filter_map(|pid| process_memory_kib(pid).ok())
        .map(|(rss, _)| rss)
        .sum::<f64>()
        / 1024.0
        / alive.max(1) as f64;
    let minutes = window.as_secs_f64() / 60.0;
    println!(
        "# {count} idle syncers on {} edges of 2 nodes, heartbeating every 10 s; windows of {} s",
        edges.len(),
        window.as_secs()
    );
    report("hub_cpu_baseline_ms_per_min", baseline / minutes, "ms");
    report("hub_cpu_with_syncers_ms_per_min", with / minutes, "ms");
    report(
        "hub_cpu_ms_per_idle_syncer_min",
        (with - baseline) / (count as f64 * minutes),
        "ms",
    );
    report("idle_syncer_rss_mib", syncer_rss, "MiB");
    drop(syncers);
    drop(edges);
    drop(hub);
    Ok(())
}
