//! Benchmarks of trellis-storage, each against a baseline measured in the same run.
//!
//! Run with `cargo bench -p trellis-storage`. Results are printed as machine-readable lines
//! `bench: <name> <value> <unit>`; lines starting with `#` are commentary, lines starting with
//! `warning:` flag a result that should not be trusted.
//!
//! Sections (select some by passing their names, or part of them, as arguments after `--`):
//! - `pg_writes`: store creates vs plain autocommit INSERTs on Postgres, 1/16/64 writers.
//! - `sqlite_writes`: the same on SQLite (WAL, `synchronous=FULL`).
//! - `watch`: delivery latency to 100 watchers under a paced write load.
//! - `list`: paged list of 10,000 objects in a shard of a million, vs raw SQL and a small shard.
//! - `backup`: `restore::backup_sqlite` (online, consistent) and `restore::restore_sqlite` of an
//!   embedded store vs copying its file with the store closed (`std::fs::copy`).
//! - `etcd_puts`, `etcd_watch` (`etcd` selects both): etcd, where Kubernetes and kcp keep their
//!   objects, as a second baseline: puts of the same values from 1/16/64 clients, compared with
//!   the `pg_writes`/`sqlite_writes` figures of the same run, and the `watch` benchmark against
//!   etcd's watch. Skipped with a message when etcd is not installed. Note that `watch` also
//!   selects `etcd_watch`.
//!
//! Environment:
//! - `TRELLIS_BENCH_OBJECTS`: size of the large list shard: it gets `N / 1000` clusters, the
//!   listed one with 10,000 objects and the others with 1,000 each (default 1,000,000: 1,000
//!   clusters, 1,009,000 objects). Lower it for a quick run; 1,000 leaves the listed cluster alone.
//! - `TRELLIS_BENCH_SECS`: measured seconds per throughput point (default 5, after 1 s warm-up).
//! - `TRELLIS_BENCH_WATCH_SECS`: seconds of paced writes in each watch run (default 10).
//! - `TRELLIS_BENCH_BACKUP_OBJECTS`: objects in the backed-up store (default 100,000).
//! - `TRELLIS_BENCH_ETCD_WATCH_CONNECTIONS`: connections the 100 etcd watchers share, each
//!   watcher its own Watch stream on one of them, round-robin (default 1, as one etcd client
//!   multiplexes its watches over its connection; 100 gives every watcher its own, which costs
//!   etcd more CPU and so delivery latency on a small machine).
//!
//! Postgres is a private throwaway cluster with its durability defaults (fsync on); SQLite files
//! live in a temporary directory; etcd is a private single-member cluster with its durability
//! defaults (WAL fsync on every commit), its data in a temporary directory on the same disk.
//! Everything listens on loopback only.

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;
use trellis_storage::{
    ListRequest, ListScope, ObjectKey, ReadRevision, Store, StoreOptions, WatchStream,
};
use trellis_testkit::bench::{env_or, median, percentile, report, CpuTicks, Sections};
use trellis_testkit::{ClusterOptions, PostgresCluster};

#[path = "support/etcd.rs"]
mod etcd;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

const RESOURCE: &str = "core/configmaps";
/// Size of every benchmark object, as a ConfigMap-like JSON document.
const PAYLOAD_BYTES: usize = 1024;

/// Concurrent writers of the throughput benchmarks.
const WRITERS: [usize; 3] = [1, 16, 64];
const WARMUP: Duration = Duration::from_secs(1);
/// How long workers may take to connect before a throughput run gives up.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long workers may take to finish their last operation after a run stops.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Bounds each worker's loop; runs are timed, so this is never reached in practice.
const MAX_OPS_PER_WORKER: u64 = 10_000_000;

const WATCHERS: usize = 100;
const WATCH_WRITERS: u32 = 16;
/// Total paced write rate of the watch benchmark (125/s per writer).
const WATCH_WRITE_RATE: u32 = 2_000;
/// How long watchers may take to receive the last event after the writers stop.
const WATCH_DRAIN: Duration = Duration::from_secs(30);

/// Objects in the listed cluster, and in each filler cluster of the large shard.
const TARGET_OBJECTS: u64 = 10_000;
const FILLER_OBJECTS: u64 = 1_000;
/// Filler objects are smaller, to keep loading a million of them reasonably quick.
const FILLER_PAYLOAD_BYTES: usize = 384;
const NAMESPACES: u64 = 10;
const TARGET_CLUSTER: &str = "target";
/// kubectl's default chunk size.
const PAGE_SIZE: usize = 500;
const LOAD_WRITERS: usize = 64;
/// Objects in a shard brought to steady state before measuring (see [`steady_store`]).
const SEED_OBJECTS: u64 = 10_000;
const LOAD_TIMEOUT: Duration = Duration::from_secs(3600);
const LIST_REPETITIONS: usize = 10;
const GETS: usize = 1_000;

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
        "# trellis-storage benchmarks: {} logical CPUs, {} s measured per throughput point",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        config.measure.as_secs_f64()
    );
    let sample = configmap("ns-0", "cm-00000", &uid(0, 0), 0, PAYLOAD_BYTES);
    println!(
        "# values: ConfigMap-like JSON objects of {} bytes (list filler clusters: {} bytes)",
        sample.len(),
        configmap("ns-0", "cm-00000", &uid(0, 0), 0, FILLER_PAYLOAD_BYTES).len()
    );
    let pg = if ["pg_writes", "watch", "list"]
        .iter()
        .any(|s| config.runs(s))
    {
        let cluster = tokio::task::spawn_blocking(|| {
            PostgresCluster::start(ClusterOptions { durable: true })
        })
        .await??;
        describe_postgres(&cluster).await?;
        Some(cluster)
    } else {
        None
    };
    let mut pg_writes = None;
    if let Some(pg) = &pg {
        if config.runs("pg_writes") {
            pg_writes = Some(bench_pg_writes(pg, &config).await?);
        }
    }
    let mut sqlite_writes = None;
    if config.runs("sqlite_writes") {
        sqlite_writes = Some(bench_sqlite_writes(&config).await?);
    }
    // Started once for both etcd sections, stopped (by its guard) before the list section.
    let etcd = if ["etcd_puts", "etcd_watch"].iter().any(|s| config.runs(s)) {
        start_etcd().await?
    } else {
        None
    };
    if let Some(etcd) = &etcd {
        if config.runs("etcd_puts") {
            let stores = StoreWrites {
                pg: pg_writes.as_deref(),
                sqlite: sqlite_writes.as_deref(),
            };
            bench_etcd_puts(etcd, &config, stores).await?;
        }
    }
    if config.runs("backup") {
        bench_backup().await?;
    }
    let mut store_watch = None;
    if let Some(pg) = &pg {
        if config.runs("watch") {
            store_watch = Some(bench_watch(pg, &config).await?);
        }
    }
    if let Some(etcd) = &etcd {
        if config.runs("etcd_watch") {
            bench_etcd_watch(etcd, &config, store_watch.as_ref()).await?;
        }
    }
    drop(etcd);
    if let Some(pg) = &pg {
        if config.runs("list") {
            bench_list(pg, &config).await?;
        }
    }
    Ok(())
}

