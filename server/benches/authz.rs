//! What authorization costs a read: GET throughput for a user authorized by RBAC, in a
//! workspace holding 100 Roles and 100 RoleBindings, against GET throughput as
//! `system:masters` (which skips RBAC), in the same run on the same hub.
//!
//! Run with `cargo bench -p trellis-server --bench authz`. Prints `bench: <name> <value> <unit>`
//! lines; the one the target is about is `authz_get_ratio` (RBAC user ÷ masters, target ≥ 0.9).
//!
//! The hub runs in this process on a private durable Postgres cluster (`trellis-testkit`).
//! Clients are kube-rs (HTTP/1.1, one TLS connection per request in flight) with client
//! certificates from the hub's CA. The machine is shared and its speed drifts by 2× within
//! seconds, so the users alternate in short windows, each round ordered masters, RBAC user,
//! RBAC user, masters (a linear drift cancels out); a round's ratio is its RBAC GETs ÷ its
//! masters GETs, and the reported ratio is the median of the rounds'.
//!
//! Also reported: the cost of one RBAC decision for that user as the hub's cache makes it
//! (`authz_decision_ns`, a cache fed by the hub's database, timed in a loop).
//!
//! Environment: `TRELLIS_BENCH_MILLIS` (milliseconds per window, default 1000),
//! `TRELLIS_BENCH_ROUNDS` (default 9), `TRELLIS_BENCH_READERS` (concurrent GET tasks,
//! default 16).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding};
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::json;
use trellis_server::{start, StartOptions};
use trellis_testkit::bench::{env_or, median, report};
use trellis_testkit::{ClusterOptions, PostgresCluster};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

const NAMESPACE: &str = "default";
const ROLES: usize = 100;
const OBJECTS: usize = 100;
/// Before each window: connections are open already, this lets the previous load drain.
const WARMUP: Duration = Duration::from_millis(300);
const DECISIONS: u32 = 200_000;

#[tokio::main]
async fn main() {
    if let Err(err) = run().await {
        eprintln!("benchmark failed: {err}");
        std::process::exit(1);
    }
}

