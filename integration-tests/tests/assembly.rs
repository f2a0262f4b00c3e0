//! Servers are assembled from API groups and controllers. A kind added in one file (here, in
//! this test) is served with its validation, Table columns, default-role grants and selectable
//! field by the server that installs its group, and by no other; two differently assembled
//! servers run in one process, and each one's shutdown stops everything it started.

use std::path::Path;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use trellis_integration_tests::{kubectl_with_kubeconfig, user_kubeconfig, write_file};
use trellis_server::kinds::StatusCause;
use trellis_server::kinds::{
    age_cell, cell_text, core, rbac, schema_of, Column, Grants, Kind, Names, SchemaSource,
    SchemeBuilder, AGE, NAME, READ, WRITE,
};
use trellis_server::{Server, ServerBuilder, StartOptions};

// --- What would be the kind's file in `apis/`: its type. -------------------------------------

/// A gadget: a test kind.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.gadgets.v1.Gadget")]
struct Gadget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(default)]
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    #[serde(default)]
    spec: GadgetSpec,
}

/// What a gadget is.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.gadgets.v1.GadgetSpec")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.size <= 100 || self.color == 'red'",
    "message": "only red gadgets may be larger than 100",
}]))]
struct GadgetSpec {
    /// The gadget's color.
    #[serde(default = "blue")]
    color: String,
    /// How large it is.
    #[serde(default)]
    size: i64,
}

fn blue() -> String {
    "blue".into()
}

// --- The kind's file in the kinds folder. ----------------------------------------------------

const GROUP: &str = "gadgets.trellis.dev";

struct GadgetKind;

impl Kind for GadgetKind {
    fn names(&self) -> Names {
        Names::namespaced(GROUP, "v1", "Gadget", "gadgets").short(&["gd"])
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Own(schema_of::<Gadget>)
    }

    fn validate(&self, object: &Value, _old: Option<&Value>) -> Vec<StatusCause> {
        match object.pointer("/spec/size").and_then(Value::as_i64) {
            Some(size) if size < 0 => vec![StatusCause {
                kind: "FieldValueInvalid".into(),
                message: format!("Invalid value: {size}: must not be negative"),
                field: "spec.size".into(),
            }],
            _ => Vec::new(),
        }
    }

    fn columns(&self) -> &'static [Column] {
        &[NAME, ("Color", "string", 0), ("Size", "integer", 0), AGE]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![
            cell_text(o, "/metadata/name"),
            cell_text(o, "/spec/color"),
            o.pointer("/spec/size").cloned().unwrap_or(Value::from(0)),
            age_cell(o),
        ]
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &["spec.color"]
    }

    fn grants(&self) -> Grants {
        Grants {
            view: READ,
            edit: WRITE,
            admin: &[],
        }
    }
}

// --- The group's install list. ---------------------------------------------------------------

fn install_gadgets(scheme: &mut SchemeBuilder) {
    scheme.add(GadgetKind);
}

// --- The test. ---------------------------------------------------------------------------------

fn options(dir: &Path) -> StartOptions {
    StartOptions {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().expect("address"),
        store: None,
        tls_sans: Vec::new(),
        shards: Vec::new(),
        security: Default::default(),
    }
}

fn kubectl(server: &Server, args: &[&str]) -> (bool, String, String) {
    kubectl_with_kubeconfig(&server.kubeconfig, args)
}

fn ok(server: &Server, args: &[&str]) -> String {
    let (ok, out, err) = kubectl(server, args);
    assert!(ok, "kubectl {args:?}: {err}");
    out
}

