//! The GPU fleet end to end with nothing simulated but the GPUs: a hub (the real `trellis`
//! binary on a throwaway Postgres database), three edge clusters (the real `trellis-edge`
//! binary: `eu-1` with the device plugin, `eu-2` with DRA, `us-1` whose free GPUs are
//! scattered two per node) and their three `trellis-syncer` processes, each registered with
//! `trellis synctarget create`, all on 127.0.0.1. A GPUPool and two tenant workspaces with
//! quotas are applied with kubectl as the admin, ModelDeployments with kubectl; everything is
//! asserted through kubectl and kube-rs, on the hub and on the edges.
//!
//! One fleet serves every scenario, in order (one test: the hub's 40 s heartbeat timeout is
//! waited out once): a deployment running on an edge and Ready on the hub; a quota refusal;
//! fragmented GPUs skipped; tenants isolated and edge objects labelled back to their origin;
//! a syncer restarted without duplicates; the hub restarted mid-run; a syncer killed and its
//! replica moved, the old copy removed only once the new one is Available; and pods stuck
//! Unschedulable on an edge, reported as `Degraded`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use serde_json::Value;
use trellis_apis::compute::Placement;
use trellis_integration_tests::otlp::OtlpReceiver;
use trellis_integration_tests::processes::{
    eventually, kubectl_ok as ok, start_syncer, wait_long, EdgeProcess, HubProcess, Process,
};
use trellis_integration_tests::{kubectl_with_kubeconfig, user_kubeconfig, write_file};
use trellis_testkit::PostgresCluster;

const PROVIDER: &str = "root:platform";
const ACME: &str = "root:acme";
const GLOBEX: &str = "root:globex";

const POOL: &str = r#"
apiVersion: compute.trellis.dev/v1alpha1
kind: GPUPool
metadata: {name: h200}
spec:
  classes:
  - name: h200
    match: {productName: NVIDIA H200}
  tenants:
  - workspace: root:acme
    quotas: [{class: h200, nominalQuota: 32}]
  - workspace: root:globex
    quotas: [{class: h200, nominalQuota: 8, borrowingLimit: 0}]
"#;

/// A ModelDeployment in namespace `default` of `replicas` × `gpus` H200s from the pool, on
/// targets of `region`, failing over after two seconds.
fn model_deployment(name: &str, replicas: u32, gpus: u32, region: &str, image: &str) -> String {
    format!(
        r#"
apiVersion: serving.trellis.dev/v1alpha1
kind: ModelDeployment
metadata: {{name: {name}, namespace: default}}
spec:
  model: {{uri: "hf://meta-llama/Llama-3.1-8B-Instruct", servedName: {name}}}
  runtime: {{image: "{image}"}}
  resources: {{gpu: {{class: h200, count: {gpus}}}}}
  replicas: {replicas}
  placement:
    pool: "root:platform/h200"
    targetSelector: {{matchLabels: {{topology.kubernetes.io/region: {region}}}}}
  failover: {{tolerationSeconds: 2}}
"#
    )
}

/// A task aborted when dropped (also when the test fails: the runtime waits for its tasks).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A simulated edge cluster and its syncer.
struct Edge {
    name: &'static str,
    _edge: Process,
    syncer: Process,
    kubeconfig: PathBuf,
    hub_kubeconfig: PathBuf,
    syncer_log: PathBuf,
    syncer_args: Vec<String>,
}

impl Edge {
    /// `trellis-edge` with `args`, pods starting at once.
    fn start(name: &'static str, dir: &Path, args: &[&str]) -> Edge {
        let mut all = vec![
            "--pod-start-delay",
            "0s",
            "--pod-ready-delay",
            "0s",
            "--heartbeat-interval",
            "5s",
        ];
        all.extend_from_slice(args);
        let edge = EdgeProcess::start(name, dir, &all);
        Edge {
            name,
            kubeconfig: edge.kubeconfig.clone(),
            _edge: edge.process,
            syncer: Process::none(),
            hub_kubeconfig: dir.join(format!("{name}.kubeconfig")),
            syncer_log: dir.join(format!("{name}-syncer.log")),
            syncer_args: Vec::new(),
        }
    }

    fn wait_serving(&self) {
        eventually(
            "the edge serves",
            || self.kubeconfig.is_file() && self.kubectl(&["get", "--raw", "/readyz"]).0,
            |ready| *ready,
        );
    }

    fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        kubectl_with_kubeconfig(&self.kubeconfig, args)
    }

    fn ok(&self, args: &[&str]) -> String {
        ok(&self.kubeconfig, args)
    }

    /// (Re)starts the syncer.
    fn start_syncer(&mut self) {
        self.syncer.kill();
        let mut args = vec!["--heartbeat-interval".to_string(), "3s".to_string()];
        args.extend(self.syncer_args.iter().cloned());
        self.syncer = start_syncer(
            Path::new(env!("CARGO_BIN_EXE_trellis-syncer")),
            &self.hub_kubeconfig,
            &format!("{PROVIDER}:{}", self.name),
            &self.kubeconfig,
            &args,
            &self.syncer_log,
        );
    }

    /// The syncer's Deployments on the edge, as `namespace/name replicas ready`.
    fn deployments(&self) -> Vec<String> {
        let out = self.ok(&[
            "get",
            "deployments",
            "-A",
            "-l",
            "app.kubernetes.io/managed-by=trellis-syncer",
            "-o",
            "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name} {.spec.replicas} {.status.readyReplicas}{\"\\n\"}{end}",
        ]);
        out.lines().map(|l| l.trim().to_string()).collect()
    }

    fn services(&self) -> Vec<String> {
        let out = self.ok(&[
            "get",
            "services",
            "-A",
            "-l",
            "app.kubernetes.io/managed-by=trellis-syncer",
            "-o",
            "name",
        ]);
        out.lines().map(str::to_string).collect()
    }
}

/// The hub, three edges with their syncers, the pool and two tenants.
struct Fleet {
    hub: HubProcess,
    edges: BTreeMap<&'static str, Edge>,
    dir: tempfile::TempDir,
    alice: PathBuf,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // What the processes said, to tell why.
            for entry in std::fs::read_dir(self.dir.path()).into_iter().flatten() {
                let path = entry.map(|e| e.path());
                if let Ok(path) = path {
                    if path.extension().is_some_and(|e| e == "log") {
                        let text = std::fs::read_to_string(&path).unwrap_or_default();
                        let lines: Vec<&str> = text.lines().collect();
                        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
                        eprintln!("==== {} ====\n{tail}", path.display());
                    }
                }
            }
        }
    }
}

