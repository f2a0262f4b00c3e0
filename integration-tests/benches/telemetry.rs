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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use trellis_integration_tests::otlp::OtlpReceiver;
use trellis_integration_tests::{client_from, trellis_binary, Replica};
use trellis_testkit::bench::{env_or, report};
use trellis_testkit::{ClusterOptions, PostgresCluster, TestDatabase};

type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

/// A `trellis start` on a fresh database, exporting to `otlp` when given; the database is
/// dropped after the process.
async fn start_hub(pg: &PostgresCluster, otlp: Option<&str>) -> Result<(Replica, TestDatabase)> {
    let db = pg.create_database("bench_telemetry").await?;
    // The bench's creators are one user at many requests per second.
    let mut args: Vec<String> = vec!["--max-requests-per-second-per-user".into(), "0".into()];
    if let Some(endpoint) = otlp {
        args.extend(["--otlp-endpoint".into(), endpoint.to_string()]);
    }
    let url = db.url().to_string();
    let replica = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Replica::start_with_args(&url, None, &args)
    })
    .await?;
    Ok((replica, db))
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
    // Both hubs as shipped: nothing from this shell's environment turns tracing or logs on.
    for var in [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "RUST_LOG",
    ] {
        std::env::remove_var(var);
    }
    let pg =
        tokio::task::spawn_blocking(|| PostgresCluster::start(ClusterOptions { durable: true }))
            .await??;
    let receiver = OtlpReceiver::start().await;
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for round in 0..2 {
        for exporting in [false, true] {
            let (hub, _db) =
                start_hub(&pg, exporting.then_some(receiver.endpoint.as_str())).await?;
            let rate = creates_per_s(&hub.kubeconfig(), writers, window).await?;
            drop(hub);
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
