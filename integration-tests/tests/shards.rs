//! Workspaces spread over several Postgres shards: placement (by `spec.location` and by load),
//! wildcard lists and watches across shards with composite resourceVersions, deletion of a
//! workspace's content on its shard, and a shard whose Postgres stops.

use std::collections::BTreeMap;

use serde_json::Value;
use trellis_integration_tests::{wait_until, write_file, Hub};
use trellis_testkit::{ClusterOptions, PostgresCluster};

fn base(hub: &Hub) -> String {
    format!("https://{}", hub.started.addr)
}

/// kubectl against one workspace (or `*`) of `hub`.
fn in_ws(hub: &Hub, ws: &str, args: &[&str]) -> String {
    let server = format!("{}/clusters/{ws}", base(hub));
    let mut all = vec!["--server", &server];
    all.extend_from_slice(args);
    hub.ok(&all)
}

fn raw(hub: &Hub, ws: &str, path: &str) -> Value {
    serde_json::from_str(&in_ws(hub, ws, &["get", "--raw", path])).expect("JSON")
}

fn shard_of(hub: &Hub, ws: &str) -> String {
    hub.ok(&["get", "workspace", ws, "-o", "jsonpath={.status.shard}"])
}

const GPU_WORKSPACE: &str = r#"
apiVersion: tenancy.trellis.dev/v1alpha1
kind: Workspace
metadata:
  name: gpu
spec:
  type: {name: universal, path: root}
  location:
    selector:
      matchLabels: {tier: gpu}
"#;

