//! What exporting traces costs the hub: ConfigMap creates/s against a `trellis start` process
//! exporting every request's spans (no client trace context, so every request is a sampled
//! root under the default parent-based sampler: the most the exporter ever has to send) to a
//! local OTLP/HTTP receiver, divided by creates/s against the same binary with tracing off,
//! in the same run. Both in their default configuration otherwise (logs at `info`), each on a
//! fresh database of one private durable Postgres cluster, measured alternately (off, on,
//! off, on) so drift of the shared machine falls on both.
//!
//! Run with `cargo bench -p trellis-integration-tests --bench telemetry`. Prints
//! `bench: creates_per_s_tracing_off`, `creates_per_s_tracing_on`, `tracing_overhead_ratio`
//! (target ≥ 0.9) and the spans the receiver got. `TRELLIS_BENCH_SECS` sets each measured
//! window (default 8, after 1 s of warm-up); `TRELLIS_BENCH_WRITERS` the concurrent creators
//! (default 16).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use trellis_integration_tests::otlp::OtlpReceiver;
use trellis_integration_tests::{client_from, kubectl_with_kubeconfig, trellis_binary};
use trellis_testkit::bench::{env_or, report};
use trellis_testkit::{ClusterOptions, PostgresCluster, TestDatabase};

type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

struct Hub {
    child: Child,
    dir: tempfile::TempDir,
    _db: TestDatabase,
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Hub {
    async fn start(pg: &PostgresCluster, otlp: Option<&str>) -> Result<Hub> {
        let db = pg.create_database("bench_telemetry").await?;
        let dir = tempfile::tempdir()?;
        let port = trellis_testkit::free_loopback_port();
        let mut command = Command::new(trellis_binary());
        command
            .args(["start", "--store", db.url()])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(dir.path())
            // The bench's creators are one user at many requests per second.
            .args(["--max-requests-per-second-per-user", "0"])
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(endpoint) = otlp {
            command.args(["--otlp-endpoint", endpoint]);
        }
        let hub = Hub {
            child: command.spawn()?,
            dir,
            _db: db,
        };
        let kubeconfig = hub.kubeconfig();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !(kubeconfig.is_file()
            && kubectl_with_kubeconfig(&kubeconfig, &["get", "--raw", "/readyz"]).0)
        {
            if Instant::now() > deadline {
                return Err("the hub did not become ready".into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(hub)
    }

    fn kubeconfig(&self) -> std::path::PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }
}

fn config_map(name: String) -> ConfigMap {
    let mut map = ConfigMap::default();
    map.metadata.name = Some(name);
    map.data = Some([("model".to_string(), "x".repeat(512))].into());
    map
}

/// Creates/s from `writers` tasks over `window`, after a second of warm-up.
async fn creates_per_s(kubeconfig: &Path, writers: usize, window: Duration) -> Result<f64> {
    let client = client_from(kubeconfig).await;
    let counted = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
            let (counted, measuring, stop) = (counted.clone(), measuring.clone(), stop.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Acquire) {
                    i += 1;
                    api.create(&PostParams::default(), &config_map(format!("cm-{w}-{i}")))
                        .await?;
                    if measuring.load(Ordering::Acquire) {
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok::<_, kube::Error>(())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    measuring.store(true, Ordering::Release);
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let rate = counted.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Release);
    for task in tasks {
        task.await??;
    }
    Ok(rate)
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("benchmark failed: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<()> {
    let window = Duration::from_secs(env_or("TRELLIS_BENCH_SECS", 8u64)?);
    let writers: usize = env_or("TRELLIS_BENCH_WRITERS", 16)?;
    println!(
        "# tracing overhead: {writers} writers, {} s windows, `trellis start` on a private durable Postgres, kube-rs over HTTPS",
        window.as_secs()
    );
    let _ = trellis_binary();
    let pg =
        tokio::task::spawn_blocking(|| PostgresCluster::start(ClusterOptions { durable: true }))
            .await??;
    let receiver = OtlpReceiver::start().await;
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for round in 0..2 {
        for exporting in [false, true] {
            let hub = Hub::start(&pg, exporting.then_some(receiver.endpoint.as_str())).await?;
            let rate = creates_per_s(&hub.kubeconfig(), writers, window).await?;
            println!(
                "# round {round}, tracing {}: {rate:.0} creates/s",
                if exporting { "exported" } else { "off" }
            );
            if exporting { &mut on } else { &mut off }.push(rate);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    report("creates_per_s_tracing_off", mean(&off), "ops/s");
    report("creates_per_s_tracing_on", mean(&on), "ops/s");
    report("tracing_overhead_ratio", mean(&on) / mean(&off), "x");
    // Let the last batch arrive.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let spans = receiver.spans();
    let requests = spans.iter().filter(|s| s.name == "request").count();
    report("spans_received", spans.len() as f64, "spans");
    report("request_spans_received", requests as f64, "spans");
    Ok(())
}
