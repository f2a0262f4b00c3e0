//! Logical workspaces through the real kubectl and its `kubectl ws` plugin: nesting,
//! isolation of objects and CRDs, addressing by path and by id, and deletion of a whole
//! subtree.

use trellis_integration_tests::{on_both_stores, wait_until, write_file, Hub};

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: models.ml.example.com
spec:
  group: ml.example.com
  scope: Namespaced
  names: {plural: models, singular: model, kind: Model}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

fn server_of(hub: &Hub) -> String {
    hub.ok(&[
        "config",
        "view",
        "--minify",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ])
}

async fn nested_workspaces_are_isolated(hub: &Hub) {
    let dir = tempfile::tempdir().unwrap();
    let out = hub.ok(&["ws", "create", "acme", "--enter"]);
    assert!(
        out.contains("Workspace \"acme\" (type root:organization) is ready to use."),
        "{out}"
    );
    assert!(out.contains("Current workspace is \"root:acme\""), "{out}");
    assert!(server_of(hub).ends_with("/clusters/root:acme"));
    assert!(hub
        .ok(&["get", "namespaces", "-o", "name"])
        .contains("namespace/default"));

    // A CRD and an object in acme.
    hub.ok(&["apply", "-f", &write_file(dir.path(), "crd.yaml", CRD)]);
    hub.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/models.ml.example.com",
    ]);
    hub.ok(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=owner=acme",
    ]);

    // A team workspace inside it, with an object of the same name.
    let out = hub.ok(&["ws", "create", "ml", "--enter"]);
    assert!(out.contains("(type root:team)"), "{out}");
    hub.ok(&["create", "configmap", "settings", "--from-literal=owner=ml"]);
    assert_eq!(
        hub.ok(&["get", "cm", "settings", "-o", "jsonpath={.data.owner}"]),
        "ml"
    );
    let err = hub.fails(&["get", "models"]);
    assert!(
        err.contains("the server doesn't have a resource type"),
        "{err}"
    );

    hub.ok(&["ws", ".."]);
    assert_eq!(
        hub.ok(&["get", "cm", "settings", "-o", "jsonpath={.data.owner}"]),
        "acme"
    );
    assert!(
        hub.ok(&["get", "models", "-A"])
            .contains("No resources found")
            || hub.kubectl(&["get", "models", "-A"]).0
    );
    hub.ok(&["ws", "-"]);
    assert!(server_of(hub).ends_with("/clusters/root:acme:ml"));
    assert!(hub.ok(&["ws", "."]).contains("root:acme:ml"));

    // Root sees neither object nor CRD.
    hub.ok(&["ws", "root"]);
    assert!(hub.fails(&["get", "cm", "settings"]).contains("not found"));
    assert!(hub
        .fails(&["get", "models"])
        .contains("the server doesn't have a resource type"));
    let tree = hub.ok(&["ws", "tree"]);
    assert_eq!(tree, ".\n└── root\n    └── acme\n        └── ml\n");
    let table = hub.ok(&["get", "workspaces"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "TYPE", "PHASE", "URL", "AGE"], "{table}");
    assert!(
        table.contains("organization") && table.contains("Ready"),
        "{table}"
    );

    // Paths and ids address the same workspace; unknown ones are 404s.
    let base = server_of(hub)
        .trim_end_matches("/clusters/root")
        .to_string();
    let id = hub.ok(&["get", "workspace", "acme", "-o", "jsonpath={.spec.cluster}"]);
    assert_eq!(id.len(), 16, "{id}");
    let by_id = format!("{base}/clusters/{id}");
    assert_eq!(
        hub.ok(&[
            "--server",
            &by_id,
            "get",
            "cm",
            "settings",
            "-o",
            "jsonpath={.data.owner}"
        ]),
        "acme"
    );
    let (ok, _, err) = hub.kubectl(&[
        "--server",
        &format!("{base}/clusters/root:nope"),
        "get",
        "cm",
    ]);
    assert!(
        !ok && err.contains("could not find the requested resource"),
        "{err}"
    );
    // Help is help, and a flag is never taken for a workspace's name.
    assert!(hub
        .ok(&["ws", "--help"])
        .contains("kubectl ws create <name>"));
    let err = hub.fails(&["ws", "--nope"]);
    assert!(err.contains("unknown flag \"--nope\""), "{err}");
    let err = hub.fails(&["ws", "root:nope"]);
    assert!(err.contains("workspace \"root:nope\" not found"), "{err}");

    // Types limit nesting.
    hub.ok(&["ws", "acme"]);
    let err = hub.fails(&["ws", "create", "other", "--type", "organization"]);
    assert!(
        err.contains("is not allowed in a workspace of type \"organization\""),
        "{err}"
    );

    // Deleting acme deletes ml and everything in both.
    hub.ok(&["ws", "root"]);
    hub.ok(&["delete", "workspace", "acme", "--timeout=30s"]);
    wait_until(|| {
        hub.ok(&["get", "workspaces", "-o", "name"])
            .trim()
            .is_empty()
    });
    let (ok, _, _) = hub.kubectl(&["--server", &by_id, "get", "cm"]);
    assert!(!ok, "a deleted workspace is not served");
    // A new workspace of the same name starts empty.
    hub.ok(&["ws", "create", "acme", "--enter"]);
    assert!(hub.fails(&["get", "cm", "settings"]).contains("not found"));
}