fn fails(server: &Server, args: &[&str]) -> String {
    let (ok, out, err) = kubectl(server, args);
    assert!(!ok, "kubectl {args:?} should fail, printed {out}");
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_differently_assembled_servers_in_one_process() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let tasks_before = metrics.num_alive_tasks();
    let (hub_dir, gadget_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let hub = ServerBuilder::hub(options(hub_dir.path()))
        .start()
        .await
        .expect("the hub starts");
    let gadgets = ServerBuilder::new(options(gadget_dir.path()))
        .install(core::install)
        .install(rbac::install)
        .install(install_gadgets)
        .start()
        .await
        .expect("the gadget server starts");

    // The gadget server serves gadgets, validated by their schema (defaults, CEL) and their
    // kind's own rule, shown with their columns, selectable by color.
    let manifests = tempfile::tempdir().unwrap();
    let gadget = |name: &str, spec: &str| {
        write_file(
            manifests.path(),
            &format!("{name}.yaml"),
            &format!("apiVersion: {GROUP}/v1\nkind: Gadget\nmetadata: {{name: {name}, namespace: default}}\nspec: {spec}\n"),
        )
    };
    ok(
        &gadgets,
        &[
            "apply",
            "--server-side",
            "-f",
            &gadget("small", "{size: 3}"),
        ],
    );
    ok(
        &gadgets,
        &[
            "apply",
            "--server-side",
            "-f",
            &gadget("big", "{size: 500, color: red}"),
        ],
    );
    let listed = ok(&gadgets, &["get", "gadgets"]);
    let header: Vec<&str> = listed.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "COLOR", "SIZE", "AGE"], "{listed}");
    assert!(
        listed.contains("small") && listed.contains("blue"),
        "defaulted color: {listed}"
    );
    assert_eq!(
        ok(
            &gadgets,
            &[
                "get",
                "gd",
                "--field-selector",
                "spec.color=red",
                "-o",
                "name"
            ]
        )
        .trim(),
        "gadget.gadgets.trellis.dev/big"
    );
    let err = fails(
        &gadgets,
        &[
            "apply",
            "--server-side",
            "-f",
            &gadget("huge", "{size: 500}"),
        ],
    );
    assert!(
        err.contains("only red gadgets may be larger than 100"),
        "{err}"
    );
    let err = fails(
        &gadgets,
        &["apply", "--server-side", "-f", &gadget("neg", "{size: -1}")],
    );
    assert!(
        err.contains("spec.size") && err.contains("must not be negative"),
        "{err}"
    );
    let explained = ok(&gadgets, &["explain", "gadgets.spec.color"]);
    assert!(explained.contains("The gadget's color."), "{explained}");

    // The default roles grant what the kind says: a viewer reads gadgets and may not write.
    ok(
        &gadgets,
        &[
            "create",
            "clusterrolebinding",
            "v",
            "--clusterrole=view",
            "--user=vera",
        ],
    );
    let vera = user_kubeconfig(gadget_dir.path(), &gadgets.kubeconfig, "vera", &[]);
    let (listed, out, err) = kubectl_with_kubeconfig(&vera, &["get", "gadgets", "-o", "name"]);
    assert!(
        listed && out.contains("gadget.gadgets.trellis.dev/small"),
        "{err}"
    );
    let (deleted, _, err) = kubectl_with_kubeconfig(&vera, &["delete", "gadget", "small"]);
    assert!(!deleted && err.contains("Forbidden"), "{err}");

    // Each server serves only what it was assembled with.
    let err = fails(&hub, &["get", "gadgets"]);
    assert!(
        err.contains("the server doesn't have a resource type"),
        "{err}"
    );
    let err = fails(&gadgets, &["get", "workspaces"]);
    assert!(
        err.contains("the server doesn't have a resource type"),
        "{err}"
    );
    ok(&hub, &["get", "workspaces"]);

    // Shutting down stops everything each started: its listener refuses connections, and the
    // runtime is back to the tasks it had before.
    let addresses = [hub.addr, gadgets.addr];
    hub.shutdown().await;
    gadgets.shutdown().await;
    for addr in addresses {
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "{addr} still accepts connections"
        );
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let alive = metrics.num_alive_tasks();
        if alive <= tasks_before {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{alive} tasks alive after both shutdowns, {tasks_before} before the servers"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
