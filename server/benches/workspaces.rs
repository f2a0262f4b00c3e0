//! Benchmarks of logical workspaces at kcp's scale, against `trellis start` processes on a
//! Postgres store, with the storage layer measured in the same run.
//!
//! Run with `cargo bench -p trellis-server --bench workspaces`. Results are lines
//! `bench: <name> <value> <unit>`; `#` lines are commentary.
//!
//! What it does, in order:
//! 1. baseline: `Store::create` of as many objects as workspaces, from 64 tasks, on a fresh
//!    database (the storage layer alone);
//! 2. starts two hubs (`trellis start --store … --shard s1=…`, built by cargo for this bench)
//!    on two shards, fresh databases on two Postgres servers; measures hub A's idle RSS;
//! 3. creates the workspaces through A's API as a tree of depth 3 (10 organizations, 10 teams
//!    in each, the rest spread over the teams), 64 at a time, each counted once it is Ready
//!    and a GET inside it answers: `ws_create_per_s`;
//! 4. hub A's idle RSS again: `ws_rss_kib_per_workspace`;
//! 5. 200 more workspaces created through A, each GET through B the moment A reports it
//!    Ready: `ws_route_p99_ms` (the first request on the other replica);
//! 6. deletes the 10 organizations and waits until no workspace is left:
//!    `ws_delete_10k_s`.
//!
//! Environment: `TRELLIS_BENCH_WORKSPACES` (default 10,000), `TRELLIS_BENCH_SHARDS` (1 or 2,
//! default 2).

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{json, Value};
use trellis_storage::{ListRequest, ListScope, ObjectKey, Store, StoreOptions};
use trellis_testkit::bench::{env_or, percentile, process_memory_kib, report};
use trellis_testkit::{ClusterOptions, PostgresCluster};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

const TASKS: usize = 64;
const ORGS: usize = 10;
const TEAMS_PER_ORG: usize = 10;
const ROUTE_SAMPLES: usize = 200;
const IDLE_SETTLE: Duration = Duration::from_secs(5);
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const WORKSPACES_API: &str = "apis/tenancy.trellis.dev/v1alpha1/workspaces";

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("bench failed: {e}");
        std::process::exit(1);
    }
}

/// A `trellis start` process.
struct HubProcess {
    child: tokio::process::Child,
    client: kube::Client,
    _dir: tempfile::TempDir,
}

