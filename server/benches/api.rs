//! Benchmarks of the Trellis API server (the hub) over real HTTPS, each against the storage layer
//! measured in the same run.
//!
//! Run with `cargo bench -p trellis-server --bench api`. Results are printed as machine-readable
//! lines `bench: <name> <value> <unit>`; lines starting with `#` are commentary, and
//! `# warning:` lines flag a result that should not be trusted.
//!
//! The hub runs in this process (`trellis_server::start` on 127.0.0.1:0) on a Postgres
//! store: a private throwaway cluster with its durability defaults (fsync on), from
//! `trellis-testkit`. Every request goes through kube-rs (`kube::Client`, rustls), which speaks
//! HTTP/1.1 only: one TLS connection per request in flight, so 1,000 watchers hold 1,000
//! connections. The HTTP/2 watch section uses hyper's HTTP/2 client instead (rustls, ALPN `h2`),
//! multiplexing the watches over as few connections as the hub's streams-per-connection limit
//! allows, as client-go does. The storage baselines use `trellis_storage::Store` on fresh
//! databases of the same cluster, with the options the hub uses.
//!
//! Sections (select some by passing their names, or part of them, as arguments after `--`):
//! - `creates`: ConfigMap creates/s from 16 tasks, with a task doing sequential GETs alongside,
//!   vs `Store::create` from 16 tasks, measured in alternating windows (storage, hub, hub,
//!   storage, storage, hub, …) so that the machine's drift weighs on both alike; the figures are
//!   the medians of the windows, and each round's ratio is printed as commentary.
//!   Both also print CPU per create: of this process (the callers, and the hub when it runs)
//!   and of the Postgres server's processes.
//! - `watch_h1`: delivery latency to 1,000 watch streams (one HTTP/1.1 connection each) while
//!   ConfigMaps are created at 500/s, vs 1,000 `Store::watch` streams under the same load; every
//!   watcher must get every event, in revision order.
//! - `watch_h2`: the same with the 1,000 watches multiplexed over HTTP/2 connections of
//!   `MAX_CONCURRENT_STREAMS` streams each (4 connections for 1,000 watchers). `watch` selects
//!   both.
//! - `list`: the 10,000 ConfigMaps of one namespace as kubectl lists them (as a Table, in pages
//!   of 500), vs `Store::list` of the same objects in pages of 500.
//! - `rss`: resident memory of an idle `trellis start` process, embedded store (and Postgres for
//!   context).
//! - `metrics`: ConfigMap creates/s from 16 tasks on a hub keeping metrics and scraped every
//!   second, vs the same on a hub with metrics off (`ServerBuilder::metrics(false)`), both
//!   running side by side on fresh databases of the same cluster, measured in alternating
//!   windows (off, on, on, off, off, on, …) so that drift weighs on both alike.
//!
//! The watch baseline runs before the hub starts (the creates baseline's database is made then
//! too); the hub sections then run in the order watch_h1, watch_h2, list, creates, so that the
//! objects each one leaves behind weigh least on the next.
//!
//! Environment:
//! - `TRELLIS_BENCH_SECS`: measured seconds of each create window (default 5, after 1 s
//!   warm-up).
//! - `TRELLIS_BENCH_CREATE_ROUNDS`: windows of each side in the creates section (default 3).
//! - `TRELLIS_BENCH_WATCH_SECS`: seconds of paced writes in each watch run (default 10).
//! - `TRELLIS_BENCH_WATCHERS`: watchers per watch run (default 1,000).
//! - `TRELLIS_BENCH_WATCH_RATE`: objects created per second in each watch run (default 500).
//! - `TRELLIS_BENCH_METRICS_ROUNDS`: measured windows per hub in the metrics section (default 3).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use axum::http::header::ACCEPT;
use bytes::Bytes;
use futures::StreamExt;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ListParams, PostParams};
use kube::client::ConfigExt;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use trellis_server::{ServerBuilder, StartOptions};
use trellis_storage::{ListRequest, ListScope, ObjectKey, ReadRevision, Store, StoreOptions};
use trellis_testkit::bench::{env_or, median, percentile, report, CpuTicks, Sections};
use trellis_testkit::{ClusterOptions, PostgresCluster, TestDatabase};

/// The hub's allocator, as the `trellis` binary has it (the library leaves it to the binary).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

/// The logical cluster the hub keeps the root workspace in, and ConfigMaps' storage resource.
const CLUSTER: &str = "root";
const RESOURCE: &str = "core/configmaps";

const CREATE_NS: &str = "bench-create";
const WATCH_NS: &str = "bench-watch";
const WATCH_H2_NS: &str = "bench-watch-h2";
const LIST_NS: &str = "bench-list";

/// Bytes of `data` (keys and values) in every benchmark ConfigMap.
const DATA_BYTES: usize = 1024;
/// The `data` key holding the send time: it sorts first, so it sits near the start of every
/// serialized copy of the object and watchers find it without parsing the JSON.
const SENT_KEY: &str = "a-sent-nanos";
const PAD_KEY: &str = "settings.properties";
const SENT_DIGITS: usize = 20;
/// Where watchers look for the send time first (the whole line if it is not there).
const SENT_SEARCH_HEAD: usize = 256;
/// The send time of the end-of-run marker; real send times are later than the clock's start.
const END_OF_RUN: u64 = 0;
/// Where watchers look for the resourceVersion: the end of a watch line (`metadata` is the
/// object's last field and only `uid` follows `resourceVersion` in it).
const REVISION_SEARCH_TAIL: usize = 160;

const WRITERS: usize = 16;
const WARMUP: Duration = Duration::from_secs(1);
/// How long workers may take to finish their last operation after a run stops.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Bounds each worker's loop; runs are timed, so this is never reached in practice.
const MAX_OPS_PER_WORKER: u64 = 10_000_000;
/// GETs measured by the probe running alongside the creators.
const GETS: usize = 2_000;
/// Objects the probe GETs in turn.
const GET_TARGETS: u64 = 100;

/// Paced writers of the watch runs (each creates `rate / WATCH_WRITERS` objects per second).
const WATCH_WRITERS: u32 = 16;
/// How long opening every watch may take.
const WATCH_OPEN_TIMEOUT: Duration = Duration::from_secs(120);
/// How long watchers may take to receive the last event after the writers stop.
const WATCH_DRAIN: Duration = Duration::from_secs(120);
/// How long the hub gets to notice that watchers hung up.
const HANGUP_GRACE: Duration = Duration::from_secs(1);

const LIST_OBJECTS: u64 = 10_000;
/// kubectl's default chunk size.
const PAGE_SIZE: usize = 500;
/// Measured lists of each kind (after one warm-up round).
const LIST_RUNS: usize = 5;
/// What `kubectl get` sends.
const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
const LOAD_TASKS: usize = 32;
const LOAD_TIMEOUT: Duration = Duration::from_secs(600);

