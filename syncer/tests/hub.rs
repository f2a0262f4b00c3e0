//! The syncer against a real hub (in this process, on both stores) and the real kubectl:
//! registration with `trellis synctarget create`, what the syncer's token may and may not do,
//! the `trellis-syncer` binary heartbeating while its cluster is away and resuming after the
//! network to the hub was cut, and the syncer's reports (inventory, Placement status) reaching
//! the hub's placement controller.
//!
//! Here the syncer's cluster is a closed port (the hub hears `ClusterUnreachable`) and the
//! test writes the reports itself; the syncer against real edge clusters (`trellis-edge`),
//! its Deployments, Services, inventory and Placement status, is `tests/gpu_fleet_e2e.rs`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use serde_json::json;
use trellis_apis::compute::Placement;
use trellis_integration_tests::{
    kubectl_with_kubeconfig, on_both_stores, trellis_binary, write_file, Hub,
};
use trellis_syncer::inventory::dra::DraGpus;
use trellis_syncer::inventory::nodes::NodeGpus;
use trellis_syncer::inventory::{build, Inventory};
use trellis_syncer::placement_status::{status, Observed};
use trellis_syncer::render::service::endpoint;
use trellis_syncer::shell::{clients, hub as to_hub};
use trellis_syncer::target_status::Report;

const PROVIDER: &str = "root:platform";
const TENANT: &str = "root:acme";

const POOL: &str = r#"
apiVersion: compute.trellis.dev/v1alpha1
kind: GPUPool
metadata: {name: h200}
spec:
  classes:
  - name: h200
    match: {productName: NVIDIA-H200}
  tenants:
  - workspace: root:acme
    quotas: [{class: h200, nominalQuota: 16}]
"#;

const DEPLOYMENT: &str = r#"
apiVersion: serving.trellis.dev/v1alpha1
kind: ModelDeployment
metadata: {name: llama, namespace: default}
spec:
  model: {uri: "oci://ghcr.io/acme/llama-3.1-8b:v1", servedName: llama-8b}
  runtime: {image: "vllm/vllm-openai:v0.9.1"}
  resources: {gpu: {class: h200, count: 2}}
  replicas: 1
  placement: {pool: "root:platform/h200"}
"#;

/// The hub's URL without a workspace.
fn base(hub: &Hub) -> String {
    let server = hub.ok(&[
        "config",
        "view",
        "--minify",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ]);
    server.trim_end_matches("/clusters/root").to_string()
}

/// kubectl as the admin in `workspace`, which must succeed.
fn admin(hub: &Hub, workspace: &str, args: &[&str]) -> String {
    let server = format!("{}/clusters/{workspace}", base(hub));
    let mut full = vec!["--server", server.as_str()];
    full.extend_from_slice(args);
    hub.ok(&full)
}

