//! The fleet as real processes, for the end-to-end tests and benchmarks that run it that way
//! (`syncer/tests/gpu_fleet_e2e.rs`, `syncer/benches/fleet_e2e.rs`): the hub (`trellis start`
//! on a Postgres database), simulated edge clusters (`trellis-edge`), a SyncTarget registered
//! with `trellis synctarget create`, and the syncer. Every process is killed when its handle
//! is dropped, and writes its stderr to a log file the caller names (shown when a test fails).
//!
//! The waits here panic with what they saw last: a test or benchmark that cannot set its
//! fleet up has nothing left to do.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{edge_binary, kubectl_with_kubeconfig, trellis_binary};

/// A child process killed when dropped.
pub struct Process(Option<Child>);

impl Process {
    pub fn new(child: Child) -> Process {
        Process(Some(child))
    }

    /// No process (yet).
    pub fn none() -> Process {
        Process(None)
    }

    /// Its process id, while it runs.
    pub fn id(&self) -> Option<u32> {
        self.0.as_ref().map(Child::id)
    }

    /// SIGKILL, and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Where a process's stderr goes, appended across restarts.
pub fn log_file(path: &Path) -> Stdio {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("log file")
        .into()
}

/// Polls `read` for up to `limit` until `done` holds of what it read; panics showing the last
/// reading.
pub fn wait_long<T: std::fmt::Debug>(
    what: &str,
    limit: Duration,
    mut read: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        let seen = read();
        if done(&seen) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not reached in {limit:?}; last seen {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// [`wait_long`] for what happens within seconds.
pub fn eventually<T: std::fmt::Debug>(
    what: &str,
    read: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    wait_long(what, Duration::from_secs(30), read, done)
}

/// kubectl with `kubeconfig`, which must succeed; its stdout.
pub fn kubectl_ok(kubeconfig: &Path, args: &[&str]) -> String {
    let (ok, out, err) = kubectl_with_kubeconfig(kubeconfig, args);
    assert!(ok, "kubectl {args:?} failed: {err}");
    out
}

/// The hub: `trellis start` on `store` on a fixed loopback port, restartable on the same
/// port, data directory (CA, admin kubeconfig) and database.
pub struct HubProcess {
    pub process: Process,
    pub store: String,
    pub port: u16,
    pub dir: PathBuf,
    pub log: PathBuf,
    /// More `trellis start` flags (limits, say).
    pub args: Vec<String>,
}

impl HubProcess {
    pub fn start(store: String, dir: PathBuf, log: PathBuf) -> HubProcess {
        HubProcess::start_with(store, dir, log, Vec::new())
    }

    /// With more `trellis start` flags.
    pub fn start_with(store: String, dir: PathBuf, log: PathBuf, args: Vec<String>) -> HubProcess {
        let mut hub = HubProcess {
            process: Process::none(),
            store,
            port: trellis_testkit::free_loopback_port(),
            dir,
            log,
            args,
        };
        hub.restart();
        hub
    }

    /// Kills the hub if it runs and starts it again, waiting until it serves.
    pub fn restart(&mut self) {
        self.process.kill();
        let child = Command::new(trellis_binary())
            .args(["start", "--store", &self.store, "--listen"])
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(&self.dir)
            .args(&self.args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log_file(&self.log))
            .spawn()
            .expect("start trellis");
        self.process = Process::new(child);
        eventually(
            "the hub serves",
            || {
                self.kubeconfig().is_file()
                    && kubectl_with_kubeconfig(&self.kubeconfig(), &["get", "--raw", "/readyz"]).0
            },
            |ready| *ready,
        );
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("admin.kubeconfig")
    }

    /// The URL of `workspace`.
    pub fn server(&self, workspace: &str) -> String {
        format!("https://127.0.0.1:{}/clusters/{workspace}", self.port)
    }

    /// kubectl as the admin in `workspace`, which must succeed.
    pub fn ok(&self, workspace: &str, args: &[&str]) -> String {
        let server = self.server(workspace);
        let mut full = vec!["--server", server.as_str()];
        full.extend_from_slice(args);
        kubectl_ok(&self.kubeconfig(), &full)
    }

    /// kubectl as the user of `kubeconfig` in `workspace`.
    pub fn as_user(
        &self,
        kubeconfig: &Path,
        workspace: &str,
        args: &[&str],
    ) -> (bool, String, String) {
        let server = self.server(workspace);
        let mut full = vec!["--server", server.as_str()];
        full.extend_from_slice(args);
        kubectl_with_kubeconfig(kubeconfig, &full)
    }

    /// A kube-rs client as the admin in `workspace` (`*` for all of them).
    pub async fn client(&self, workspace: &str) -> kube::Client {
        use kube::config::{KubeConfigOptions, Kubeconfig};
        let file = Kubeconfig::read_from(self.kubeconfig()).expect("kubeconfig");
        let mut config = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
            .await
            .expect("client config");
        config.cluster_url = self.server(workspace).parse().expect("URL");
        kube::Client::try_from(config).expect("client")
    }

    /// `trellis synctarget create NAME --workspace WORKSPACE -o OUT` as the admin: registers a
    /// SyncTarget and writes the kubeconfig its syncer dials the hub with.
    pub fn register_target(&self, workspace: &str, name: &str, out: &Path) {
        let run = Command::new(trellis_binary())
            .args(["synctarget", "create", name, "--workspace", workspace, "-o"])
            .arg(out)
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .output()
            .expect("run trellis synctarget create");
        assert!(
            run.status.success(),
            "synctarget create {name}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
}

/// A `trellis-edge` process: a simulated cluster with its data in `<dir>/<name>-edge`, its
/// admin kubeconfig at `<dir>/<name>-edge.kubeconfig` and its log at `<dir>/<name>-edge.log`.
pub struct EdgeProcess {
    pub process: Process,
    pub kubeconfig: PathBuf,
}

impl EdgeProcess {
    /// Starts `trellis-edge` with `args` (nodes, GPU mode, simulated delays) on a free port;
    /// it serves once [`EdgeProcess::wait_serving`] returns.
    pub fn start(name: &str, dir: &Path, args: &[&str]) -> EdgeProcess {
        let kubeconfig = dir.join(format!("{name}-edge.kubeconfig"));
        let child = Command::new(edge_binary())
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.join(format!("{name}-edge")))
            .arg("--kubeconfig-out")
            .arg(&kubeconfig)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log_file(&dir.join(format!("{name}-edge.log"))))
            .spawn()
            .expect("start trellis-edge");
        EdgeProcess {
            process: Process::new(child),
            kubeconfig,
        }
    }

    /// Waits (up to `limit`) until the edge answers `/readyz`.
    pub fn wait_serving(&self, limit: Duration) {
        wait_long(
            "the edge serves",
            limit,
            || {
                self.kubeconfig.is_file()
                    && kubectl_with_kubeconfig(&self.kubeconfig, &["get", "--raw", "/readyz"]).0
            },
            |ready| *ready,
        );
    }
}

/// Starts the syncer `binary` (a test or benchmark of the syncer crate has it as
/// `env!("CARGO_BIN_EXE_trellis-syncer")`) for `target` (`WORKSPACE:NAME`) with the hub
/// credentials `trellis synctarget create` wrote, against the edge of `edge_kubeconfig`,
/// with `args` more, logging to `log` at `info` (or as `TRELLIS_SYNCER_LOG` says, e.g.
/// `trellis_syncer=debug` for each work pass's timing).
pub fn start_syncer(
    binary: &Path,
    hub_kubeconfig: &Path,
    target: &str,
    edge_kubeconfig: &Path,
    args: &[String],
    log: &Path,
) -> Process {
    let child = Command::new(binary)
        .arg("--hub-kubeconfig")
        .arg(hub_kubeconfig)
        .args(["--target", target])
        .arg("--kubeconfig")
        .arg(edge_kubeconfig)
        .args(args)
        .env(
            "RUST_LOG",
            std::env::var("TRELLIS_SYNCER_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(Stdio::null())
        .stderr(log_file(log))
        .spawn()
        .expect("start trellis-syncer");
    Process::new(child)
}
