//! Backups, restores and upgrades of a hub's store, with the real `trellis` binary, kubectl and
//! Postgres tools: the embedded store is backed up while the hub runs (`trellis backup`) and
//! restored (`trellis restore --from`); a Postgres shard is dumped with `pg_dump -Fc`, loaded
//! into a new database with `pg_restore` and marked restored (`trellis restore --store`). A
//! hub started on the restored store serves every object with its resourceVersion, and a watch
//! from a resourceVersion of the old hub gets 410 Gone; a relist and a watch from its
//! resourceVersion work. A store written by a newer binary makes `trellis start` exit with an
//! error naming both schema versions.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use trellis_integration_tests::{kubectl_with_kubeconfig, trellis_binary, Backend};
use trellis_server::{start, SecurityOptions, Server, StartOptions};
use trellis_testkit::{postgres_binary, PostgresCluster};

async fn start_hub(data_dir: &Path, store: Option<&str>) -> Server {
    start(StartOptions {
        data_dir: data_dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().expect("address"),
        store: store.map(str::to_string),
        tls_sans: Vec::new(),
        shards: Vec::new(),
        security: SecurityOptions::default(),
    })
    .await
    .expect("hub starts")
}

fn kubectl(hub: &Server, args: &[&str]) -> String {
    let (ok, out, err) = kubectl_with_kubeconfig(&hub.kubeconfig, args);
    assert!(ok, "kubectl {args:?} failed: {err}");
    out
}

fn json(hub: &Server, args: &[&str]) -> Value {
    serde_json::from_str(&kubectl(hub, args)).expect("JSON from kubectl")
}