struct Config {
    measure: Duration,
    watch: Duration,
    objects: u64,
    etcd_watch_connections: usize,
    sections: Sections,
}

impl Config {
    fn from_env() -> Result<Config> {
        let objects: u64 = env_or("TRELLIS_BENCH_OBJECTS", 1_000_000)?;
        if objects < FILLER_OBJECTS {
            return Err(format!("TRELLIS_BENCH_OBJECTS must be at least {FILLER_OBJECTS}").into());
        }
        let etcd_watch_connections = env_or("TRELLIS_BENCH_ETCD_WATCH_CONNECTIONS", 1)?;
        if !(1..=WATCHERS).contains(&etcd_watch_connections) {
            return Err(
                format!("TRELLIS_BENCH_ETCD_WATCH_CONNECTIONS must be 1 to {WATCHERS}").into(),
            );
        }
        Ok(Config {
            measure: Duration::from_secs_f64(env_or("TRELLIS_BENCH_SECS", 5.0)?),
            watch: Duration::from_secs_f64(env_or("TRELLIS_BENCH_WATCH_SECS", 10.0)?),
            objects,
            etcd_watch_connections,
            sections: Sections::from_args(),
        })
    }

    fn runs(&self, section: &str) -> bool {
        self.sections.runs(section)
    }
}

// ---------------------------------------------------------------------------------------------
// Output and statistics

