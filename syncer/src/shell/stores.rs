//! The syncer's reflectors: on the hub, the Placements of its target's namespace; on the
//! cluster, Nodes and Pods (as compact summaries, [`super::summaries`]), the Deployments it
//! made and, with DRA, ResourceSlices and ResourceClaims. Each is a kube-runtime watcher with
//! the default backoff: after a hub or cluster restart or a network cut it relists or resumes
//! by itself, and the stores keep serving the last state meanwhile. Objects are trimmed
//! ([`super::trim`]) as they arrive.
//! Every event wakes the work loop and the heartbeat (both debounce).

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::resource::v1::{ResourceClaim, ResourceSlice};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use trellis_apis::compute::Placement;

use super::probe::Cluster;
use super::summaries::{self, NodeSummary, PodSummary, Summaries};
use crate::naming::owned_selector;
use crate::target::TargetRef;

/// The syncer's view of the hub and its cluster.
#[derive(Clone)]
pub struct Stores {
    pub placements: Store<Placement>,
    /// Nodes and Pods as compact summaries (see [`summaries`]), not objects.
    pub nodes: Arc<Summaries<NodeSummary>>,
    pub pods: Arc<Summaries<PodSummary>>,
    pub deployments: Store<Deployment>,
    pub slices: Option<Store<ResourceSlice>>,
    pub claims: Option<Store<ResourceClaim>>,
    /// Woken by any change on either side (the work loop).
    pub work: Arc<Notify>,
    /// Woken by any change on the cluster (the heartbeat).
    pub edge: Arc<Notify>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

fn reflect<K>(
    name: &'static str,
    api: Api<K>,
    config: watcher::Config,
    trim: fn(&mut K),
    wake: Vec<Arc<Notify>>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, config)
        .default_backoff()
        .modify(trim)
        .reflect(writer);
    tasks.push(tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => wake.iter().for_each(|n| n.notify_one()),
                Err(e) => tracing::warn!(resource = name, error = %e, "watch failed; retrying"),
            }
        }
    }));
    reader
}

impl Stores {
    /// Starts every reflector.
    pub fn start(
        hub: &kube::Client,
        edge: &kube::Client,
        target: &TargetRef,
        cluster: &Cluster,
    ) -> Stores {
        let work = Arc::new(Notify::new());
        let edge_changed = Arc::new(Notify::new());
        let both = || vec![work.clone(), edge_changed.clone()];
        let mut tasks = Vec::new();
        let placements = reflect(
            "placements",
            Api::namespaced(hub.clone(), &target.namespace()),
            watcher::Config::default(),
            |p: &mut Placement| p.metadata.managed_fields = None,
            vec![work.clone()],
            &mut tasks,
        );
        let nodes = summaries::nodes(edge, both(), &mut tasks);
        let pods = summaries::pods(edge, both(), &mut tasks);
        let deployments = reflect(
            "deployments",
            Api::all(edge.clone()),
            watcher::Config::default().labels(&owned_selector(&target.name)),
            super::trim::deployment,
            both(),
            &mut tasks,
        );
        let (slices, claims) = if cluster.features.dra {
            (
                Some(reflect(
                    "resourceslices",
                    Api::all(edge.clone()),
                    watcher::Config::default().any_semantic(),
                    super::trim::resource_slice,
                    both(),
                    &mut tasks,
                )),
                Some(reflect(
                    "resourceclaims",
                    Api::all(edge.clone()),
                    watcher::Config::default().any_semantic(),
                    super::trim::resource_claim,
                    both(),
                    &mut tasks,
                )),
            )
        } else {
            (None, None)
        };
        Stores {
            placements,
            nodes,
            pods,
            deployments,
            slices,
            claims,
            work,
            edge: edge_changed,
            tasks: Arc::new(Mutex::new(tasks)),
        }
    }

    /// Whether every cluster-side store has listed once.
    pub fn edge_ready(&self) -> bool {
        use futures::FutureExt;
        let ready =
            |r: Option<Result<(), reflector::store::WriterDropped>>| matches!(r, Some(Ok(())));
        self.nodes.ready()
            && self.pods.ready()
            && ready(self.deployments.wait_until_ready().now_or_never())
            && self
                .slices
                .as_ref()
                .is_none_or(|s| ready(s.wait_until_ready().now_or_never()))
            && self
                .claims
                .as_ref()
                .is_none_or(|s| ready(s.wait_until_ready().now_or_never()))
    }

    /// Whether the hub-side store has listed once.
    pub fn hub_ready(&self) -> bool {
        use futures::FutureExt;
        matches!(
            self.placements.wait_until_ready().now_or_never(),
            Some(Ok(()))
        )
    }

    /// Stops every reflector.
    pub fn stop(&self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            for t in tasks.drain(..) {
                t.abort();
            }
        }
    }
}
