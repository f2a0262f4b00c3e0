//! Authorization through the real kubectl with users holding client certificates from the
//! hub's CA: workspaces keep their users in (every verb, by path and by id, watch, discovery
//! and the `/clusters/*` wildcard), the creator of a workspace is its admin, a Role grants
//! exactly its verbs (`kubectl auth can-i`, with `--list`), a role for one object covers a
//! list or watch of it by field selector and the deprecated `/watch/` paths, RBAC objects are defaulted and
//! validated as kube-apiserver does it, and a removed RoleBinding stops counting within a
//! second on every replica.

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use trellis_integration_tests::{
    kubectl_with_kubeconfig, on_both_stores, user_kubeconfig, wait_until, write_file, Hub, Replica,
};
use trellis_testkit::PostgresCluster;

fn base_url(hub: &Hub) -> String {
    hub.ok(&[
        "config",
        "view",
        "--minify",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ])
    .trim_end_matches("/clusters/root")
    .to_string()
}

/// `kubectl apply -f` of `manifest` as the hub's admin.
fn apply(hub: &Hub, manifest: &str) {
    let dir = tempfile::tempdir().unwrap();
    hub.ok(&[
        "apply",
        "-f",
        &write_file(dir.path(), "manifest.yaml", manifest),
    ]);
}

fn ok_as(kubeconfig: &Path, args: &[&str]) -> String {
    let (ok, out, err) = kubectl_with_kubeconfig(kubeconfig, args);
    assert!(ok, "kubectl {args:?} failed: {err}");
    out
}

fn forbidden_as(kubeconfig: &Path, args: &[&str]) -> String {
    let (ok, out, err) = kubectl_with_kubeconfig(kubeconfig, args);
    assert!(!ok, "kubectl {args:?} should be forbidden, printed {out}");
    // kubectl prints "Error from server (Forbidden): …", or for `create <kind>` "failed to
    // create <kind>: <message>".
    assert!(
        err.contains("(Forbidden)") || err.contains("forbidden: User"),
        "kubectl {args:?}: {err}"
    );
    err
}

fn workspace_yaml(name: &str) -> String {
    format!(
        "apiVersion: tenancy.trellis.dev/v1alpha1\nkind: Workspace\nmetadata:\n  name: {name}\n"
    )
}

fn wait_ready(kubeconfig: &Path, server: &str, name: &str) {
    wait_until(|| {
        kubectl_with_kubeconfig(
            kubeconfig,
            &[
                "--server",
                server,
                "get",
                "workspace",
                name,
                "-o",
                "jsonpath={.status.phase}",
            ],
        )
        .1 == "Ready"
    });
}

const LET_ALICE_CREATE_WORKSPACES: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: workspace-creator}
rules:
- apiGroups: [tenancy.trellis.dev]
  resources: [workspaces]
  verbs: [create, get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: alice-creates-workspaces}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: workspace-creator}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: alice-enters-root}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:trellis:workspace-access"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]
"#;

const LET_ALICE_LIST_EVERYWHERE: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: configmap-lister}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: alice-lists-configmaps}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: configmap-lister}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]
"#;

