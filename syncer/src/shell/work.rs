//! The work loop: the cluster runs what the hub assigned, and the hub hears how it goes.
//!
//! Each pass (on any change on either side, debounced, and every few seconds so timeouts
//! are noticed):
//! 1. Every Placement not being deleted is rendered and applied server-side as
//!    `trellis-syncer`: namespace, ResourceClaimTemplate (DRA), Deployment, Service. A
//!    Placement whose rendering did not change since it was last applied is skipped, and
//!    everything is applied again every [`REAPPLY`] (someone may have edited or deleted it).
//!    Names are deterministic, so a restarted syncer applies the same objects again.
//! 2. Whatever this syncer made (its labels) for a Placement the hub no longer has is
//!    deleted: Deployments from the store, Services and claim templates by label. Only after
//!    both stores have listed, so a syncer that has not heard from the hub yet deletes
//!    nothing.
//! 3. Each Placement's status is computed from its Deployment and pods and applied to the
//!    hub when it differs from what the hub has, so a status lost to a cut or restart is
//!    written again on the next pass.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::ListParams;
use kube::runtime::reflector::ObjectRef;
use kube::Api;
use tokio::time::{sleep, Instant};
use tracing::Instrument;
use trellis_apis::compute::Placement;

use super::edge::{apply_rendered, orphans, remove};
use super::probe::Cluster;
use super::stores::Stores;
use crate::naming::{fnv1a64, name_of, owned_selector};
use crate::placement_status::{status, Observed, PodState};
use crate::render::{render, service, EdgeOptions};
use crate::target::TargetRef;

/// Changes arriving within this are taken by one pass.
const DEBOUNCE: Duration = Duration::from_millis(20);
/// A pass at least this often, so timeouts are noticed.
const TICK: Duration = Duration::from_secs(5);
/// Everything is applied again this often.
const REAPPLY: Duration = Duration::from_secs(300);

/// What the loop remembers between passes.
#[derive(Default)]
struct Memory {
    /// Placement name → hash of what was last applied for it.
    applied: HashMap<String, u64>,
    /// Placement name → why it could not be rendered or applied.
    errors: HashMap<String, String>,
    last_full: Option<Instant>,
}

pub async fn run(
    hub: kube::Client,
    edge: kube::Client,
    target: TargetRef,
    cluster: Cluster,
    stores: Stores,
    unschedulable_timeout: Duration,
    metrics: std::sync::Arc<super::metrics::Metrics>,
) {
    let options = EdgeOptions {
        target: target.name.clone(),
        gpu_mode: cluster.gpu_mode(),
        image_volume: cluster.features.image_volume,
    };
    let mut memory = Memory::default();
    loop {
        tokio::select! {
            _ = stores.work.notified() => sleep(DEBOUNCE).await,
            _ = sleep(TICK) => {}
        }
        if !(stores.hub_ready() && stores.edge_ready()) {
            continue;
        }
        let started = Instant::now();
        let (applied, written) = pass(
            Sides {
                hub: &hub,
                edge: &edge,
                target: &target,
            },
            &options,
            &stores,
            &mut memory,
            unschedulable_timeout,
            &metrics,
        )
        .instrument(tracing::info_span!("reconcile", controller = "syncer-work"))
        .await;
        tracing::debug!(
            applied,
            written,
            ms = started.elapsed().as_millis() as u64,
            "work pass"
        );
    }
}

/// The hub, the cluster, and the SyncTarget a pass works for.
struct Sides<'a> {
    hub: &'a kube::Client,
    edge: &'a kube::Client,
    target: &'a TargetRef,
}