/// `trellis synctarget create NAME` in the provider workspace; the syncer's kubeconfig.
fn register(hub: &Hub, dir: &Path, name: &str, token_file: Option<&Path>) -> PathBuf {
    let out = dir.join(format!("{name}.kubeconfig"));
    let mut command = Command::new(trellis_binary());
    command
        .args(["synctarget", "create", name, "--workspace", PROVIDER, "-o"])
        .arg(&out)
        .arg("--kubeconfig")
        .arg(hub.kubeconfig());
    if let Some(file) = token_file {
        command.arg("--token-file").arg(file);
    }
    let run = command.output().expect("run trellis synctarget create");
    assert!(
        run.status.success(),
        "synctarget create: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    out
}

fn polls(what: &str, limit: Duration, mut done: impl FnMut() -> Option<String>) {
    let deadline = Instant::now() + limit;
    let mut last = None;
    while Instant::now() < deadline {
        match done() {
            None => return,
            Some(seen) => last = Some(seen),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("{what}: not reached in {limit:?}; last seen {last:?}");
}

/// A free loopback port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn registration_rbac_heartbeat_and_status(hub: &Hub) {
    let dir = tempfile::tempdir().expect("temp dir");
    for ws in ["platform", "acme"] {
        hub.ok(&["ws", "create", ws]);
    }
    let eu1 = register(hub, dir.path(), "eu-1", None);
    let eu2 = register(hub, dir.path(), "eu-2", None);
    // Registering again changes nothing but the token, here kept in a file the kubeconfig
    // names (the kubectl and kube-rs clients below read it from there).
    let token = dir.path().join("eu-1.token");
    assert_eq!(register(hub, dir.path(), "eu-1", Some(&token)), eu1);
    let first = std::fs::read_to_string(&token).expect("token file");
    assert_eq!(register(hub, dir.path(), "eu-1", Some(&token)), eu1);
    assert_ne!(std::fs::read_to_string(&token).expect("token file"), first);
    assert!(!std::fs::read_to_string(&eu1)
        .expect("kubeconfig")
        .contains(&first));
    the_token_reaches_its_own_target_only(hub, &eu1, &eu2);
    the_readmes_plain_kubectl_steps_do_the_same(hub, dir.path());
    the_syncer_binary_heartbeats(hub, &eu1, dir.path());
    reports_reach_the_placement_controller(hub, &eu1).await;
}

fn the_token_reaches_its_own_target_only(hub: &Hub, eu1: &Path, eu2: &Path) {
    let as_syncer = |args: &[&str]| kubectl_with_kubeconfig(eu1, args);
    let allowed = |args: &[&str]| {
        let (ok, _, err) = as_syncer(args);
        assert!(ok, "the syncer may {args:?}: {err}");
    };
    let forbidden = |args: &[&str]| {
        let (ok, out, err) = as_syncer(args);
        assert!(!ok, "the syncer may not {args:?}, got {out}");
        assert!(
            err.contains("Forbidden") || err.contains("forbidden"),
            "{args:?}: {err}"
        );
    };
    let (_, who, _) = as_syncer(&[
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    ]);
    assert_eq!(who, "system:serviceaccount:target-eu-1:syncer");
    allowed(&["get", "placements", "-n", "target-eu-1"]);
    allowed(&["get", "synctarget", "eu-1"]);
    allowed(&[
        "patch",
        "synctarget",
        "eu-1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"kubernetesVersion":"v1.37.1"}}"#,
    ]);
    // Another target's Placements and status.
    forbidden(&["get", "placements", "-n", "target-eu-2"]);
    forbidden(&["get", "synctarget", "eu-2"]);
    forbidden(&["get", "synctargets"]);
    forbidden(&[
        "patch",
        "synctarget",
        "eu-2",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"kubernetesVersion":"v1.37.1"}}"#,
    ]);
    // Its own target's spec, its Placements' spec, anything else in its namespace.
    forbidden(&["label", "synctarget", "eu-1", "tier=gpu"]);
    forbidden(&["delete", "synctarget", "eu-1"]);
    forbidden(&["get", "secrets", "-n", "target-eu-1"]);
    forbidden(&["get", "configmaps", "-n", "target-eu-1"]);
    forbidden(&["create", "token", "syncer", "-n", "target-eu-1"]);
    forbidden(&["get", "gpupools"]);
    // A tenant workspace: the token is not valid there at all.
    let tenant = format!("{}/clusters/{TENANT}", base(hub));
    let (ok, _, err) = as_syncer(&["--server", &tenant, "get", "namespaces"]);
    // 401: kubectl says "the server has asked for the client to provide credentials".
    assert!(
        !ok && (err.contains("Unauthorized") || err.contains("provide credentials")),
        "{err}"
    );
    // The other target's token is limited the same way, the other way round.
    let (ok, _, _) = kubectl_with_kubeconfig(eu2, &["get", "placements", "-n", "target-eu-1"]);
    assert!(!ok);
    assert!(kubectl_with_kubeconfig(eu2, &["get", "placements", "-n", "target-eu-2"]).0);
}

