//! The GPU fleet end to end, through the real kubectl: a platform team's provider workspace
//! with three SyncTargets whose status the test writes as their syncers would (heartbeats,
//! `Ready`, the real H200 reading: `NVIDIA H200`, 143771 MiB, Hopper, compute capability
//! 9.0, nodes of eight), a GPUPool with two tenant workspaces and their quotas, and the hub's
//! placement controller turning tenants' ModelDeployments into Placements in the targets'
//! namespaces: placed within quota, refused past it or when free GPUs are scattered over
//! nodes, out of other tenants' sight, removed with their deployment, and moved off a target
//! that stops heartbeating once the new copy is available.
//!
//! Like real syncers, the test's status writes try again on 409 Conflict: the hub writes the
//! same SyncTargets (their `HeartbeatHealthy` condition, the unreachable taint).
//!
//! The failover scenario waits out the hub's real heartbeat timeout (40 s, the kubelet's
//! node-monitor grace period) before the target is tainted: it takes about a minute.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use trellis_integration_tests::fleet::{now_rfc3339, placement_available, sync_target_status};
use trellis_integration_tests::{kubectl_with_kubeconfig, on_both_stores, write_file, Hub};

const PROVIDER: &str = "root:platform";
const ACME: &str = "root:acme";
const GLOBEX: &str = "root:globex";
/// How often the test's "syncers" heartbeat (a real one: every 10 s).
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

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

/// A ModelDeployment of `replicas` replicas of `gpus` H200s from the pool, in namespace
/// `default`; `placement` is more YAML under `spec.placement` (a target selector) and `spec`
/// more at the end of `spec` (failover settings).
fn deployment(name: &str, replicas: u32, gpus: u32, placement: &str, spec: &str) -> String {
    format!(
        r#"
apiVersion: serving.trellis.dev/v1alpha1
kind: ModelDeployment
metadata: {{name: {name}, namespace: default}}
spec:
  model: {{uri: "hf://meta-llama/Llama-3.1-8B-Instruct", servedName: llama-8b}}
  runtime: {{image: "vllm/vllm-openai:v0.9.1", args: ["--max-model-len", "8192"]}}
  resources: {{gpu: {{class: h200, count: {gpus}}}}}
  replicas: {replicas}
  placement:
    pool: "root:platform/h200"
{placement}
{spec}
"#
    )
}

/// A provider workspace with three targets, a pool and two tenants, and syncers that
/// heartbeat until dropped.
struct Fleet<'h> {
    hub: &'h Hub,
    base: String,
    dir: tempfile::TempDir,
    /// The targets whose syncers heartbeat.
    beating: Arc<Mutex<BTreeSet<String>>>,
    stop: Arc<AtomicBool>,
    heart: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Fleet<'_> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(heart) = self.heart.take() {
            let _ = heart.join();
        }
    }
}

