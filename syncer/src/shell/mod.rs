//! The syncer's I/O: thin async loops around the pure decisions.
//!
//! - [`clients`]: the hub client (kubeconfig, pointed at the target's workspace) and the edge
//!   client (kubeconfig, or in-cluster via `kube::Config::infer`).
//! - [`probe`]: what the cluster is (version, DRA, image volumes).
//! - [`summaries`], [`trim`]: what is kept of each object (memory: a 5,000-node cluster).
//! - [`stores`]: reflectors on both sides, resuming with backoff after restarts and cuts.
//! - [`hub`]: the writes to the hub (SyncTarget status, Placement status), server-side apply.
//! - [`edge`]: the writes to the cluster (apply what a Placement renders, delete orphans).
//! - [`heartbeat`]: the SyncTarget status every period, and early when the reading changes.
//! - [`work`]: apply each Placement's objects, remove what is no longer assigned, report
//!   Placement status.
//! - [`metrics`]: heartbeats, applies and removals, served on `--metrics-addr`.
//!
//! Everything edge-facing takes a `kube::Client`: `tests/gpu_fleet_e2e.rs` runs the binary
//! against `trellis-edge` clusters (device plugin and DRA) with `--kubeconfig`.

pub mod clients;
pub mod edge;
pub mod heartbeat;
pub mod hub;
pub mod metrics;
pub mod probe;
pub mod stores;
pub mod summaries;
pub mod trim;
pub mod work;

use std::path::PathBuf;
use std::time::Duration;

use crate::target::TargetRef;

/// How a syncer runs.
#[derive(Clone, Debug)]
pub struct Options {
    pub hub_kubeconfig: PathBuf,
    pub target: TargetRef,
    /// The edge cluster's kubeconfig; in-cluster (or `$KUBECONFIG`) when absent.
    pub edge_kubeconfig: Option<PathBuf>,
    pub heartbeat: Duration,
    /// How long a replica may stay unschedulable before the Placement reports it.
    pub unschedulable_timeout: Duration,
    /// Image volumes: `None` to decide from the cluster's version.
    pub image_volume: Option<bool>,
    /// Serve `/metrics` (plain HTTP) here.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// Runs the syncer until `shutdown` resolves.
pub async fn run(
    options: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut shutdown = std::pin::pin!(shutdown);
    let metrics = metrics::Metrics::new()?;
    let serving = match options.metrics_addr {
        Some(addr) => {
            let (bound, serving) = metrics::serve(addr, metrics.clone()).await?;
            tracing::info!("serving metrics on http://{bound}/metrics");
            Some(tokio::spawn(serving))
        }
        None => None,
    };
    let hub = clients::hub(&options.hub_kubeconfig, &options.target.workspace).await?;
    let edge = clients::edge(options.edge_kubeconfig.as_deref()).await?;
    let cluster = tokio::select! {
        cluster = probe::wait_for(&edge, options.image_volume, &options.target, &hub, &metrics) => cluster,
        _ = &mut shutdown => return Ok(()),
    };
    tracing::info!(
        target = %options.target,
        version = cluster.version.as_deref().unwrap_or("?"),
        dra = cluster.features.dra,
        image_volume = cluster.features.image_volume,
        "connected to the hub and the cluster"
    );
    let stores = stores::Stores::start(&hub, &edge, &options.target, &cluster);
    let heart = tokio::spawn(heartbeat::run(
        hub.clone(),
        edge.clone(),
        options.target.clone(),
        cluster.clone(),
        stores.clone(),
        options.heartbeat,
        metrics.clone(),
    ));
    let worker = tokio::spawn(work::run(
        hub.clone(),
        edge.clone(),
        options.target.clone(),
        cluster,
        stores.clone(),
        options.unschedulable_timeout,
        metrics,
    ));
    shutdown.await;
    heart.abort();
    worker.abort();
    stores.stop();
    if let Some(serving) = serving {
        serving.abort();
    }
    Ok(())
}

/// How long to wait after a failure before trying again.
pub const RETRY: Duration = Duration::from_secs(2);