async fn client(kubeconfig: &std::path::Path) -> Result<Client> {
    let kubeconfig = Kubeconfig::read_from(kubeconfig)?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

fn from<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T> {
    Ok(serde_json::from_value(value)?)
}

async fn run() -> Result<()> {
    let window = Duration::from_millis(env_or("TRELLIS_BENCH_MILLIS", 1000u64)?);
    let rounds: usize = env_or("TRELLIS_BENCH_ROUNDS", 9)?;
    let readers: usize = env_or("TRELLIS_BENCH_READERS", 16)?;
    println!(
        "# authz: GET throughput, {readers} tasks, {rounds} rounds of 4 windows of {} ms, {} logical \
         CPUs; {ROLES} Roles and {ROLES} RoleBindings in the namespace",
        window.as_millis(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let pg =
        tokio::task::spawn_blocking(|| PostgresCluster::start(ClusterOptions { durable: true }))
            .await??;
    let db = pg.create_database("bench_authz").await?;
    let dir = tempfile::Builder::new()
        .prefix("trellis-bench-")
        .tempdir()?;
    let started = start(StartOptions {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse()?,
        store: Some(db.url().to_string()),
        tls_sans: Vec::new(),
        shards: Vec::new(),
        // The per-user rate limit (200/s by default) would measure itself, not authorization.
        security: trellis_server::SecurityOptions {
            max_requests_per_second_per_user: 0.0,
            ..Default::default()
        },
    })
    .await?;
    let admin = client(&started.kubeconfig).await?;

    // The user's own grant is one of the 100: the others bind other users, each its own Role.
    let roles: Api<Role> = Api::namespaced(admin.clone(), NAMESPACE);
    let bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), NAMESPACE);
    for i in 0..ROLES {
        let role = from(json!({
            "metadata": {"name": format!("role-{i}")},
            "rules": [
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"],
                 "resourceNames": [format!("cm-{i}")]},
                {"apiGroups": ["apps"], "resources": ["deployments", "deployments/scale"],
                 "verbs": ["get", "update"]},
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
            ],
        }))?;
        roles.create(&PostParams::default(), &role).await?;
        let user = if i == ROLES - 1 {
            "reader".to_string()
        } else {
            format!("user-{i}")
        };
        let binding = from(json!({
            "metadata": {"name": format!("binding-{i}")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": format!("role-{i}")},
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user},
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": format!("team-{}", i % 10)},
            ],
        }))?;
        bindings.create(&PostParams::default(), &binding).await?;
    }
    // The reader reads every ConfigMap through a Role of its own, and may enter.
    roles
        .create(
            &PostParams::default(),
            &from(json!({
                "metadata": {"name": "configmap-reader"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
            }))?,
        )
        .await?;
    bindings
        .create(
            &PostParams::default(),
            &from(json!({
                "metadata": {"name": "reader-reads"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "configmap-reader"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "reader"}],
            }))?,
        )
        .await?;
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(
            &PostParams::default(),
            &from(json!({
                "metadata": {"name": "reader-enters"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                            "name": "system:trellis:workspace-access"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "reader"}],
            }))?,
        )
        .await?;
    let configmaps: Api<ConfigMap> = Api::namespaced(admin.clone(), NAMESPACE);
    for i in 0..OBJECTS {
        let cm =
            from(json!({"metadata": {"name": format!("cm-{i}")}, "data": {"k": "v".repeat(512)}}))?;
        configmaps.create(&PostParams::default(), &cm).await?;
    }

    let pair =
        trellis_server::internals::issue_client_certificate(dir.path(), "reader", &["team-3"])?;
    let admin_config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&started.kubeconfig)?)?;
    let server = admin_config["clusters"][0]["cluster"]["server"]
        .as_str()
        .ok_or("no server in the kubeconfig")?;
    let ca = std::fs::read_to_string(dir.path().join("ca.crt"))?;
    let reader_path = dir.path().join("reader.kubeconfig");
    std::fs::write(
        &reader_path,
        trellis_server::internals::render_kubeconfig(server, &ca, &pair),
    )?;
    let reader: Api<ConfigMap> = Api::namespaced(client(&reader_path).await?, NAMESPACE);
    // The reader is allowed, and not by accident: a Role it lacks is refused.
    reader.get("cm-0").await?;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client(&reader_path).await?, NAMESPACE);
    if secrets.get("none").await.is_ok() {
        return Err("the reader may read secrets: RBAC is not in the path".into());
    }

    let (mut masters_total, mut rbac_total) = (0.0, 0.0);
    let mut ratios = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let m1 = gets(configmaps.clone(), readers, window).await?;
        let r1 = gets(reader.clone(), readers, window).await?;
        let r2 = gets(reader.clone(), readers, window).await?;
        let m2 = gets(configmaps.clone(), readers, window).await?;
        let ratio = (r1 + r2) / (m1 + m2);
        println!(
            "# round {round}: masters {m1:.0} {m2:.0} GET/s, RBAC user {r1:.0} {r2:.0} GET/s, ratio {ratio:.3}"
        );
        masters_total += m1 + m2;
        rbac_total += r1 + r2;
        ratios.push(ratio);
    }
    let windows = 2.0 * rounds as f64;
    report("authz_get_masters_per_s", masters_total / windows, "ops/s");
    report("authz_get_rbac_per_s", rbac_total / windows, "ops/s");
    report("authz_get_ratio", median(&mut ratios), "ratio");

    // One decision, as the request path makes it (the access check and the request itself).
    let store = trellis_storage::Store::open_postgres(
        db.url(),
        trellis_storage::StoreOptions {
            compaction: None,
            ..trellis_storage::StoreOptions::default()
        },
    )
    .await?;
    let cache = trellis_server::internals::RbacCache::spawn(
        store.clone(),
        std::sync::Arc::new(trellis_server::internals::DefaultRoles::new(
            trellis_server::hub::scheme().resources(),
        )),
        tokio_util::sync::CancellationToken::new(),
    );
    cache.catch_up(&store).await?;
    let user = trellis_server::internals::UserInfo {
        name: "reader".into(),
        groups: vec!["team-3".into(), "system:authenticated".into()],
        ..Default::default()
    };
    let access = trellis_server::internals::Attributes::non_resource("access", "/");
    let get = trellis_server::internals::Attributes {
        verb: "get".into(),
        resource: Some(trellis_server::internals::ResourceAttributes {
            api_group: String::new(),
            resource: "configmaps".into(),
            subresource: None,
            namespace: NAMESPACE.into(),
            name: "cm-7".into(),
        }),
        path: String::new(),
    };
    // The cache's reflectors have listed; give its policy a moment to be built from them.
    let ready_by = Instant::now() + Duration::from_secs(10);
    while !(cache.allows("root", &user, &access) && cache.allows("root", &user, &get)) {
        if Instant::now() > ready_by {
            return Err("the decision cache refuses the reader".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let timed = Instant::now();
    for _ in 0..DECISIONS {
        if !(cache.allows("root", &user, &access) && cache.allows("root", &user, &get)) {
            return Err("the decision cache refuses the reader".into());
        }
    }
    report(
        "authz_decision_ns",
        timed.elapsed().as_nanos() as f64 / f64::from(DECISIONS),
        "ns",
    );
    started.shutdown().await;
    Ok(())
}

/// GETs of the ConfigMaps in turn from `tasks` tasks: per second of a `window` after a warm-up.
async fn gets(api: Api<ConfigMap>, tasks: usize, window: Duration) -> Result<f64> {
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..tasks)
        .map(|t| {
            let (api, measuring, stop, count) =
                (api.clone(), measuring.clone(), stop.clone(), count.clone());
            tokio::spawn(async move {
                let mut i = t;
                while !stop.load(Ordering::Acquire) {
                    api.get(&format!("cm-{}", i % OBJECTS)).await?;
                    if measuring.load(Ordering::Acquire) {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    i += tasks;
                }
                Ok::<_, BoxError>(())
            })
        })
        .collect();
    tokio::time::sleep(WARMUP).await;
    measuring.store(true, Ordering::Release);
    let started = Instant::now();
    tokio::time::sleep(window).await;
    measuring.store(false, Ordering::Release);
    let rate = count.load(Ordering::Acquire) as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Release);
    for worker in workers {
        worker.await??;
    }
    Ok(rate)
}
