//! `trellis-syncer`: runs one SyncTarget's Placements on its cluster and reports back to the
//! hub. Pull mode: it dials the hub with the kubeconfig `trellis synctarget create` wrote;
//! the hub never dials it.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use trellis_syncer::shell::{run, Options};
use trellis_syncer::target::TargetRef;

#[derive(Parser)]
#[command(
    name = "trellis-syncer",
    version,
    about = "Runs a SyncTarget's Placements on its cluster"
)]
struct Cli {
    /// The kubeconfig `trellis synctarget create` wrote (the target's hub credentials).
    #[arg(long, env = "TRELLIS_HUB_KUBECONFIG")]
    hub_kubeconfig: PathBuf,
    /// The SyncTarget, as WORKSPACE:NAME (e.g. root:platform:eu-1).
    #[arg(long, value_parser = TargetRef::parse)]
    target: TargetRef,
    /// The cluster's kubeconfig; in-cluster configuration (or $KUBECONFIG) when absent.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// How often to heartbeat (the hub's timeout is 40 s).
    #[arg(long, default_value = "10s", value_parser = humantime_duration)]
    heartbeat_interval: Duration,
    /// How long a replica may stay unschedulable before its Placement says so, for the hub
    /// to place it elsewhere.
    #[arg(long, default_value = "5m", value_parser = humantime_duration)]
    unschedulable_timeout: Duration,
    /// Whether pods may mount OCI images as volumes; decided from the cluster's version (1.35
    /// and later) when not given.
    #[arg(long)]
    image_volume: Option<bool>,
    /// How log lines are written (to standard error): text, or one JSON object per line.
    #[arg(long, default_value_t = trellis_telemetry::LogFormat::Text)]
    log_format: trellis_telemetry::LogFormat,
    /// Export traces over OTLP/HTTP to this base URL (e.g. http://127.0.0.1:4318); otherwise
    /// the standard OTEL_EXPORTER_OTLP_ENDPOINT variables decide (unset: no traces).
    #[arg(long)]
    otlp_endpoint: Option<String>,
    /// Serve the syncer's metrics (Prometheus text format, plain HTTP) at
    /// http://ADDR/metrics, e.g. 127.0.0.1:9464 (port 0: any free one, logged).
    #[arg(long)]
    metrics_addr: Option<std::net::SocketAddr>,
}

/// `10s`, `5m`, `1h`, or plain seconds.
fn humantime_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 10s"))?;
    let seconds = match unit {
        "" | "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "ms" => return Ok(Duration::from_millis(n)),
        _ => return Err(format!("{s:?} is not a duration like 10s")),
    };
    Ok(Duration::from_secs(seconds))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let telemetry = trellis_telemetry::init(&trellis_telemetry::TelemetryOptions {
        service: "trellis-syncer".into(),
        log_format: cli.log_format,
        otlp_endpoint: cli.otlp_endpoint.clone(),
    })
    .map_err(anyhow::Error::msg)?;
    let options = Options {
        hub_kubeconfig: cli.hub_kubeconfig,
        target: cli.target,
        edge_kubeconfig: cli.kubeconfig,
        heartbeat: cli.heartbeat_interval,
        unschedulable_timeout: cli.unschedulable_timeout,
        image_volume: cli.image_volume,
        metrics_addr: cli.metrics_addr,
    };
    let outcome = run(options, shutdown()).await;
    telemetry.shutdown();
    outcome
}

/// SIGINT, or SIGTERM (how Kubernetes stops a pod).
async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