impl Fleet {
    async fn start() -> Fleet {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = PostgresCluster::shared()
            .create_database("fleet")
            .await
            .expect("test database");
        let store = db.url().to_string();
        // The database outlives the hub's restart; dropped with the test process.
        std::mem::forget(db);
        // Edges first: they start while the hub does.
        let mut edges = BTreeMap::new();
        for (name, args) in [
            (
                "eu-1",
                [
                    "--nodes",
                    "2",
                    "--gpus-per-node",
                    "8",
                    "--gpu-mode",
                    "device-plugin",
                ],
            ),
            (
                "eu-2",
                ["--nodes", "2", "--gpus-per-node", "8", "--gpu-mode", "dra"],
            ),
            (
                "us-1",
                [
                    "--nodes",
                    "2",
                    "--gpus-per-node",
                    "8",
                    "--gpu-mode",
                    "device-plugin",
                ],
            ),
        ] {
            edges.insert(name, Edge::start(name, dir.path(), &args));
        }
        let hub = HubProcess::start(store, dir.path().join("hub"), dir.path().join("hub.log"));
        for ws in ["platform", "acme", "globex"] {
            ok(&hub.kubeconfig(), &["ws", "create", ws]);
        }
        for (name, edge) in &mut edges {
            edge.wait_serving();
            hub.register_target(PROVIDER, name, &edge.hub_kubeconfig);
            let region = if name.starts_with("eu") {
                "eu-west-1"
            } else {
                "us-east-1"
            };
            hub.ok(
                PROVIDER,
                &[
                    "label",
                    "synctarget",
                    name,
                    &format!("topology.kubernetes.io/region={region}"),
                ],
            );
            if *name == "us-1" {
                // Someone else's work holds six of eight GPUs on each node: 4 free, 2 a node.
                let filler = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: training, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: training}}
  template:
    metadata: {labels: {app: training}}
    spec:
      containers:
      - {name: train, image: "acme/train:1", resources: {limits: {nvidia.com/gpu: "6"}}}
"#;
                edge.ok(&[
                    "apply",
                    "-f",
                    &write_file(dir.path(), "filler.yaml", filler),
                ]);
                eventually(
                    "the filler runs",
                    || {
                        edge.ok(&[
                            "get",
                            "deployment",
                            "training",
                            "-o",
                            "jsonpath={.status.readyReplicas}",
                        ])
                    },
                    |ready| ready == "2",
                );
            }
            if *name == "eu-2" {
                // The syncer decides at start whether GPUs are DRA devices: by the DeviceClass
                // the simulator creates with its nodes.
                eventually(
                    "the DRA DeviceClass",
                    || edge.kubectl(&["get", "deviceclass", "gpu.nvidia.com"]).0,
                    |found| *found,
                );
                hub.ok(PROVIDER, &["label", "synctarget", name, "gpu-mode=dra"]);
                // Replicas stuck Unschedulable are reported within seconds.
                edge.syncer_args = vec!["--unschedulable-timeout".into(), "3s".into()];
            }
            edge.start_syncer();
        }
        hub.ok(
            PROVIDER,
            &["apply", "-f", &write_file(dir.path(), "pool.yaml", POOL)],
        );
        hub.ok(
            ACME,
            &[
                "create",
                "clusterrolebinding",
                "alice-edits",
                "--clusterrole=edit",
                "--user=alice",
            ],
        );
        let alice = user_kubeconfig(&hub.dir, &hub.kubeconfig(), "alice", &[]);
        let fleet = Fleet {
            hub,
            edges,
            dir,
            alice,
        };
        for name in ["eu-1", "eu-2", "us-1"] {
            eventually(
                "the syncer reports Ready and its GPUs",
                || {
                    fleet.target(name, "{.status.conditions[?(@.type==\"Ready\")].status} {.status.gpus[*].productName} {.status.gpus[*].availableDevices}")
                },
                |seen| seen.starts_with("True NVIDIA"),
            );
        }
        fleet
    }

    fn edge(&self, name: &str) -> &Edge {
        &self.edges[name]
    }

    fn target(&self, name: &str, jsonpath: &str) -> String {
        self.hub.ok(
            PROVIDER,
            &[
                "get",
                "synctarget",
                name,
                "-o",
                &format!("jsonpath={jsonpath}"),
            ],
        )
    }

    fn apply(&self, workspace: &str, file: &str, manifest: &str) {
        let path = write_file(self.dir.path(), file, manifest);
        self.hub.ok(workspace, &["apply", "-f", &path]);
    }

    /// A field of a tenant's deployment.
    fn md(&self, workspace: &str, name: &str, jsonpath: &str) -> String {
        self.hub.ok(
            workspace,
            &[
                "get",
                "modeldeployment",
                name,
                "-n",
                "default",
                "-o",
                &format!("jsonpath={jsonpath}"),
            ],
        )
    }

    fn condition(&self, workspace: &str, name: &str, type_: &str) -> String {
        self.md(
            workspace,
            name,
            &format!("{{.status.conditions[?(@.type==\"{type_}\")].status}}/{{.status.conditions[?(@.type==\"{type_}\")].reason}}"),
        )
    }

    fn wait_for(&self, workspace: &str, name: &str, condition: &str) {
        self.hub.ok(
            workspace,
            &[
                "wait",
                &format!("--for=condition={condition}"),
                &format!("modeldeployment/{name}"),
                "-n",
                "default",
                "--timeout=60s",
            ],
        );
    }

    /// The Placements of the deployment with `uid`, as `namespace replicas ready`.
    fn placements_of(&self, uid: &str) -> Vec<String> {
        let out = self.hub.ok(
            PROVIDER,
            &[
                "get",
                "placements",
                "-A",
                "-l",
                &format!("trellis.dev/origin-uid={uid}"),
                "-o",
                "jsonpath={range .items[*]}{.metadata.namespace} {.spec.replicas} {.status.readyReplicas}{\"\\n\"}{end}",
            ],
        );
        let mut lines: Vec<String> = out.lines().map(|l| l.trim().to_string()).collect();
        lines.sort();
        lines
    }

    /// The syncer's Deployments on every edge made for the deployment with `uid`.
    fn on_edges(&self, uid: &str) -> Vec<String> {
        let mut found = Vec::new();
        for (name, edge) in &self.edges {
            let out = edge.ok(&[
                "get",
                "deployments",
                "-A",
                "-l",
                &format!("trellis.dev/origin-uid={uid}"),
                "-o",
                "name",
            ]);
            found.extend(out.lines().map(|l| format!("{name} {l}")));
        }
        found
    }

    /// A kube-rs client as the admin in `workspace`.
    async fn client(&self, workspace: &str) -> kube::Client {
        self.hub.client(workspace).await
    }
}