/// Runs a tool; its stdout, or a failure with its stderr.
fn run(command: &mut Command) -> String {
    let output = command.output().expect("run command");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The ConfigMaps of `default`: name → (resourceVersion, data).
fn configmaps(hub: &Server) -> (String, Vec<(String, String, Value)>) {
    // Raw: `kubectl get -o json` wraps the items in a List without the list's resourceVersion.
    let list = json(
        hub,
        &["get", "--raw", "/api/v1/namespaces/default/configmaps"],
    );
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .expect("list resourceVersion")
        .to_string();
    let mut items: Vec<_> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|cm| {
            (
                cm["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                cm["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                cm["data"].clone(),
            )
        })
        .filter(|(name, _, _)| name != "kube-root-ca.crt")
        .collect();
    items.sort_by(|a, b| a.0.cmp(&b.0));
    (rv, items)
}

/// A watch of `default`'s ConfigMaps from `rv`, for at most a few seconds: its event lines.
fn watch_from(hub: &Server, rv: &str) -> Vec<Value> {
    let path = format!(
        "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=3"
    );
    kubectl(hub, &["get", "--raw", &path])
        .lines()
        .map(|line| serde_json::from_str(line).expect("watch event"))
        .collect()
}

async fn backup_and_restore(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let cluster = (backend == Backend::Postgres).then(PostgresCluster::shared);
    let source = match cluster {
        Some(c) => Some(c.create_database("backup").await.expect("database")),
        None => None,
    };
    let hub = start_hub(&data_dir, source.as_ref().map(|db| db.url())).await;

    // Step 1: objects, one of them changed, and a watch position on the old hub.
    for i in 0..5 {
        kubectl(
            &hub,
            &[
                "create",
                "configmap",
                &format!("before-{i}"),
                &format!("--from-literal=n={i}"),
            ],
        );
    }
    kubectl(
        &hub,
        &[
            "patch",
            "configmap",
            "before-2",
            "-p",
            r#"{"data":{"n":"changed"}}"#,
        ],
    );
    let (watched_at, backed_up) = configmaps(&hub);
    assert_eq!(backed_up.len(), 5);

    // Step 2: the backup, taken while the hub runs.
    let backup = dir.path().join("backup");
    match &source {
        None => {
            let out = run(Command::new(trellis_binary())
                .args(["backup", "--to"])
                .arg(&backup)
                .arg("--data-dir")
                .arg(&data_dir));
            assert!(out.contains("backed up to"), "{out}");
        }
        Some(db) => {
            run(Command::new(postgres_binary("pg_dump").unwrap())
                .args(["-Fc", "--no-owner", "-f"])
                .arg(&backup)
                .args(["--dbname", db.url()]));
        }
    }

    // Step 3: the hub goes on, then is lost.
    kubectl(
        &hub,
        &[
            "create",
            "configmap",
            "after-backup",
            "--from-literal=n=lost",
        ],
    );
    let (lost_at, _) = configmaps(&hub);
    hub.shutdown().await;

    // Step 4: restore.
    let target = match (&source, cluster) {
        (Some(_), Some(c)) => {
            let target = c.create_database("restored").await.expect("database");
            run(Command::new(postgres_binary("pg_restore").unwrap())
                .args(["--no-owner", "--exit-on-error", "--dbname", target.url()])
                .arg(&backup));
            let out =
                run(Command::new(trellis_binary()).args(["restore", "--store", target.url()]));
            assert!(out.contains("restored at resourceVersion"), "{out}");
            Some(target)
        }
        _ => {
            let out = run(Command::new(trellis_binary())
                .args(["restore", "--from"])
                .arg(&backup)
                .arg("--data-dir")
                .arg(&data_dir));
            assert!(out.contains("restored at resourceVersion"), "{out}");
            None
        }
    };

    // Step 5: a hub on the restored store has every object with its resourceVersion.
    let hub = start_hub(&data_dir, target.as_ref().map(|db| db.url())).await;
    let (relisted_at, restored) = configmaps(&hub);
    assert_eq!(restored, backed_up);
    let (ok, _, err) =
        kubectl_with_kubeconfig(&hub.kubeconfig, &["get", "configmap", "after-backup"]);
    assert!(!ok && err.contains("NotFound"), "{err}");
    let relisted: u64 = relisted_at.parse().unwrap();
    assert!(relisted > lost_at.parse::<u64>().unwrap());

    // Step 6: watches from the old hub's resourceVersions get 410 Gone.
    for old in [&watched_at, &lost_at] {
        let events = watch_from(&hub, old);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["type"], "ERROR", "{events:?}");
        assert_eq!(events[0]["object"]["code"], 410, "{events:?}");
        assert_eq!(events[0]["object"]["reason"], "Expired", "{events:?}");
    }

    // Step 7: a watch from the relist's resourceVersion sees what follows.
    kubectl(
        &hub,
        &[
            "create",
            "configmap",
            "after-restore",
            "--from-literal=n=new",
        ],
    );
    let events = watch_from(&hub, &relisted_at);
    let added: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "ADDED")
        .map(|e| e["object"]["metadata"]["name"].as_str().unwrap_or_default())
        .filter(|name| *name != "kube-root-ca.crt")
        .collect();
    assert_eq!(added, ["after-restore"], "{events:?}");
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_backup_and_restore() {
    backup_and_restore(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pg_dump_and_pg_restore() {
    backup_and_restore(Backend::Postgres).await;
}

/// A store whose schema a newer binary wrote: `trellis start` exits non-zero, naming both
/// versions, and leaves the store alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let store = data_dir.join("store.db");
    drop(
        trellis_storage::Store::open_sqlite(&store, trellis_storage::StoreOptions::default())
            .await
            .unwrap(),
    );
    let newer = trellis_storage::SCHEMA_VERSION + 1;
    rusqlite::Connection::open(&store)
        .unwrap()
        .execute(
            "INSERT INTO trellis_schema_migrations (version) VALUES (?1)",
            [newer],
        )
        .unwrap();

    let mut child = Command::new(trellis_binary())
        .args(["start", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data_dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start trellis");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("trellis start kept running on a store of schema version {newer}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    let expected = format!(
        "schema version {newer} is newer than this binary supports ({})",
        trellis_storage::SCHEMA_VERSION
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(!data_dir.join("admin.kubeconfig").exists());
}

/// What the commands cannot do, they say, naming what to use instead.
#[test]
fn backup_and_restore_name_the_postgres_tools() {
    let dir = tempfile::tempdir().unwrap();
    let url = "postgres://trellis@127.0.0.1:1/none";
    let cases: [(&[&str], &str); 4] = [
        (&["backup", "--to", "x.db", "--store", url], "pg_dump -Fc"),
        (&["restore", "--from", "x.db", "--store", url], "pg_restore"),
        (&["restore"], "--from FILE"),
        (&["restore", "--from", "missing.db"], "no backup at"),
    ];
    for (args, expected) in cases {
        let output = Command::new(trellis_binary())
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .current_dir(dir.path())
            .output()
            .expect("run trellis");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "trellis {args:?} succeeded");
        assert!(stderr.contains(expected), "trellis {args:?}: {stderr}");
    }
    assert!(!dir.path().join("store.db").exists());
}