/// How long a started `trellis` process may take to write its kubeconfig and answer.
const PROCESS_READY_TIMEOUT: Duration = Duration::from_secs(60);
const IDLE_SETTLE: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() {
    if let Err(err) = run().await {
        eprintln!("benchmark failed: {err}");
        std::process::exit(1);
    }
}

async fn run() -> Result<()> {
    let config = Config::from_env()?;
    println!(
        "# trellis API server benchmarks: {} logical CPUs; hub in this process over HTTPS \
         (kube-rs, HTTP/1.1), Postgres store (private durable cluster on 127.0.0.1)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    println!(
        "# objects: ConfigMaps with {DATA_BYTES} bytes of data, {} bytes as stored",
        stored_value(
            &configmap(CREATE_NS, "cm-0-0", 0),
            &uuid::Uuid::nil().to_string()
        )?
        .len()
    );
    // Every section uses Postgres (the rss section for context).
    let pg =
        tokio::task::spawn_blocking(|| PostgresCluster::start(ClusterOptions { durable: true }))
            .await??;
    let watch_h1 = config.runs("watch_h1");
    let watch_h2 = config.runs("watch_h2");
    if ["creates", "watch_h1", "watch_h2", "list"]
        .iter()
        .any(|s| config.runs(s))
    {
        let storage_creates = if config.runs("creates") {
            Some(open_storage_creates(&pg).await?)
        } else {
            None
        };
        let storage_watch = if watch_h1 || watch_h2 {
            Some(bench_storage_watch(&pg, &config).await?)
        } else {
            None
        };
        let hub = Hub::start(&pg).await?;
        if let Some(baseline) = &storage_watch {
            if watch_h1 {
                bench_api_watch(&hub, &config, baseline, Protocol::Http1).await?;
            }
            if watch_h2 {
                bench_api_watch(&hub, &config, baseline, Protocol::Http2).await?;
            }
        }
        if config.runs("list") {
            bench_list(&hub).await?;
        }
        if let Some(baseline) = &storage_creates {
            bench_creates(&hub, &config, baseline).await?;
        }
        describe_garbage_collection(&hub).await?;
    }
    if config.runs("rss") {
        bench_rss(&pg).await?;
    }
    if config.runs("metrics") {
        bench_metrics_overhead(&pg, &config).await?;
    }
    Ok(())
}

struct Config {
    create_rounds: usize,
    metrics_rounds: usize,
    measure: Duration,
    watch: Duration,
    watchers: usize,
    watch_rate: u32,
    sections: Sections,
}

impl Config {
    fn from_env() -> Result<Config> {
        let watch_rate: u32 = env_or("TRELLIS_BENCH_WATCH_RATE", 500)?;
        if watch_rate < WATCH_WRITERS {
            return Err(
                format!("TRELLIS_BENCH_WATCH_RATE must be at least {WATCH_WRITERS}").into(),
            );
        }
        Ok(Config {
            create_rounds: env_or::<usize>("TRELLIS_BENCH_CREATE_ROUNDS", 3)?.max(1),
            metrics_rounds: env_or("TRELLIS_BENCH_METRICS_ROUNDS", 3)?,
            measure: Duration::from_secs_f64(env_or("TRELLIS_BENCH_SECS", 5.0)?),
            watch: Duration::from_secs_f64(env_or("TRELLIS_BENCH_WATCH_SECS", 10.0)?),
            watchers: env_or("TRELLIS_BENCH_WATCHERS", 1_000)?,
            watch_rate,
            sections: Sections::from_args(),
        })
    }

    fn runs(&self, section: &str) -> bool {
        self.sections.runs(section)
    }
}

// ---------------------------------------------------------------------------------------------
// Output and statistics

fn percentile_ms(sorted: &[u64], p: f64) -> f64 {
    percentile(sorted, p) as f64 / 1e6
}

fn nanos_since(clock: Instant) -> u64 {
    clock.elapsed().as_nanos() as u64
}

// ---------------------------------------------------------------------------------------------
// Objects

/// A ConfigMap with `DATA_BYTES` of data, the first entry of which is its send time.
fn configmap(namespace: &str, name: &str, sent_nanos: u64) -> ConfigMap {
    const LINE: &str = "feature.gates=alpha,beta; log.level=info; cache.ttl=300s; ";
    let sent = format!("{sent_nanos:0SENT_DIGITS$}");
    let pad = DATA_BYTES - SENT_KEY.len() - sent.len() - PAD_KEY.len();
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/name".to_string(),
                "bench".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            (SENT_KEY.to_string(), sent),
            (
                PAD_KEY.to_string(),
                LINE.chars().cycle().take(pad).collect(),
            ),
        ])),
        ..ConfigMap::default()
    }
}

/// The value the storage baselines write for `object`: the object with the metadata the hub
/// adds on create.
fn stored_value(object: &ConfigMap, uid: &str) -> Result<Bytes> {
    let mut value = serde_json::to_value(object)?;
    value["metadata"]["uid"] = json!(uid);
    value["metadata"]["creationTimestamp"] = json!("2026-11-27T05:00:00Z");
    Ok(Bytes::from(serde_json::to_vec(&value)?))
}

/// The send time in a serialized object (or a watch event line carrying one).
fn sent_nanos(json: &[u8]) -> Option<u64> {
    static NEEDLE: LazyLock<memchr::memmem::Finder<'static>> = LazyLock::new(|| {
        memchr::memmem::Finder::new(format!("\"{SENT_KEY}\":\"").as_bytes()).into_owned()
    });
    let needle = NEEDLE.needle().len();
    let head = &json[..json.len().min(SENT_SEARCH_HEAD)];
    let at = NEEDLE.find(head).or_else(|| NEEDLE.find(json))?;
    let digits = json.get(at + needle..at + needle + SENT_DIGITS)?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The object's resourceVersion in a watch event line.
fn line_revision(line: &[u8]) -> Option<u64> {
    const NEEDLE: &[u8] = b"\"resourceVersion\":\"";
    static FORWARD: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new(NEEDLE));
    static BACKWARD: LazyLock<memchr::memmem::FinderRev<'static>> =
        LazyLock::new(|| memchr::memmem::FinderRev::new(NEEDLE));
    let tail_from = line.len().saturating_sub(REVISION_SEARCH_TAIL);
    let at = match BACKWARD.rfind(&line[tail_from..]) {
        Some(at) => tail_from + at,
        None => FORWARD.find(line)?,
    } + NEEDLE.len();
    let end = at + memchr::memchr(b'"', &line[at..])?;
    std::str::from_utf8(&line[at..end]).ok()?.parse().ok()
}

async fn api_create(api: Api<ConfigMap>, namespace: &str, name: String, sent: u64) -> Result<()> {
    api.create(&PostParams::default(), &configmap(namespace, &name, sent))
        .await?;
    Ok(())
}

