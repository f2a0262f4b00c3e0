//! `examples/gpu-hub/walkthrough.sh`, the README walkthrough of a hub, two simulated clusters,
//! their syncers, a pool, two tenants, a deployment and a failover, run as a user would run it
//! (with the binaries this build made), so that it keeps working. About a minute: the
//! failover waits out the hub's 40 s heartbeat timeout.

use std::path::Path;
use std::process::Command;

use trellis_integration_tests::{edge_binary, trellis_binary};

#[test]
fn the_gpu_hub_walkthrough_runs() {
    // trellis, kubectl-ws and trellis-edge are built into the directory of trellis-syncer.
    let bin = Path::new(env!("CARGO_BIN_EXE_trellis-syncer"))
        .parent()
        .expect("the binaries' directory");
    assert_eq!(trellis_binary().parent(), Some(bin));
    assert_eq!(edge_binary().parent(), Some(bin));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/gpu-hub/walkthrough.sh");
    let work = tempfile::tempdir().expect("temp dir");
    let out = Command::new("bash")
        .arg(&script)
        .env("BIN", bin)
        .env("WORK", work.path())
        .output()
        .expect("run the walkthrough");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the walkthrough failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "workspace.tenancy.trellis.dev/acme created",
        "gpupool.compute.trellis.dev/h200 created",
        "modeldeployment.serving.trellis.dev/llama condition met",
        "2/2     Ready",
        "walkthrough complete",
    ] {
        assert!(stdout.contains(expected), "{expected:?} in:\n{stdout}");
    }
}