/// The README's plain-kubectl registration, command by command, for target `eu-3`.
fn the_readmes_plain_kubectl_steps_do_the_same(hub: &Hub, dir: &Path) {
    let admin = dir.join("platform-admin.kubeconfig");
    std::fs::copy(hub.kubeconfig(), &admin).expect("copy the admin kubeconfig");
    let syncer = dir.join("eu-3.kubeconfig");
    let run = |kubeconfig: &Path, args: &[&str]| {
        let (ok, out, err) = kubectl_with_kubeconfig(kubeconfig, args);
        assert!(ok, "kubectl {args:?}: {err}");
        out
    };
    run(&admin, &["ws", "root:platform"]);
    let target = r#"{"apiVersion": "compute.trellis.dev/v1alpha1", "kind": "SyncTarget", "metadata": {"name": "eu-3"}}"#;
    run(
        &admin,
        &["apply", "-f", &write_file(dir, "eu-3.json", target)],
    );
    run(
        &admin,
        &[
            "wait",
            "--for=create",
            "namespace/target-eu-3",
            "--timeout=30s",
        ],
    );
    let manifest = r#"
apiVersion: v1
kind: ServiceAccount
metadata: {name: syncer, namespace: target-eu-3}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: trellis-syncer, namespace: target-eu-3}
rules:
- {apiGroups: [compute.trellis.dev], resources: [placements], verbs: [get, list, watch]}
- {apiGroups: [compute.trellis.dev], resources: [placements/status], verbs: [get, patch, update]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: trellis-syncer-eu-3}
rules:
- {apiGroups: [compute.trellis.dev], resources: [synctargets], resourceNames: [eu-3], verbs: [get, list, watch]}
- {apiGroups: [compute.trellis.dev], resources: [synctargets/status], resourceNames: [eu-3], verbs: [get, patch, update]}
"#;
    run(
        &admin,
        &[
            "apply",
            "-f",
            &write_file(dir, "syncer-rbac.yaml", manifest),
        ],
    );
    run(
        &admin,
        &[
            "create",
            "rolebinding",
            "trellis-syncer",
            "-n",
            "target-eu-3",
            "--role=trellis-syncer",
            "--serviceaccount=target-eu-3:syncer",
        ],
    );
    run(
        &admin,
        &[
            "create",
            "clusterrolebinding",
            "trellis-syncer-eu-3",
            "--clusterrole=trellis-syncer-eu-3",
            "--serviceaccount=target-eu-3:syncer",
        ],
    );
    let ca = run(
        &admin,
        &[
            "config",
            "view",
            "--minify",
            "--raw",
            "-o",
            "jsonpath={.clusters[0].cluster.certificate-authority-data}",
        ],
    );
    let ca = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, ca.trim())
        .expect("the CA is base64");
    let ca_file = dir.join("hub-ca.crt");
    std::fs::write(&ca_file, ca).expect("write the CA");
    let server = run(
        &admin,
        &[
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ],
    );
    assert!(server.ends_with("/clusters/root:platform"), "{server}");
    run(
        &syncer,
        &[
            "config",
            "set-cluster",
            "hub",
            "--embed-certs",
            &format!("--certificate-authority={}", ca_file.display()),
            &format!("--server={server}"),
        ],
    );
    let token = run(
        &admin,
        &[
            "create",
            "token",
            "syncer",
            "-n",
            "target-eu-3",
            "--duration=48h",
        ],
    );
    run(
        &syncer,
        &[
            "config",
            "set-credentials",
            "syncer",
            &format!("--token={}", token.trim()),
        ],
    );
    run(
        &syncer,
        &[
            "config",
            "set-context",
            "syncer",
            "--cluster=hub",
            "--user=syncer",
        ],
    );
    run(&syncer, &["config", "use-context", "syncer"]);
    let who = run(
        &syncer,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    );
    assert_eq!(who, "system:serviceaccount:target-eu-3:syncer");
    run(&syncer, &["get", "placements", "-n", "target-eu-3"]);
    run(&syncer, &["get", "synctarget", "eu-3"]);
    assert!(!kubectl_with_kubeconfig(&syncer, &["get", "placements", "-n", "target-eu-1"]).0);
    assert!(!kubectl_with_kubeconfig(&syncer, &["get", "synctarget", "eu-1"]).0);
    let written = std::fs::read_to_string(&syncer).expect("kubeconfig");
    assert!(
        !written.contains("client-key-data"),
        "no admin credentials: {written}"
    );
}

