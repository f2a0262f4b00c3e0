//! `trellis-edge`: serves one simulated GPU cluster's Kubernetes API until interrupted.
//! `trellis-edge --listen 127.0.0.1:7443 --data-dir ./.edge --nodes 4 --gpu-mode dra` writes
//! `<data-dir>/admin.kubeconfig` (or `--kubeconfig-out FILE`) for kubectl and the syncer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use trellis_edge::gpu::fixture::Fixture;
use trellis_edge::simulation::faults::DEFAULT_NEVER_PULL;
use trellis_edge::{GpuMode, SimulationOptions};
use trellis_server::StartOptions;

#[derive(Parser, Debug)]
#[command(
    name = "trellis-edge",
    version,
    about = "A simulated GPU cluster's Kubernetes API"
)]
struct Cli {
    /// Where to serve HTTPS.
    #[arg(long, default_value = "127.0.0.1:7443")]
    listen: SocketAddr,
    /// The store, PKI and kubeconfig.
    #[arg(long, default_value = ".edge")]
    data_dir: PathBuf,
    /// `postgres://…` to keep objects in Postgres; the embedded SQLite store otherwise.
    #[arg(long)]
    store: Option<String>,
    /// Also write the admin kubeconfig here.
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// Extra names (DNS or IP) for the serving certificate.
    #[arg(long = "tls-san")]
    tls_sans: Vec<String>,
    /// Nodes to create (existing ones are kept).
    #[arg(long, default_value_t = 4)]
    nodes: usize,
    /// Node names: `<prefix>-1` … `<prefix>-N`.
    #[arg(long, default_value = "gpu-node")]
    node_prefix: String,
    #[arg(long, default_value_t = 8)]
    gpus_per_node: u32,
    /// The `nvidia.com/gpu.product` label (default: the fixture's, `NVIDIA-H200`).
    #[arg(long)]
    gpu_product: Option<String>,
    #[arg(long, value_enum, default_value_t = Mode::DevicePlugin)]
    gpu_mode: Mode,
    /// From binding to running (e.g. `2s`, `0s`).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pod_start_delay: Duration,
    /// From running to ready.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pod_ready_delay: Duration,
    /// Images matching this regular expression never pull (ImagePullBackOff); empty: none.
    #[arg(long, default_value = DEFAULT_NEVER_PULL)]
    never_pull_image_regex: String,
    /// How often each node heartbeats its Ready condition.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    heartbeat_interval: Duration,
    /// How log lines are written (to standard error): text, or one JSON object per line.
    #[arg(long, default_value_t = trellis_telemetry::LogFormat::Text)]
    log_format: trellis_telemetry::LogFormat,
    /// Export traces over OTLP/HTTP to this base URL (e.g. http://127.0.0.1:4318); otherwise
    /// the standard OTEL_EXPORTER_OTLP_ENDPOINT variables decide (unset: no traces).
    #[arg(long)]
    otlp_endpoint: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    DevicePlugin,
    Dra,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let telemetry = trellis_telemetry::init(&trellis_telemetry::TelemetryOptions {
        service: "trellis-edge".into(),
        log_format: cli.log_format,
        otlp_endpoint: cli.otlp_endpoint.clone(),
    })
    .map_err(anyhow::Error::msg)?;
    let never_pull = match cli.never_pull_image_regex.as_str() {
        "" => None,
        re => Some(regex::Regex::new(re).context("--never-pull-image-regex")?),
    };
    let fixture = Fixture::h200().map_err(|e| anyhow::anyhow!("the GPU fixture: {e}"))?;
    let simulation = SimulationOptions {
        nodes: cli.nodes,
        node_prefix: cli.node_prefix,
        gpus_per_node: cli.gpus_per_node,
        gpu_product: cli.gpu_product,
        gpu_mode: match cli.gpu_mode {
            Mode::DevicePlugin => GpuMode::DevicePlugin,
            Mode::Dra => GpuMode::Dra,
        },
        pod_start_delay: cli.pod_start_delay,
        pod_ready_delay: cli.pod_ready_delay,
        never_pull_image: never_pull,
        heartbeat_interval: cli.heartbeat_interval,
        ..SimulationOptions::new(fixture)
    };
    let start = StartOptions {
        data_dir: cli.data_dir,
        listen: cli.listen,
        store: cli.store,
        tls_sans: cli.tls_sans,
        shards: Vec::new(),
        security: Default::default(),
    };
    let server = trellis_edge::builder(start, simulation).start().await?;
    if let Some(out) = &cli.kubeconfig_out {
        std::fs::copy(&server.kubeconfig, out)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    tracing::info!(
        address = %server.addr,
        kubeconfig = %cli.kubeconfig_out.as_ref().unwrap_or(&server.kubeconfig).display(),
        "trellis-edge serving"
    );
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    telemetry.shutdown();
    Ok(())
}
