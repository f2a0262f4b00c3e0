//! The server's metrics, served at `/metrics` in the Prometheus text format: kube-apiserver's
//! names where one exists (`apiserver_request_total`, `apiserver_request_duration_seconds`,
//! `apiserver_current_inflight_requests`, `apiserver_longrunning_requests`,
//! `apiserver_watch_events_total`, `apiserver_storage_objects`), `trellis_*` for what only
//! Trellis has (group commit, watch fan-out, workspaces, the leader, placement, GPU pools,
//! SyncTarget heartbeats). One registry per server, not process-wide statics: two servers in
//! one process (tests, benchmarks) count apart.
//!
//! Cardinality is bounded by construction: no label takes a workspace, a namespace, an object
//! name or a user. Resource labels take the server's built-in resources only (anything else is
//! [`OTHER`]), verbs and codes come from fixed sets; shards and GPU pools are few and set up by
//! the operator.
//!
//! Recording is cheap: counters, gauges and histograms are atomics behind label handles. What
//! is costly to know (objects per resource) is refreshed in the background; what is cheap
//! (watchers, group commit counts, workspaces per shard) is read when scraped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The `component` label of request metrics, as kube-apiserver's.
pub const COMPONENT: &str = "apiserver";
/// The label value for anything outside a bounded set (a custom resource, an unknown
/// subresource).
pub const OTHER: &str = "other";
/// The media type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// kube-apiserver's buckets for request latency.
const REQUEST_BUCKETS: &[f64] = &[
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];
/// Placement passes take milliseconds (1,000 deployments: about 10 ms).
const PLACEMENT_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The labels kube-apiserver puts on a request's metrics (the code aside).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestLabels<'a> {
    /// `GET`, `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`, `APPLY`, `DELETE`, `DELETECOLLECTION`.
    pub verb: &'static str,
    pub group: &'a str,
    pub version: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    /// `resource`, `namespace`, `cluster`, or empty for a non-resource request.
    pub scope: &'static str,
}

impl RequestLabels<'_> {
    fn values(&self) -> [&str; 7] {
        [
            self.verb,
            self.group,
            self.version,
            self.resource,
            self.subresource,
            self.scope,
            COMPONENT,
        ]
    }
}

/// A request in flight, counted in `apiserver_current_inflight_requests` until dropped.
pub struct InFlight(Option<IntGauge>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(gauge) = &self.0 {
            gauge.dec();
        }
    }
}

/// How this replica stands in the fleet's health, as last seen by its placement controller.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FleetHealth {
    pub ready_targets: i64,
    pub unready_targets: i64,
    /// Age of the stalest heartbeat, in seconds.
    pub oldest_heartbeat_seconds: f64,
    /// (pool, class) → (allocated, capacity) devices.
    pub pools: BTreeMap<(String, String), (i64, i64)>,
}

/// Every metric of one server.
pub struct Metrics {
    enabled: bool,
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    inflight: IntGaugeVec,
    longrunning: IntGaugeVec,
    watch_events: IntCounterVec,
    storage_objects: IntGaugeVec,
    commit_batches: IntCounterVec,
    commit_writes: IntCounterVec,
    watchers: IntGaugeVec,
    workspaces: IntGaugeVec,
    leader: IntGauge,
    leader_acquisitions: IntCounter,
    placement_duration: Histogram,
    placement_decisions: IntCounter,
    placement_writes: IntCounterVec,
    pool_gpus: IntGaugeVec,
    synctargets: IntGaugeVec,
    heartbeat_age: Gauge,
}

/// Registers `metric`. The names and labels are this file's constants, so an error is a bug
/// every test that builds a server catches.
fn register<M: Collector + Clone + 'static>(registry: &Registry, metric: M) -> M {
    if let Err(e) = registry.register(Box::new(metric.clone())) {
        panic!("registering a metric: {e}");
    }
    metric
}