async fn store_create(store: Store, namespace: &str, name: String, sent: u64) -> Result<()> {
    let uid = uuid::Uuid::new_v4().to_string();
    let value = stored_value(&configmap(namespace, &name, sent), &uid)?;
    store
        .create(
            ObjectKey::new(CLUSTER, RESOURCE, namespace, name),
            uid,
            value,
        )
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The hub

async fn kube_client(kubeconfig: &Path) -> Result<Client> {
    let kubeconfig = Kubeconfig::read_from(kubeconfig)?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// The hub, started in this process on a fresh database.
struct Hub {
    client: Client,
    /// For clients other than kube-rs: the hub's address and TLS settings (CA, client
    /// certificate) from its kubeconfig.
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    db_url: String,
    /// The database server's postmaster, for counting its CPU.
    postgres: Option<u32>,
    /// Stopped (every task it started) when the bench's hub is dropped.
    _server: trellis_server::Server,
    // Dropped last: the data directory and the database.
    _dir: tempfile::TempDir,
    _db: TestDatabase,
}

impl Hub {
    async fn start(pg: &PostgresCluster) -> Result<Hub> {
        Hub::start_with(pg, "bench_api_hub", true).await
    }

    /// A hub on a fresh database named after `db_prefix`, keeping metrics or not.
    async fn start_with(pg: &PostgresCluster, db_prefix: &str, metrics: bool) -> Result<Hub> {
        let db = pg.create_database(db_prefix).await?;
        let dir = tempfile::Builder::new()
            .prefix("trellis-bench-")
            .tempdir()?;
        let options = StartOptions {
            data_dir: dir.path().to_path_buf(),
            listen: "127.0.0.1:0".parse()?,
            store: Some(db.url().to_string()),
            tls_sans: Vec::new(),
            shards: Vec::new(),
            // A thousand watchers, one connection each, all from 127.0.0.1.
            security: trellis_server::SecurityOptions {
                connections: trellis_server::ConnectionLimits {
                    max_per_client: 0,
                    ..Default::default()
                },
                ..Default::default()
            },
        };
        let started = ServerBuilder::hub(options).metrics(metrics).start().await?;
        println!(
            "# hub: https://{} (metrics {})",
            started.addr,
            if metrics { "on" } else { "off" }
        );
        let kubeconfig = Kubeconfig::read_from(&started.kubeconfig)?;
        let tls = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await?
            .rustls_client_config()?;
        Ok(Hub {
            client: kube_client(&started.kubeconfig).await?,
            addr: started.addr,
            tls: Arc::new(tls),
            db_url: db.url().to_string(),
            postgres: pg.postmaster_pid(),
            _server: started,
            _dir: dir,
            _db: db,
        })
    }

    fn configmaps(&self, namespace: &str) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), namespace)
    }

    async fn create_namespace(&self, name: &str) -> Result<()> {
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &namespace)
            .await?;
        Ok(())
    }

    /// A second store on the hub's database, for reads (no compaction of its own).
    async fn open_store(&self) -> Result<Store> {
        let options = StoreOptions {
            compaction: None,
            ..StoreOptions::default()
        };
        Ok(Store::open_postgres(&self.db_url, options).await?)
    }
}

/// Creates `count` ConfigMaps named `{prefix}-{i}` through the API, `LOAD_TASKS` at a time;
/// returns how long it took.
async fn create_many(
    api: &Api<ConfigMap>,
    namespace: &'static str,
    prefix: &str,
    count: u64,
) -> Result<Duration> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<JoinHandle<Result<()>>> = (0..LOAD_TASKS)
        .map(|_| {
            let (api, next, prefix) = (api.clone(), next.clone(), prefix.to_string());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return Ok(());
                    }
                    if started.elapsed() > LOAD_TIMEOUT {
                        return Err("loading timed out".into());
                    }
                    api_create(api.clone(), namespace, format!("{prefix}-{i}"), 0).await?;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(started.elapsed())
}

// ---------------------------------------------------------------------------------------------
// Timed throughput runs

const WARMING: u8 = 0;
const MEASURING: u8 = 1;
const STOPPED: u8 = 2;

/// The phase of one throughput run (warm-up, measured window, stopped) and the operations
/// completed in its window.
struct Meter {
    phase: AtomicU8,
    counted: AtomicU64,
}

impl Meter {
    fn new() -> Arc<Meter> {
        Arc::new(Meter {
            phase: AtomicU8::new(WARMING),
            counted: AtomicU64::new(0),
        })
    }

    fn phase(&self) -> u8 {
        self.phase.load(Ordering::Acquire)
    }

    fn set(&self, phase: u8) {
        self.phase.store(phase, Ordering::Release);
    }