/// (workspace path, name) of each watch event line, and its resourceVersion.
fn events(lines: &str) -> Vec<(String, String, String)> {
    lines
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).expect("event JSON"))
        .filter(|e| e["type"] != "BOOKMARK")
        .map(|e| {
            let meta = &e["object"]["metadata"];
            (
                meta["annotations"]["trellis.dev/cluster"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                meta["name"].as_str().unwrap_or_default().to_string(),
                meta["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn workspaces_spread_over_shards_and_wildcards_see_them_all() {
    let postgres = PostgresCluster::shared();
    let root = postgres.create_database("shard-root").await.unwrap();
    let s1 = postgres.create_database("shard-s1").await.unwrap();
    let hub = Hub::start_sharded(
        Some(root.url().to_string()),
        vec![("s1".to_string(), s1.url().to_string())],
        vec![root, s1],
        Default::default(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();

    // Both shards are listed, without credentials.
    let shards = hub.ok(&["get", "shards", "-o", "name"]);
    assert!(
        shards.contains("shard.core.trellis.dev/root") && shards.contains("/s1"),
        "{shards}"
    );

    // Placement by selector, then by load: gpu → s1, then a → root (0 < 1), b → root (tie).
    hub.ok(&["label", "shard", "s1", "tier=gpu"]);
    hub.ok(&[
        "apply",
        "-f",
        &write_file(dir.path(), "gpu.yaml", GPU_WORKSPACE),
    ]);
    hub.ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Ready",
        "workspace/gpu",
        "--timeout=30s",
    ]);
    hub.ok(&["ws", "create", "a", "--type", "universal"]);
    hub.ok(&["ws", "create", "b", "--type", "universal"]);
    let placed: BTreeMap<_, _> = ["gpu", "a", "b"]
        .iter()
        .map(|ws| (ws.to_string(), shard_of(&hub, ws)))
        .collect();
    assert_eq!(placed["gpu"], "s1", "{placed:?}");
    assert_eq!(placed["a"], "root", "{placed:?}");
    assert_eq!(placed["b"], "root", "{placed:?}");
    wait_until(|| hub.ok(&["get", "shard", "s1", "-o", "jsonpath={.status.workspaces}"]) == "1");

    // A wildcard list before any ConfigMap exists: its resourceVersion covers both shards.
    let before = raw(&hub, "*", "/api/v1/configmaps");
    let start = before["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        start.parse::<u64>().is_err(),
        "composite, not a number: {start}"
    );

    // Interleaved writes: three rounds over the three workspaces.
    let workspaces = ["root:gpu", "root:a", "root:b"];
    for round in 1..=3 {
        for ws in workspaces {
            in_ws(&hub, ws, &["create", "configmap", &format!("cm-{round}")]);
        }
    }

    // Paged wildcard lists walk both shards at one snapshot.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let path = match &token {
            Some(t) => format!("/api/v1/configmaps?limit=2&continue={t}"),
            None => "/api/v1/configmaps?limit=2".to_string(),
        };
        let page = raw(&hub, "*", &path);
        for item in page["items"].as_array().unwrap() {
            seen.push(format!(
                "{}/{}",
                item["metadata"]["annotations"]["trellis.dev/cluster"]
                    .as_str()
                    .unwrap(),
                item["metadata"]["name"].as_str().unwrap()
            ));
        }
        match page["metadata"]["continue"].as_str() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    seen.sort();
    let mut expected: Vec<String> = workspaces
        .iter()
        .flat_map(|ws| (1..=3).map(move |r| format!("{ws}/cm-{r}")))
        .collect();
    expected.sort();
    assert_eq!(seen, expected);

    // A watch from the first list's resourceVersion sees every change, each shard's in order.
    let watch = |from: &str| {
        events(&in_ws(
            &hub,
            "*",
            &[
                "get",
                "--raw",
                &format!("/api/v1/configmaps?watch=true&resourceVersion={from}&timeoutSeconds=2"),
            ],
        ))
    };
    let all = watch(&start);
    assert_eq!(all.len(), 9, "{all:?}");
    let on_root: Vec<String> = all
        .iter()
        .filter(|(ws, _, _)| ws != "root:gpu")
        .map(|(ws, name, _)| format!("{ws}/{name}"))
        .collect();
    assert_eq!(
        on_root,
        [
            "root:a/cm-1",
            "root:b/cm-1",
            "root:a/cm-2",
            "root:b/cm-2",
            "root:a/cm-3",
            "root:b/cm-3"
        ]
    );
    let on_s1: Vec<&str> = all
        .iter()
        .filter(|(ws, _, _)| ws == "root:gpu")
        .map(|(_, name, _)| name.as_str())
        .collect();
    assert_eq!(on_s1, ["cm-1", "cm-2", "cm-3"]);

    // Resuming from the fourth event's resourceVersion gives exactly the ones after it.
    let resumed = watch(&all[3].2);
    let mut rest: Vec<_> = all[4..].iter().map(|(w, n, _)| (w, n)).collect();
    let mut got: Vec<_> = resumed.iter().map(|(w, n, _)| (w, n)).collect();
    rest.sort();
    got.sort();
    assert_eq!(got, rest);

    // A plain number is from before the hub had shards: 410, so clients list again.
    let server = format!("{}/clusters/*", base(&hub));
    let (ok, _, err) = hub.kubectl(&[
        "--server",
        &server,
        "get",
        "--raw",
        "/api/v1/configmaps?watch=true&resourceVersion=5&timeoutSeconds=1",
    ]);
    assert!(
        !ok && (err.contains("410") || err.contains("Expired") || err.contains("too old")),
        "{err}"
    );

    // kubectl's own list-then-watch across shards.
    let mut watcher = hub.spawn_kubectl(&[
        "--server",
        &server,
        "get",
        "configmaps",
        "-A",
        "--watch",
        "-o",
        "jsonpath={.metadata.annotations.trellis\\.dev/cluster}/{.metadata.name}{\"\\n\"}",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(800));
    in_ws(&hub, "root:gpu", &["create", "configmap", "late"]);
    in_ws(&hub, "root:a", &["create", "configmap", "late"]);
    std::thread::sleep(std::time::Duration::from_millis(800));
    watcher.kill().unwrap();
    let watched = String::from_utf8_lossy(&watcher.wait_with_output().unwrap().stdout).into_owned();
    for line in [
        "root:gpu/cm-1",
        "root:b/cm-3",
        "root:gpu/late",
        "root:a/late",
    ] {
        assert!(watched.contains(line), "{line} missing from {watched}");
    }

    // Deleting the workspace on s1 deletes its content there.
    hub.ok(&["delete", "workspace", "gpu", "--wait=true", "--timeout=60s"]);
    let after = raw(&hub, "*", "/api/v1/configmaps");
    let left: Vec<&str> = after["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["metadata"]["annotations"]["trellis.dev/cluster"].as_str())
        .collect();
    assert!(left.iter().all(|ws| *ws != "root:gpu"), "{left:?}");
    assert_eq!(left.len(), 7, "{left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_shard_answers_503_while_the_others_serve() {
    let far_postgres = PostgresCluster::start(ClusterOptions::default()).expect("private Postgres");
    let root = PostgresCluster::shared()
        .create_database("shard-root")
        .await
        .unwrap();
    let s1 = far_postgres.create_database("shard-far").await.unwrap();
    let hub = Hub::start_sharded(
        Some(root.url().to_string()),
        vec![("far".to_string(), s1.url().to_string())],
        vec![root],
        Default::default(),
    )
    .await;
    // far is placed on the empty shard `far`... and near, by load, on root.
    hub.ok(&["ws", "create", "far", "--type", "universal"]);
    hub.ok(&["ws", "create", "near", "--type", "universal"]);
    assert_eq!(shard_of(&hub, "far"), "far");
    assert_eq!(shard_of(&hub, "near"), "root");
    for ws in ["root:far", "root:near"] {
        in_ws(&hub, ws, &["create", "configmap", "x"]);
    }

    far_postgres.stop().unwrap();
    // near keeps serving, reads and writes.
    in_ws(&hub, "root:near", &["get", "configmap", "x"]);
    in_ws(&hub, "root:near", &["create", "configmap", "y"]);
    // far answers 503 with Retry-After (kubectl retries it a few times, then reports it).
    let far = format!("{}/clusters/root:far", base(&hub));
    let (ok, _, err) = hub.kubectl(&["--server", &far, "get", "configmap", "x"]);
    assert!(!ok && err.contains("(ServiceUnavailable)"), "{err}");

    // Back again: far serves as before.
    far_postgres.start_again().unwrap();
    wait_until(|| {
        let (ok, _, _) = hub.kubectl(&["--server", &far, "get", "configmap", "x"]);
        ok
    });
    in_ws(&hub, "root:far", &["create", "configmap", "y"]);
    drop(s1);
}
