//! A store of compact summaries instead of objects, for the two kinds a large cluster has
//! most of: Nodes and Pods. kube-runtime's reflector keeps whole typed objects, and a
//! k8s-openapi `Pod` is kilobytes of struct even with every optional field empty; 40,000 of
//! them alone would exceed the syncer's memory target (64 MiB with 5,000 nodes). Here each
//! object becomes what the decisions read ([`NodeSummary`], [`PodSummary`]) the moment it
//! arrives, and only that is kept, keyed by namespace and name.
//!
//! Same semantics as a reflector: fed by a watcher with backoff, a relist (`Init` …
//! `InitDone`) replaces the whole map at once, and [`Summaries::ready`] says whether one
//! list has completed.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::inventory::nodes::NodeGpus;
use crate::inventory::pods::PodGpus;
use crate::naming::PLACEMENT_LABEL;
use crate::placement_status::PodState;

/// What is kept of a Node.
pub type NodeSummary = NodeGpus;

/// What is kept of a Pod.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodSummary {
    pub namespace: String,
    pub gpus: PodGpus,
    /// Only for pods of a Placement (the others need no status).
    pub state: Option<PodState>,
}

impl PodSummary {
    pub fn from_pod(pod: &Pod) -> PodSummary {
        let placement = pod
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(PLACEMENT_LABEL));
        PodSummary {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            gpus: PodGpus::from_pod(pod),
            state: placement.then(|| PodState::from_pod(pod)),
        }
    }
}

/// Summaries of one kind, shared between the watcher task and the loops.
pub struct Summaries<S> {
    map: RwLock<HashMap<String, Arc<S>>>,
    ready: AtomicBool,
}

impl<S> Summaries<S> {
    /// Every summary.
    pub fn state(&self) -> Vec<Arc<S>> {
        self.map
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether one complete list has been read.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

fn key<K: Resource>(object: &K) -> String {
    let meta = object.meta();
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// One watch event into `map` (a relist collects into `buffer` and replaces `map` whole at
/// its end); whether a list just completed.
pub fn apply_event<K: Resource, S>(
    map: &mut HashMap<String, Arc<S>>,
    buffer: &mut HashMap<String, Arc<S>>,
    event: watcher::Event<K>,
    summarize: fn(&K) -> S,
) -> bool {
    match event {
        watcher::Event::Apply(o) => {
            map.insert(key(&o), Arc::new(summarize(&o)));
        }
        watcher::Event::Delete(o) => {
            map.remove(&key(&o));
        }
        watcher::Event::Init => buffer.clear(),
        watcher::Event::InitApply(o) => {
            buffer.insert(key(&o), Arc::new(summarize(&o)));
        }
        watcher::Event::InitDone => {
            *map = std::mem::take(buffer);
            return true;
        }
    }
    false
}

/// Watches `api`, keeping `summarize` of each object; wakes `wake` on every change.
pub fn watch<K, S>(
    name: &'static str,
    api: Api<K>,
    summarize: fn(&K) -> S,
    wake: Vec<Arc<Notify>>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Arc<Summaries<S>>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    S: Send + Sync + 'static,
{
    let summaries = Arc::new(Summaries {
        map: RwLock::new(HashMap::new()),
        ready: AtomicBool::new(false),
    });
    let shared = summaries.clone();
    let stream = watcher(api, watcher::Config::default().any_semantic()).default_backoff();
    tasks.push(tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        let mut buffer: HashMap<String, Arc<S>> = HashMap::new();
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(event) => event,
                Err(e) => {
                    tracing::warn!(resource = name, error = %e, "watch failed; retrying");
                    continue;
                }
            };
            let Ok(mut map) = shared.map.write() else {
                return;
            };
            if apply_event(&mut map, &mut buffer, event, summarize) {
                shared.ready.store(true, Ordering::Release);
            }
            drop(map);
            wake.iter().for_each(|n| n.notify_one());
        }
    }));
    summaries
}

/// Summaries of every Node.
pub fn nodes(
    edge: &kube::Client,
    wake: Vec<Arc<Notify>>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Arc<Summaries<NodeSummary>> {
    watch(
        "nodes",
        Api::<Node>::all(edge.clone()),
        NodeGpus::from_node,
        wake,
        tasks,
    )
}

/// Summaries of every Pod.
pub fn pods(
    edge: &kube::Client,
    wake: Vec<Arc<Notify>>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Arc<Summaries<PodSummary>> {
    watch(
        "pods",
        Api::<Pod>::all(edge.clone()),
        PodSummary::from_pod,
        wake,
        tasks,
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(name: &str, node: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "labels": {"trellis.dev/placement": "p"}},
            "spec": {"nodeName": node, "containers": [{"name": "c",
                "resources": {"limits": {"nvidia.com/gpu": "2"}}}]},
            "status": {"phase": "Running"},
        }))
        .expect("pod")
    }

    type Map = HashMap<String, Arc<PodSummary>>;

    fn apply(map: &mut Map, buffer: &mut Map, event: watcher::Event<Pod>) -> bool {
        apply_event(map, buffer, event, PodSummary::from_pod)
    }

    #[test]
    fn a_relist_replaces_everything_and_events_update_in_between() {
        let (mut map, mut buffer) = (Map::new(), Map::new());
        let (m, b) = (&mut map, &mut buffer);
        assert!(!apply(m, b, watcher::Event::Init));
        assert!(!apply(m, b, watcher::Event::InitApply(pod("a", "n1"))));
        assert!(!apply(m, b, watcher::Event::InitApply(pod("b", "n1"))));
        assert!(apply(m, b, watcher::Event::InitDone));
        assert!(!apply(m, b, watcher::Event::Apply(pod("a", "n2"))));
        assert!(!apply(m, b, watcher::Event::Delete(pod("b", "n1"))));
        let summary = m.get("ns/a").cloned().expect("a");
        assert_eq!(m.len(), 1);
        assert_eq!(summary.gpus.node.as_deref(), Some("n2"));
        assert_eq!(summary.gpus.gpus, 2);
        assert!(summary.state.is_some());
        // A relist after a cut: what went away meanwhile is gone after it.
        apply(m, b, watcher::Event::Init);
        apply(m, b, watcher::Event::InitApply(pod("c", "n3")));
        assert_eq!(
            m.len(),
            1,
            "the old state serves until the relist completes"
        );
        assert!(m.contains_key("ns/a"));
        assert!(apply(m, b, watcher::Event::InitDone));
        assert_eq!(
            m.keys().cloned().collect::<Vec<_>>(),
            vec!["ns/c".to_string()]
        );
    }
}