async fn users_are_confined_to_their_workspaces(hub: &Hub) {
    let dir = tempfile::tempdir().unwrap();
    let base = base_url(hub);
    let root = format!("{base}/clusters/root");
    let alice = hub.user_kubeconfig("alice", &[]);

    // Nothing is granted by default: not even entering root.
    // (kubectl's discovery prints "Forbidden: unknown" for a refused discovery request; the
    // raw request shows the message.)
    forbidden_as(&alice, &["get", "configmaps"]);
    let err = forbidden_as(
        &alice,
        &["get", "--raw", "/api/v1/namespaces/default/configmaps"],
    );
    assert!(
        err.contains("User \"alice\" cannot access workspace \"root\""),
        "{err}"
    );
    apply(hub, LET_ALICE_CREATE_WORKSPACES);

    // Alice creates workspace a and is its admin there.
    ok_as(
        &alice,
        &[
            "create",
            "-f",
            &write_file(dir.path(), "a.yaml", &workspace_yaml("a")),
        ],
    );
    wait_ready(&alice, &root, "a");
    let a = format!("{base}/clusters/root:a");
    ok_as(&alice, &["--server", &a, "create", "configmap", "mine"]);
    assert_eq!(
        ok_as(
            &alice,
            &[
                "--server",
                &a,
                "get",
                "clusterrolebinding",
                "workspace-admin",
                "-o",
                "jsonpath={.roleRef.name} {.subjects[0].name}",
            ],
        ),
        "cluster-admin alice"
    );

    // Workspace b is the admin's; alice gets 403 on every verb, by path and by id.
    hub.ok(&[
        "create",
        "-f",
        &write_file(dir.path(), "b.yaml", &workspace_yaml("b")),
    ]);
    wait_ready(hub.kubeconfig(), &root, "b");
    let b = format!("{base}/clusters/root:b");
    hub.ok(&["--server", &b, "create", "configmap", "theirs"]);
    let b_id = hub.ok(&["get", "workspace", "b", "-o", "jsonpath={.spec.cluster}"]);
    for server in [b.clone(), format!("{base}/clusters/{b_id}")] {
        let s = server.as_str();
        let verbs: [&[&str]; 9] = [
            &["get", "configmap", "theirs"],
            &["get", "configmaps"],
            &["get", "configmaps", "--watch", "--request-timeout=10s"],
            &["create", "configmap", "new"],
            &[
                "patch",
                "configmap",
                "theirs",
                "-p",
                r#"{"data":{"a":"b"}}"#,
            ],
            &["delete", "configmap", "theirs"],
            &["delete", "configmaps", "--all"],
            &["get", "--raw", "/api/v1"],
            &[
                "get",
                "--raw",
                "/api/v1/namespaces/default/configmaps/theirs",
            ],
        ];
        for args in verbs {
            let mut full = vec!["--server", s];
            full.extend_from_slice(args);
            let err = forbidden_as(&alice, &full);
            if args.get(1) == Some(&"--raw") {
                assert!(
                    err.contains("User \"alice\" cannot access workspace"),
                    "{args:?}: {err}"
                );
            }
        }
    }
    // kubectl stops at discovery for most of those; every verb itself is refused too.
    for server in [b.clone(), format!("{base}/clusters/{b_id}")] {
        every_verb_is_forbidden(&alice, &server).await;
    }
    // Untouched.
    let theirs = hub.ok(&["--server", &b, "get", "configmap", "theirs", "-o", "yaml"]);
    assert!(
        theirs.contains("name: theirs") && !theirs.contains("a: b"),
        "{theirs}"
    );

    // Across all workspaces only with a cluster-wide grant in root.
    let all = format!("{base}/clusters/*");
    let err = forbidden_as(&alice, &["--server", &all, "get", "configmaps", "-A"]);
    assert!(err.contains("across all workspaces"), "{err}");
    forbidden_as(
        &alice,
        &[
            "--server",
            &all,
            "get",
            "configmaps",
            "-A",
            "--watch",
            "--request-timeout=10s",
        ],
    );
    let everywhere: Api<ConfigMap> = Api::all(client_for(&alice, &all).await);
    assert_forbidden(
        "wildcard list",
        everywhere.list(&ListParams::default()).await,
    );
    assert_forbidden(
        "wildcard watch",
        everywhere
            .watch(&kube::api::WatchParams::default(), "0")
            .await
            .map(|_| ()),
    );
    apply(hub, LET_ALICE_LIST_EVERYWHERE);
    let listed = ok_as(&alice, &["--server", &all, "get", "configmaps", "-A"]);
    assert!(
        listed.contains("mine") && listed.contains("theirs"),
        "{listed}"
    );

    // An admin of a workspace may enter its children, even ones it did not create.
    hub.ok(&[
        "--server",
        &a,
        "create",
        "-f",
        &write_file(dir.path(), "team.yaml", &workspace_yaml("team")),
    ]);
    wait_ready(hub.kubeconfig(), &a, "team");
    let team = format!("{base}/clusters/root:a:team");
    ok_as(
        &alice,
        &["--server", &team, "create", "configmap", "inherited"],
    );
    assert!(hub
        .fails(&[
            "--server",
            &team,
            "get",
            "clusterrolebinding",
            "workspace-admin"
        ])
        .contains("NotFound"));

    // A RoleBinding alone does not let bob in; workspace access does.
    let bob = hub.user_kubeconfig("bob", &[]);
    hub.ok(&[
        "--server",
        &b,
        "create",
        "rolebinding",
        "bob-views",
        "--clusterrole=view",
        "--user=bob",
        "-n",
        "default",
    ]);
    forbidden_as(
        &bob,
        &["--server", &b, "get", "configmaps", "-n", "default"],
    );
    let err = forbidden_as(
        &bob,
        &[
            "--server",
            &b,
            "get",
            "--raw",
            "/api/v1/namespaces/default/configmaps",
        ],
    );
    assert!(err.contains("cannot access workspace \"root:b\""), "{err}");
    hub.ok(&[
        "--server",
        &b,
        "create",
        "clusterrolebinding",
        "bob-enters",
        "--clusterrole=system:trellis:workspace-access",
        "--user=bob",
    ]);
    assert!(ok_as(
        &bob,
        &["--server", &b, "get", "configmaps", "-n", "default"]
    )
    .contains("theirs"));
    let err = forbidden_as(&bob, &["--server", &b, "get", "secrets", "-n", "default"]);
    assert!(
        err.contains(
            "secrets is forbidden: User \"bob\" cannot list resource \"secrets\" in API group \"\" in the namespace \"default\""
        ),
        "{err}"
    );
    let err = forbidden_as(
        &bob,
        &[
            "--server",
            &b,
            "get",
            "configmaps",
            "-n",
            "kube-system",
            "x",
        ],
    );
    assert!(
        err.contains("configmaps \"x\" is forbidden: User \"bob\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"kube-system\""),
        "{err}"
    );

    // Without a client certificate: 401, but health checks still answer.
    let mut config = kube::Config::new(root.parse().unwrap());
    config.accept_invalid_certs = true;
    let anonymous = kube::Client::try_from(config).unwrap();
    let request = |path: &str| http::Request::get(path).body(Vec::new()).unwrap();
    match anonymous.request_text(request("/api/v1/namespaces")).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 401, "{status:?}"),
        other => panic!("expected 401, got {other:?}"),
    }
    assert_eq!(
        anonymous.request_text(request("/readyz")).await.unwrap(),
        "ok"
    );
}