impl HubProcess {
    async fn start(store: &str, shard: Option<&str>) -> Result<HubProcess> {
        let dir = tempfile::Builder::new()
            .prefix("trellis-ws-bench-")
            .tempdir()?;
        let listen = format!("127.0.0.1:{}", trellis_testkit::free_loopback_port());
        let log = std::fs::File::create(dir.path().join("trellis.log"))?;
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_trellis"))
            .args(["start", "--store", store, "--listen", &listen])
            .args(shard.map(|url| format!("--shard=s1={url}")))
            .arg("--data-dir")
            .arg(dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        let kubeconfig = dir.path().join("admin.kubeconfig");
        let deadline = Instant::now() + READY_TIMEOUT;
        let client = loop {
            if let Ok(client) = client_for(&kubeconfig).await {
                if get(&client, "/clusters/root/api/v1/namespaces/default")
                    .await
                    .is_ok()
                {
                    break client;
                }
            }
            if Instant::now() > deadline {
                return Err("trellis did not start".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        Ok(HubProcess {
            child,
            client,
            _dir: dir,
        })
    }

    fn rss_kib(&self) -> Result<f64> {
        let pid = self.child.id().ok_or("no pid")?;
        Ok(process_memory_kib(pid)?.0)
    }
}

/// A client whose base URL is the hub itself, so one connection pool reaches every workspace.
async fn client_for(kubeconfig: &Path) -> Result<kube::Client> {
    let kubeconfig = Kubeconfig::read_from(kubeconfig)?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    let server = config.cluster_url.to_string();
    let base = server
        .split("/clusters/")
        .next()
        .unwrap_or(&server)
        .to_string();
    config.cluster_url = base.parse()?;
    Ok(kube::Client::try_from(config)?)
}

async fn get(client: &kube::Client, path: &str) -> Result<Value> {
    let request = axum::http::Request::get(path).body(Vec::new())?;
    Ok(client.request::<Value>(request).await?)
}

async fn create_workspace(
    client: &kube::Client,
    parent: &str,
    name: &str,
    kind: &str,
) -> Result<()> {
    let body = json!({
        "apiVersion": "tenancy.trellis.dev/v1alpha1",
        "kind": "Workspace",
        "metadata": {"name": name},
        "spec": {"type": {"name": kind, "path": "root"}},
    });
    let request = axum::http::Request::post(format!("/clusters/{parent}/{WORKSPACES_API}"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body)?)?;
    client.request::<Value>(request).await?;
    Ok(())
}

/// Polls until the workspace is Ready in its parent.
async fn wait_ready(client: &kube::Client, parent: &str, name: &str) -> Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let ws = get(
            client,
            &format!("/clusters/{parent}/{WORKSPACES_API}/{name}"),
        )
        .await?;
        if ws.pointer("/status/phase").and_then(Value::as_str) == Some("Ready") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{parent}:{name} not ready in time").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Creates each (parent, name, type), `TASKS` at a time; each done once Ready and a GET
/// inside it answers.
async fn create_level(
    client: &kube::Client,
    items: Vec<(String, String, &'static str)>,
) -> Result<()> {
    let items = Arc::new(items);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let (client, items, next) = (client.clone(), items.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((parent, name, kind)) = items.get(i) else {
                    return Ok::<(), BoxError>(());
                };
                create_workspace(&client, parent, name, kind).await?;
                wait_ready(&client, parent, name).await?;
                get(
                    &client,
                    &format!("/clusters/{parent}:{name}/api/v1/namespaces/default"),
                )
                .await?;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// The tree: organizations, teams, then leaves spread over the teams, `total` in all.
fn tree(total: usize) -> Vec<Vec<(String, String, &'static str)>> {
    let orgs: Vec<_> = (0..ORGS.min(total))
        .map(|o| ("root".to_string(), format!("org{o}"), "organization"))
        .collect();
    let teams: Vec<_> = (0..ORGS * TEAMS_PER_ORG)
        .take(total.saturating_sub(orgs.len()))
        .map(|t| (format!("root:org{}", t % ORGS), format!("team{t}"), "team"))
        .collect();
    let leaves_total = total.saturating_sub(orgs.len() + teams.len());
    let leaves: Vec<_> = (0..leaves_total)
        .map(|l| {
            let t = l % teams.len().max(1);
            (
                format!("root:org{}:team{t}", t % ORGS),
                format!("ws{l}"),
                "universal",
            )
        })
        .collect();
    vec![orgs, teams, leaves]
}

async fn baseline(pg: &PostgresCluster, count: usize) -> Result<f64> {
    let db = pg.create_database("bench_ws_store").await?;
    let store = Store::open_postgres(db.url(), StoreOptions::default()).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let (store, next) = (store.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<(), BoxError>(());
                }
                let name = format!("ws{i}");
                let value = json!({"apiVersion": "tenancy.trellis.dev/v1alpha1", "kind": "Workspace", "metadata": {"name": name}});
                let key = ObjectKey::new("root", "tenancy.trellis.dev/workspaces", "", name);
                store.create(key, uuid(i), Bytes::from(value.to_string())).await?;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

fn uuid(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

async fn run() -> Result<()> {
    let total: usize = env_or("TRELLIS_BENCH_WORKSPACES", 10_000)?;
    let pg = PostgresCluster::start(ClusterOptions::default())?;
    println!("# {total} workspaces; Postgres 15 on this machine, fsync on; kcp's April 2026 load test: 8 creations/s in a tree (2/s flat), 9.8 MiB per empty workspace, ~1 h to delete 10,000");

    let store_rate = baseline(&pg, total).await?;
    report("ws_baseline_store_creates_per_s", store_rate, "ops/s");

    let db = pg.create_database("bench_ws_hub").await?;
    let shards: usize = env_or("TRELLIS_BENCH_SHARDS", 2)?;
    let pg2 = PostgresCluster::start(ClusterOptions::default())?;
    let s1 = pg2.create_database("bench_ws_s1").await?;
    let s1 = (shards > 1).then(|| s1.url());
    println!(
        "# shards: {} (the second on its own Postgres server)",
        1 + s1.iter().count()
    );
    let a = HubProcess::start(db.url(), s1).await?;
    let b = HubProcess::start(db.url(), s1).await?;
    tokio::time::sleep(IDLE_SETTLE).await;
    let rss_before = a.rss_kib()?;
    println!("# hub A idle RSS before: {:.1} MiB", rss_before / 1024.0);

    let started = Instant::now();
    for (depth, level) in tree(total).into_iter().enumerate() {
        let count = level.len();
        let level_started = Instant::now();
        create_level(&a.client, level).await?;
        println!(
            "# depth {}: {count} workspaces in {:.1} s",
            depth + 1,
            level_started.elapsed().as_secs_f64()
        );
    }
    let created_in = started.elapsed().as_secs_f64();
    report("ws_create_per_s", total as f64 / created_in, "ops/s");
    report(
        "ws_create_vs_store_ratio",
        total as f64 / created_in / store_rate,
        "ratio",
    );

    let shards = get(
        &a.client,
        "/clusters/root/apis/core.trellis.dev/v1alpha1/shards",
    )
    .await?;
    let spread: Vec<String> = shards["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| format!("{} {}", s["metadata"]["name"], s["status"]["workspaces"]))
        .collect();
    println!("# workspaces per shard (Shard status, refreshed every 5 s): {spread:?}");

    tokio::time::sleep(IDLE_SETTLE).await;
    let rss_after = a.rss_kib()?;
    println!("# hub A idle RSS after: {:.1} MiB", rss_after / 1024.0);
    report(
        "ws_rss_kib_per_workspace",
        (rss_after - rss_before) / total as f64,
        "KiB",
    );

    // First request on the other replica to a workspace just reported Ready.
    let mut route = Vec::new();
    for i in 0..ROUTE_SAMPLES {
        let name = format!("route{i}");
        create_workspace(&a.client, "root", &name, "universal").await?;
        wait_ready(&a.client, "root", &name).await?;
        let asked = Instant::now();
        loop {
            match get(
                &b.client,
                &format!("/clusters/root:{name}/api/v1/namespaces/default"),
            )
            .await
            {
                Ok(_) => break,
                Err(_) if asked.elapsed() < READY_TIMEOUT => {
                    tokio::time::sleep(Duration::from_millis(1)).await
                }
                Err(e) => return Err(e),
            }
        }
        route.push(asked.elapsed().as_micros() as u64);
    }
    route.sort_unstable();
    report(
        "ws_route_p50_ms",
        percentile(&route, 0.5) as f64 / 1e3,
        "ms",
    );
    report(
        "ws_route_p99_ms",
        percentile(&route, 0.99) as f64 / 1e3,
        "ms",
    );

    // Delete the whole tree (and the route samples) and wait until no workspace is left.
    let store = Store::open_postgres(
        db.url(),
        StoreOptions {
            compaction: None,
            ..StoreOptions::default()
        },
    )
    .await?;
    let deleting = Instant::now();
    let roots: Vec<String> = (0..ORGS.min(total))
        .map(|o| format!("org{o}"))
        .chain((0..ROUTE_SAMPLES).map(|i| format!("route{i}")))
        .collect();
    for name in &roots {
        let request =
            axum::http::Request::delete(format!("/clusters/root/{WORKSPACES_API}/{name}"))
                .body(Vec::new())?;
        a.client.request::<Value>(request).await?;
    }
    loop {
        let left = store
            .list(ListRequest::new(ListScope::all_clusters(
                "tenancy.trellis.dev/workspaces",
            )))
            .await?
            .items
            .len();
        if left == 0 {
            break;
        }
        if deleting.elapsed() > Duration::from_secs(1800) {
            return Err(format!("{left} workspaces still there after 30 min").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    report("ws_delete_10k_s", deleting.elapsed().as_secs_f64(), "s");
    drop((a, b));
    Ok(())
}