fn nanos_to_ms(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

// ---------------------------------------------------------------------------------------------
// Payloads

/// Every payload starts with this, so the send timestamp that follows it (20 digits) is read
/// back at a fixed offset: watchers pay nothing for parsing JSON that storage itself never does.
const SENT_PREFIX: &str = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"annotations":{"bench.trellis.dev/sent-nanos":""#;
const SENT_DIGITS: usize = 20;

/// A ConfigMap-like JSON object of exactly `size` bytes (unless the metadata alone is larger).
fn configmap(namespace: &str, name: &str, uid: &str, sent_nanos: u64, size: usize) -> Bytes {
    let mut json = format!(
        "{SENT_PREFIX}{sent_nanos:0SENT_DIGITS$}\"}},\"name\":\"{name}\",\"namespace\":\"{namespace}\",\
         \"uid\":\"{uid}\",\"creationTimestamp\":\"2024-05-01T12:00:00Z\",\
         \"labels\":{{\"app.kubernetes.io/name\":\"bench\",\"app.kubernetes.io/part-of\":\"trellis\"}}}},\
         \"data\":{{\"settings.properties\":\""
    );
    const TAIL: &str = "\"}}";
    const LINE: &str = "feature.gates=alpha,beta; log.level=info; cache.ttl=300s; ";
    let pad = size.saturating_sub(json.len() + TAIL.len());
    json.extend(LINE.chars().cycle().take(pad));
    json.push_str(TAIL);
    Bytes::from(json)
}

fn sent_nanos(value: &[u8]) -> Result<u64> {
    let digits = value
        .strip_prefix(SENT_PREFIX.as_bytes())
        .and_then(|rest| rest.get(..SENT_DIGITS))
        .ok_or("payload without a send timestamp")?;
    Ok(std::str::from_utf8(digits)?.parse()?)
}

fn uid(worker: u64, index: u64) -> String {
    format!("{worker:08x}-0000-4000-8000-{index:012x}")
}

// ---------------------------------------------------------------------------------------------
// Connections

fn store_options() -> StoreOptions {
    StoreOptions {
        compaction: None,
        ..StoreOptions::default()
    }
}

async fn pg_connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

async fn describe_postgres(pg: &PostgresCluster) -> Result<()> {
    let client = pg_connect(&pg.admin_url()).await?;
    let mut settings = Vec::new();
    for name in [
        "server_version",
        "fsync",
        "synchronous_commit",
        "wal_sync_method",
        "shared_buffers",
    ] {
        let value: String = client
            .query_one("SELECT current_setting($1)", &[&name])
            .await?
            .get(0);
        settings.push(format!("{name}={value}"));
    }
    println!("# postgres on 127.0.0.1: {}", settings.join(" "));
    Ok(())
}

fn sqlite_connect(path: &Path) -> Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

// ---------------------------------------------------------------------------------------------
// Loading

/// Creates objects `0..total` (`object(k)` gives the k-th) with `LOAD_WRITERS` concurrent
/// writers; returns how long it took.
async fn create_all<F>(store: &Store, total: u64, object: F) -> Result<Duration>
where
    F: Fn(u64) -> (ObjectKey, String, Bytes) + Copy + Send + 'static,
{
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let writers: Vec<JoinHandle<Result<()>>> = (0..LOAD_WRITERS)
        .map(|_| {
            let (store, next) = (store.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= total {
                        return Ok(());
                    }
                    if started.elapsed() > LOAD_TIMEOUT {
                        return Err("loading timed out".into());
                    }
                    let (key, uid, value) = object(k);
                    store.create(key, uid, value).await?;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await??;
    }
    Ok(started.elapsed())
}

/// A Postgres store in the state of a shard that has been in use for a minute: it holds
/// `SEED_OBJECTS` objects (in cluster "seed") and its tables have statistics, as after
/// autovacuum's first pass. On a brand-new shard the store's cached prepared statements keep
/// plans made for empty tables (a sequential scan per commit) until that first ANALYZE.
async fn steady_store(url: &str) -> Result<Store> {
    let store = Store::open_postgres(url, store_options()).await?;
    create_all(&store, SEED_OBJECTS, |k| {
        let key = shard_key("seed", k);
        let uid = uid(0, k);
        let value = configmap(&key.namespace, &key.name, &uid, 0, PAYLOAD_BYTES);
        (key, uid, value)
    })
    .await?;
    pg_connect(url).await?.batch_execute("ANALYZE").await?;
    Ok(store)
}

// ---------------------------------------------------------------------------------------------
// Timed throughput loops

const WARMING: u8 = 0;
const MEASURING: u8 = 1;
const STOPPED: u8 = 2;

/// Coordinates the workers of one throughput run: a warm-up, a measured window in which
/// completed operations are counted, then a stop.
struct Meter {
    ready: AtomicUsize,
    phase: AtomicU8,
    counted: AtomicU64,
}

impl Meter {
    fn new() -> Meter {
        Meter {
            ready: AtomicUsize::new(0),
            phase: AtomicU8::new(WARMING),
            counted: AtomicU64::new(0),
        }
    }

    fn proceed(&self, done: u64) -> bool {
        done < MAX_OPS_PER_WORKER && self.phase.load(Ordering::Acquire) != STOPPED
    }

    fn completed(&self) {
        if self.phase.load(Ordering::Acquire) == MEASURING {
            self.counted.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A worker's loop once it is set up: `op(i)` for i = 0, 1, … until the run stops.
    async fn drive<F, Fut>(&self, mut op: F) -> Result<()>
    where
        F: FnMut(u64) -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        self.ready.fetch_add(1, Ordering::AcqRel);
        let mut done = 0;
        while self.proceed(done) {
            op(done).await?;
            self.completed();
            done += 1;
        }
        Ok(())
    }

    /// [`Meter::drive`] for a worker on its own thread.
    fn drive_blocking(&self, mut op: impl FnMut(u64) -> Result<()>) -> Result<()> {
        self.ready.fetch_add(1, Ordering::AcqRel);
        let mut done = 0;
        while self.proceed(done) {
            op(done)?;
            self.completed();
            done += 1;
        }
        Ok(())
    }
}

/// What a measured window did: operations per second, and CPU per operation in this process
/// and in the database server's processes (none for SQLite, which runs in this process).
/// Unlike throughput, CPU time barely depends on what else the machine is doing.
#[derive(Clone, Copy, Debug, Default)]
struct Measured {
    per_s: f64,
    client_cpu_us: f64,
    server_cpu_us: f64,
}

/// Runs `workers` tasks `worker(index, meter)` (each sets itself up, then calls
/// [`Meter::drive`]) through a warm-up and a measured window. `server` is the database
/// server's postmaster, whose CPU is counted with this process's.
async fn throughput<F, Fut>(
    workers: usize,
    window: Duration,
    server: Option<u32>,
    worker: F,
) -> Result<Measured>
where
    F: Fn(usize, Arc<Meter>) -> Fut,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let meter = Arc::new(Meter::new());
    let tasks: Vec<JoinHandle<Result<()>>> = (0..workers)
        .map(|w| tokio::spawn(worker(w, meter.clone())))
        .collect();
    let setup_deadline = Instant::now() + SETUP_TIMEOUT;
    while meter.ready.load(Ordering::Acquire) < workers
        && Instant::now() < setup_deadline
        && !tasks.iter().any(|t| t.is_finished())
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let all_ready = meter.ready.load(Ordering::Acquire) == workers;
    let mut measured = Measured::default();
    if all_ready {
        tokio::time::sleep(WARMUP).await;
        let server_cpu = || server.map(CpuTicks::of_tree).unwrap_or_default();
        let (client_before, server_before) = (CpuTicks::of_self(), server_cpu());
        meter.phase.store(MEASURING, Ordering::Release);
        let start = Instant::now();
        tokio::time::sleep(window).await;
        meter.phase.store(STOPPED, Ordering::Release);
        let elapsed = start.elapsed().as_secs_f64();
        let (client, server) = (
            CpuTicks::of_self().since(&client_before),
            server_cpu().since(&server_before),
        );
        let ops = meter.counted.load(Ordering::Acquire).max(1) as f64;
        measured = Measured {
            per_s: ops / elapsed,
            client_cpu_us: client * 1e6 / ops,
            server_cpu_us: server * 1e6 / ops,
        };
    }
    meter.phase.store(STOPPED, Ordering::Release);
    tokio::time::timeout(STOP_TIMEOUT, async {
        for task in tasks {
            task.await??;
        }
        Ok::<_, BoxError>(())
    })
    .await
    .map_err(|_| "workers did not stop")??;
    if !all_ready {
        return Err("workers did not get ready in time".into());
    }
    Ok(measured)
}

/// Creates objects in one store until the run stops, each with a unique name.
async fn store_writer(store: Store, worker: usize, meter: Arc<Meter>) -> Result<()> {
    let namespace = format!("ns-{}", worker as u64 % NAMESPACES);
    let value = configmap(&namespace, "cm", &uid(0, 0), 0, PAYLOAD_BYTES);
    let (store, namespace, value) = (&store, &namespace, &value);
    meter
        .drive(move |i| async move {
            let key = ObjectKey::new("c1", RESOURCE, namespace, format!("cm-{worker}-{i}"));
            store
                .create(key, uid(worker as u64, i), value.clone())
                .await?;
            Ok(())
        })
        .await
}

fn baseline_key(worker: usize, i: u64) -> String {
    format!(
        "c1/{RESOURCE}/ns-{}/cm-{worker}-{i}",
        worker as u64 % NAMESPACES
    )
}

fn baseline_value() -> Vec<u8> {
    configmap("ns-0", "cm", &uid(0, 0), 0, PAYLOAD_BYTES).to_vec()
}

fn report_writes(backend: &str, writers: usize, store: Measured, baseline: Measured) {
    report(
        &format!("{backend}_baseline_inserts_per_s_{writers}"),
        baseline.per_s,
        "ops/s",
    );
    report(
        &format!("{backend}_writes_per_s_{writers}"),
        store.per_s,
        "ops/s",
    );
    report(
        &format!("{backend}_write_ratio_{writers}"),
        store.per_s / baseline.per_s,
        "ratio",
    );
    report_cpu(&format!("{backend}_baseline"), writers, baseline);
    report_cpu(&format!("{backend}_store"), writers, store);
}

/// CPU per write, this process's and the database server's (when it has its own processes).
fn report_cpu(name: &str, writers: usize, run: Measured) {
    report(
        &format!("{name}_client_cpu_us_per_write_{writers}"),
        run.client_cpu_us,
        "us",
    );
    if run.server_cpu_us > 0.0 {
        report(
            &format!("{name}_server_cpu_us_per_write_{writers}"),
            run.server_cpu_us,
            "us",
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 1-2. Postgres writes

/// The store's creates per second at one writer count, kept for the etcd comparison.
struct StoreRate {
    writers: usize,
    /// On a fresh database (`<backend>_writes_per_s_<writers>`).
    fresh: f64,
    /// On a steady-state shard (`pg_steady_writes_per_s_<writers>`), for Postgres.
    steady: Option<f64>,
}

async fn bench_pg_writes(pg: &PostgresCluster, config: &Config) -> Result<Vec<StoreRate>> {
    println!(
        "# pg_writes: {PAYLOAD_BYTES}-byte JSON values; baseline = single-row autocommit INSERT \
         into a bigserial table, one connection per writer; fresh database per run; \
         pg_steady_* = the store on a shard already holding {SEED_OBJECTS} objects and analyzed"
    );
    let server = pg.postmaster_pid();
    let mut rates = Vec::new();
    for writers in WRITERS {
        let baseline = {
            let db = pg.create_database("bench_baseline").await?;
            pg_connect(db.url())
                .await?
                .batch_execute(
                    "CREATE TABLE baseline (id bigserial PRIMARY KEY, k text NOT NULL, v bytea NOT NULL)",
                )
                .await?;
            let url = db.url().to_string();
            throughput(writers, config.measure, server, |w, meter| {
                pg_baseline_writer(url.clone(), w, meter)
            })
            .await?
        };
        let store = {
            let db = pg.create_database("bench_writes").await?;
            let store = Store::open_postgres(db.url(), store_options()).await?;
            let measured = throughput(writers, config.measure, server, |w, meter| {
                store_writer(store.clone(), w, meter)
            })
            .await?;
            let stats = store.commit_stats();
            report(
                &format!("pg_store_writes_per_batch_{writers}"),
                stats.writes as f64 / stats.batches.max(1) as f64,
                "writes",
            );
            measured
        };
        report_writes("pg", writers, store, baseline);
        let steady = {
            let db = pg.create_database("bench_steady").await?;
            let store = steady_store(db.url()).await?;
            throughput(writers, config.measure, server, |w, meter| {
                store_writer(store.clone(), w, meter)
            })
            .await?
        };
        report(
            &format!("pg_steady_writes_per_s_{writers}"),
            steady.per_s,
            "ops/s",
        );
        report(
            &format!("pg_steady_write_ratio_{writers}"),
            steady.per_s / baseline.per_s,
            "ratio",
        );
        rates.push(StoreRate {
            writers,
            fresh: store.per_s,
            steady: Some(steady.per_s),
        });
    }
    Ok(rates)
}

async fn pg_baseline_writer(url: String, worker: usize, meter: Arc<Meter>) -> Result<()> {
    let client = pg_connect(&url).await?;
    let insert = client
        .prepare("INSERT INTO baseline (k, v) VALUES ($1, $2)")
        .await?;
    let value = baseline_value();
    let (client, insert, value) = (&client, &insert, &value);
    meter
        .drive(move |i| async move {
            client
                .execute(insert, &[&baseline_key(worker, i), value])
                .await?;
            Ok(())
        })
        .await
}

// ---------------------------------------------------------------------------------------------
// 3. SQLite writes

async fn bench_sqlite_writes(config: &Config) -> Result<Vec<StoreRate>> {
    let dir = tempfile::Builder::new()
        .prefix("trellis-bench-")
        .tempdir()?;
    println!(
        "# sqlite_writes: files in {}; WAL, synchronous=FULL; baseline = single-row autocommit \
         INSERT, one connection and thread per writer, busy_timeout 30 s",
        dir.path().display()
    );
    let mut rates = Vec::new();
    for writers in WRITERS {
        let baseline = {
            let path = dir.path().join(format!("baseline-{writers}.db"));
            sqlite_connect(&path)?.execute_batch(
                "CREATE TABLE baseline (id INTEGER PRIMARY KEY, k TEXT NOT NULL, v BLOB NOT NULL)",
            )?;
            throughput(writers, config.measure, None, |w, meter| {
                let path = path.clone();
                async move {
                    tokio::task::spawn_blocking(move || sqlite_baseline_writer(&path, w, &meter))
                        .await?
                }
            })
            .await?
        };
        let store = {
            let path = dir.path().join(format!("store-{writers}.db"));
            let store = Store::open_sqlite(&path, store_options()).await?;
            throughput(writers, config.measure, None, |w, meter| {
                store_writer(store.clone(), w, meter)
            })
            .await?
        };
        report_writes("sqlite", writers, store, baseline);
        rates.push(StoreRate {
            writers,
            fresh: store.per_s,
            steady: None,
        });
    }
    Ok(rates)
}

fn sqlite_baseline_writer(path: &Path, worker: usize, meter: &Meter) -> Result<()> {
    let conn = sqlite_connect(path)?;
    let mut insert = conn.prepare("INSERT INTO baseline (k, v) VALUES (?1, ?2)")?;
    let value = baseline_value();
    meter.drive_blocking(|i| {
        insert.execute(rusqlite::params![baseline_key(worker, i), value])?;
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Backup and restore of the embedded store

const BACKUP_REPETITIONS: usize = 3;

async fn bench_backup() -> Result<()> {
    let objects: u64 = env_or("TRELLIS_BENCH_BACKUP_OBJECTS", 100_000)?;
    let dir = tempfile::Builder::new()
        .prefix("trellis-bench-")
        .tempdir()?;
    let path = dir.path().join("store.db");
    let store = Store::open_sqlite(&path, store_options()).await?;
    let loaders: Vec<JoinHandle<Result<()>>> = (0..16u64)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in (w..objects).step_by(16) {
                    let name = format!("cm-{i:08}");
                    let uid = uid(w, i);
                    let key = ObjectKey::new("backup", RESOURCE, "ns-0", &name);
                    let value = configmap("ns-0", &name, &uid, 0, PAYLOAD_BYTES);
                    store.create(key, uid, value).await?;
                }
                Ok(())
            })
        })
        .collect();
    for loader in loaders {
        loader.await??;
    }
    drop(store);
    // The file copy baseline needs every page in the main file: fold the WAL in.
    sqlite_connect(&path)?.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let megabytes = std::fs::metadata(&path)?.len() as f64 / 1e6;
    println!(
        "# backup: a store of {objects} objects of {PAYLOAD_BYTES} bytes ({megabytes:.0} MB); \
         baseline = std::fs::copy of the closed store's file; median of {BACKUP_REPETITIONS}"
    );

    let timed = |f: &dyn Fn(usize) -> Result<()>| -> Result<f64> {
        let mut samples = Vec::new();
        for i in 0..BACKUP_REPETITIONS {
            let start = Instant::now();
            f(i)?;
            samples.push(start.elapsed().as_secs_f64() * 1e3);
        }
        Ok(median(&mut samples))
    };
    let copy_ms = timed(&|i| {
        std::fs::copy(&path, dir.path().join(format!("copy-{i}.db")))?;
        Ok(())
    })?;
    let runtime = tokio::runtime::Handle::current();
    let backup_ms = tokio::task::block_in_place(|| {
        timed(&|i| {
            let to = dir.path().join(format!("backup-{i}.db"));
            runtime.block_on(trellis_storage::restore::backup_sqlite(&path, &to))?;
            Ok(())
        })
    })?;
    let restore_ms = tokio::task::block_in_place(|| {
        timed(&|i| {
            let target = dir.path().join(format!("restored-{i}/store.db"));
            let from = dir.path().join("backup-0.db");
            runtime.block_on(trellis_storage::restore::restore_sqlite(&from, &target))?;
            Ok(())
        })
    })?;
    report("backup_sqlite_file_copy_baseline", copy_ms, "ms");
    report("backup_sqlite", backup_ms, "ms");
    report("backup_sqlite_vs_file_copy", backup_ms / copy_ms, "x");
    report(
        "backup_sqlite_throughput",
        megabytes / (backup_ms / 1e3),
        "MB/s",
    );
    report("restore_sqlite", restore_ms, "ms");
    report("restore_sqlite_vs_file_copy", restore_ms / copy_ms, "x");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 4. Watch latency

/// The store's watch figures, kept for the etcd comparison.
struct WatchSummary {
    p99_ms: f64,
}

async fn bench_watch(pg: &PostgresCluster, config: &Config) -> Result<WatchSummary> {
    println!(
        "# watch: {WATCH_WRITERS} writers paced at {WATCH_WRITE_RATE} writes/s in total for {} s \
         per run, {PAYLOAD_BYTES}-byte values, on a steady-state shard ({SEED_OBJECTS} objects, \
         analyzed); first with no watchers (baseline), then with {WATCHERS} watchers of the \
         written cluster",
        config.watch.as_secs_f64()
    );
    let db = pg.create_database("bench_watch").await?;
    let store = steady_store(db.url()).await?;
    // Send and receive timestamps are both taken on this clock.
    let clock = Instant::now();

    let baseline = paced_writes(&store, clock, "baseline", config.watch).await?;
    report_paced("watch_baseline_write", &baseline);

    let deadline = tokio::time::Instant::now() + config.watch + WATCH_DRAIN;
    let max_events = paced_ticks(config.watch) * u64::from(WATCH_WRITERS) + 1;
    let mut watchers = Vec::with_capacity(WATCHERS);
    for _ in 0..WATCHERS {
        // Subscribed here, before any write, so each must see every write of the run.
        let stream = store
            .watch(ListScope::cluster("c1", RESOURCE), None)
            .await?;
        watchers.push(tokio::spawn(watcher(stream, clock, deadline, max_events)));
    }
    let run = paced_writes(&store, clock, "watched", config.watch).await?;
    // The end-of-run marker: a watcher stops when it sees it.
    store
        .create(
            ObjectKey::new("c1", RESOURCE, "ns-0", "end-of-run"),
            "end-of-run",
            configmap("ns-0", "end-of-run", "end-of-run", 0, PAYLOAD_BYTES),
        )
        .await?;

    let (deliveries, incomplete) = gather(watchers, run.written, "watcher").await?;
    report_percentiles("watch", &deliveries);
    report_paced("watch_write", &run);
    println!(
        "# watch: {} deliveries ({} writes x {WATCHERS} watchers), max {:.2} ms",
        deliveries.len(),
        run.written,
        nanos_to_ms(deliveries.last().copied().unwrap_or(0))
    );
    if incomplete > 0 {
        println!(
            "warning: {incomplete} of {WATCHERS} watchers did not receive all {} events in order",
            run.written
        );
    }
    if run.rate < f64::from(WATCH_WRITE_RATE) * 0.98 {
        println!(
            "warning: writers fell behind: {:.0} writes/s instead of {WATCH_WRITE_RATE}",
            run.rate
        );
    }
    Ok(WatchSummary {
        p99_ms: nanos_to_ms(percentile(&deliveries, 0.99)),
    })
}

/// Interval between two writes of one paced writer.
fn paced_period() -> Duration {
    Duration::from_secs(1) * WATCH_WRITERS / WATCH_WRITE_RATE
}

/// Most writes one paced writer makes in `window`.
fn paced_ticks(window: Duration) -> u64 {
    (window.as_secs_f64() / paced_period().as_secs_f64()).ceil() as u64 + 1
}

/// `<name>_p50_ms` and `<name>_p99_ms` of sorted latencies in nanoseconds.
fn report_percentiles(name: &str, sorted: &[u64]) {
    for (p, label) in [(0.50, "p50"), (0.99, "p99")] {
        report(
            &format!("{name}_{label}_ms"),
            nanos_to_ms(percentile(sorted, p)),
            "ms",
        );
    }
}

/// A paced run's write latencies and the rate it kept: `<name>_{p50,p99}_ms`, `<name>_rate`.
fn report_paced(name: &str, run: &PacedRun) {
    report_percentiles(name, &run.latencies);
    report(&format!("{name}_rate"), run.rate, "ops/s");
}

struct PacedRun {
    written: u64,
    /// Writes started per second of the window.
    rate: f64,
    /// Latency of each create, in nanoseconds, sorted.
    latencies: Vec<u64>,
}

/// One writer of a paced run: the store, or a connection to a baseline.
trait PacedWriter: Send + Sync + 'static {
    fn paced_create(
        &self,
        namespace: &str,
        name: String,
        uid: String,
        value: Bytes,
    ) -> impl Future<Output = Result<()>> + Send;
}

impl PacedWriter for Store {
    async fn paced_create(
        &self,
        namespace: &str,
        name: String,
        uid: String,
        value: Bytes,
    ) -> Result<()> {
        let key = ObjectKey::new("c1", RESOURCE, namespace, name);
        self.create(key, uid, value).await?;
        Ok(())
    }
}

/// [`paced_run`] on the store.
async fn paced_writes(
    store: &Store,
    clock: Instant,
    run: &str,
    window: Duration,
) -> Result<PacedRun> {
    let writers = (0..WATCH_WRITERS).map(|_| store.clone()).collect();
    paced_run(writers, clock, run, window).await
}

/// `WATCH_WRITERS` writers, each creating one object per tick of its own interval (staggered,
/// so the load is steady rather than bursty), for `window`. A writer that falls behind catches
/// up in a burst but never starts a write after the window.
async fn paced_run<W: PacedWriter>(
    writers: Vec<W>,
    clock: Instant,
    run: &str,
    window: Duration,
) -> Result<PacedRun> {
    let period = paced_period();
    let ticks = paced_ticks(window);
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let end = start + window;
    if writers.len() != WATCH_WRITERS as usize {
        return Err(format!("a paced run needs {WATCH_WRITERS} writers").into());
    }
    let writers: Vec<JoinHandle<Result<Vec<u64>>>> = (0..WATCH_WRITERS)
        .zip(writers)
        .map(|(w, writer)| {
            let namespace = format!("ns-{}", u64::from(w) % NAMESPACES);
            let prefix = format!("{run}-{w}");
            let mut tick = tokio::time::interval_at(start + period * w / WATCH_WRITERS, period);
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(ticks as usize);
                for i in 0..ticks {
                    tick.tick().await;
                    if tokio::time::Instant::now() >= end {
                        break;
                    }
                    let name = format!("{prefix}-{i}");
                    let uid = uid(u64::from(w), i);
                    let sent = clock.elapsed();
                    let value = configmap(
                        &namespace,
                        &name,
                        &uid,
                        sent.as_nanos() as u64,
                        PAYLOAD_BYTES,
                    );
                    writer.paced_create(&namespace, name, uid, value).await?;
                    latencies.push((clock.elapsed() - sent).as_nanos() as u64);
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
    let written = latencies.len() as u64;
    Ok(PacedRun {
        written,
        rate: written as f64 / window.as_secs_f64(),
        latencies,
    })
}

struct Deliveries {
    /// Receive time minus send time of each event, in nanoseconds.
    latencies: Vec<u64>,
    events: u64,
    in_order: bool,
    /// Whether the end-of-run marker arrived before the deadline.
    ended: bool,
}

async fn watcher(
    mut stream: WatchStream,
    clock: Instant,
    deadline: tokio::time::Instant,
    max_events: u64,
) -> Result<Deliveries> {
    let mut got = Deliveries {
        latencies: Vec::new(),
        events: 0,
        in_order: true,
        ended: false,
    };
    let mut last_revision = 0;
    let give_up = tokio::time::sleep_until(deadline);
    tokio::pin!(give_up);
    while got.events <= max_events {
        let event = tokio::select! {
            event = stream.next() => event,
            () = &mut give_up => break,
        };
        let Some(event) = event else { break };
        let event = event?;
        let received = clock.elapsed().as_nanos() as u64;
        if event.object.key.name == "end-of-run" {
            got.ended = true;
            break;
        }
        got.latencies
            .push(received.saturating_sub(sent_nanos(&event.object.value)?));
        got.in_order &= event.revision() > last_revision;
        last_revision = event.revision();
        got.events += 1;
    }
    Ok(got)
}

// ---------------------------------------------------------------------------------------------
// etcd as a second baseline

/// Where the etcd benchmarks write, like kube-apiserver's `/registry/<resource>/…` keys.
const ETCD_PREFIX: &str = "/trellis-bench";

/// The store's write figures of this run, for the etcd ratios (`None`: section not run).
struct StoreWrites<'a> {
    pg: Option<&'a [StoreRate]>,
    sqlite: Option<&'a [StoreRate]>,
}

/// Starts a private etcd, or says why there is none.
async fn start_etcd() -> Result<Option<etcd::Server>> {
    let Some(binary) = etcd::binary() else {
        println!("# etcd: skipped (etcd not installed; apt-get install etcd-server)");
        return Ok(None);
    };
    let server = etcd::Server::start(&binary).await?;
    println!(
        "# etcd {} ({}) on {}: one member, durability defaults (WAL fsync per commit), data in {}",
        server.version(),
        binary.display(),
        server.client_url(),
        server.data_dir().display()
    );
    Ok(Some(server))
}

/// The etcd key of object `name` of namespace `namespace` in the keyspace of `run`.
fn etcd_key(run: &str, namespace: &str, name: &str) -> String {
    format!("{ETCD_PREFIX}/{run}/c1/{RESOURCE}/{namespace}/{name}")
}

async fn bench_etcd_puts<'a>(
    etcd: &etcd::Server,
    config: &Config,
    stores: StoreWrites<'a>,
) -> Result<()> {
    println!(
        "# etcd_puts: KV/Put of the same {PAYLOAD_BYTES}-byte values under unique keys, one \
         HTTP/2 connection (gRPC, no TLS) per writer, fresh keyspace per run; \
         store_vs_etcd = pg_writes_per_s / etcd_puts_per_s, sqlite_vs_etcd = \
         sqlite_writes_per_s / etcd_puts_per_s, pg_steady_vs_etcd = pg_steady_writes_per_s / \
         etcd_puts_per_s, all from this run"
    );
    for writers in WRITERS {
        let url = etcd.client_url().to_string();
        let measured = throughput(writers, config.measure, Some(etcd.pid()), |w, meter| {
            etcd_put_writer(url.clone(), writers, w, meter)
        })
        .await?;
        let rate = measured.per_s;
        report(&format!("etcd_puts_per_s_{writers}"), rate, "ops/s");
        report_cpu("etcd", writers, measured);
        let at = |rates: Option<&'a [StoreRate]>| -> Option<&'a StoreRate> {
            rates?.iter().find(|r| r.writers == writers)
        };
        if let Some(pg) = at(stores.pg) {
            report(
                &format!("store_vs_etcd_ratio_{writers}"),
                pg.fresh / rate,
                "ratio",
            );
            if let Some(steady) = pg.steady {
                report(
                    &format!("pg_steady_vs_etcd_ratio_{writers}"),
                    steady / rate,
                    "ratio",
                );
            }
        }
        if let Some(sqlite) = at(stores.sqlite) {
            report(
                &format!("sqlite_vs_etcd_ratio_{writers}"),
                sqlite.fresh / rate,
                "ratio",
            );
        }
    }
    if stores.pg.is_none() && stores.sqlite.is_none() {
        println!(
            "# etcd_puts: no store figures in this run; add pg_writes sqlite_writes for ratios"
        );
    }
    Ok(())
}

/// Puts under unique keys on its own connection until the run stops; the value is the one
/// [`store_writer`] creates.
async fn etcd_put_writer(url: String, run: usize, worker: usize, meter: Arc<Meter>) -> Result<()> {
    let connection = etcd::Connection::open(&url).await?;
    let namespace = format!("ns-{}", worker as u64 % NAMESPACES);
    let value = configmap(&namespace, "cm", &uid(0, 0), 0, PAYLOAD_BYTES);
    let run = format!("puts-{run}");
    let (connection, namespace, value, run) = (&connection, &namespace, &value, &run);
    meter
        .drive(move |i| async move {
            let key = etcd_key(run, namespace, &format!("cm-{worker}-{i}"));
            connection.put(key, value.clone()).await?;
            Ok(())
        })
        .await
}

/// The keyspace of the etcd watch benchmark; every watcher watches all of it.
const ETCD_WATCH_RUN: &str = "watch";

impl PacedWriter for etcd::Connection {
    async fn paced_create(
        &self,
        namespace: &str,
        name: String,
        _uid: String,
        value: Bytes,
    ) -> Result<()> {
        self.put(etcd_key(ETCD_WATCH_RUN, namespace, &name), value)
            .await?;
        Ok(())
    }
}

/// One connection per writer of a paced run.
async fn etcd_paced_writers(url: &str) -> Result<Vec<etcd::Connection>> {
    let mut writers = Vec::new();
    for _ in 0..WATCH_WRITERS {
        writers.push(etcd::Connection::open(url).await?);
    }
    Ok(writers)
}

/// [`bench_watch`] against etcd: the same paced writes, the same watchers, the same figures.
async fn bench_etcd_watch(
    etcd: &etcd::Server,
    config: &Config,
    store: Option<&WatchSummary>,
) -> Result<()> {
    println!(
        "# etcd_watch: {WATCH_WRITERS} writers (one connection each) paced at {WATCH_WRITE_RATE} \
         puts/s in total for {} s per run, {PAYLOAD_BYTES}-byte values; first with no watchers \
         (baseline), then with {WATCHERS} watchers of the written prefix, each its own \
         Watch stream, sharing {} connection(s)",
        config.watch.as_secs_f64(),
        config.etcd_watch_connections
    );
    let url = etcd.client_url();
    // Send and receive timestamps are both taken on this clock.
    let clock = Instant::now();

    let baseline = paced_run(
        etcd_paced_writers(url).await?,
        clock,
        "baseline",
        config.watch,
    )
    .await?;
    report_paced("etcd_watch_baseline_write", &baseline);

    let deadline = tokio::time::Instant::now() + config.watch + WATCH_DRAIN;
    let max_events = paced_ticks(config.watch) * u64::from(WATCH_WRITERS) + 1;
    let prefix = format!("{ETCD_PREFIX}/{ETCD_WATCH_RUN}/");
    let mut connections = Vec::with_capacity(config.etcd_watch_connections);
    for _ in 0..config.etcd_watch_connections {
        connections.push(etcd::Connection::open(url).await?);
    }
    let mut watchers = Vec::with_capacity(WATCHERS);
    for w in 0..WATCHERS {
        // Created here, before any write, so each must see every write of the run.
        let watch = connections[w % connections.len()]
            .watch_prefix(&prefix)
            .await?;
        watchers.push(tokio::spawn(etcd_watcher(
            watch, clock, deadline, max_events,
        )));
    }
    let writers = etcd_paced_writers(url).await?;
    let end = writers[0].clone();
    let cpu_before = (CpuTicks::of_tree(etcd.pid()), CpuTicks::of_self());
    let run = paced_run(writers, clock, "watched", config.watch).await?;
    let cpu = (
        CpuTicks::of_tree(etcd.pid()).since(&cpu_before.0),
        CpuTicks::of_self().since(&cpu_before.1),
    );
    // The end-of-run marker: a watcher stops when it sees it.
    end.put(
        etcd_key(ETCD_WATCH_RUN, "ns-0", "end-of-run"),
        configmap("ns-0", "end-of-run", "end-of-run", 0, PAYLOAD_BYTES),
    )
    .await?;

    let (deliveries, incomplete) = gather(watchers, run.written, "etcd watcher").await?;
    let p99_ms = nanos_to_ms(percentile(&deliveries, 0.99));
    report_percentiles("etcd_watch", &deliveries);
    report_paced("etcd_watch_write", &run);
    println!(
        "# etcd_watch: {} deliveries ({} writes x {WATCHERS} watchers), max {:.2} ms",
        deliveries.len(),
        run.written,
        nanos_to_ms(deliveries.last().copied().unwrap_or(0))
    );
    println!(
        "# etcd_watch: CPU during the watched {} s: etcd {:.1} s, this process (writers and \
         watchers) {:.1} s, of {} logical CPUs; load average now {}",
        config.watch.as_secs_f64(),
        cpu.0,
        cpu.1,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().map(str::to_string))
            .unwrap_or_default(),
    );
    match store {
        Some(store) => {
            println!(
                "# etcd_watch: the store's watch_p99_ms in this run: {:.2} ms, etcd's {p99_ms:.2} ms",
                store.p99_ms
            );
            report(
                "store_vs_etcd_watch_p99_ratio",
                store.p99_ms / p99_ms,
                "ratio",
            );
        }
        None => {
            println!("# etcd_watch: no store watch figures in this run; add watch for the ratio")
        }
    }
    if incomplete > 0 {
        println!(
            "warning: {incomplete} of {WATCHERS} etcd watchers did not receive all {} events in order",
            run.written
        );
    }
    if run.rate < f64::from(WATCH_WRITE_RATE) * 0.98 {
        println!(
            "warning: etcd writers fell behind: {:.0} puts/s instead of {WATCH_WRITE_RATE}",
            run.rate
        );
    }
    Ok(())
}

/// [`watcher`] for an etcd watch: events come in batches, one receive time for a batch.
/// Every watcher's delivery latencies, sorted, and how many watchers missed any of `written`
/// events, got them out of order or never saw the end (each described on a `#` line).
async fn gather(
    watchers: Vec<JoinHandle<Result<Deliveries>>>,
    written: u64,
    what: &str,
) -> Result<(Vec<u64>, usize)> {
    let mut deliveries = Vec::with_capacity(watchers.len() * written as usize);
    let mut incomplete = 0;
    for task in watchers {
        let got = task.await??;
        if got.events != written || !got.in_order || !got.ended {
            incomplete += 1;
            println!(
                "# {what} received {} of {written} events (in order: {}, saw end: {})",
                got.events, got.in_order, got.ended
            );
        }
        deliveries.extend(got.latencies);
    }
    deliveries.sort_unstable();
    Ok((deliveries, incomplete))
}

async fn etcd_watcher(
    mut watch: etcd::Watch,
    clock: Instant,
    deadline: tokio::time::Instant,
    max_events: u64,
) -> Result<Deliveries> {
    let mut got = Deliveries {
        latencies: Vec::new(),
        events: 0,
        in_order: true,
        ended: false,
    };
    let mut last_revision = 0;
    let give_up = tokio::time::sleep_until(deadline);
    tokio::pin!(give_up);
    'receiving: while got.events <= max_events {
        let batch = tokio::select! {
            batch = watch.next() => batch?,
            () = &mut give_up => break,
        };
        let Some(events) = batch else { break };
        let received = clock.elapsed().as_nanos() as u64;
        for event in events {
            let kv = event.kv.ok_or("a watch event without a key-value")?;
            if kv.key.ends_with(b"/end-of-run") {
                got.ended = true;
                break 'receiving;
            }
            got.latencies
                .push(received.saturating_sub(sent_nanos(&kv.value)?));
            got.in_order &= kv.mod_revision > last_revision;
            last_revision = kv.mod_revision;
            got.events += 1;
        }
    }
    Ok(got)
}

// ---------------------------------------------------------------------------------------------
// 5. Lists in a large shard

/// The objects of a list benchmark shard: `filler_clusters` clusters of `FILLER_OBJECTS` small
/// objects, and the listed cluster of `TARGET_OBJECTS` full-size ones.
#[derive(Clone, Copy)]
struct Layout {
    filler_clusters: u64,
}

impl Layout {
    const TARGET_PER_ROUND: u64 = TARGET_OBJECTS / FILLER_OBJECTS;

    fn total(&self) -> u64 {
        self.filler_clusters * FILLER_OBJECTS + TARGET_OBJECTS
    }

    fn clusters(&self) -> u64 {
        self.filler_clusters + 1
    }

    /// The `k`-th object to load. Loading goes in rounds that each add one object to every
    /// cluster, so one cluster's rows end up spread over the whole table, as after months of
    /// mixed traffic, rather than packed together.
    fn object(&self, k: u64) -> (ObjectKey, String, Bytes) {
        let per_round = self.filler_clusters + Self::TARGET_PER_ROUND;
        let (round, slot) = (k / per_round, k % per_round);
        let (cluster, index, size) = if slot < self.filler_clusters {
            (format!("cluster-{slot:04}"), round, FILLER_PAYLOAD_BYTES)
        } else {
            let index = round * Self::TARGET_PER_ROUND + (slot - self.filler_clusters);
            (TARGET_CLUSTER.to_string(), index, PAYLOAD_BYTES)
        };
        let key = shard_key(&cluster, index);
        let uid = uid(0, k);
        let value = configmap(&key.namespace, &key.name, &uid, 0, size);
        (key, uid, value)
    }
}

/// The key of the `index`-th object of a cluster of a list benchmark shard.
fn shard_key(cluster: &str, index: u64) -> ObjectKey {
    ObjectKey::new(
        cluster,
        RESOURCE,
        format!("ns-{}", index % NAMESPACES),
        format!("cm-{index:05}"),
    )
}

struct Shard {
    // Dropped in field order: the store's connections go first, then the database.
    store: Store,
    db: trellis_testkit::TestDatabase,
}

/// A fresh shard loaded through the store, compacted and vacuumed.
async fn load_shard(pg: &PostgresCluster, name: &str, layout: Layout) -> Result<Shard> {
    let db = pg.create_database(name).await?;
    let store = Store::open_postgres(db.url(), store_options()).await?;
    let total = layout.total();
    let loaded = create_all(&store, total, move |k| layout.object(k)).await?;
    let rate = total as f64 / loaded.as_secs_f64();
    let compacted_at = Instant::now();
    store.compact_to(store.current_revision().await?).await?;
    let compacted = compacted_at.elapsed();
    let vacuumed_at = Instant::now();
    pg_connect(db.url())
        .await?
        .batch_execute("VACUUM ANALYZE")
        .await?;
    let vacuumed = vacuumed_at.elapsed();
    let size: String = pg_connect(db.url())
        .await?
        .query_one(
            "SELECT pg_size_pretty(pg_database_size(current_database()))",
            &[],
        )
        .await?
        .get(0);
    println!(
        "# {name}: loaded {total} objects in {} clusters in {:.1} s ({rate:.0} creates/s, \
         {LOAD_WRITERS} writers); compact {:.1} s, VACUUM ANALYZE {:.1} s; database {size}",
        layout.clusters(),
        loaded.as_secs_f64(),
        compacted.as_secs_f64(),
        vacuumed.as_secs_f64(),
    );
    report(&format!("{name}_load_writes_per_s"), rate, "ops/s");
    Ok(Shard { store, db })
}

/// Milliseconds one full list takes, checking that it returned the whole target cluster.
async fn timed_list(list: impl Future<Output = Result<usize>>) -> Result<f64> {
    let started = Instant::now();
    let items = list.await?;
    let elapsed = started.elapsed();
    if items as u64 != TARGET_OBJECTS {
        return Err(format!("listed {items} objects, expected {TARGET_OBJECTS}").into());
    }
    Ok(elapsed.as_secs_f64() * 1e3)
}

/// Lists every object of the target cluster in pages of `PAGE_SIZE`, as kubectl does.
async fn list_target(store: &Store) -> Result<usize> {
    let mut items = 0;
    let mut continue_token = None;
    let max_pages = TARGET_OBJECTS as usize / PAGE_SIZE + 2;
    for _ in 0..max_pages {
        let page = store
            .list(ListRequest {
                scope: ListScope::cluster(TARGET_CLUSTER, RESOURCE),
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

/// Nanoseconds one get of the `index`-th object of the target cluster takes.
async fn timed_get(store: &Store, index: u64) -> Result<u64> {
    let key = shard_key(TARGET_CLUSTER, index);
    let started = Instant::now();
    store.get(&key).await?;
    Ok(started.elapsed().as_nanos() as u64)
}

async fn bench_list(pg: &PostgresCluster, config: &Config) -> Result<()> {
    let big = Layout {
        filler_clusters: config.objects / FILLER_OBJECTS - 1,
    };
    println!(
        "# list: large shard = {} filler clusters x {FILLER_OBJECTS} objects of \
         {FILLER_PAYLOAD_BYTES} bytes + cluster {TARGET_CLUSTER:?} with {TARGET_OBJECTS} objects \
         of {PAYLOAD_BYTES} bytes; small shard = that cluster alone; pages of {PAGE_SIZE}",
        big.filler_clusters
    );

    let small = load_shard(pg, "list_small", Layout { filler_clusters: 0 }).await?;
    let large = load_shard(pg, "list_large", big).await?;
    let client = pg_connect(large.db.url()).await?;
    // The baseline reads the same rows from a plain table in the same database: one row per
    // object with its value, keyed like the store's objects, whatever the store's own layout.
    client
        .batch_execute(&format!(
            "CREATE TABLE baseline_objects AS \
               SELECT o.resource, o.cluster, o.namespace, o.name, e.uid, e.create_rev, o.mod_rev, e.value \
               FROM trellis_objects o JOIN trellis_events e ON e.rev = o.mod_rev \
               WHERE o.resource = '{RESOURCE}' AND o.cluster = '{TARGET_CLUSTER}'; \
             ALTER TABLE baseline_objects ADD PRIMARY KEY (resource, cluster, namespace, name)"
        ))
        .await?;
    client
        .batch_execute("VACUUM ANALYZE baseline_objects")
        .await?;
    let raw = client
        .prepare(
            "SELECT * FROM baseline_objects WHERE resource = $1 AND cluster = $2 \
             ORDER BY namespace, name",
        )
        .await?;

    // The contenders take turns (the shards in alternating order), so that drift in the
    // machine's speed hits them all alike.
    let (mut large_list, mut small_list, mut baseline) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..=LIST_REPETITIONS {
        let (large_ms, small_ms) = if rep % 2 == 0 {
            let large_ms = timed_list(list_target(&large.store)).await?;
            (large_ms, timed_list(list_target(&small.store)).await?)
        } else {
            let small_ms = timed_list(list_target(&small.store)).await?;
            (timed_list(list_target(&large.store)).await?, small_ms)
        };
        let baseline_ms = timed_list(async {
            Ok(client
                .query(&raw, &[&RESOURCE, &TARGET_CLUSTER])
                .await?
                .len())
        })
        .await?;
        // The first round warms up.
        if rep > 0 {
            large_list.push(large_ms);
            small_list.push(small_ms);
            baseline.push(baseline_ms);
        }
    }
    let (large_list, small_list, baseline) = (
        median(&mut large_list),
        median(&mut small_list),
        median(&mut baseline),
    );

    let mut rng = StdRng::seed_from_u64(7);
    let (mut large_get, mut small_get) = (Vec::new(), Vec::new());
    for i in 0..GETS + GETS / 10 {
        let index = rng.gen_range(0..TARGET_OBJECTS);
        let (large_ns, small_ns) = (
            timed_get(&large.store, index).await?,
            timed_get(&small.store, index).await?,
        );
        // The first tenth warms up.
        if i >= GETS / 10 {
            large_get.push(large_ns);
            small_get.push(small_ns);
        }
    }
    large_get.sort_unstable();
    small_get.sort_unstable();
    let large_get = percentile(&large_get, 0.5) as f64 / 1e3;
    let small_get = percentile(&small_get, 0.5) as f64 / 1e3;

    report("list_10k_ms", large_list, "ms");
    report("list_10k_baseline_ms", baseline, "ms");
    report("list_10k_ratio", large_list / baseline, "ratio");
    report("list_10k_small_shard_ms", small_list, "ms");
    report("get_p50_us_small_shard", small_get, "us");
    report("get_p50_us_1m_shard", large_get, "us");
    Ok(())
}