fn built<M>(name: &str, metric: prometheus::Result<M>) -> M {
    metric.unwrap_or_else(|e| panic!("metric {name}: {e}"))
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        registry,
        built(name, IntCounterVec::new(Opts::new(name, help), labels)),
    )
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(
        registry,
        built(name, IntGaugeVec::new(Opts::new(name, help), labels)),
    )
}

const REQUEST_LABELS: &[&str] = &[
    "verb",
    "group",
    "version",
    "resource",
    "subresource",
    "scope",
    "component",
];

impl Metrics {
    /// The metrics of a server; when not `enabled`, nothing is recorded and `/metrics` is not
    /// served (the baseline of the overhead benchmark).
    pub fn new(enabled: bool) -> Arc<Metrics> {
        let registry = Registry::new();
        let r = &registry;
        let mut with_code = REQUEST_LABELS.to_vec();
        with_code.push("code");
        let requests = counter_vec(
            r,
            "apiserver_request_total",
            "Counter of apiserver requests broken out for each verb, API resource and HTTP response code.",
            &with_code,
        );
        let request_duration = register(
            r,
            built(
                "apiserver_request_duration_seconds",
                HistogramVec::new(
                    HistogramOpts::new(
                        "apiserver_request_duration_seconds",
                        "Response latency distribution in seconds for each verb, group, version, resource, subresource, scope and component.",
                    )
                    .buckets(REQUEST_BUCKETS.to_vec()),
                    REQUEST_LABELS,
                ),
            ),
        );
        let inflight = gauge_vec(
            r,
            "apiserver_current_inflight_requests",
            "Maximal number of currently used inflight request limit of this apiserver per request kind in last second.",
            &["request_kind"],
        );
        let longrunning = gauge_vec(
            r,
            "apiserver_longrunning_requests",
            "Gauge of all active long-running apiserver requests broken out by verb, group, version, resource, scope and component.",
            REQUEST_LABELS,
        );
        let watch_events = counter_vec(
            r,
            "apiserver_watch_events_total",
            "Number of events sent in watch clients",
            &["group", "version", "resource"],
        );
        let storage_objects = gauge_vec(
            r,
            "apiserver_storage_objects",
            "Number of stored objects at the time of last check split by kind.",
            &["resource"],
        );
        let commit_batches = counter_vec(
            r,
            "trellis_storage_commit_batches_total",
            "Transactions the group committer of a shard committed in this process.",
            &["shard"],
        );
        let commit_writes = counter_vec(
            r,
            "trellis_storage_commit_writes_total",
            "Writes committed by the group committer of a shard in this process (writes per batch: this over the batches).",
            &["shard"],
        );
        let watchers = gauge_vec(
            r,
            "trellis_storage_watchers",
            "Watch streams the watch hub of a shard feeds in this process (its fan-out).",
            &["shard"],
        );
        let workspaces = gauge_vec(
            r,
            "trellis_workspaces",
            "Workspaces per shard and phase, as this replica's index knows them (unscheduled ones on shard \"\").",
            &["shard", "phase"],
        );
        let leader = register(
            r,
            built(
                "trellis_leader",
                IntGauge::new(
                    "trellis_leader",
                    "1 while this replica holds the controllers' leader Lease, else 0.",
                ),
            ),
        );
        let leader_acquisitions = register(
            r,
            built(
                "trellis_leader_acquisitions_total",
                IntCounter::new(
                    "trellis_leader_acquisitions_total",
                    "Times this replica became the leader.",
                ),
            ),
        );
        let placement_duration = register(
            r,
            built(
                "trellis_placement_pass_duration_seconds",
                Histogram::with_opts(
                    HistogramOpts::new(
                        "trellis_placement_pass_duration_seconds",
                        "Time a placement pass took to decide over the whole fleet (its writes not included).",
                    )
                    .buckets(PLACEMENT_BUCKETS.to_vec()),
                ),
            ),
        );
        let placement_decisions = register(
            r,
            built(
                "trellis_placement_decisions_total",
                IntCounter::new(
                    "trellis_placement_decisions_total",
                    "ModelDeployments decided on by placement passes.",
                ),
            ),
        );
        let placement_writes = counter_vec(
            r,
            "trellis_placement_writes_total",
            "Placement objects written by placement passes, by operation.",
            &["operation"],
        );
        let pool_gpus = gauge_vec(
            r,
            "trellis_gpupool_gpus",
            "GPUs of a pool's class: allocated (quota in use) and capacity, as the placement controller last computed.",
            &["pool", "class", "state"],
        );
        let synctargets = gauge_vec(
            r,
            "trellis_synctargets",
            "SyncTargets by their Ready condition, as the placement controller last saw them.",
            &["ready"],
        );
        let heartbeat_age = register(
            r,
            built(
                "trellis_synctarget_heartbeat_age_max_seconds",
                Gauge::new(
                    "trellis_synctarget_heartbeat_age_max_seconds",
                    "Age of the stalest SyncTarget heartbeat when the placement controller last looked.",
                ),
            ),
        );
        Arc::new(Metrics {
            enabled,
            registry,
            requests,
            request_duration,
            inflight,
            longrunning,
            watch_events,
            storage_objects,
            commit_batches,
            commit_writes,
            watchers,
            workspaces,
            leader,
            leader_acquisitions,
            placement_duration,
            placement_decisions,
            placement_writes,
            pool_gpus,
            synctargets,
            heartbeat_age,
        })
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Counts a request in flight until the guard is dropped.
    pub fn in_flight(&self, mutating: bool) -> InFlight {
        if !self.enabled {
            return InFlight(None);
        }
        let kind = if mutating { "mutating" } else { "readOnly" };
        let gauge = self.inflight.with_label_values(&[kind]);
        gauge.inc();
        InFlight(Some(gauge))
    }

    /// Records an answered request: its count by code, and its latency (to the response
    /// head; a watch's lasts as long as the watch and is counted apart, in
    /// [`Metrics::long_running`]).
    pub fn request(&self, labels: &RequestLabels<'_>, code: &str, elapsed: Duration) {
        if !self.enabled {
            return;
        }
        let values = labels.values();
        let mut with_code = [""; 8];
        with_code[..7].copy_from_slice(&values);
        with_code[7] = code;
        self.requests.with_label_values(&with_code).inc();
        self.request_duration
            .with_label_values(&values)
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a long-running request (a watch) until the guard is dropped.
    pub fn long_running(&self, labels: &RequestLabels<'_>) -> InFlight {
        if !self.enabled {
            return InFlight(None);
        }
        let gauge = self.longrunning.with_label_values(&labels.values());
        gauge.inc();
        InFlight(Some(gauge))
    }

    /// The counter of watch events sent for one resource, resolved once per watch.
    pub fn watch_events(&self, group: &str, version: &str, resource: &str) -> Option<IntCounter> {
        self.enabled.then(|| {
            self.watch_events
                .with_label_values(&[group, version, resource])
        })
    }

    /// Objects stored per resource label, replacing the last count.
    pub fn set_storage_objects(&self, counts: &BTreeMap<String, u64>) {
        self.storage_objects.reset();
        for (resource, count) in counts {
            self.storage_objects
                .with_label_values(&[resource])
                .set(i64::try_from(*count).unwrap_or(i64::MAX));
        }
    }

    /// What a shard's store did and does in this process.
    pub fn observe_store(&self, shard: &str, stats: trellis_storage::CommitStats, watchers: usize) {
        advance(
            &self.commit_batches.with_label_values(&[shard]),
            stats.batches,
        );
        advance(
            &self.commit_writes.with_label_values(&[shard]),
            stats.writes,
        );
        self.watchers
            .with_label_values(&[shard])
            .set(i64::try_from(watchers).unwrap_or(i64::MAX));
    }

    /// Workspaces per (shard, phase), replacing the last count.
    pub fn set_workspaces(&self, counts: &BTreeMap<(String, &'static str), usize>) {
        self.workspaces.reset();
        for ((shard, phase), count) in counts {
            self.workspaces
                .with_label_values(&[shard.as_str(), phase])
                .set(i64::try_from(*count).unwrap_or(i64::MAX));
        }
    }

    /// Whether this replica leads now.
    pub fn set_leader(&self, leading: bool) {
        if leading && self.leader.get() == 0 {
            self.leader_acquisitions.inc();
        }
        self.leader.set(i64::from(leading));
    }

    /// One placement pass: how long it decided, on how many deployments, and the Placement
    /// writes it planned (created, updated, deleted).
    pub fn placement_pass(&self, decided_in: Duration, decided: usize, writes: [usize; 3]) {
        self.placement_duration.observe(decided_in.as_secs_f64());
        self.placement_decisions.inc_by(decided as u64);
        for (operation, count) in ["create", "update", "delete"].iter().zip(writes) {
            self.placement_writes
                .with_label_values(&[operation])
                .inc_by(count as u64);
        }
    }

    /// The fleet as the placement controller last saw it.
    pub fn set_fleet(&self, fleet: &FleetHealth) {
        self.synctargets
            .with_label_values(&["true"])
            .set(fleet.ready_targets);
        self.synctargets
            .with_label_values(&["false"])
            .set(fleet.unready_targets);
        self.heartbeat_age.set(fleet.oldest_heartbeat_seconds);
        self.pool_gpus.reset();
        for ((pool, class), (allocated, capacity)) in &fleet.pools {
            self.pool_gpus
                .with_label_values(&[pool, class, "allocated"])
                .set(*allocated);
            self.pool_gpus
                .with_label_values(&[pool, class, "capacity"])
                .set(*capacity);
        }
    }

    /// Every metric in the text format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing to a Vec fails only on a family the registry itself produced wrongly.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "encoding metrics");
        }
        out
    }
}

/// Moves a counter up to `total` (a count kept elsewhere, read when scraped).
fn advance(counter: &IntCounter, total: u64) {
    let current = counter.get();
    if total > current {
        counter.inc_by(total - current);
    }
}

/// kube-apiserver's verb label: the HTTP method for writes (`APPLY` for a server-side apply
/// patch), the Kubernetes verb for reads.
pub fn verb_label(verb: crate::machinery::request_info::Verb, apply: bool) -> &'static str {
    use crate::machinery::request_info::Verb;
    match verb {
        Verb::Get => "GET",
        Verb::List => "LIST",
        Verb::Watch => "WATCH",
        Verb::Create => "POST",
        Verb::Update => "PUT",
        Verb::Patch if apply => "APPLY",
        Verb::Patch => "PATCH",
        Verb::Delete => "DELETE",
        Verb::DeleteCollection => "DELETECOLLECTION",
    }
}