async fn pass(
    sides: Sides<'_>,
    options: &EdgeOptions,
    stores: &Stores,
    memory: &mut Memory,
    unschedulable_timeout: Duration,
    metrics: &super::metrics::Metrics,
) -> (usize, usize) {
    let Sides { hub, edge, target } = sides;
    let (mut applied, mut written) = (0, 0);
    let full = memory.last_full.is_none_or(|at| at.elapsed() >= REAPPLY);
    if full {
        memory.last_full = Some(Instant::now());
    }
    let placements: Vec<_> = stores
        .placements
        .state()
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    let assigned: BTreeSet<String> = placements.iter().map(|p| name_of(p)).collect();
    metrics.set_placements(assigned.len());
    // 1. Apply.
    let mut namespaces: BTreeMap<String, String> = BTreeMap::new();
    for p in &placements {
        let name = name_of(p);
        match render(p, options) {
            Ok(rendered) => {
                let namespace = rendered.namespace.metadata.name.clone().unwrap_or_default();
                namespaces.insert(name.clone(), namespace);
                let hash = fnv1a64(&[
                    &serde_json::to_string(&rendered.deployment).unwrap_or_default(),
                    &serde_json::to_string(&rendered.service).unwrap_or_default(),
                    &serde_json::to_string(&rendered.claim_template).unwrap_or_default(),
                ]);
                if !full && memory.applied.get(&name) == Some(&hash) {
                    continue;
                }
                // The Placement's trace (from the tenant's create) goes on to the cluster.
                let span = tracing::info_span!("placement.apply", placement = %name);
                if let Some(traceparent) = p
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(trellis_apis::TRACEPARENT_ANNOTATION))
                {
                    trellis_telemetry::continue_from(&span, traceparent);
                }
                let outcome = apply_rendered(edge, &rendered, &target.name)
                    .instrument(span)
                    .await;
                metrics.applied(&outcome);
                match outcome {
                    Ok(()) => {
                        applied += 1;
                        memory.applied.insert(name.clone(), hash);
                        memory.errors.remove(&name);
                    }
                    Err(e) => {
                        tracing::warn!(placement = %name, error = %e, "applying failed");
                        memory.applied.remove(&name);
                        memory
                            .errors
                            .insert(name, format!("applying on the cluster failed: {e}"));
                    }
                }
            }
            Err(e) => {
                memory.errors.insert(name, e.to_string());
            }
        }
    }
    // 2. Remove what is no longer assigned.
    let mut orphans = orphans(
        stores.deployments.state().iter().map(|d| d.as_ref()),
        &assigned,
    );
    if full {
        let services: Api<Service> = Api::all(edge.clone());
        match services
            .list(&ListParams::default().labels(&owned_selector(&target.name)))
            .await
        {
            Ok(list) => orphans.extend(super::edge::orphans(list.iter(), &assigned)),
            Err(e) => tracing::warn!(error = %e, "listing services failed"),
        }
    }
    for (namespace, placement) in orphans {
        tracing::info!(%namespace, %placement, "removing what is no longer assigned");
        let removed = remove(
            edge,
            &namespace,
            &placement,
            &target.name,
            options.gpu_mode == crate::render::GpuMode::Dra,
        )
        .await;
        metrics.removed(&removed);
        if let Err(e) = removed {
            tracing::warn!(%placement, error = %e, "removing failed");
        }
    }
    memory.applied.retain(|name, _| assigned.contains(name));
    memory.errors.retain(|name, _| assigned.contains(name));
    // 3. Report.
    let mut pods: HashMap<(String, String), Vec<PodState>> = HashMap::new();
    for pod in stores.pods.state() {
        if let (Some(placement), Some(state)) = (&pod.gpus.placement, &pod.state) {
            pods.entry((pod.namespace.clone(), placement.clone()))
                .or_default()
                .push(state.clone());
        }
    }
    let now = crate::time::now();
    let timeout = i64::try_from(unschedulable_timeout.as_secs()).unwrap_or(i64::MAX);
    for p in &placements {
        let name = name_of(p);
        let Some(namespace) = namespaces.get(&name) else {
            written += report(
                hub,
                target,
                p,
                &Observed {
                    deployment: None,
                    pods: &[],
                    endpoint: None,
                    error: memory.errors.get(&name).cloned(),
                },
                now,
                timeout,
            )
            .await as usize;
            continue;
        };
        let deployment = stores
            .deployments
            .get(&ObjectRef::<Deployment>::new(&name).within(namespace));
        let key = (namespace.clone(), name.clone());
        let observed = Observed {
            deployment: deployment.as_deref(),
            pods: pods.get(&key).map(Vec::as_slice).unwrap_or_default(),
            endpoint: memory
                .applied
                .contains_key(&name)
                .then(|| service::endpoint(&name, namespace, p.spec.runtime.port)),
            error: memory.errors.get(&name).cloned(),
        };
        written += report(hub, target, p, &observed, now, timeout).await as usize;
    }
    (applied, written)
}

/// Applies the status `observed` gives `placement` if the hub does not have it yet; whether
/// it wrote.
async fn report(
    hub: &kube::Client,
    target: &TargetRef,
    placement: &Placement,
    observed: &Observed<'_>,
    now: i64,
    timeout: i64,
) -> bool {
    let wanted = status(placement, observed, now, timeout);
    if placement.status.as_ref() == Some(&wanted) {
        return false;
    }
    let name = name_of(placement);
    match super::hub::placement_status(hub, &target.namespace(), &name, &wanted).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(placement = %name, error = %e, "writing the status failed");
            false
        }
    }
}