/// The other eu target.
fn other_eu(target: &str) -> &'static str {
    match target {
        "eu-1" => "eu-2",
        "eu-2" => "eu-1",
        elsewhere => panic!("an eu-west-1 deployment on {elsewhere}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gpu_fleet_of_real_processes() {
    let started = Instant::now();
    // Every process (hub, edges, syncers) exports its traces here.
    let traces = OtlpReceiver::start().await;
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", &traces.endpoint);
    std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "200");
    let mut fleet = Fleet::start().await;
    eprintln!("fleet up in {:?}", started.elapsed());

    // 1. Ready: a deployment of one replica of four H200s in eu-west-1 runs on one eu edge,
    //    with pods Running on H200 nodes; the hub reports its endpoint and the Placement its
    //    ready replica.
    fleet.apply(
        ACME,
        "llama.yaml",
        &model_deployment("llama", 1, 4, "eu-west-1", "vllm/vllm-openai:v0.9.1"),
    );
    fleet.wait_for(ACME, "llama", "Ready");
    let uid = fleet.md(ACME, "llama", "{.metadata.uid}");
    let home = fleet.md(ACME, "llama", "{.status.placements[0].target}");
    let other = other_eu(&home);
    eprintln!("llama runs on {home}");
    let endpoint = fleet.md(ACME, "llama", "{.status.placements[0].endpoint}");
    assert!(
        endpoint.starts_with("http://") && endpoint.contains(".svc.cluster.local:"),
        "{endpoint}"
    );
    assert_eq!(
        fleet.placements_of(&uid),
        vec![format!("target-{home} 1 1")]
    );
    let edge = fleet.edge(&home);
    let deployments = edge.deployments();
    assert_eq!(deployments.len(), 1, "{deployments:?}");
    assert!(deployments[0].ends_with(" 1 1"), "{deployments:?}");
    let namespace = deployments[0]
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(namespace.starts_with("root-acme-default-"), "{namespace}");
    let pods = edge.ok(&[
        "get",
        "pods",
        "-n",
        &namespace,
        "-o",
        "jsonpath={range .items[*]}{.status.phase} {.spec.nodeName}{\"\\n\"}{end}",
    ]);
    let pods: Vec<&str> = pods.lines().collect();
    assert_eq!(pods.len(), 1, "{pods:?}");
    let (phase, node) = pods[0].split_once(' ').unwrap_or_default();
    assert_eq!(phase, "Running");
    let product = edge.ok(&[
        "get",
        "node",
        node,
        "-o",
        r"jsonpath={.metadata.labels.nvidia\.com/gpu\.product}",
    ]);
    assert_eq!(product, "NVIDIA-H200");
    assert_eq!(edge.services().len(), 1);
    assert!(fleet.edge(other).deployments().is_empty());
    // One trace from the tenant's create to the edge's Deployment: the hub's request, the
    // Placement's create (through the deployment's annotation), the syncer's apply (through
    // the Placement's), and the edge's request from the syncer.
    let traceparent = fleet.md(
        ACME,
        "llama",
        r"{.metadata.annotations.trellis\.dev/traceparent}",
    );
    let trace = traceparent
        .split('-')
        .nth(1)
        .unwrap_or_default()
        .to_string();
    assert_eq!(trace.len(), 32, "{traceparent:?}");
    let spans = traces
        .wait_for(
            "the deployment's trace on the edge",
            Duration::from_secs(30),
            |spans| {
                spans.iter().any(|s| {
                    s.trace_id == trace && s.service == "trellis-edge" && s.name == "request"
                })
            },
        )
        .await;
    let of = |service: &str, name: &str| {
        spans
            .iter()
            .filter(|s| s.trace_id == trace && s.service == service && s.name == name)
            .collect::<Vec<_>>()
    };
    let create = of("trellis", "request")
        .into_iter()
        .find(|s| s.attribute("resource") == Some("modeldeployments"))
        .expect("the hub's request span");
    let placed = of("trellis", "placement.create");
    assert!(
        placed.iter().any(|s| s.parent_span_id == create.span_id),
        "{placed:?} under {create:?}"
    );
    let applied = of("trellis-syncer", "placement.apply");
    assert!(
        applied
            .iter()
            .any(|a| placed.iter().any(|p| a.parent_span_id == p.span_id)),
        "{applied:?} under {placed:?}"
    );
    let on_edge = of("trellis-edge", "request");
    assert!(
        on_edge
            .iter()
            .any(|r| r.attribute("resource") == Some("deployments")),
        "{on_edge:?}"
    );

    // 2. Quota: globex asks for 16 GPUs with a quota of 8; nothing reaches any edge.
    fleet.apply(
        GLOBEX,
        "big.yaml",
        &model_deployment("big", 2, 8, "eu-west-1", "vllm/vllm-openai:v0.9.1"),
    );
    fleet.wait_for(GLOBEX, "big", "QuotaReserved=False");
    assert_eq!(
        fleet.condition(GLOBEX, "big", "QuotaReserved"),
        "False/QuotaExceeded"
    );
    let big = fleet.md(GLOBEX, "big", "{.metadata.uid}");
    assert!(fleet.placements_of(&big).is_empty());
    assert!(fleet.on_edges(&big).is_empty());

    // 3. Fragmented: us-1 has four H200s free, two a node; a replica of four goes nowhere.
    fleet.apply(
        ACME,
        "frag.yaml",
        &model_deployment("frag", 1, 4, "us-east-1", "vllm/vllm-openai:v0.9.1"),
    );
    fleet.wait_for(ACME, "frag", "Scheduled=False");
    assert_eq!(
        fleet.condition(ACME, "frag", "Scheduled"),
        "False/InsufficientContiguousGPUs"
    );
    assert_eq!(
        fleet.target("us-1", "{.status.gpus[0].freeByNode}"),
        r#"[{"freeDevices":2,"nodes":2}]"#
    );
    let frag = fleet.md(ACME, "frag", "{.metadata.uid}");
    assert!(fleet.placements_of(&frag).is_empty());
    assert!(fleet.edge("us-1").deployments().is_empty());

    // 6. Isolation: alice edits in acme, reads nothing of globex nor any Placement; the edge's
    //    objects name their origin.
    let alice = fleet.alice.clone();
    let (ok_, out, err) = fleet.hub.as_user(
        &alice,
        ACME,
        &["get", "modeldeployments", "-n", "default", "-o", "name"],
    );
    assert!(ok_, "{err}");
    assert!(
        out.contains("modeldeployment.serving.trellis.dev/llama"),
        "{out}"
    );
    for (workspace, args) in [
        (
            GLOBEX,
            ["get", "modeldeployments", "-n", "default"].as_slice(),
        ),
        (GLOBEX, &["get", "modeldeployment", "big", "-n", "default"]),
        (PROVIDER, &["get", "placements", "-A"]),
    ] {
        let (ok_, out, err) = fleet.hub.as_user(&alice, workspace, args);
        assert!(!ok_, "alice read {args:?} in {workspace}: {out}");
        assert!(err.to_lowercase().contains("forbidden"), "{err}");
    }
    let edge = fleet.edge(&home);
    let origin: Value = serde_json::from_str(&edge.ok(&[
        "get",
        "deployments",
        "-n",
        &namespace,
        "-o",
        "jsonpath={.items[0].metadata}",
    ]))
    .expect("metadata");
    assert_eq!(origin["labels"]["trellis.dev/origin-uid"], uid.as_str());
    assert_eq!(origin["labels"]["trellis.dev/sync-target"], home.as_str());
    assert_eq!(origin["annotations"]["trellis.dev/origin-workspace"], ACME);
    assert_eq!(
        origin["annotations"]["trellis.dev/origin-namespace"],
        "default"
    );
    assert_eq!(origin["annotations"]["trellis.dev/origin-name"], "llama");

    // 5. A syncer restarted: the same objects on its edge, none doubled, status still written.
    let before = (edge.deployments(), edge.services());
    let beat = fleet.target(&home, "{.status.lastHeartbeatTime}");
    fleet
        .edges
        .get_mut(home.as_str())
        .expect("edge")
        .start_syncer();
    eventually(
        "a heartbeat from the restarted syncer",
        || fleet.target(&home, "{.status.lastHeartbeatTime}"),
        |seen| *seen != beat,
    );
    fleet.hub.ok(
        ACME,
        &[
            "scale",
            "modeldeployment",
            "llama",
            "-n",
            "default",
            "--replicas=2",
        ],
    );
    eventually(
        "two replicas ready after the restart",
        || fleet.placements_of(&uid),
        |p| *p == vec![format!("target-{home} 2 2")],
    );
    let edge = fleet.edge(&home);
    let after = (edge.deployments(), edge.services());
    assert_eq!(after.0.len(), 1, "{after:?}");
    assert_eq!(after.1, before.1);
    assert_eq!(
        after.0[0].split(' ').next(),
        before.0[0].split(' ').next(),
        "the same Deployment"
    );
    fleet.wait_for(ACME, "llama", "Ready");

    // 7. The hub restarted: the syncers come back by themselves, statuses stay right.
    let beats: Vec<String> = ["eu-1", "eu-2", "us-1"]
        .iter()
        .map(|t| fleet.target(t, "{.status.lastHeartbeatTime}"))
        .collect();
    fleet.hub.restart();
    for (target, beat) in ["eu-1", "eu-2", "us-1"].iter().zip(beats) {
        eventually(
            "a heartbeat after the hub's restart",
            || fleet.target(target, "{.status.lastHeartbeatTime}"),
            |seen| *seen != beat,
        );
    }
    fleet.wait_for(ACME, "llama", "Ready");
    assert_eq!(
        fleet.placements_of(&uid),
        vec![format!("target-{home} 2 2")]
    );
    assert_eq!(
        fleet.condition(GLOBEX, "big", "QuotaReserved"),
        "False/QuotaExceeded"
    );
    assert_eq!(fleet.edge(&home).deployments().len(), 1);

    // 4. A syncer killed: after the 40 s heartbeat timeout and two seconds' toleration the
    //    replicas move to the other eu edge; the old Placement goes only once the new one is
    //    Available.
    let placements: Api<Placement> = Api::all(fleet.client(PROVIDER).await);
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let _watching = AbortOnDrop(tokio::spawn({
        let seen = seen.clone();
        let home = home.clone();
        async move {
            let mut available_elsewhere = false;
            let mut stream =
                std::pin::pin!(watcher(placements, Default::default()).default_backoff());
            while let Some(event) = stream.next().await {
                let event = match event {
                    Ok(e) => e,
                    Err(_) => continue,
                };
                match event {
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                        let ns = p.metadata.namespace.clone().unwrap_or_default();
                        if ns != format!("target-{home}")
                            && p.status.as_ref().is_some_and(|s| {
                                s.conditions
                                    .iter()
                                    .any(|c| c.type_ == "Available" && c.status == "True")
                            })
                        {
                            available_elsewhere = true;
                        }
                    }
                    watcher::Event::Delete(p) => {
                        let ns = p.metadata.namespace.clone().unwrap_or_default();
                        seen.lock().expect("lock").push(format!(
                            "deleted {ns}; available elsewhere: {available_elsewhere}"
                        ));
                    }
                    _ => {}
                }
            }
        }
    }));
    let silent = Instant::now();
    fleet
        .edges
        .get_mut(home.as_str())
        .expect("edge")
        .syncer
        .kill();
    wait_long(
        "the unreachable taint",
        Duration::from_secs(90),
        || fleet.target(&home, "{.spec.taints[*].key}"),
        |taints| taints == "trellis.dev/unreachable",
    );
    assert!(
        silent.elapsed() >= Duration::from_secs(30),
        "{:?}",
        silent.elapsed()
    );
    // The new copy's pods must start and report Available before the old copy goes: on a
    // loaded 2-core machine (seen with two such fleets at once) that takes more than 30 s.
    wait_long(
        "the replicas on the other eu edge, the old copy gone",
        Duration::from_secs(90),
        || fleet.placements_of(&uid),
        |p| *p == vec![format!("target-{other} 2 2")],
    );
    eprintln!("failed over {:?} after the kill", silent.elapsed());
    fleet.wait_for(ACME, "llama", "Ready");
    assert_eq!(
        fleet.md(ACME, "llama", "{.status.placements[*].target}"),
        other
    );
    assert_eq!(fleet.edge(other).deployments().len(), 1);
    if other == "eu-2" {
        // On the DRA edge the replicas claim their GPUs: a template, and a claim per pod
        // allocated on the node it runs on.
        let dra = fleet.edge(other);
        let templates = dra.ok(&[
            "get",
            "resourceclaimtemplates",
            "-A",
            "-l",
            "app.kubernetes.io/managed-by=trellis-syncer",
            "-o",
            "name",
        ]);
        assert_eq!(templates.lines().count(), 1, "{templates}");
        let claims = dra.ok(&[
            "get",
            "resourceclaims",
            "-A",
            "-o",
            "jsonpath={range .items[*]}{.status.allocation.devices.results[*].device}{\"\\n\"}{end}",
        ]);
        assert_eq!(claims.lines().count(), 2, "{claims}");
        assert!(
            claims.lines().all(|l| l.split(' ').count() == 4),
            "four devices a claim: {claims}"
        );
    }
    eventually(
        "the old Placement's deletion watched",
        || seen.lock().expect("lock").clone(),
        |s| !s.is_empty(),
    );
    assert_eq!(
        seen.lock().expect("lock").clone(),
        vec![format!("deleted target-{home}; available elsewhere: true")]
    );
    // The old edge still runs the copy its dead syncer made; restarted, the syncer removes it.
    assert_eq!(fleet.edge(&home).deployments().len(), 1);
    fleet
        .edges
        .get_mut(home.as_str())
        .expect("edge")
        .start_syncer();
    eventually(
        "the old copy removed from the old edge",
        || {
            (
                fleet.edge(&home).deployments(),
                fleet.edge(&home).services(),
            )
        },
        |(d, s)| d.is_empty() && s.is_empty(),
    );
    eventually(
        "the taint lifted",
        || fleet.target(&home, "{.spec.taints[*].key}"),
        String::is_empty,
    );

    // 8. Pods stuck Unschedulable on eu-2 (its nodes cordoned): its syncer reports it after
    //    its 3 s --unschedulable-timeout, and the hub marks the deployment Degraded. Its
    //    selector matches eu-2 alone, so there is nowhere else to go: the replica stays (a
    //    deployment with somewhere to go is re-placed: `integration-tests/tests/fleet.rs`).
    let eu2 = fleet.edge("eu-2");
    for node in eu2.ok(&["get", "nodes", "-o", "name"]).lines() {
        eu2.ok(&["cordon", node]);
    }
    fleet.apply(
        ACME,
        "stuck.yaml",
        &format!(
            "{}  # only on eu-2\n",
            model_deployment("stuck", 1, 2, "eu-west-1", "vllm/vllm-openai:v0.9.1")
        )
        .replace(
            "topology.kubernetes.io/region: eu-west-1",
            "topology.kubernetes.io/region: eu-west-1, gpu-mode: dra",
        ),
    );
    eventually(
        "stuck degraded",
        || fleet.condition(ACME, "stuck", "Degraded"),
        |c| c.starts_with("True/"),
    );
    let stuck = fleet.md(ACME, "stuck", "{.metadata.uid}");
    let reported = fleet.hub.ok(
        PROVIDER,
        &[
            "get",
            "placements",
            "-n",
            "target-eu-2",
            "-l",
            &format!("trellis.dev/origin-uid={stuck}"),
            "-o",
            "jsonpath={.items[0].status.conditions[?(@.type==\"Progressing\")].status}/{.items[0].status.conditions[?(@.type==\"Progressing\")].reason}",
        ],
    );
    assert_eq!(reported, "False/Unschedulable");
    // Still only on eu-2, never deleted first: nothing else is selected.
    assert_eq!(
        fleet.placements_of(&stuck),
        vec!["target-eu-2 1".to_string()]
    );
    eprintln!(
        "stuck: Degraded {}",
        fleet.condition(ACME, "stuck", "Degraded")
    );
    eprintln!("all scenarios in {:?}", started.elapsed());
}