/// A kube-rs client with `kubeconfig`'s credentials, talking to `server`.
async fn client_for(kubeconfig: &Path, server: &str) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).unwrap();
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .unwrap();
    config.cluster_url = server.parse().unwrap();
    kube::Client::try_from(config).unwrap()
}

fn assert_forbidden<T: std::fmt::Debug>(what: &str, result: Result<T, kube::Error>) {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => {
            assert_eq!(status.reason, "Forbidden", "{what}: {status:?}")
        }
        other => panic!("{what}: expected 403, got {other:?}"),
    }
}

/// get, list, watch, create, update, patch, delete and deletecollection of ConfigMaps in
/// `server` all answer 403.
async fn every_verb_is_forbidden(kubeconfig: &Path, server: &str) {
    use kube::api::{DeleteParams, Patch, PatchParams, PostParams, WatchParams};
    let api: Api<ConfigMap> = Api::namespaced(client_for(kubeconfig, server).await, "default");
    let cm: ConfigMap = serde_json::from_value(
        serde_json::json!({"metadata": {"name": "theirs", "namespace": "default"}}),
    )
    .unwrap();
    assert_forbidden("get", api.get("theirs").await);
    assert_forbidden("list", api.list(&ListParams::default()).await);
    assert_forbidden(
        "watch",
        api.watch(&WatchParams::default(), "0").await.map(|_| ()),
    );
    assert_forbidden("create", api.create(&PostParams::default(), &cm).await);
    assert_forbidden(
        "update",
        api.replace("theirs", &PostParams::default(), &cm).await,
    );
    let patch = Patch::Merge(serde_json::json!({"data": {"a": "b"}}));
    assert_forbidden(
        "patch",
        api.patch("theirs", &PatchParams::default(), &patch).await,
    );
    assert_forbidden(
        "delete",
        api.delete("theirs", &DeleteParams::default()).await,
    );
    assert_forbidden(
        "deletecollection",
        api.delete_collection(&DeleteParams::default(), &ListParams::default())
            .await,
    );
}

const CAROL_READS_CONFIGMAPS: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: cm-reader, namespace: default}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: carol-reads, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: cm-reader}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: carol}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: carol-enters}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:trellis:workspace-access"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: carol}]
"#;

const ERIN_READS_ONE_CONFIGMAP: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: one-cm-reader, namespace: default}
rules:
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [wanted]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: erin-reads-one, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: one-cm-reader}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: erin}]
"#;