fn the_syncer_binary_heartbeats(hub: &Hub, eu1: &Path, dir: &Path) {
    // A cluster that is not there: the syncer still heartbeats, saying so. (With a cluster
    // there, see tests/gpu_fleet_e2e.rs.)
    let edge = write_file(
        dir,
        "edge.kubeconfig",
        &json!({"apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "edge", "cluster": {
                "server": format!("https://127.0.0.1:{}", closed_port()),
                "insecure-skip-tls-verify": true}}],
            "users": [{"name": "edge", "user": {"token": "x"}}],
            "contexts": [{"name": "edge", "context": {"cluster": "edge", "user": "edge"}}],
            "current-context": "edge"})
        .to_string(),
    );
    // The syncer reaches the hub through a proxy the test can cut.
    let hub_address: std::net::SocketAddr = base(hub)
        .trim_start_matches("https://")
        .parse()
        .expect("the hub listens on an address");
    let proxy = Proxy::start(hub_address);
    let mut via_proxy: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(eu1).expect("kubeconfig")).expect("json");
    via_proxy["clusters"][0]["cluster"]["server"] = json!(format!(
        "https://127.0.0.1:{}/clusters/{PROVIDER}",
        proxy.port
    ));
    let via_proxy = write_file(dir, "eu-1-via-proxy.kubeconfig", &via_proxy.to_string());
    let heartbeat = || {
        admin(
            hub,
            PROVIDER,
            &[
                "get",
                "synctarget",
                "eu-1",
                "-o",
                "jsonpath={.status.lastHeartbeatTime}",
            ],
        )
    };
    let metrics_port = trellis_testkit::free_loopback_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let _syncer = Killed(
        Command::new(env!("CARGO_BIN_EXE_trellis-syncer"))
            .args(["--hub-kubeconfig", &via_proxy])
            .args(["--target", "root:platform:eu-1", "--kubeconfig", &edge])
            .args(["--metrics-addr", &metrics_addr])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start trellis-syncer"),
    );
    let jsonpath = "jsonpath={.status.lastHeartbeatTime}/{.status.conditions[?(@.type==\"SyncerReady\")].status}/{.status.conditions[?(@.type==\"SyncerReady\")].reason}/{.status.conditions[?(@.type==\"Ready\")].status}";
    let first = std::cell::RefCell::new(String::new());
    polls(
        "SyncerReady False, ClusterUnreachable",
        Duration::from_secs(20),
        || {
            let seen = admin(
                hub,
                PROVIDER,
                &["get", "synctarget", "eu-1", "-o", jsonpath],
            );
            let parts: Vec<&str> = seen.split('/').collect();
            if parts.len() == 4
                && !parts[0].is_empty()
                && parts[1..] == ["False", "ClusterUnreachable", "False"]
            {
                *first.borrow_mut() = parts[0].to_string();
                None
            } else {
                Some(seen)
            }
        },
    );
    // It keeps beating (every second while it waits for its cluster, at most every 10 s).
    polls("a later heartbeat", Duration::from_secs(15), || {
        let seen = admin(
            hub,
            PROVIDER,
            &[
                "get",
                "synctarget",
                "eu-1",
                "-o",
                "jsonpath={.status.lastHeartbeatTime}",
            ],
        );
        (seen == *first.borrow()).then_some(seen)
    });
    // The network between syncer and hub is cut, then back: heartbeats resume by themselves.
    proxy.cut();
    std::thread::sleep(Duration::from_secs(4));
    let during = heartbeat();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(heartbeat(), during, "no heartbeat crosses a cut network");
    proxy.restore();
    polls("a heartbeat after the cut", Duration::from_secs(30), || {
        let seen = heartbeat();
        (seen == during).then_some(seen)
    });
    // Its own metrics count both: heartbeats that landed, and those the cut refused.
    let scraped = syncer_metrics(metrics_port);
    let count = |result: &str| -> f64 {
        let series = format!("trellis_syncer_heartbeats_total{{result=\"{result}\"}} ");
        scraped
            .lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{scraped}"))
    };
    assert!(count("ok") >= 2.0, "{scraped}");
    assert!(count("error") >= 1.0, "{scraped}");
    assert!(scraped.contains("trellis_syncer_last_heartbeat_timestamp_seconds 1"));
}

/// The syncer's `/metrics` (plain HTTP on 127.0.0.1:`port`), which must answer 200.
fn syncer_metrics(port: u16) -> String {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).expect("the metrics port");
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(tcp, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.contains(" 200 "), "{head}");
    body.to_string()
}

/// A TCP proxy to `upstream` on a port of its own, whose connections can be cut (dropped, and
/// new ones refused until restored), on a thread and runtime of its own.
struct Proxy {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Proxy {
    fn start(upstream: std::net::SocketAddr) -> Proxy {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("proxy port");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("address").port();
        let cut = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicU64::new(0));
        let (cut2, generation2) = (cut.clone(), generation.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("proxy runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        continue;
                    };
                    if cut2.load(Ordering::SeqCst) {
                        continue;
                    }
                    let born = generation2.load(Ordering::SeqCst);
                    let generation = generation2.clone();
                    tokio::spawn(async move {
                        let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                            return;
                        };
                        let copy = tokio::io::copy_bidirectional(&mut client, &mut server);
                        let mut copy = std::pin::pin!(copy);
                        loop {
                            tokio::select! {
                                _ = &mut copy => return,
                                _ = tokio::time::sleep(Duration::from_millis(100)) => {
                                    if generation.load(Ordering::SeqCst) != born {
                                        return;
                                    }
                                }
                            }
                        }
                    });
                }
            });
        });
        Proxy {
            port,
            cut,
            generation,
        }
    }

    /// Drops every connection and refuses new ones.
    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Two nodes of eight H200s, all free, as GPU feature discovery labels them.