    fn completed(&self) {
        if self.phase() == MEASURING {
            self.counted.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Runs `op(worker, i)` for i = 0, 1, … in `workers` tasks through a warm-up and a measured
/// `window`; returns operations completed per second of the window.
async fn throughput<F, Fut>(
    meter: &Arc<Meter>,
    workers: usize,
    window: Duration,
    server: Option<u32>,
    op: F,
) -> Result<Throughput>
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let tasks: Vec<JoinHandle<Result<()>>> = (0..workers)
        .map(|w| {
            let (meter, op) = (meter.clone(), op.clone());
            tokio::spawn(async move {
                for i in 0..MAX_OPS_PER_WORKER {
                    if meter.phase() == STOPPED {
                        break;
                    }
                    op(w, i).await?;
                    meter.completed();
                }
                Ok(())
            })
        })
        .collect();
    tokio::time::sleep(WARMUP).await;
    let server_cpu = || server.map(CpuTicks::of_tree).unwrap_or_default();
    let (process_before, server_before) = (CpuTicks::of_self(), server_cpu());
    meter.set(MEASURING);
    let started = Instant::now();
    tokio::time::sleep(window).await;
    meter.set(STOPPED);
    let elapsed = started.elapsed().as_secs_f64();
    let (process, server) = (
        CpuTicks::of_self().since(&process_before),
        server_cpu().since(&server_before),
    );
    let ops = meter.counted.load(Ordering::Acquire).max(1) as f64;
    tokio::time::timeout(STOP_TIMEOUT, async {
        for task in tasks {
            task.await??;
        }
        Ok::<_, BoxError>(())
    })
    .await
    .map_err(|_| "workers did not stop")??;
    Ok(Throughput {
        per_s: ops / elapsed,
        process_cpu_us: process * 1e6 / ops,
        server_cpu_us: server * 1e6 / ops,
    })
}

/// A measured window: operations per second, and CPU per operation of this process (the
/// callers, and the hub when it runs here) and of the database server's processes.
struct Throughput {
    per_s: f64,
    process_cpu_us: f64,
    server_cpu_us: f64,
}

impl Throughput {
    /// Prints `<name>_cpu_us_process` and `<name>_cpu_us_postgres`.
    fn report_cpu(&self, name: &str) {
        report(
            &format!("{name}_cpu_us_process"),
            self.process_cpu_us,
            "us/op",
        );
        report(
            &format!("{name}_cpu_us_postgres"),
            self.server_cpu_us,
            "us/op",
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Creates, with GET latency alongside

/// The creates section's baseline: `Store::create` on a fresh database of the hub's cluster,
/// with the options the hub uses.
struct StorageCreates {
    store: Store,
    postgres: Option<u32>,
    _db: TestDatabase,
}

async fn open_storage_creates(pg: &PostgresCluster) -> Result<StorageCreates> {
    let db = pg.create_database("bench_api_storage_creates").await?;
    let store = Store::open_postgres(db.url(), StoreOptions::default()).await?;
    Ok(StorageCreates {
        store,
        postgres: pg.postmaster_pid(),
        _db: db,
    })
}

/// One measured window of `Store::create` from `WRITERS` tasks; object names carry `round`.
async fn storage_creates_window(
    baseline: &StorageCreates,
    config: &Config,
    round: usize,
) -> Result<Throughput> {
    let before = baseline.store.commit_stats();
    let store = baseline.store.clone();
    let measured = throughput(
        &Meter::new(),
        WRITERS,
        config.measure,
        baseline.postgres,
        move |w, i| store_create(store.clone(), CREATE_NS, format!("cm-{round}-{w}-{i}"), 0),
    )
    .await?;
    let after = baseline.store.commit_stats();
    describe_batches(
        &format!(
            "creates round {round}, storage: {:.0} creates/s",
            measured.per_s
        ),
        after.writes - before.writes,
        after.batches - before.batches,
    );
    Ok(measured)
}

/// How many writes each group-commit transaction carried on average (warm-up included).
fn describe_batches(what: &str, writes: u64, batches: u64) {
    println!(
        "# {what}: {writes} writes in {batches} transactions, {:.1} writes per transaction",
        writes as f64 / batches.max(1) as f64
    );
}

/// The hub's group-commit counters (transactions, writes) from its `/metrics`, over every
/// shard.
async fn hub_commit_counters(client: &Client) -> Result<(u64, u64)> {
    let request = axum::http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(request).await?;
    let sum = |name: &str| -> u64 {
        text.lines()
            .filter(|line| line.starts_with(name))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    Ok((
        sum("trellis_storage_commit_batches_total"),
        sum("trellis_storage_commit_writes_total"),
    ))
}

/// GETs the `GET_TARGETS` objects in turn, one at a time, until the run stops or `up_to` were
/// measured; returns the latencies measured in the run's window, in nanoseconds.
async fn probe_gets(api: Api<ConfigMap>, meter: Arc<Meter>, up_to: usize) -> Result<Vec<u64>> {
    let mut latencies = Vec::with_capacity(up_to);
    for i in 0..MAX_OPS_PER_WORKER {
        if meter.phase() == STOPPED || latencies.len() >= up_to {
            break;
        }
        let started = Instant::now();
        api.get(&format!("get-{}", i % GET_TARGETS)).await?;
        if meter.phase() == MEASURING {
            latencies.push(started.elapsed().as_nanos() as u64);
        }
    }
    Ok(latencies)
}

/// The hub's creates against the storage layer's, measured in turns (storage then hub in
/// even rounds, hub then storage in odd ones), so that the machine's drift weighs on both.
async fn bench_creates(hub: &Hub, config: &Config, baseline: &StorageCreates) -> Result<()> {
    println!(
        "# creates: ConfigMap POSTs to the hub from {WRITERS} tasks vs Store::create from \
         {WRITERS} tasks, in {} alternating rounds of {} s each after {} s warm-up; alongside \
         the hub's, one task GETs {GET_TARGETS} other ConfigMaps in turn (up to {GETS} measured)",
        config.create_rounds,
        config.measure.as_secs_f64(),
        WARMUP.as_secs_f64()
    );
    hub.create_namespace(CREATE_NS).await?;
    let api = hub.configmaps(CREATE_NS);
    create_many(&api, CREATE_NS, "get", GET_TARGETS).await?;
    let probed_per_round = GETS.div_ceil(config.create_rounds);
    let (mut storage, mut on_hub, mut gets) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..config.create_rounds {
        let hub_first = round % 2 == 1;
        for hub_turn in [hub_first, !hub_first] {
            if !hub_turn {
                storage.push(storage_creates_window(baseline, config, round).await?);
                continue;
            }
            let meter = Meter::new();
            let (batches_before, writes_before) = hub_commit_counters(&hub.client).await?;
            let probe = tokio::spawn(probe_gets(api.clone(), meter.clone(), probed_per_round));
            let api = api.clone();
            let measured = throughput(
                &meter,
                WRITERS,
                config.measure,
                hub.postgres,
                move |w, i| api_create(api.clone(), CREATE_NS, format!("cm-{round}-{w}-{i}"), 0),
            )
            .await?;
            gets.extend(probe.await??);
            let (batches, writes) = hub_commit_counters(&hub.client).await?;
            describe_batches(
                &format!(
                    "creates round {round}, hub: {:.0} creates/s",
                    measured.per_s
                ),
                writes - writes_before,
                batches - batches_before,
            );
            on_hub.push(measured);
        }
        let (hub_rate, storage_rate) = (on_hub[round].per_s, storage[round].per_s);
        println!(
            "# creates round {round}: ratio {:.2} ({hub_rate:.0} / {storage_rate:.0})",
            hub_rate / storage_rate
        );
    }
    let medians = |runs: &[Throughput]| {
        let pick = |f: fn(&Throughput) -> f64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
        Throughput {
            per_s: pick(|t| t.per_s),
            process_cpu_us: pick(|t| t.process_cpu_us),
            server_cpu_us: pick(|t| t.server_cpu_us),
        }
    };
    let (storage, on_hub) = (medians(&storage), medians(&on_hub));
    report("api_storage_creates_per_s_16", storage.per_s, "ops/s");
    storage.report_cpu("api_storage_create");
    report("api_create_per_s_16", on_hub.per_s, "ops/s");
    report(
        "api_vs_storage_ratio_16",
        on_hub.per_s / storage.per_s,
        "ratio",
    );
    on_hub.report_cpu("api_create");
    gets.sort_unstable();
    report("api_get_p50_ms", percentile_ms(&gets, 0.50), "ms");
    report("api_get_p99_ms", percentile_ms(&gets, 0.99), "ms");
    println!(
        "# creates: medians of the rounds; {} GETs measured while creating, max {:.2} ms",
        gets.len(),
        percentile_ms(&gets, 1.0)
    );
    if gets.len() < GETS / 10 {
        println!("# warning: only {} GETs measured", gets.len());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Watch fan-out

struct PacedRun {
    written: u64,
    /// Writes completed per second of the window.
    rate: f64,
    /// Latency of each create, in nanoseconds, sorted.
    latencies: Vec<u64>,
}

/// `WATCH_WRITERS` writers, each calling `create(name, send time)` once per tick of its own
/// interval (staggered, so the load is steady), `rate` calls per second in all, for `window`.
/// A writer that falls behind catches up in a burst but never starts a write after the window.
async fn paced_writes<F, Fut>(
    clock: Instant,
    rate: u32,
    window: Duration,
    create: F,
) -> Result<PacedRun>
where
    F: Fn(String, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let period = Duration::from_secs(1) * WATCH_WRITERS / rate;
    let ticks = (window.as_secs_f64() / period.as_secs_f64()).ceil() as u64 + 1;
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let end = start + window;
    let writers: Vec<JoinHandle<Result<Vec<u64>>>> = (0..WATCH_WRITERS)
        .map(|w| {
            let create = create.clone();
            let mut tick = tokio::time::interval_at(start + period * w / WATCH_WRITERS, period);
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(ticks as usize);
                for i in 0..ticks {
                    tick.tick().await;
                    if tokio::time::Instant::now() >= end {
                        break;
                    }
                    let sent = nanos_since(clock);
                    create(format!("w{w}-{i}"), sent).await?;
                    latencies.push(nanos_since(clock) - sent);
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for writer in writers {
        latencies.extend(writer.await??);
    }
    latencies.sort_unstable();
    Ok(PacedRun {
        written: latencies.len() as u64,
        rate: latencies.len() as f64 / window.as_secs_f64(),
        latencies,
    })
}

/// What one watcher received.
#[derive(Default)]
struct Deliveries {
    /// Receive time minus send time of each event, in nanoseconds.
    latencies: Vec<u64>,
    /// Events without a send time (bookmarks, errors, objects not written by the benchmark).
    other: u64,
    /// Events of the benchmark that did not come after the previous one in revision order (or
    /// came without a revision).
    out_of_order: u64,
    last_revision: u64,
    /// Whether the end-of-run marker arrived before the deadline.
    ended: bool,
}

impl Deliveries {
    /// Records an event received at `received`; false once the run has ended.
    fn record(&mut self, event: Seen, received: u64) -> bool {
        let Some(sent) = event.sent else {
            self.other += 1;
            return true;
        };
        match event.revision {
            Some(revision) if revision > self.last_revision => self.last_revision = revision,
            _ => self.out_of_order += 1,
        }
        if sent == END_OF_RUN {
            self.ended = true;
        } else {
            self.latencies.push(received.saturating_sub(sent));
        }
        !self.ended
    }
}

/// What a watcher takes from an event: the send time written into the object (none in events
/// the benchmark did not write) and the object's resourceVersion.
#[derive(Clone, Copy)]
struct Seen {
    sent: Option<u64>,
    revision: Option<u64>,
}

impl Seen {
    /// A watch event line.
    fn line(line: &[u8]) -> Seen {
        Seen {
            sent: sent_nanos(line),
            revision: line_revision(line),
        }
    }
}

/// One watcher's events, in the groups they arrived in (a watch response's chunk).
type Events = futures::stream::BoxStream<'static, Result<Vec<Seen>>>;

/// Reads `events` until the end-of-run marker, `max_events` of them or `deadline`, whichever
/// comes first. Events that arrived together share one receive time.
async fn receive(
    events: Events,
    clock: Instant,
    deadline: tokio::time::Instant,
    max_events: u64,
) -> Result<Deliveries> {
    let mut got = Deliveries::default();
    let mut events = events;
    let mut give_up = std::pin::pin!(tokio::time::sleep_until(deadline));
    let mut left = max_events;
    while left > 0 {
        let group = tokio::select! {
            biased;
            group = events.next() => group,
            () = &mut give_up => break,
        };
        let Some(group) = group else { break };
        let received = nanos_since(clock);
        for event in group? {
            left -= 1;
            if !got.record(event, received) || left == 0 {
                return Ok(got);
            }
        }
    }
    Ok(got)
}

/// The result of one watch run, over all watchers.
struct FanOut {
    /// Every delivery's latency, in nanoseconds, sorted.
    latencies: Vec<u64>,
    writes: PacedRun,
    /// Watchers that missed events or the end marker.
    incomplete: usize,
    /// Watchers that got events out of revision order.
    unordered: usize,
    other: u64,
}

/// Spawns a receiver per stream, writes at the configured pace with `create`, marks the end of
/// the run, and collects what every watcher received.
async fn fan_out<F, Fut>(
    config: &Config,
    clock: Instant,
    streams: Vec<Events>,
    create: F,
) -> Result<FanOut>
where
    F: Fn(String, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let deadline = tokio::time::Instant::now() + config.watch + WATCH_DRAIN;
    // Every write, the end marker, and room for bookmarks and the like.
    let max_events = 2 * u64::from(config.watch_rate) * (config.watch.as_secs() + 1) + 100;
    let receivers: Vec<JoinHandle<Result<Deliveries>>> = streams
        .into_iter()
        .map(|stream| tokio::spawn(receive(stream, clock, deadline, max_events)))
        .collect();
    let writes = paced_writes(clock, config.watch_rate, config.watch, create.clone()).await?;
    create("end-of-run".to_string(), END_OF_RUN).await?;

    let mut run = FanOut {
        latencies: Vec::with_capacity(receivers.len() * writes.written as usize),
        writes,
        incomplete: 0,
        unordered: 0,
        other: 0,
    };
    for receiver in receivers {
        let got = receiver.await??;
        if got.latencies.len() as u64 != run.writes.written || !got.ended {
            if run.incomplete < 5 {
                println!(
                    "# watcher received {} of {} events (saw the end: {})",
                    got.latencies.len(),
                    run.writes.written,
                    got.ended
                );
            }
            run.incomplete += 1;
        }
        if got.out_of_order > 0 {
            if run.unordered < 5 {
                println!(
                    "# watcher received {} events out of revision order",
                    got.out_of_order
                );
            }
            run.unordered += 1;
        }
        run.other += got.other;
        run.latencies.extend(got.latencies);
    }
    run.latencies.sort_unstable();
    Ok(run)
}

/// Prints a watch run's figures as `{prefix}_p50_ms`, `{prefix}_p99_ms` and
/// `{prefix}_writes_per_s` (the write rate achieved), with commentary.
fn report_fan_out(prefix: &str, config: &Config, run: &FanOut) {
    report(
        &format!("{prefix}_p50_ms"),
        percentile_ms(&run.latencies, 0.50),
        "ms",
    );
    report(
        &format!("{prefix}_p99_ms"),
        percentile_ms(&run.latencies, 0.99),
        "ms",
    );
    report(&format!("{prefix}_writes_per_s"), run.writes.rate, "ops/s");
    println!(
        "# {prefix}: {} deliveries ({} writes x {} watchers, {:.0}/s), max {:.1} ms; writes \
         {:.0}/s of {} asked, create p50 {:.2} ms, p99 {:.2} ms; {} other events",
        run.latencies.len(),
        run.writes.written,
        config.watchers,
        run.latencies.len() as f64 / config.watch.as_secs_f64(),
        percentile_ms(&run.latencies, 1.0),
        run.writes.rate,
        config.watch_rate,
        percentile_ms(&run.writes.latencies, 0.50),
        percentile_ms(&run.writes.latencies, 0.99),
        run.other,
    );
    if run.incomplete > 0 {
        println!(
            "# warning: {prefix}: {} of {} watchers did not receive all {} events",
            run.incomplete, config.watchers, run.writes.written
        );
    }
    if run.unordered > 0 {
        println!(
            "# warning: {prefix}: {} of {} watchers received events out of revision order",
            run.unordered, config.watchers
        );
    }
    if run.writes.rate < f64::from(config.watch_rate) * 0.98 {
        println!(
            "# warning: {prefix}: writers fell behind: {:.0} writes/s instead of {}",
            run.writes.rate, config.watch_rate
        );
    }
}

fn describe_watch(config: &Config, what: &str) {
    println!(
        "# {what}: {} watchers of one namespace while {WATCH_WRITERS} writers create {} \
         ConfigMaps/s in it for {} s; latency = receipt - send time written into the object",
        config.watchers,
        config.watch_rate,
        config.watch.as_secs_f64()
    );
}

async fn bench_storage_watch(pg: &PostgresCluster, config: &Config) -> Result<FanOut> {
    describe_watch(
        config,
        "watch baseline (Store::watch, before the hub starts)",
    );
    let db = pg.create_database("bench_api_storage_watch").await?;
    let store = Store::open_postgres(db.url(), StoreOptions::default()).await?;
    let clock = Instant::now();
    let mut streams = Vec::with_capacity(config.watchers);
    for _ in 0..config.watchers {
        let stream = store
            .watch(ListScope::namespace(CLUSTER, RESOURCE, WATCH_NS), None)
            .await?;
        streams.push(
            stream
                .into_stream()
                .map(|event| {
                    let object = event?.object;
                    Ok::<_, BoxError>(vec![Seen {
                        sent: sent_nanos(&object.value),
                        revision: Some(object.revision),
                    }])
                })
                .boxed(),
        );
    }
    let run = fan_out(config, clock, streams, move |name, sent| {
        store_create(store.clone(), WATCH_NS, name, sent)
    })
    .await?;
    report_fan_out("api_watch_storage", config, &run);
    Ok(run)
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// How the watchers reach the hub.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// kube-rs: one HTTP/1.1 connection per watch.
    Http1,
    /// hyper's HTTP/2 client: the watches multiplexed, `MAX_CONCURRENT_STREAMS` per connection.
    Http2,
}

/// The path of a raw watch of a namespace's ConfigMaps from `revision`.
fn watch_path(namespace: &str, revision: &str, timeout: Duration) -> String {
    format!(
        "/api/v1/namespaces/{namespace}/configmaps?watch=true&resourceVersion={revision}\
         &timeoutSeconds={}",
        timeout.as_secs()
    )
}

/// What a watch response body's lines carry, a group per chunk. Lines are read where they lie
/// in the chunks (copied only when one spans two), to keep the watchers' share of the CPU the
/// hub runs on small.
fn lines(body: axum::body::Body) -> Events {
    struct Split {
        chunks: axum::body::BodyDataStream,
        /// The start of a line whose end is in a later chunk.
        partial: Vec<u8>,
    }
    let split = Split {
        chunks: body.into_data_stream(),
        partial: Vec::new(),
    };
    futures::stream::unfold(split, |mut split| async move {
        loop {
            // The end of the body; a last line without its newline is not an event.
            let chunk = match split.chunks.next().await? {
                Ok(chunk) => chunk,
                Err(err) => return Some((Err(err.into()), split)),
            };
            let mut seen = Vec::new();
            let mut rest = &chunk[..];
            while let Some(at) = memchr::memchr(b'\n', rest) {
                let (line, after) = rest.split_at(at + 1);
                if split.partial.is_empty() {
                    seen.push(Seen::line(line));
                } else {
                    split.partial.extend_from_slice(line);
                    seen.push(Seen::line(&split.partial));
                    split.partial.clear();
                }
                rest = after;
            }
            split.partial.extend_from_slice(rest);
            if !seen.is_empty() {
                return Some((Ok(seen), split));
            }
        }
    })
    .boxed()
}

/// A raw watch over kube-rs (HTTP/1.1: a connection of its own), as lines.
async fn watch_lines(client: Client, path: String) -> Result<Events> {
    let request = axum::http::Request::get(path).body(kube::client::Body::from(Vec::new()))?;
    let response = client.send(request).await?;
    if response.status() != axum::http::StatusCode::OK {
        return Err(format!("a watch was answered {}", response.status()).into());
    }
    Ok(lines(axum::body::Body::new(response.into_body())))
}

type H2Sender = SendRequest<axum::body::Body>;

/// An HTTP/2 connection to the hub (TLS with ALPN `h2`, the kubeconfig's client certificate).
async fn h2_connect(hub: &Hub) -> Result<H2Sender> {
    let mut tls = (*hub.tls).clone();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(hub.addr).await?;
    tcp.set_nodelay(true)?;
    let name = rustls::pki_types::ServerName::IpAddress(hub.addr.ip().into());
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(name, tcp)
        .await?;
    if stream.get_ref().1.alpn_protocol() != Some(b"h2".as_slice()) {
        return Err("the hub did not agree to HTTP/2".into());
    }
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake(TokioIo::new(stream))
        .await?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            println!("# warning: an HTTP/2 connection ended: {err}");
        }
    });
    Ok(sender)
}

/// A raw watch as one stream of an HTTP/2 connection, as lines.
async fn watch_lines_h2(mut sender: H2Sender, addr: SocketAddr, path: String) -> Result<Events> {
    let request =
        axum::http::Request::get(format!("https://{addr}{path}")).body(axum::body::Body::empty())?;
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    if response.status() != axum::http::StatusCode::OK {
        return Err(format!("a watch was answered {}", response.status()).into());
    }
    Ok(lines(axum::body::Body::new(response.into_body())))
}

/// Opens `config.watchers` watches of `namespace` from `revision`; with HTTP/2, also the
/// connections carrying them (which must outlive the watches).
async fn open_watches(
    hub: &Hub,
    config: &Config,
    protocol: Protocol,
    namespace: &str,
    revision: &str,
) -> Result<(Vec<Events>, Vec<H2Sender>)> {
    let path = watch_path(
        namespace,
        revision,
        config.watch + WATCH_DRAIN + WATCH_OPEN_TIMEOUT,
    );
    let open = async {
        match protocol {
            Protocol::Http1 => {
                let watches =
                    (0..config.watchers).map(|_| watch_lines(hub.client.clone(), path.clone()));
                Ok((futures::future::try_join_all(watches).await?, Vec::new()))
            }
            Protocol::Http2 => {
                let per_connection = trellis_server::MAX_CONCURRENT_STREAMS as usize;
                let connections = config.watchers.div_ceil(per_connection).max(1);
                let senders =
                    futures::future::try_join_all((0..connections).map(|_| h2_connect(hub)))
                        .await?;
                let watches = (0..config.watchers).map(|i| {
                    watch_lines_h2(senders[i % connections].clone(), hub.addr, path.clone())
                });
                Ok((futures::future::try_join_all(watches).await?, senders))
            }
        }
    };
    tokio::time::timeout(WATCH_OPEN_TIMEOUT, open)
        .await
        .map_err(|_| "opening the watches timed out")?
}

async fn bench_api_watch(
    hub: &Hub,
    config: &Config,
    baseline: &FanOut,
    protocol: Protocol,
) -> Result<()> {
    let (namespace, prefix, how) = match protocol {
        Protocol::Http1 => (
            WATCH_NS,
            "api_watch_fanout",
            "watch (raw watch requests via kube::Client, one HTTP/1.1 connection each)".to_string(),
        ),
        Protocol::Http2 => (
            WATCH_H2_NS,
            "api_watch_fanout_h2",
            format!(
                "watch over HTTP/2 (raw watch requests via hyper, {} streams per connection, {} \
                 connections)",
                trellis_server::MAX_CONCURRENT_STREAMS,
                config
                    .watchers
                    .div_ceil(trellis_server::MAX_CONCURRENT_STREAMS as usize)
            ),
        ),
    };
    describe_watch(config, &how);
    hub.create_namespace(namespace).await?;
    let api = hub.configmaps(namespace);
    let revision = api
        .list_metadata(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .ok_or("a list without a resourceVersion")?;
    let tasks_before = alive_tasks();
    let opened = Instant::now();
    let (streams, connections) = open_watches(hub, config, protocol, namespace, &revision).await?;
    println!(
        "# {prefix}: {} watches from resourceVersion {revision} open in {:.1} s",
        streams.len(),
        opened.elapsed().as_secs_f64()
    );
    let clock = Instant::now();
    let create = move |name, sent| api_create(api.clone(), namespace, name, sent);
    let run = fan_out(config, clock, streams, create.clone()).await?;
    drop(connections);
    report_fan_out(prefix, config, &run);
    report(
        &format!("{prefix}_vs_storage_p99_ratio"),
        percentile(&run.latencies, 0.99) as f64
            / percentile(&baseline.latencies, 0.99).max(1) as f64,
        "ratio",
    );

    // Every watcher has hung up by now. Do the hub's watch tasks end with their connections?
    // One more event in the namespace ends any that linger, so later sections do not pay for
    // them.
    tokio::time::sleep(HANGUP_GRACE).await;
    let lingering = alive_tasks().saturating_sub(tasks_before);
    create("after-run".to_string(), END_OF_RUN).await?;
    tokio::time::sleep(HANGUP_GRACE).await;
    println!(
        "# {prefix}: tasks alive beyond those before the watches: {lingering} {} s after all {} \
         watchers hung up, {} {} s after one more write to their namespace",
        HANGUP_GRACE.as_secs(),
        config.watchers,
        alive_tasks().saturating_sub(tasks_before),
        HANGUP_GRACE.as_secs(),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Lists

/// Lists a namespace's ConfigMaps through the API in pages of `PAGE_SIZE`, accepting `accept`;
/// returns how many objects (or table rows) came back.
async fn api_list(client: &Client, namespace: &str, accept: &str) -> Result<usize> {
    let mut items = 0;
    let mut continue_token: Option<String> = None;
    for _ in 0..LIST_OBJECTS as usize / PAGE_SIZE + 2 {
        let mut uri = format!("/api/v1/namespaces/{namespace}/configmaps?limit={PAGE_SIZE}");
        if let Some(token) = &continue_token {
            uri.push_str("&continue=");
            uri.extend(url::form_urlencoded::byte_serialize(token.as_bytes()));
        }
        let request = axum::http::Request::get(uri)
            .header(ACCEPT, accept)
            .body(Vec::new())?;
        let page: Value = serde_json::from_str(&client.request_text(request).await?)?;
        let rows = page.get("rows").or_else(|| page.get("items"));
        items += rows.and_then(Value::as_array).map_or(0, Vec::len);
        continue_token = page
            .pointer("/metadata/continue")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        if continue_token.is_none() {
            return Ok(items);
        }
    }
    Err("the list did not end".into())
}

/// Lists a namespace's ConfigMaps straight from storage in pages of `PAGE_SIZE`.
async fn store_list(store: &Store, namespace: &str) -> Result<usize> {
    let mut items = 0;
    let mut continue_token = None;
    for _ in 0..LIST_OBJECTS as usize / PAGE_SIZE + 2 {
        let page = store
            .list(ListRequest {
                scope: ListScope::namespace(CLUSTER, RESOURCE, namespace),
                revision: ReadRevision::Latest,
                limit: Some(PAGE_SIZE),
                continue_token,
            })
            .await?;
        items += page.items.len();
        continue_token = page.continue_token;
        if continue_token.is_none() {
            return Ok(items);
        }
    }
    Err("the list did not end".into())
}

/// Milliseconds one full list takes, checking that it returned every object.
async fn timed_list(list: impl Future<Output = Result<usize>>) -> Result<f64> {
    let started = Instant::now();
    let items = list.await?;
    let elapsed = started.elapsed();
    if items as u64 != LIST_OBJECTS {
        return Err(format!("listed {items} objects, expected {LIST_OBJECTS}").into());
    }
    Ok(elapsed.as_secs_f64() * 1e3)
}

async fn bench_list(hub: &Hub) -> Result<()> {
    println!(
        "# list: {LIST_OBJECTS} ConfigMaps in one namespace, pages of {PAGE_SIZE}: as kubectl \
         asks (Table), as plain JSON, and straight from storage (the same objects); median of \
         {LIST_RUNS} runs each, taking turns"
    );
    hub.create_namespace(LIST_NS).await?;
    let loaded = create_many(&hub.configmaps(LIST_NS), LIST_NS, "cm", LIST_OBJECTS).await?;
    println!(
        "# list: loaded through the API in {:.1} s ({:.0} creates/s, {LOAD_TASKS} tasks)",
        loaded.as_secs_f64(),
        LIST_OBJECTS as f64 / loaded.as_secs_f64()
    );
    let store = hub.open_store().await?;
    let (mut table, mut plain, mut storage) = (Vec::new(), Vec::new(), Vec::new());
    // The first round warms up.
    for round in 0..=LIST_RUNS {
        let table_ms = timed_list(api_list(&hub.client, LIST_NS, TABLE_ACCEPT)).await?;
        let plain_ms = timed_list(api_list(&hub.client, LIST_NS, "application/json")).await?;
        let storage_ms = timed_list(store_list(&store, LIST_NS)).await?;
        if round > 0 {
            table.push(table_ms);
            plain.push(plain_ms);
            storage.push(storage_ms);
        }
    }
    let (table, plain, storage) = (median(&mut table), median(&mut plain), median(&mut storage));
    report("api_list_10k_ms", table, "ms");
    report("api_list_10k_json_ms", plain, "ms");
    report("api_list_10k_storage_ms", storage, "ms");
    report("api_list_10k_vs_storage_ratio", table / storage, "ratio");
    Ok(())
}

/// Times the start of a garbage collector over what the benchmarks left in the hub: every
/// followed resource listed and the owner graph built. After that, a change costs its own
/// objects (their owners and dependents), not a pass over everything.
async fn describe_garbage_collection(hub: &Hub) -> Result<()> {
    let store = hub.open_store().await?;
    let objects = store
        .list(ListRequest::new(ListScope::all_clusters(RESOURCE)))
        .await?
        .items
        .len();
    let shards = trellis_server::controller::ShardMap::single(store.clone());
    let registry = trellis_server::controller::Registry::new(
        std::sync::Arc::new(trellis_server::hub::scheme()),
        shards.clone(),
    );
    let started = Instant::now();
    let mut running = trellis_server::controller::Running::new();
    let collector = trellis_server::internals::garbage_collector(&mut running, shards, registry);
    collector.wait_synced().await;
    println!(
        "# the garbage collector's start (every resource listed, {} objects in the owner graph) \
         with {objects} ConfigMaps in the hub took {:.0} ms",
        collector.kept(),
        started.elapsed().as_secs_f64() * 1e3
    );
    running.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Idle memory

/// `VmRSS` and `VmHWM` of a process, in MiB.
fn memory_mib(pid: u32) -> Result<(f64, f64)> {
    let (rss, peak) = trellis_testkit::bench::process_memory_kib(pid)?;
    Ok((rss / 1024.0, peak / 1024.0))
}

/// Waits for a started hub's kubeconfig, then makes one request through it.
async fn first_request(child: &mut tokio::process::Child, kubeconfig: &Path) -> Result<()> {
    let deadline = Instant::now() + PROCESS_READY_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            return Err(format!("trellis exited early: {status}").into());
        }
        if let Ok(client) = kube_client(kubeconfig).await {
            if Api::<Namespace>::all(client)
                .list(&ListParams::default())
                .await
                .is_ok()
            {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err("trellis did not answer in time".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Resident memory of a `trellis start` process (built by cargo for this benchmark) that has
/// answered one request and then idled for `IDLE_SETTLE`.
async fn idle_rss(store: Option<&str>) -> Result<(f64, f64)> {
    let dir = tempfile::Builder::new().prefix("trellis-rss-").tempdir()?;
    let log = std::fs::File::create(dir.path().join("trellis.log"))?;
    let data_dir = dir.path().join("data");
    let listen = format!("127.0.0.1:{}", trellis_testkit::free_loopback_port());
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_trellis"));
    command
        .arg("start")
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--listen", &listen])
        .env_remove("TRELLIS_STORE")
        .env_remove("TRELLIS_DATA_DIR")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
    if let Some(url) = store {
        command.args(["--store", url]);
    }
    let mut child = command.spawn()?;
    let pid = child.id().ok_or("trellis has no pid")?;
    let measured = async {
        first_request(&mut child, &data_dir.join("admin.kubeconfig")).await?;
        tokio::time::sleep(IDLE_SETTLE).await;
        memory_mib(pid)
    }
    .await;
    child.kill().await?;
    measured
}

async fn bench_rss(pg: &PostgresCluster) -> Result<()> {
    println!(
        "# rss: `trellis start` ({}) on 127.0.0.1, after one request and {} s idle",
        env!("CARGO_BIN_EXE_trellis"),
        IDLE_SETTLE.as_secs()
    );
    let (rss, peak) = idle_rss(None).await?;
    report("idle_rss_mib", rss, "MiB");
    println!("# rss: embedded store, peak {peak:.1} MiB");
    let db = pg.create_database("bench_api_rss").await?;
    let (rss, peak) = idle_rss(Some(db.url())).await?;
    report("idle_rss_postgres_mib", rss, "MiB");
    println!("# rss: Postgres store, peak {peak:.1} MiB");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// What metrics cost

/// Scrapes `/metrics` every second until aborted, noting the size of the last scrape.
async fn scrape_every_second(client: Client, scraped: Arc<AtomicU64>) -> Result<()> {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        every.tick().await;
        let request = axum::http::Request::get("/metrics").body(Vec::new())?;
        let body = client.request_text(request).await?;
        if !body.contains("apiserver_request_total") {
            return Err("a scrape without apiserver_request_total".into());
        }
        scraped.store(body.len() as u64, Ordering::Relaxed);
    }
}

async fn bench_metrics_overhead(pg: &PostgresCluster, config: &Config) -> Result<()> {
    println!(
        "# metrics: ConfigMap POSTs from {WRITERS} tasks, {} windows of {} s (after {} s \
         warm-up each) per hub, alternating (off, on, on, off, …) between a hub with metrics off \
         and one with metrics on and scraped every second",
        config.metrics_rounds,
        config.measure.as_secs_f64(),
        WARMUP.as_secs_f64()
    );
    let off = Hub::start_with(pg, "bench_metrics_off", false).await?;
    let on = Hub::start_with(pg, "bench_metrics_on", true).await?;
    const NS: &str = "bench-metrics";
    off.create_namespace(NS).await?;
    on.create_namespace(NS).await?;
    let scraped = Arc::new(AtomicU64::new(0));
    let scraper = tokio::spawn(scrape_every_second(on.client.clone(), scraped.clone()));
    let (mut rates_off, mut rates_on) = (Vec::new(), Vec::new());
    for round in 0..config.metrics_rounds {
        // Which hub goes first alternates too, so neither always runs on a warmer database.
        let mut order = [(&off, &mut rates_off, "off"), (&on, &mut rates_on, "on")];
        if round % 2 == 1 {
            order.reverse();
        }
        for (hub, rates, tag) in order {
            let api = hub.configmaps(NS);
            let rate = throughput(&Meter::new(), WRITERS, config.measure, None, move |w, i| {
                api_create(api.clone(), NS, format!("cm-{round}-{w}-{i}"), 0)
            })
            .await?
            .per_s;
            println!("# metrics: round {round}, metrics {tag}: {rate:.0} creates/s");
            rates.push(rate);
        }
    }
    if scraper.is_finished() {
        scraper.await??;
        return Err("the scraper stopped".into());
    }
    scraper.abort();
    let total_off: f64 = rates_off.iter().sum();
    let total_on: f64 = rates_on.iter().sum();
    let n = config.metrics_rounds.max(1) as f64;
    report("metrics_creates_per_s_off", total_off / n, "ops/s");
    report("metrics_creates_per_s_on_scraped", total_on / n, "ops/s");
    report("metrics_overhead_ratio", total_on / total_off, "ratio");
    println!(
        "# metrics: last scrape {} bytes",
        scraped.load(Ordering::Relaxed)
    );
    Ok(())
}