/// The names of the objects in the events of a watch answered as text (one JSON per line).
fn watched_names(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(event["type"], "ADDED", "{line}");
            event["object"]["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// A role for one object covers a list or watch limited to it by `metadata.name`, as
/// kube-apiserver takes the name from the field selector (`kubectl get cm wanted -w`); the
/// deprecated `/watch/` paths watch a collection, or one object when named.
async fn a_role_for_one_object_covers_its_list_and_watch(hub: &Hub) {
    use futures::TryStreamExt;
    use kube::api::WatchParams;

    apply(hub, ERIN_READS_ONE_CONFIGMAP);
    hub.ok(&[
        "create",
        "clusterrolebinding",
        "erin-enters",
        "--clusterrole=system:trellis:workspace-access",
        "--user=erin",
    ]);
    for name in ["wanted", "other"] {
        hub.ok(&["create", "configmap", name, "-n", "default"]);
    }
    let erin = hub.user_kubeconfig("erin", &[]);
    ok_as(&erin, &["get", "configmap", "wanted", "-n", "default"]);
    forbidden_as(&erin, &["get", "configmap", "other", "-n", "default"]);
    forbidden_as(&erin, &["get", "configmaps", "-n", "default"]);
    let by_name = ["get", "configmaps", "-n", "default", "-o", "name"];
    let listed = ok_as(
        &erin,
        &[&by_name[..], &["--field-selector", "metadata.name=wanted"]].concat(),
    );
    assert_eq!(listed.trim(), "configmap/wanted");
    forbidden_as(
        &erin,
        &[&by_name[..], &["--field-selector", "metadata.name=other"]].concat(),
    );

    let root = format!("{}/clusters/root", base_url(hub));
    let client = client_for(&erin, &root).await;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let watch = WatchParams::default()
        .fields("metadata.name=wanted")
        .timeout(1);
    let events: Vec<_> = configmaps
        .watch(&watch, "0")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_forbidden(
        "a watch of another object",
        configmaps
            .watch(&WatchParams::default().fields("metadata.name=other"), "0")
            .await
            .map(|_| ()),
    );

    let request = |path: &str| http::Request::get(path).body(Vec::new()).unwrap();
    let legacy = "/api/v1/watch/namespaces/default/configmaps";
    let one = client
        .request_text(request(&format!(
            "{legacy}/wanted?resourceVersion=0&timeoutSeconds=1"
        )))
        .await
        .unwrap();
    assert_eq!(watched_names(&one), ["wanted"]);
    match client
        .request_text(request(&format!(
            "{legacy}?resourceVersion=0&timeoutSeconds=1"
        )))
        .await
    {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("expected 403 for the whole collection, got {other:?}"),
    }
    let admin = hub.client().await;
    let mut all = watched_names(
        &admin
            .request_text(request(&format!(
                "{legacy}?resourceVersion=0&timeoutSeconds=1"
            )))
            .await
            .unwrap(),
    );
    all.sort();
    assert!(
        all.contains(&"other".to_string()) && all.contains(&"wanted".to_string()),
        "{all:?}"
    );
    match admin
        .request_text(request(&format!(
            "{legacy}/wanted?fieldSelector=metadata.name%3Dother&timeoutSeconds=1"
        )))
        .await
    {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 400, "{status:?}");
            assert_eq!(
                status.message,
                "fieldSelector metadata.name doesn't match requested name"
            );
        }
        other => panic!("expected 400, got {other:?}"),
    }
}

const AGGREGATED: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: cm-monitoring}
aggregationRule:
  clusterRoleSelectors:
  - matchLabels: {example.com/aggregate-to-monitoring: "true"}
rules: []
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: cm-watcher
  labels: {example.com/aggregate-to-monitoring: "true"}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: carol-monitors}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cm-monitoring}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: carol}]
"#;