fn two_free_nodes() -> Inventory {
    let node = |name: &str| NodeGpus {
        name: name.into(),
        usable: true,
        product: Some("NVIDIA-H200".into()),
        memory_mib: Some(143_771),
        family: Some("hopper".into()),
        compute: Some("9.0".into()),
        gpus: 8,
        replicas: 1,
        ..NodeGpus::default()
    };
    build(
        &[node("gpu-node-1"), node("gpu-node-2")],
        &[],
        &DraGpus::default(),
    )
}

async fn reports_reach_the_placement_controller(hub: &Hub, eu1: &Path) {
    let client = clients::hub(eu1, PROVIDER)
        .await
        .expect("the syncer's hub client");
    let report = Report {
        kubernetes_version: Some("v1.37.1".into()),
        inventory: two_free_nodes(),
        ..Report::default()
    };
    to_hub::report(&client, "eu-1", &report)
        .await
        .expect("heartbeat");
    let gpus = admin(
        hub,
        PROVIDER,
        &[
            "get",
            "synctarget",
            "eu-1",
            "-o",
            "jsonpath={.status.gpus[0].freeByNode}",
        ],
    );
    let gpus: serde_json::Value = serde_json::from_str(&gpus).expect("json");
    assert_eq!(gpus, json!([{"freeDevices": 8, "nodes": 2}]));
    let forbidden = to_hub::report(&client, "eu-2", &report).await;
    assert!(
        matches!(forbidden, Err(kube::Error::Api(ref e)) if e.code == 403),
        "{forbidden:?}"
    );
    // Keep beating while the hub places.
    let beating = tokio::spawn({
        let client = client.clone();
        let report = report.clone();
        async move {
            loop {
                let _ = to_hub::report(&client, "eu-1", &report).await;
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
        }
    });
    let dir = tempfile::tempdir().expect("temp dir");
    admin(
        hub,
        PROVIDER,
        &["apply", "-f", &write_file(dir.path(), "pool.yaml", POOL)],
    );
    admin(
        hub,
        TENANT,
        &[
            "apply",
            "-f",
            &write_file(dir.path(), "md.yaml", DEPLOYMENT),
        ],
    );
    // The hub places the deployment on eu-1; the syncer sees the Placement.
    let placements: Api<Placement> = Api::namespaced(client.clone(), "target-eu-1");
    let deadline = Instant::now() + Duration::from_secs(30);
    let placement = loop {
        let list = placements
            .list(&Default::default())
            .await
            .expect("the syncer lists its Placements");
        if let Some(p) = list.items.into_iter().next() {
            break p;
        }
        assert!(Instant::now() < deadline, "no Placement for eu-1");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(placement.spec.resources.gpu.product_name, "NVIDIA-H200");
    assert_eq!(
        (placement.spec.replicas, placement.spec.resources.gpu.count),
        (1, 2)
    );
    let name = placement.metadata.name.clone().unwrap_or_default();
    // Its replica runs: the status as the syncer computes it from its Deployment.
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name, "generation": 1, "annotations": {
            "trellis.dev/placement-generation": placement.metadata.generation.unwrap_or(0).to_string()}},
        "spec": {"selector": {}, "template": {}},
        "status": {"replicas": 1, "readyReplicas": 1, "observedGeneration": 1},
    }))
    .expect("deployment");
    let reported = status(
        &placement,
        &Observed {
            deployment: Some(&deployment),
            pods: &[],
            endpoint: Some(endpoint(&name, "root-acme-default-x", 8000)),
            error: None,
        },
        trellis_syncer::time::now(),
        300,
    );
    to_hub::placement_status(&client, "target-eu-1", &name, &reported)
        .await
        .expect("status");
    let back = placements.get_status(&name).await.expect("read back");
    assert_eq!(back.status, Some(reported));
    // The hub reads it: the tenant's deployment is available.
    admin(
        hub,
        TENANT,
        &[
            "wait",
            "--for=condition=Available",
            "modeldeployment/llama",
            "-n",
            "default",
            "--timeout=60s",
        ],
    );
    // Not another target's Placements.
    let theirs: Api<Placement> = Api::namespaced(client.clone(), "target-eu-2");
    let denied = to_hub::placement_status(&client, "target-eu-2", &name, &Default::default()).await;
    assert!(
        matches!(denied, Err(kube::Error::Api(ref e)) if e.code == 403),
        "{denied:?}"
    );
    assert!(theirs.list(&Default::default()).await.is_err());
    beating.abort();
}

on_both_stores!(registration_rbac_heartbeat_and_status);