/// `/clusters/*` lists and watches one resource across every workspace, each object marked
/// with its workspace's path.
async fn wildcard_lists_and_watches(hub: &Hub) {
    hub.ok(&["ws", "create", "a", "--type", "universal"]);
    hub.ok(&["ws", "create", "b", "--type", "universal"]);
    let base = server_of(hub)
        .trim_end_matches("/clusters/root")
        .to_string();
    for ws in ["root:a", "root:b"] {
        let server = format!("{base}/clusters/{ws}");
        hub.ok(&[
            "--server",
            &server,
            "create",
            "configmap",
            "shared-name",
            "--from-literal=ws=x",
        ]);
    }
    let all = format!("{base}/clusters/*");
    let mut watcher = hub.spawn_kubectl(&[
        "--server",
        &all,
        "get",
        "configmaps",
        "-A",
        "--watch",
        "-o",
        "jsonpath={.metadata.annotations.trellis\\.dev/cluster}/{.metadata.name}{\"\\n\"}",
    ]);
    let listed = hub.ok(&[
        "--server", &all, "get", "configmaps", "-A", "-o",
        "jsonpath={range .items[*]}{.metadata.annotations.trellis\\.dev/cluster}/{.metadata.name} {end}",
    ]);
    assert!(
        listed.contains("root:a/shared-name") && listed.contains("root:b/shared-name"),
        "{listed}"
    );
    std::thread::sleep(std::time::Duration::from_millis(800));
    hub.ok(&[
        "--server",
        &format!("{base}/clusters/root:b"),
        "create",
        "configmap",
        "later",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(800));
    watcher.kill().unwrap();
    let watched = String::from_utf8_lossy(&watcher.wait_with_output().unwrap().stdout).into_owned();
    assert!(
        watched.contains("root:a/shared-name") && watched.contains("root:b/later"),
        "{watched}"
    );
    // Only cluster-wide reads are served across workspaces.
    let err = hub.fails(&["--server", &all, "create", "configmap", "nope"]);
    assert!(err.contains("only cluster-wide list and watch"), "{err}");

    // A malformed workspace path is the client's mistake: 400 at once, not a 503 to retry.
    for path in ["root::b", "root:b:", "root:B"] {
        let started = std::time::Instant::now();
        let err = hub.fails(&[
            "--server",
            &format!("{base}/clusters/{path}"),
            "get",
            "configmaps",
        ]);
        // (kubectl's discovery words any 400 as "rejected for an unknown reason".)
        assert!(err.contains("(BadRequest)"), "{path}: {err}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{path}: kubectl retried for {:?}",
            started.elapsed()
        );
    }
}

on_both_stores!(nested_workspaces_are_isolated, wildcard_lists_and_watches);