const VERBS: [&str; 8] = [
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

fn can_i(kubeconfig: &Path, args: &[&str]) -> String {
    let mut full = vec!["auth", "can-i"];
    full.extend_from_slice(args);
    // `no` exits 1: read the answer, not the status.
    kubectl_with_kubeconfig(kubeconfig, &full)
        .1
        .trim()
        .to_string()
}

async fn a_role_grants_exactly_its_verbs(hub: &Hub) {
    let dir = tempfile::tempdir().unwrap();
    apply(hub, CAROL_READS_CONFIGMAPS);
    hub.ok(&["create", "configmap", "settings", "-n", "default"]);
    let carol = hub.user_kubeconfig("carol", &["readers"]);
    for verb in VERBS {
        let expected = if matches!(verb, "get" | "list") {
            "yes"
        } else {
            "no"
        };
        assert_eq!(
            can_i(&carol, &[verb, "configmaps", "-n", "default"]),
            expected,
            "{verb}"
        );
        assert_eq!(
            can_i(&carol, &[verb, "configmaps", "-n", "kube-system"]),
            "no",
            "{verb}"
        );
        assert_eq!(
            can_i(&carol, &[verb, "secrets", "-n", "default"]),
            "no",
            "{verb}"
        );
    }
    assert_eq!(
        can_i(&carol, &["get", "configmaps/settings", "-n", "default"]),
        "yes"
    );
    assert_eq!(
        can_i(&carol, &["list", "configmaps", "--all-namespaces"]),
        "no"
    );
    assert_eq!(can_i(&carol, &["get", "/api"]), "yes");
    assert_eq!(can_i(&carol, &["access", "/"]), "yes");
    // A user who may not enter the workspace hears "no", with the reason.
    let dan = can_i(&hub.user_kubeconfig("dan", &[]), &["get", "configmaps"]);
    assert!(dan.starts_with("no"), "{dan}");
    assert_eq!(
        hub.ok(&["auth", "can-i", "delete", "secrets", "-n", "kube-system"])
            .trim(),
        "yes"
    );

    let list = ok_as(&carol, &["auth", "can-i", "--list", "-n", "default"]);
    let row = list
        .lines()
        .find(|l| l.starts_with("configmaps "))
        .unwrap_or_else(|| panic!("no configmaps row in {list}"));
    assert!(row.trim_end().ends_with("[get list]"), "{row}");
    assert!(
        list.contains("selfsubjectaccessreviews.authorization.k8s.io"),
        "{list}"
    );
    assert!(!list.contains("secrets"), "{list}");

    // What the answers promise is what requests get.
    assert!(ok_as(&carol, &["get", "configmaps", "-n", "default"]).contains("settings"));
    ok_as(&carol, &["get", "configmap", "settings", "-n", "default"]);
    let err = forbidden_as(&carol, &["create", "configmap", "mine", "-n", "default"]);
    assert!(
        err.contains("configmaps is forbidden: User \"carol\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"default\""),
        "{err}"
    );
    forbidden_as(
        &carol,
        &["delete", "configmap", "settings", "-n", "default"],
    );
    forbidden_as(
        &carol,
        &[
            "get",
            "configmaps",
            "-n",
            "default",
            "--watch",
            "--request-timeout=10s",
        ],
    );

    // A SubjectAccessReview asks the same about someone else (the admin may create them).
    let sar = |verb: &str| {
        format!(
            "apiVersion: authorization.k8s.io/v1\nkind: SubjectAccessReview\nspec:\n  user: carol\n  resourceAttributes:\n    namespace: default\n    verb: {verb}\n    resource: configmaps\n"
        )
    };
    for (verb, allowed) in [("list", "true"), ("delete", "false")] {
        let file = write_file(dir.path(), &format!("sar-{verb}.yaml"), &sar(verb));
        assert_eq!(
            hub.ok(&["create", "-f", &file, "-o", "jsonpath={.status.allowed}"]),
            allowed,
            "{verb}"
        );
    }
    forbidden_as(
        &carol,
        &[
            "create",
            "-f",
            &write_file(dir.path(), "sar-self.yaml", &sar("get")),
        ],
    );

    // Carol may write Roles and RoleBindings in default, but grant only what she holds.
    hub.ok(&[
        "create",
        "role",
        "rbac-writer",
        "-n",
        "default",
        "--verb=create,update,patch",
        "--resource=roles,rolebindings",
    ]);
    hub.ok(&[
        "create",
        "rolebinding",
        "carol-writes-rbac",
        "-n",
        "default",
        "--role=rbac-writer",
        "--user=carol",
    ]);
    ok_as(
        &carol,
        &[
            "create",
            "role",
            "subset",
            "-n",
            "default",
            "--verb=get",
            "--resource=configmaps",
        ],
    );
    let err = forbidden_as(
        &carol,
        &[
            "create",
            "role",
            "more",
            "-n",
            "default",
            "--verb=delete",
            "--resource=configmaps",
        ],
    );
    assert!(
        err.contains("is attempting to grant RBAC permissions not currently held"),
        "{err}"
    );
    ok_as(
        &carol,
        &[
            "create",
            "rolebinding",
            "dan-reads",
            "-n",
            "default",
            "--role=cm-reader",
            "--user=dan",
        ],
    );
    forbidden_as(
        &carol,
        &[
            "create",
            "rolebinding",
            "dan-admin",
            "-n",
            "default",
            "--clusterrole=admin",
            "--user=dan",
        ],
    );
    // Not in another namespace, where she holds nothing.
    forbidden_as(
        &carol,
        &[
            "create",
            "role",
            "subset",
            "-n",
            "kube-system",
            "--verb=get",
            "--resource=configmaps",
        ],
    );

    // Removing the binding takes effect for the next request.
    hub.ok(&["delete", "rolebinding", "carol-reads", "-n", "default"]);
    assert_eq!(can_i(&carol, &["get", "configmaps", "-n", "default"]), "no");
    forbidden_as(&carol, &["get", "configmaps", "-n", "default"]);

    // Aggregated ClusterRoles show the rules of the roles they select, and grant them.
    apply(hub, AGGREGATED);
    wait_until(|| {
        hub.kubectl(&[
            "get",
            "clusterrole",
            "cm-monitoring",
            "-o",
            "jsonpath={.rules[0].resources}",
        ])
        .1 == r#"["configmaps"]"#
    });
    assert_eq!(
        can_i(&carol, &["watch", "configmaps", "-n", "kube-system"]),
        "yes"
    );

    // Discovery shows the review resources as create-only.
    let resources = hub.ok(&[
        "api-resources",
        "--api-group=authorization.k8s.io",
        "-o",
        "wide",
    ]);
    assert!(
        resources.contains("selfsubjectaccessreviews"),
        "{resources}"
    );
}

/// The default ClusterRoles and bindings are objects clients can read in every workspace:
/// listed, fetched, with aggregated rules as the workspace sees them; a stored one of the same
/// name replaces a default, and the first write to a default stores it.
async fn default_cluster_roles_are_readable_objects(hub: &Hub) {
    hub.ok(&["ws", "create", "team"]);
    let team = format!("{}/clusters/root:team", base_url(hub));
    let in_team = |args: &[&str]| {
        let mut full = vec!["--server", team.as_str()];
        full.extend_from_slice(args);
        hub.ok(&full)
    };
    let names = in_team(&["get", "clusterroles", "-o", "name"]);
    for role in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:aggregate-to-view",
        "system:auth-delegator",
        "system:public-info-viewer",
        "system:basic-user",
    ] {
        assert!(
            names
                .lines()
                .any(|l| l == format!("clusterrole.rbac.authorization.k8s.io/{role}")),
            "{role} listed: {names}"
        );
    }
    let bindings = in_team(&["get", "clusterrolebindings", "-o", "name"]);
    assert!(bindings.contains("clusterrolebinding.rbac.authorization.k8s.io/system:basic-user"));
    // `view` holds what the kinds grant viewers (configmaps among them), aggregated.
    let view = in_team(&["get", "clusterrole", "view", "-o", "json"]);
    let view: serde_json::Value = serde_json::from_str(&view).expect("json");
    let grants = |role: &serde_json::Value, resource: &str| {
        role["rules"].as_array().is_some_and(|rules| {
            rules.iter().any(|r| {
                r["resources"]
                    .as_array()
                    .is_some_and(|rs| rs.iter().any(|x| x == resource))
            })
        })
    };
    assert!(grants(&view, "configmaps"), "{view}");
    // As in Kubernetes, viewers do not see who may do what: roles and bindings are admins'.
    assert!(
        !grants(&view, "roles") && !grants(&view, "rolebindings"),
        "{view}"
    );
    let admin: serde_json::Value =
        serde_json::from_str(&in_team(&["get", "clusterrole", "admin", "-o", "json"])).unwrap();
    assert!(grants(&admin, "rolebindings"), "{admin}");
    assert!(view["aggregationRule"].is_object());
    assert!(!view["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .is_empty());
    // A stored role labelled to aggregate into view adds its rules to view, here only.
    let dir = tempfile::tempdir().unwrap();
    let widgets = write_file(
        dir.path(),
        "widgets.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: widget-viewer
  labels: {rbac.authorization.k8s.io/aggregate-to-view: \"true\"}
rules:
- apiGroups: [example.com]
  resources: [widgets]
  verbs: [get]
",
    );
    in_team(&["apply", "-f", &widgets]);
    let aggregated = || {
        let view = in_team(&["get", "clusterrole", "view", "-o", "json"]);
        serde_json::from_str::<serde_json::Value>(&view).expect("json")
    };
    wait_until(|| grants(&aggregated(), "widgets"));
    let root_view: serde_json::Value =
        serde_json::from_str(&hub.ok(&["get", "clusterrole", "view", "-o", "json"])).unwrap();
    assert!(!grants(&root_view, "widgets"), "other workspaces unchanged");
    // A write to a default stores it; it is then listed once, with the change.
    in_team(&["label", "clusterrole", "edit", "team=yes"]);
    assert_eq!(
        in_team(&[
            "get",
            "clusterrole",
            "edit",
            "-o",
            "jsonpath={.metadata.labels.team}"
        ]),
        "yes"
    );
    let names = in_team(&["get", "clusterroles", "-o", "name"]);
    assert_eq!(
        names
            .lines()
            .filter(|l| *l == "clusterrole.rbac.authorization.k8s.io/edit")
            .count(),
        1,
        "{names}"
    );
    // Label selectors apply to the defaults too.
    let selected = in_team(&[
        "get",
        "clusterroles",
        "-l",
        "rbac.authorization.k8s.io/aggregate-to-edit=true",
        "-o",
        "name",
    ]);
    assert!(
        selected.contains("clusterrole.rbac.authorization.k8s.io/view"),
        "{selected}"
    );
    assert!(!selected.contains("/cluster-admin"), "{selected}");
    let (ok, _, err) = hub.kubectl(&["get", "clusterrole", "no-such-role"]);
    assert!(!ok && err.contains("NotFound"), "{err}");
    // A write to a default that fails stores nothing: it is still the default.
    let (ok, _, err) = hub.kubectl(&[
        "--server",
        &team,
        "patch",
        "clusterrole",
        "admin",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"z":1}}}"#,
    ]);
    assert!(!ok && err.contains("BadRequest"), "{err}");
    assert_eq!(
        in_team(&[
            "get",
            "clusterrole",
            "admin",
            "-o",
            "jsonpath={.metadata.resourceVersion}"
        ]),
        "1"
    );
    // Server-side apply to a default applies to it as it stands: `view` keeps its aggregation.
    let view_label = write_file(
        dir.path(),
        "view.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: view\n  labels: {team: \"yes\"}\n",
    );
    in_team(&["apply", "--server-side", "-f", &view_label]);
    let view = aggregated();
    assert_eq!(view["metadata"]["labels"]["team"], "yes");
    assert!(view["aggregationRule"].is_object(), "{view}");
    assert!(grants(&view, "configmaps"), "{view}");
    // RBAC names are path segments, as in Kubernetes: colons are fine, slashes are not.
    in_team(&[
        "create",
        "clusterrole",
        "team:reader",
        "--verb=get",
        "--resource=configmaps",
    ]);
    let (ok, _, err) = hub.kubectl(&[
        "--server",
        &team,
        "create",
        "clusterrole",
        "team/reader",
        "--verb=get",
        "--resource=configmaps",
    ]);
    assert!(!ok && err.contains("may not contain '/'"), "{err}");
}

