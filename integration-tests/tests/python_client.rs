//! The official Kubernetes Python client (PyPI `kubernetes`, which CI installs) against a
//! workspace URL, on both stores: `tests/python/client.py` drives it and prints what it saw.

use std::process::Command;

use serde_json::{json, Value};
use trellis_integration_tests::{on_both_stores, Hub};

/// Runs the client script with the hub's kubeconfig; what it printed, as JSON.
fn run_client(hub: &Hub) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/client.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(hub.kubeconfig())
        .output()
        .expect("python3 is on PATH");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'kubernetes'"),
        "the Python client is missing: `pip install kubernetes` (as .ci/run does)"
    );
    assert!(out.status.success(), "client.py failed:\n{stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "client.py printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

async fn python_client_in_a_workspace(hub: &Hub) {
    hub.ok(&["ws", "create", "py", "--enter"]);
    let seen = run_client(hub);

    assert!(
        seen["server"]
            .as_str()
            .unwrap()
            .ends_with("/clusters/root:py"),
        "{seen}"
    );
    // A new workspace starts with `default` (as in kcp), then the namespace the client made.
    assert_eq!(seen["namespaces"], json!(["default", "py"]));
    // The watch from the create's resourceVersion: the patch, then the delete, nothing else.
    assert_eq!(
        seen["events"],
        json!([["MODIFIED", "c1", {"a": "1", "b": "2"}], ["DELETED", "c1", {"a": "1", "b": "2"}]])
    );
    assert_eq!(seen["read_after_delete"], 404);
    assert_eq!(seen["read_after_delete_reason"], "NotFound");
    assert_eq!(
        seen["paged"],
        json!({"pages": 3, "names": ["p0", "p1", "p2", "p3", "p4"]})
    );
    assert_eq!(seen["stale_replace"], 409);
    assert_eq!(seen["gadget"], json!({"size": 4}));
    assert_eq!(seen["too_big"], 422);
    assert_eq!(
        seen["too_big_message"],
        "Gadget.py.example.com \"g\" is invalid: spec.size: Invalid value: 11: spec.size in body \
         should be less than or equal to 10"
    );
    assert_eq!(
        seen["too_big_causes"],
        json!([["FieldValueInvalid", "spec.size"]])
    );
    assert_eq!(seen["dynamic"], json!(["g"]));
    assert_eq!(
        seen["ssa"],
        json!({"data": {"k": "v"}, "manager": "python"})
    );
}

on_both_stores!(python_client_in_a_workspace);
