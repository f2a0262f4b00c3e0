//! The heartbeat: every period (10 s by default) the SyncTarget status is applied with the
//! current reading, and earlier (at most once a second) when the reading changed (a pod
//! bound, a node went away), so the hub sees freed or taken GPUs without waiting. Each beat
//! asks the cluster for its version, which is also how the syncer knows the cluster answers.
//!
//! The first beat goes out at once (the hub learns the syncer is alive), before the cluster's
//! stores have listed; the first reading follows as soon as they have, not a second later:
//! until then the hub has no inventory to place anything against.

use std::time::Duration;

use tokio::time::{sleep, sleep_until, timeout, Instant};

use super::probe::Cluster;
use super::stores::Stores;
use crate::inventory::accounted::{accounted, Applied};
use crate::inventory::dra::DraGpus;
use crate::inventory::nodes::NodeGpus;
use crate::inventory::pods::PodGpus;
use crate::inventory::{build, Inventory};
use crate::target::TargetRef;
use crate::target_status::Report;

/// The least time between two early writes.
const EARLY: Duration = Duration::from_secs(1);
/// How long the cluster has to answer a heartbeat's version request.
const ANSWER: Duration = Duration::from_secs(5);
/// How often to look whether the cluster's stores have listed, before the first reading.
const LISTED: Duration = Duration::from_millis(10);

/// The reading of the stores: inventory and accounted Placements.
pub fn read(stores: &Stores) -> (Inventory, Vec<trellis_apis::compute::AccountedPlacement>) {
    let nodes: Vec<NodeGpus> = stores.nodes.state().iter().map(|n| (**n).clone()).collect();
    let pods: Vec<PodGpus> = stores.pods.state().iter().map(|p| p.gpus.clone()).collect();
    let slices = stores
        .slices
        .as_ref()
        .map(|s| s.state())
        .unwrap_or_default();
    let claims = stores
        .claims
        .as_ref()
        .map(|s| s.state())
        .unwrap_or_default();
    let dra = DraGpus::from_objects(
        slices.iter().map(|s| s.as_ref()),
        claims.iter().map(|c| c.as_ref()),
    );
    let applied: Vec<Applied> = stores
        .deployments
        .state()
        .iter()
        .filter_map(|d| Applied::from_deployment(d))
        .collect();
    (build(&nodes, &pods, &dra), accounted(&applied, &pods))
}

pub async fn run(
    hub: kube::Client,
    edge: kube::Client,
    target: TargetRef,
    cluster: Cluster,
    stores: Stores,
    period: Duration,
    metrics: std::sync::Arc<super::metrics::Metrics>,
) {
    let mut last: Option<Report> = None;
    let mut last_write = Instant::now();
    let mut reading = None;
    let mut first = true;
    loop {
        let due = last_write + period;
        if !first {
            tokio::select! {
                _ = sleep_until(due) => {}
                _ = stores.edge.notified() => {
                    if reading.is_some() {
                        sleep(EARLY).await;
                    } else {
                        // Listing: one beat once it is done, not one per object listed.
                        while !stores.edge_ready() && Instant::now() < due {
                            sleep(LISTED).await;
                        }
                    }
                }
            }
        }
        first = false;
        let cluster_error = match timeout(ANSWER, edge.apiserver_version()).await {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("no answer within {}s", ANSWER.as_secs())),
        };
        if stores.edge_ready() {
            reading = Some(read(&stores));
        }
        let (inventory, accounted) = reading.clone().unwrap_or_default();
        let report = Report {
            cluster_error,
            kubernetes_version: cluster.version.clone(),
            features: cluster.features.clone(),
            inventory,
            accounted,
        };
        if Instant::now() < due && last.as_ref() == Some(&report) {
            continue;
        }
        let sent = super::hub::report(&hub, &target.name, &report).await;
        metrics.heartbeat(&sent);
        match sent {
            Ok(_) => {
                last_write = Instant::now();
                last = Some(report);
            }
            Err(e) => {
                tracing::warn!(target = %target, error = %e, "heartbeat to the hub failed");
                sleep(super::RETRY).await;
            }
        }
    }
}