impl<'h> Fleet<'h> {
    /// Workspaces `root:platform` (the provider), `root:acme` and `root:globex` (tenants);
    /// targets `eu-1` and `eu-2` (eu-west-1, two nodes with all eight H200s free each) and
    /// `us-1` (us-east-1, eight nodes with two of eight free each: 16 free, never four on one
    /// node); pool `h200` giving acme 32 and globex 8 (no borrowing).
    fn set_up(hub: &'h Hub) -> Fleet<'h> {
        let server = hub.ok(&[
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ]);
        let base = server.trim_end_matches("/clusters/root").to_string();
        for ws in ["platform", "acme", "globex"] {
            hub.ok(&["ws", "create", ws]);
        }
        let mut fleet = Fleet {
            hub,
            base,
            dir: tempfile::tempdir().expect("temp dir"),
            beating: Arc::default(),
            stop: Arc::default(),
            heart: None,
        };
        for (name, region, free) in [
            ("eu-1", "eu-west-1", [(8, 2)].as_slice()),
            ("eu-2", "eu-west-1", &[(8, 2)]),
            ("us-1", "us-east-1", &[(2, 8)]),
        ] {
            let manifest = format!(
                "apiVersion: compute.trellis.dev/v1alpha1\nkind: SyncTarget\n\
                 metadata:\n  name: {name}\n  labels:\n    topology.kubernetes.io/region: {region}\n\
                 spec: {{}}\n"
            );
            fleet.apply(PROVIDER, &format!("{name}.yaml"), &manifest);
            fleet.syncer_reports(name, free);
            fleet.beating.lock().expect("lock").insert(name.to_string());
        }
        fleet.apply(PROVIDER, "pool.yaml", POOL);
        fleet.heart = Some(fleet.start_heartbeats());
        fleet
    }

    fn server(&self, workspace: &str) -> String {
        format!("{}/clusters/{workspace}", self.base)
    }

    /// kubectl as the admin in `workspace`, which must succeed; its stdout.
    fn ok(&self, workspace: &str, args: &[&str]) -> String {
        let server = self.server(workspace);
        let mut full = vec!["--server", server.as_str()];
        full.extend_from_slice(args);
        self.hub.ok(&full)
    }

    fn apply(&self, workspace: &str, file: &str, manifest: &str) {
        let path = write_file(self.dir.path(), file, manifest);
        self.ok(workspace, &["apply", "-f", &path]);
    }

    /// What target `name`'s syncer writes when it starts: Ready, its version, its GPUs as
    /// (free devices, nodes) buckets over nodes of eight, and a heartbeat.
    fn syncer_reports(&self, name: &str, free: &[(i64, i64)]) {
        let status = sync_target_status(free);
        self.syncer_writes("synctarget", name, None, &status);
    }

    /// A status write of a syncer, which tries again when the hub wrote the object at the
    /// same moment (409 Conflict), as a real syncer's client would.
    fn syncer_writes(&self, kind: &str, name: &str, namespace: Option<&str>, status: &Value) {
        let server = self.server(PROVIDER);
        let patch = status.to_string();
        let mut args = vec![
            "--server",
            server.as_str(),
            "patch",
            kind,
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            patch.as_str(),
        ];
        if let Some(namespace) = namespace {
            args.extend(["-n", namespace]);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (ok, _, err) = self.hub.kubectl(&args);
            if ok {
                return;
            }
            assert!(
                err.contains("(Conflict)") && Instant::now() < deadline,
                "the status of {kind} {name}: {err}"
            );
            eprintln!("status of {kind} {name}: conflict, trying again");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A thread that heartbeats, as each beating target's syncer, every few seconds.
    fn start_heartbeats(&self) -> std::thread::JoinHandle<()> {
        let kubeconfig: PathBuf = self.hub.kubeconfig().to_path_buf();
        let server = self.server(PROVIDER);
        let beating = self.beating.clone();
        let stop = self.stop.clone();
        std::thread::spawn(move || {
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                if Instant::now() >= next {
                    next = Instant::now() + HEARTBEAT_EVERY;
                    let targets: Vec<String> = beating
                        .lock()
                        .map(|b| b.iter().cloned().collect())
                        .unwrap_or_default();
                    let patch = json!({"status": {"lastHeartbeatTime": now_rfc3339()}});
                    for target in targets {
                        let (ok, _, err) = kubectl_with_kubeconfig(
                            &kubeconfig,
                            &[
                                "--server",
                                &server,
                                "patch",
                                "synctarget",
                                &target,
                                "--subresource=status",
                                "--type=merge",
                                "-p",
                                &patch.to_string(),
                            ],
                        );
                        // A heartbeat that lost a race with the hub's write: the next one
                        // comes in a few seconds, as with a real syncer.
                        if !ok {
                            eprintln!("heartbeat of {target} failed: {err}");
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    }

    /// The Placements of the deployment with `uid`, as `namespace replicas retiring-since`.
    fn placements_of(&self, uid: &str) -> Vec<String> {
        let out = self.ok(
            PROVIDER,
            &[
                "get",
                "placements",
                "-A",
                "-l",
                &format!("trellis.dev/origin-uid={uid}"),
                "-o",
                "jsonpath={range .items[*]}{.metadata.namespace} {.spec.replicas} \
                 {.metadata.annotations.trellis\\.dev/retiring-since}{\"\\n\"}{end}",
            ],
        );
        let mut lines: Vec<String> = out.lines().map(|l| l.trim().to_string()).collect();
        lines.sort();
        lines
    }

    /// A field of a tenant's deployment.
    fn md(&self, workspace: &str, name: &str, jsonpath: &str) -> String {
        self.ok(
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

    /// Waits for a condition of a deployment with kubectl wait.
    fn wait_for(&self, workspace: &str, name: &str, condition: &str) {
        self.ok(
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
}

/// Polls `read` for up to `limit` until `done` holds of what it read; fails showing the last
/// reading.
fn wait_long<T: std::fmt::Debug>(
    what: &str,
    limit: Duration,
    mut read: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) {
    let deadline = Instant::now() + limit;
    loop {
        let seen = read();
        if done(&seen) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not reached in {limit:?}; last seen {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// [`wait_long`] for things that happen within a few seconds.
fn eventually<T: std::fmt::Debug>(what: &str, read: impl FnMut() -> T, done: impl Fn(&T) -> bool) {
    wait_long(what, Duration::from_secs(20), read, done)
}

async fn deployments_are_placed_within_quota_and_out_of_other_tenants_sight(hub: &Hub) {
    let fleet = Fleet::set_up(hub);

    // Step "tenant": alice edits in acme (and nowhere else), and deploys there herself.
    fleet.ok(
        ACME,
        &[
            "create",
            "clusterrolebinding",
            "alice-edits",
            "--clusterrole=edit",
            "--user=alice",
        ],
    );
    let alice = hub.user_kubeconfig("alice", &[]);
    let as_alice = |workspace: &str, args: &[&str]| {
        let server = fleet.server(workspace);
        let mut full = vec!["--server", server.as_str()];
        full.extend_from_slice(args);
        kubectl_with_kubeconfig(&alice, &full)
    };
    let llama = write_file(
        fleet.dir.path(),
        "llama.yaml",
        &deployment("llama", 2, 4, "", ""),
    );
    eventually(
        "alice may deploy in acme",
        || as_alice(ACME, &["apply", "-f", &llama]),
        |(ok, _, _)| *ok,
    );

    // Step "scheduled": placed on one eu target (BinPack), its Placement in that target's
    // namespace of the provider workspace, rendered for the target's GPU product.
    fleet.wait_for(ACME, "llama", "Scheduled");
    assert_eq!(
        fleet.condition(ACME, "llama", "QuotaReserved"),
        "True/QuotaReserved"
    );
    let uid = fleet.md(ACME, "llama", "{.metadata.uid}");
    let target = fleet.md(ACME, "llama", "{.status.placements[0].target}");
    assert!(target == "eu-1" || target == "eu-2", "{target}");
    assert_eq!(
        fleet.md(ACME, "llama", "{.status.placements[*].replicas}"),
        "2"
    );
    assert_eq!(
        fleet.placements_of(&uid),
        vec![format!("target-{target} 2")]
    );
    let placement = fleet.ok(
        PROVIDER,
        &[
            "get",
            "placements",
            "-n",
            &format!("target-{target}"),
            "-o",
            "jsonpath={.items[0].spec.resources.gpu.productName}/{.items[0].spec.resources.gpu.count}/{.items[0].spec.origin.workspace}/{.items[0].spec.runtime.image}",
        ],
    );
    assert_eq!(placement, "NVIDIA H200/4/root:acme/vllm/vllm-openai:v0.9.1");
    // Every target has its namespace, where its syncer's credentials can be confined.
    let namespaces = fleet.ok(PROVIDER, &["get", "namespaces", "-o", "name"]);
    for t in ["eu-1", "eu-2", "us-1"] {
        assert!(
            namespaces.contains(&format!("namespace/target-{t}")),
            "{namespaces}"
        );
    }
    // The hub keeps the targets' heartbeat condition and the pool's accounting.
    assert_eq!(
        fleet.ok(
            PROVIDER,
            &[
                "get",
                "synctarget",
                "eu-1",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"HeartbeatHealthy\")].status}",
            ],
        ),
        "True"
    );
    let allocated = || {
        fleet.ok(
            PROVIDER,
            &[
                "get",
                "gpupool",
                "h200",
                "-o",
                "jsonpath={.status.classes[0].allocated}",
            ],
        )
    };
    eventually("the pool's allocation", allocated, |a| a == "8");

    // Step "quota": globex asks for 16 GPUs with a quota of 8: refused, nothing placed.
    fleet.apply(GLOBEX, "big.yaml", &deployment("big", 2, 8, "", ""));
    fleet.wait_for(GLOBEX, "big", "QuotaReserved=False");
    assert_eq!(
        fleet.condition(GLOBEX, "big", "QuotaReserved"),
        "False/QuotaExceeded"
    );
    assert_eq!(
        fleet.condition(GLOBEX, "big", "Scheduled"),
        "False/QuotaExceeded"
    );
    let big = fleet.md(GLOBEX, "big", "{.metadata.uid}");
    assert!(fleet.placements_of(&big).is_empty());

    // Step "fragmented": 16 H200s free in us-east-1, but two per node: no node takes a
    // replica of four.
    let selector = "    targetSelector: {matchLabels: {topology.kubernetes.io/region: us-east-1}}";
    fleet.apply(ACME, "frag.yaml", &deployment("frag", 1, 4, selector, ""));
    fleet.wait_for(ACME, "frag", "Scheduled=False");
    assert_eq!(
        fleet.condition(ACME, "frag", "Scheduled"),
        "False/InsufficientContiguousGPUs"
    );
    assert_eq!(
        fleet.condition(ACME, "frag", "QuotaReserved"),
        "True/QuotaReserved"
    );
    let frag = fleet.md(ACME, "frag", "{.metadata.uid}");
    assert!(fleet.placements_of(&frag).is_empty());

    // Step "isolation": alice reads her workspace's deployments, not globex's, and never a
    // Placement; the tenant workspace holds none.
    let (ok, out, err) = as_alice(
        ACME,
        &["get", "modeldeployments", "-n", "default", "-o", "name"],
    );
    assert!(ok, "{err}");
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
        let (ok, out, err) = as_alice(workspace, args);
        assert!(!ok, "alice read {args:?} in {workspace}: {out}");
        assert!(
            err.contains("Forbidden") || err.contains("forbidden"),
            "{args:?} in {workspace}: {err}"
        );
    }
    assert!(fleet
        .ok(ACME, &["get", "placements", "-A", "-o", "name"])
        .trim()
        .is_empty());

    // Step "deletion": deleting the deployment removes its Placements.
    let (ok, _, err) = as_alice(
        ACME,
        &["delete", "modeldeployment", "llama", "-n", "default"],
    );
    assert!(ok, "{err}");
    eventually(
        "the Placements removed",
        || fleet.placements_of(&uid),
        Vec::is_empty,
    );
    eventually("the pool's allocation", allocated, |a| {
        a.is_empty() || a == "0"
    });
}

async fn replicas_leave_a_silent_target_once_their_replacement_is_available(hub: &Hub) {
    let fleet = Fleet::set_up(hub);
    let failover = "  failover: {tolerationSeconds: 2}";
    fleet.apply(
        ACME,
        "mistral.yaml",
        &deployment("mistral", 1, 8, "", failover),
    );
    fleet.wait_for(ACME, "mistral", "Scheduled");
    let uid = fleet.md(ACME, "mistral", "{.metadata.uid}");
    let home = fleet.md(ACME, "mistral", "{.status.placements[0].target}");
    let other = match home.as_str() {
        "eu-1" => "eu-2",
        "eu-2" => "eu-1",
        elsewhere => panic!("a replica of eight H200s on {elsewhere}"),
    };
    assert_eq!(fleet.placements_of(&uid), vec![format!("target-{home} 1")]);
    // A second deployment may only run on home (its selector matches home alone), in the
    // node mistral left free.
    fleet.ok(PROVIDER, &["label", "synctarget", &home, "pinned=yes"]);
    fleet.apply(
        ACME,
        "pinned.yaml",
        &deployment(
            "pinned",
            1,
            4,
            "    targetSelector: {matchLabels: {pinned: \"yes\"}}",
            failover,
        ),
    );
    fleet.wait_for(ACME, "pinned", "Scheduled");
    let pinned_uid = fleet.md(ACME, "pinned", "{.metadata.uid}");
    assert_eq!(
        fleet.placements_of(&pinned_uid),
        vec![format!("target-{home} 1")]
    );

    // Step "silence": home's syncer stops; after the 40 s heartbeat timeout the hub marks it
    // unreachable (NoExecute) and not Ready.
    fleet.beating.lock().expect("lock").remove(&home);
    let silent_since = Instant::now();
    wait_long(
        "the unreachable taint",
        Duration::from_secs(90),
        || {
            fleet.ok(
                PROVIDER,
                &[
                    "get",
                    "synctarget",
                    &home,
                    "-o",
                    "jsonpath={.spec.taints[*].key}",
                ],
            )
        },
        |taints| taints == "trellis.dev/unreachable",
    );
    assert!(
        silent_since.elapsed() >= Duration::from_secs(30),
        "tainted after only {:?}",
        silent_since.elapsed()
    );
    assert_eq!(
        fleet.ok(
            PROVIDER,
            &[
                "get",
                "synctarget",
                &home,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].reason}",
            ],
        ),
        "HeartbeatMissed"
    );

    // Step "move": two seconds later (the toleration) the replica is placed on the other eu
    // target; the old copy keeps running, retiring, while the new one starts.
    wait_long(
        "the replacement",
        Duration::from_secs(30),
        || fleet.placements_of(&uid),
        |placed| placed.len() == 2,
    );
    let placed = fleet.placements_of(&uid);
    let (old, new): (Vec<&String>, Vec<&String>) = placed
        .iter()
        .partition(|l| l.starts_with(&format!("target-{home} ")));
    assert_eq!(new, vec![&format!("target-{other} 1")], "{placed:?}");
    assert!(
        old.len() == 1 && old[0].split(' ').count() == 3,
        "the old copy is marked retiring: {placed:?}"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        fleet.placements_of(&uid).len(),
        2,
        "kept until the new copy serves"
    );

    // Step "handover": the new target's syncer reports the replica available; the old copy
    // goes, and the deployment is Ready on the other target.
    let namespace = format!("target-{other}");
    let (name, generation) = only_placement(&fleet, &namespace);
    let status = placement_available(generation, &format!("http://{other}.gpu.example:8000"));
    fleet.syncer_writes("placement", &name, Some(&namespace), &status);
    eventually(
        "the old copy removed",
        || fleet.placements_of(&uid),
        |placed| *placed == vec![format!("target-{other} 1")],
    );
    fleet.wait_for(ACME, "mistral", "Ready");
    assert_eq!(
        fleet.md(ACME, "mistral", "{.status.placements[*].target}"),
        other
    );
    assert_eq!(
        fleet.md(ACME, "mistral", "{.status.placements[0].endpoint}"),
        format!("http://{other}.gpu.example:8000")
    );

    // Step "nowhere to go": the pinned deployment has no other target; its replica stays
    // where it is (never deleted first), and the deployment says why.
    eventually(
        "pinned degraded",
        || fleet.condition(ACME, "pinned", "Degraded"),
        |c| c == "True/NoAlternativeCapacity",
    );
    assert_eq!(
        fleet.placements_of(&pinned_uid),
        vec![format!("target-{home} 1")],
        "a replica with nowhere to go is kept"
    );

    // Step "back": home heartbeats again; the hub lifts the taint, and the pinned replica is
    // not doubled.
    fleet.syncer_reports(&home, &[(8, 1), (4, 1)]);
    fleet.beating.lock().expect("lock").insert(home.clone());
    eventually(
        "the taint lifted",
        || {
            fleet.ok(
                PROVIDER,
                &[
                    "get",
                    "synctarget",
                    &home,
                    "-o",
                    "jsonpath={.spec.taints[*].key}",
                ],
            )
        },
        |taints| taints.is_empty(),
    );
    eventually(
        "pinned no longer degraded",
        || fleet.condition(ACME, "pinned", "Degraded"),
        |c| !c.starts_with("True"),
    );
    assert_eq!(
        fleet.placements_of(&pinned_uid),
        vec![format!("target-{home} 1")],
        "no duplicate on the returning target"
    );
}

/// The name and generation of the one Placement in a target's namespace.
fn only_placement(fleet: &Fleet, namespace: &str) -> (String, i64) {
    let out = fleet.ok(
        PROVIDER,
        &[
            "get",
            "placements",
            "-n",
            namespace,
            "-o",
            "jsonpath={.items[0].metadata.name} {.items[0].metadata.generation}",
        ],
    );
    let (name, generation) = out.split_once(' ').expect("a placement");
    (name.to_string(), generation.parse().expect("generation"))
}

async fn replicas_a_cluster_cannot_schedule_are_placed_elsewhere(hub: &Hub) {
    let fleet = Fleet::set_up(hub);
    fleet.apply(ACME, "qwen.yaml", &deployment("qwen", 1, 8, "", ""));
    fleet.wait_for(ACME, "qwen", "Scheduled");
    let uid = fleet.md(ACME, "qwen", "{.metadata.uid}");
    let home = fleet.md(ACME, "qwen", "{.status.placements[0].target}");
    let other = match home.as_str() {
        "eu-1" => "eu-2",
        "eu-2" => "eu-1",
        elsewhere => panic!("a replica of eight H200s on {elsewhere}"),
    };
    // Step "stuck": home's syncer reports the replica unschedulable on its cluster (its GPUs
    // went elsewhere meanwhile), past its timeout.
    let namespace = format!("target-{home}");
    let (name, generation) = only_placement(&fleet, &namespace);
    let stuck = json!({"status": {
        "observedGeneration": generation, "replicas": 1, "readyReplicas": 0,
        "conditions": [
            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                "message": "", "lastTransitionTime": now_rfc3339()},
            {"type": "Progressing", "status": "False", "reason": "Unschedulable",
                "message": "0/2 nodes are available: 2 Insufficient nvidia.com/gpu.",
                "lastTransitionTime": now_rfc3339()},
        ],
    }});
    fleet.syncer_writes("placement", &name, Some(&namespace), &stuck);
    // Step "re-placed": the replica goes to the other target; the stuck copy retires.
    eventually(
        "the replacement",
        || fleet.placements_of(&uid),
        |placed| placed.len() == 2,
    );
    let placed = fleet.placements_of(&uid);
    assert!(placed.contains(&format!("target-{other} 1")), "{placed:?}");
    // Step "handover": once the new copy serves, the stuck one goes.
    let new_namespace = format!("target-{other}");
    let (new_name, new_generation) = only_placement(&fleet, &new_namespace);
    let available =
        placement_available(new_generation, &format!("http://{other}.gpu.example:8000"));
    fleet.syncer_writes("placement", &new_name, Some(&new_namespace), &available);
    eventually(
        "the stuck copy removed",
        || fleet.placements_of(&uid),
        |placed| *placed == vec![format!("target-{other} 1")],
    );
    fleet.wait_for(ACME, "qwen", "Ready");
}

on_both_stores!(
    deployments_are_placed_within_quota_and_out_of_other_tenants_sight,
    replicas_leave_a_silent_target_once_their_replacement_is_available,
    replicas_a_cluster_cannot_schedule_are_placed_elsewhere,
);