const BINDING_WITHOUT_API_GROUPS: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: plain, namespace: default}
roleRef: {kind: Role, name: reader}
subjects:
- {kind: User, name: u}
- {kind: Group, name: g}
- {kind: ServiceAccount, name: default, namespace: default}
"#;

const ROLE_WITHOUT_VERBS: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: no-verbs, namespace: default}
rules:
- apiGroups: [""]
  resources: [configmaps]
"#;

/// RBAC objects are defaulted and validated as kube-apiserver does it: bindings get their API
/// groups, a roleRef never changes, a rule names its verbs.
async fn rbac_objects_are_defaulted_and_validated(hub: &Hub) {
    let dir = tempfile::tempdir().unwrap();
    hub.ok(&[
        "create",
        "role",
        "reader",
        "--verb=get",
        "--resource=configmaps",
        "-n",
        "default",
    ]);
    hub.ok(&[
        "create",
        "rolebinding",
        "rb",
        "--role=reader",
        "--user=u",
        "-n",
        "default",
    ]);
    let api_groups = |name: &str| {
        hub.ok(&[
            "get",
            "rolebinding",
            name,
            "-n",
            "default",
            "-o",
            "jsonpath={.roleRef.apiGroup} {.subjects[*].apiGroup}",
        ])
    };
    assert_eq!(
        api_groups("rb"),
        "rbac.authorization.k8s.io rbac.authorization.k8s.io"
    );
    // Sent without them, the roleRef's and the User's and Group's API groups are defaulted
    // (a ServiceAccount's stays empty).
    hub.ok(&[
        "create",
        "-f",
        &write_file(dir.path(), "plain.yaml", BINDING_WITHOUT_API_GROUPS),
    ]);
    assert_eq!(
        api_groups("plain"),
        "rbac.authorization.k8s.io rbac.authorization.k8s.io rbac.authorization.k8s.io"
    );
    assert_eq!(
        hub.ok(&[
            "get",
            "rolebinding",
            "plain",
            "-n",
            "default",
            "-o",
            "jsonpath={.subjects[2]}",
        ]),
        r#"{"kind":"ServiceAccount","name":"default","namespace":"default"}"#
    );

    // The roleRef is immutable.
    let err = hub.fails(&[
        "patch",
        "rolebinding",
        "rb",
        "-n",
        "default",
        "--type=merge",
        "-p",
        r#"{"roleRef":{"name":"other"}}"#,
    ]);
    assert!(
        err.contains(r#"The RoleBinding "rb" is invalid: roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"Role", Name:"other"}: cannot change roleRef"#),
        "{err}"
    );
    assert_eq!(
        hub.ok(&[
            "get",
            "rolebinding",
            "rb",
            "-n",
            "default",
            "-o",
            "jsonpath={.roleRef.name}"
        ]),
        "reader"
    );
    // Subjects may change.
    hub.ok(&[
        "patch",
        "rolebinding",
        "rb",
        "-n",
        "default",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/subjects/-","value":{"kind":"Group","name":"readers"}}]"#,
    ]);

    // A rule without verbs is refused, 422 with the field named.
    let err = hub.fails(&[
        "create",
        "-f",
        &write_file(dir.path(), "no-verbs.yaml", ROLE_WITHOUT_VERBS),
        "-v=6",
    ]);
    assert!(err.contains("422 Unprocessable Entity"), "{err}");
    assert!(
        err.contains(r#"The Role "no-verbs" is invalid: rules[0].verbs: Required value: verbs must contain at least one value"#),
        "{err}"
    );
    let (ok, _, _) = hub.kubectl(&["get", "role", "no-verbs", "-n", "default"]);
    assert!(!ok, "nothing stored");
}

on_both_stores!(
    users_are_confined_to_their_workspaces,
    a_role_grants_exactly_its_verbs,
    a_role_for_one_object_covers_its_list_and_watch,
    default_cluster_roles_are_readable_objects,
    rbac_objects_are_defaulted_and_validated,
);

/// A kube-rs client for `user` (a client certificate from the replica's CA).
async fn client_as(replica: &Replica, user: &str) -> kube::Client {
    let path = user_kubeconfig(replica.dir.path(), &replica.kubeconfig(), user, &[]);
    let kubeconfig = Kubeconfig::read_from(path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

const ERIN_READS_CONFIGMAPS: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: erin-views, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: erin}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: erin-enters}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:trellis:workspace-access"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: erin}]
"#;

/// A RoleBinding deleted through one replica stops counting on both within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_binding_stops_counting_on_every_replica_within_a_second() {
    let db = PostgresCluster::shared()
        .create_database("authz_replicas")
        .await
        .unwrap();
    let a = Replica::start(db.url());
    let b = Replica::start_with_ca(db.url(), Some(a.dir.path()));
    let manifest = a.dir.path().join("erin.yaml");
    std::fs::write(&manifest, ERIN_READS_CONFIGMAPS).unwrap();
    a.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    let on_a: Api<ConfigMap> = Api::namespaced(client_as(&a, "erin").await, "default");
    let on_b: Api<ConfigMap> = Api::namespaced(client_as(&b, "erin").await, "default");
    // Granted on both (B may need a moment to hear of the binding).
    on_a.list(&ListParams::default())
        .await
        .expect("erin lists on A");
    let granted = Instant::now();
    while on_b.list(&ListParams::default()).await.is_err() {
        assert!(
            granted.elapsed() < Duration::from_secs(1),
            "B never granted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    a.ok(&["delete", "rolebinding", "erin-views", "-n", "default"]);
    let removed = Instant::now();
    for (name, api) in [("A", &on_a), ("B", &on_b)] {
        loop {
            match api.list(&ListParams::default()).await {
                Err(kube::Error::Api(status)) if status.code == 403 => break,
                Err(other) => panic!("{name}: unexpected {other}"),
                Ok(_) => {}
            }
            assert!(
                removed.elapsed() < Duration::from_secs(1),
                "{name} still grants after {:?}",
                removed.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    println!(
        "binding removal effective on both replicas after {:?}",
        removed.elapsed()
    );
}