/// kube-apiserver's scope label of a resource request.
pub fn scope_label(request: &crate::machinery::request_info::ResourceRequest) -> &'static str {
    use crate::machinery::request_info::Verb;
    if request.name.is_some() || request.verb == Verb::Create {
        "resource"
    } else if request.namespace.is_some() {
        "namespace"
    } else {
        "cluster"
    }
}

/// The label of a subresource: the ones Kubernetes serves, else [`OTHER`].
pub fn subresource_label(subresource: Option<&str>) -> &'static str {
    const KNOWN: &[&str] = &[
        "status",
        "scale",
        "finalize",
        "token",
        "approval",
        "binding",
        "eviction",
        "log",
        "ephemeralcontainers",
        "resize",
    ];
    match subresource {
        None => "",
        Some(s) => KNOWN.iter().find(|k| **k == s).copied().unwrap_or(OTHER),
    }
}

/// kube-apiserver's `apiserver_storage_objects` label of a storage resource (`core/configmaps`
/// → `configmaps`, `apps/deployments` → `deployments.apps`).
pub fn storage_resource_label(storage_resource: &str) -> String {
    match storage_resource.split_once('/') {
        Some(("core" | "", plural)) => plural.to_string(),
        Some((group, plural)) => format!("{plural}.{group}"),
        None => storage_resource.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machinery::request_info::{self, Target};

    fn labels_of(method: &str, path: &str) -> (&'static str, &'static str) {
        let info = request_info::parse(method, path, &Default::default()).unwrap();
        let Target::Resource(request) = info.target else {
            panic!("not a resource request")
        };
        (verb_label(request.verb, false), scope_label(&request))
    }

    #[test]
    fn verbs_and_scopes_as_kube_apiserver_labels_them() {
        assert_eq!(
            labels_of("GET", "/api/v1/namespaces/a/configmaps/x"),
            ("GET", "resource")
        );
        assert_eq!(
            labels_of("GET", "/api/v1/namespaces/a/configmaps"),
            ("LIST", "namespace")
        );
        assert_eq!(labels_of("GET", "/api/v1/configmaps"), ("LIST", "cluster"));
        assert_eq!(
            labels_of("POST", "/api/v1/namespaces/a/configmaps"),
            ("POST", "resource")
        );
        assert_eq!(
            labels_of("DELETE", "/api/v1/namespaces/a/configmaps"),
            ("DELETECOLLECTION", "namespace")
        );
        assert_eq!(verb_label(request_info::Verb::Patch, true), "APPLY");
    }

    #[test]
    fn label_values_stay_in_bounded_sets() {
        assert_eq!(subresource_label(None), "");
        assert_eq!(subresource_label(Some("status")), "status");
        assert_eq!(subresource_label(Some("anything-a-client-sends")), OTHER);
        assert_eq!(storage_resource_label("core/configmaps"), "configmaps");
        assert_eq!(
            storage_resource_label("tenancy.trellis.dev/workspaces"),
            "workspaces.tenancy.trellis.dev"
        );
    }

    #[test]
    fn recorded_requests_render_in_the_text_format() {
        let metrics = Metrics::new(true);
        let labels = RequestLabels {
            verb: "POST",
            group: "",
            version: "v1",
            resource: "configmaps",
            subresource: "",
            scope: "resource",
        };
        {
            let _in_flight = metrics.in_flight(true);
            metrics.request(&labels, "201", Duration::from_millis(3));
            metrics.request(&labels, "201", Duration::from_millis(30));
        }
        let watch = metrics.long_running(&labels);
        metrics.set_leader(true);
        metrics.set_leader(true);
        let text = String::from_utf8(metrics.render()).unwrap();
        assert!(text.contains(
            "apiserver_request_total{code=\"201\",component=\"apiserver\",group=\"\",resource=\"configmaps\",scope=\"resource\",subresource=\"\",verb=\"POST\",version=\"v1\"} 2"
        ), "{text}");
        assert!(text.contains("apiserver_request_duration_seconds_bucket{component=\"apiserver\",group=\"\",resource=\"configmaps\",scope=\"resource\",subresource=\"\",verb=\"POST\",version=\"v1\",le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("apiserver_current_inflight_requests{request_kind=\"mutating\"} 0"));
        assert!(text.contains("apiserver_longrunning_requests{component=\"apiserver\",group=\"\",resource=\"configmaps\",scope=\"resource\",subresource=\"\",verb=\"POST\",version=\"v1\"} 1"));
        assert!(text.contains("trellis_leader 1"));
        assert!(text.contains("trellis_leader_acquisitions_total 1"));
        drop(watch);
        let text = String::from_utf8(metrics.render()).unwrap();
        assert!(text.contains("apiserver_longrunning_requests{component=\"apiserver\",group=\"\",resource=\"configmaps\",scope=\"resource\",subresource=\"\",verb=\"POST\",version=\"v1\"} 0"));
    }

    #[test]
    fn disabled_metrics_record_nothing() {
        let metrics = Metrics::new(false);
        let labels = RequestLabels {
            verb: "GET",
            group: "",
            version: "v1",
            resource: "configmaps",
            subresource: "",
            scope: "resource",
        };
        let _in_flight = metrics.in_flight(false);
        metrics.request(&labels, "200", Duration::from_millis(1));
        assert!(metrics.watch_events("", "v1", "configmaps").is_none());
        let text = String::from_utf8(metrics.render()).unwrap();
        assert!(!text.contains("apiserver_request_total{"), "{text}");
    }
}
