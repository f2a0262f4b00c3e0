//! Test support for Trellis: throwaway PostgreSQL clusters started from the
//! local binaries.
//!
//! This crate owns the lifecycle of the Postgres servers used by tests and
//! benchmarks: finding `initdb`/`pg_ctl`, creating a cluster in a temporary
//! directory that listens only on loopback, dropping privileges when running
//! as root, and making sure the server and its files go away even when the test
//! process is killed. Tests get isolation by creating one database each with
//! [`PostgresCluster::create_database`]. Setting `TRELLIS_TEST_DATABASE_URL`
//! makes [`PostgresCluster::shared`] use an existing server instead.

/// The harness shared by the benchmark binaries.
pub mod bench;

use std::collections::hash_map::RandomState;
use std::env;
use std::fmt;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use tempfile::TempDir;
use tokio_postgres::{Client, NoTls};

/// Environment variable naming an existing server to use instead of a throwaway cluster.
pub const DATABASE_URL_ENV: &str = "TRELLIS_TEST_DATABASE_URL";

const SUPERUSER: &str = "trellis";
const START_ATTEMPTS: usize = 5;
const LOG_TAIL_LINES: usize = 40;

/// Error raised while starting, stopping or using a test cluster.
#[derive(Debug)]
pub struct Error(String);

impl Error {
    fn new(msg: impl Into<String>) -> Self {
        Error(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error(e.to_string())
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        Error(format!("postgres: {e}"))
    }
}

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Self {
        Error(e.to_string())
    }
}

/// How to configure a cluster started with [`PostgresCluster::start`].
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Keep Postgres' durability defaults (fsync etc.); benchmarks want this.
    /// When false, fsync, synchronous_commit and full_page_writes are off.
    pub durable: bool,
}

/// A PostgreSQL server for tests: either a throwaway local cluster or an external server.
#[derive(Debug)]
pub struct PostgresCluster {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    External(String),
    Local(LocalCluster),
}

impl PostgresCluster {
    /// One cluster per test process, started on first use (or the external server from
    /// `TRELLIS_TEST_DATABASE_URL`). Panics with a clear message if it cannot start.
    pub fn shared() -> &'static PostgresCluster {
        // Statics are never dropped, so the watchdog pipe of the shared cluster stays
        // open until the process exits; that EOF is what tears the cluster down.
        static SHARED: OnceLock<PostgresCluster> = OnceLock::new();
        SHARED.get_or_init(|| match env::var(DATABASE_URL_ENV) {
            Ok(url) if !url.trim().is_empty() => {
                let url = url.trim().to_string();
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    panic!("{DATABASE_URL_ENV} must be a postgres:// URL, got {url:?}");
                }
                PostgresCluster {
                    kind: Kind::External(url),
                }
            }
            _ => PostgresCluster::start(ClusterOptions::default()).unwrap_or_else(|e| {
                panic!("trellis-testkit: cannot start the shared PostgreSQL cluster: {e}")
            }),
        })
    }

    /// A private cluster owned by the caller (used by tests that stop/restart Postgres,
    /// and by benchmarks). Always started from local binaries, ignoring
    /// `TRELLIS_TEST_DATABASE_URL`. Stopped and deleted on drop.
    pub fn start(opts: ClusterOptions) -> Result<PostgresCluster, Error> {
        Ok(PostgresCluster {
            kind: Kind::Local(LocalCluster::start(&opts)?),
        })
    }

    /// `postgres://trellis@127.0.0.1:PORT/postgres` for local clusters, the env URL for
    /// an external server.
    pub fn admin_url(&self) -> String {
        match &self.kind {
            Kind::External(url) => url.clone(),
            Kind::Local(local) => {
                format!("postgres://{SUPERUSER}@127.0.0.1:{}/postgres", local.port)
            }
        }
    }

    /// URL of database `db` on this cluster.
    pub fn url_for(&self, db: &str) -> String {
        replace_database(&self.admin_url(), db)
    }

    /// The data directory of a local cluster (its `server.log` sits next to it);
    /// `None` for an external server.
    pub fn data_dir(&self) -> Option<PathBuf> {
        match &self.kind {
            Kind::External(_) => None,
            Kind::Local(local) => Some(local.data_dir()),
        }
    }

    /// The pid of a local cluster's postmaster, whose children are its backends (for counting
    /// the server's CPU); `None` for an external server or when it is not running.
    pub fn postmaster_pid(&self) -> Option<u32> {
        let pid_file = self.data_dir()?.join("postmaster.pid");
        fs::read_to_string(pid_file)
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// Creates a fresh database with a unique name starting with `prefix` and returns a
    /// guard that drops the database (`WITH (FORCE)`) when dropped.
    pub async fn create_database(&self, prefix: &str) -> Result<TestDatabase, Error> {
        let name = unique_database_name(prefix);
        let admin_url = self.admin_url();
        let client = connect(&admin_url).await?;
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await?;
        Ok(TestDatabase {
            url: self.url_for(&name),
            name,
            admin_url,
        })
    }

    /// Stops the server (`pg_ctl stop -m fast`) and starts it again on the same port and
    /// data directory. Only for local clusters.
    pub fn restart(&self) -> Result<(), Error> {
        self.stop()?;
        self.start_again()
    }

    /// Stops the server (`pg_ctl stop -m fast`), keeping its data. Only for local clusters.
    pub fn stop(&self) -> Result<(), Error> {
        self.local()?.stop("fast")
    }

    /// Stops the server as a crash would (`pg_ctl stop -m immediate`): no shutdown checkpoint,
    /// and the next start recovers from the WAL. Only for local clusters.
    pub fn crash(&self) -> Result<(), Error> {
        self.local()?.stop("immediate")
    }

    /// Starts a server stopped with [`stop`](Self::stop) or [`crash`](Self::crash) on the same
    /// port and data directory.
    pub fn start_again(&self) -> Result<(), Error> {
        self.local()?.start_server()
    }

    fn local(&self) -> Result<&LocalCluster, Error> {
        match &self.kind {
            Kind::Local(local) => Ok(local),
            Kind::External(_) => Err(Error::new(format!(
                "cannot stop or start the external server from {DATABASE_URL_ENV}; \
                 use PostgresCluster::start for a private cluster"
            ))),
        }
    }
}

/// A database created by [`PostgresCluster::create_database`]; dropped with the guard.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
}

impl TestDatabase {
    /// Connection URL of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Name of this database.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        // A fresh thread with its own runtime works whether or not the caller is
        // inside a tokio runtime (block_on would panic there).
        let result = std::thread::spawn(move || -> Result<(), Error> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                connect(&admin_url).await?.batch_execute(&sql).await?;
                Ok(())
            })
        })
        .join();
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!(
                "trellis-testkit: could not drop database {}: {e}",
                self.name
            ),
            Err(_) => eprintln!("trellis-testkit: dropping database {} panicked", self.name),
        }
    }
}

/// Returns a TCP port on 127.0.0.1 that was free a moment ago. Panics if no loopback
/// port can be bound at all, which means the machine cannot run these tests.
pub fn free_loopback_port() -> u16 {
    try_free_loopback_port().unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0: {e}"))
}

fn try_free_loopback_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A cluster started from local binaries in a temp dir, watched by a cleanup process.
#[derive(Debug)]
struct LocalCluster {
    bin_dir: PathBuf,
    dir: TempDir,
    port: u16,
    /// uid/gid to run the server as, when we are root.
    run_as: Option<(u32, u32)>,
    /// `sh` waiting for EOF on its stdin; we hold the write end for our lifetime.
    watchdog: Option<Child>,
}

impl LocalCluster {
    fn start(opts: &ClusterOptions) -> Result<LocalCluster, Error> {
        let bin_dir = find_bin_dir()?;
        let run_as = server_user()?;
        let dir = tempfile::Builder::new().prefix("trellis-pg-").tempdir()?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))?;
        }
        let mut cluster = LocalCluster {
            bin_dir,
            dir,
            port: 0,
            run_as,
            watchdog: None,
        };
        // Spawn the watchdog before initdb so that even a kill during startup cleans up.
        cluster.watchdog = Some(cluster.spawn_watchdog()?);
        cluster.initdb(opts)?;

        let mut last_err = None;
        for _ in 0..START_ATTEMPTS {
            cluster.port = try_free_loopback_port()?;
            let log_offset = fs::metadata(cluster.log_path()).map_or(0, |m| m.len());
            match cluster.start_server() {
                Ok(()) => return Ok(cluster),
                // Another process may grab the port between our probe and the bind.
                Err(e) if read_from(&cluster.log_path(), log_offset).contains("already in use") => {
                    last_err = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| Error::new("could not start postgres")))
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        // The unprivileged user may not be able to enter the test's working directory.
        cmd.current_dir(self.dir.path()).stdin(Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    fn spawn_watchdog(&self) -> Result<Child, Error> {
        let script = r#"trap '' HUP INT TERM
cat >/dev/null
"$1" stop -s -m immediate -D "$2" >/dev/null 2>&1
rm -rf "$3""#;
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(script)
            .arg("trellis-pg-watchdog")
            .arg(self.bin_dir.join("pg_ctl"))
            .arg(self.data_dir())
            .arg(self.dir.path())
            .current_dir(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Own process group: a Ctrl-C aimed at the test must not kill the cleanup.
            .process_group(0);
        if let Some((uid, gid)) = self.run_as {
            // pg_ctl refuses to run as root, and the files belong to this user anyway.
            cmd.uid(uid).gid(gid);
        }
        cmd.spawn()
            .map_err(|e| Error::new(format!("cannot spawn cleanup watchdog /bin/sh: {e}")))
    }

    fn initdb(&self, opts: &ClusterOptions) -> Result<(), Error> {
        let data_dir = self.data_dir();
        let output = self
            .command("initdb")
            .arg("-D")
            .arg(&data_dir)
            .args(["-U", SUPERUSER, "-A", "trust", "-E", "UTF8"])
            .args(["--no-locale", "--no-sync", "--no-instructions"])
            .output()?;
        check(&output, "initdb", None)?;

        let mut conf = String::from(
            "\n# trellis-testkit\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = ''\n\
             max_connections = 300\n\
             shared_buffers = 128MB\n",
        );
        if !opts.durable {
            conf.push_str("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n");
        }
        let conf_path = data_dir.join("postgresql.conf");
        let mut contents = fs::read_to_string(&conf_path)?;
        contents.push_str(&conf);
        // Written by us (root) into a file the server user already owns: ownership is kept.
        fs::write(&conf_path, contents)?;
        Ok(())
    }

    fn start_server(&self) -> Result<(), Error> {
        let output = self
            .command("pg_ctl")
            .args(["start", "-w", "-s", "-t", "60", "-D"])
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_path())
            .arg("-o")
            .arg(format!("-p {}", self.port))
            .output()?;
        check(&output, "pg_ctl start", Some(&self.log_path()))
    }

    fn stop(&self, mode: &str) -> Result<(), Error> {
        let output = self
            .command("pg_ctl")
            .args(["stop", "-w", "-s", "-m", mode, "-D"])
            .arg(self.data_dir())
            .output()?;
        check(&output, "pg_ctl stop", Some(&self.log_path()))
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if self.data_dir().join("postmaster.pid").exists() {
            let _ = self.stop("immediate");
        }
        if let Some(mut watchdog) = self.watchdog.take() {
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
        }
    }
}

fn check(output: &Output, what: &str, log: Option<&Path>) -> Result<(), Error> {
    if output.status.success() {
        return Ok(());
    }
    let mut msg = format!(
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if let Some(log) = log {
        msg.push_str(&format!(
            "\n--- tail of {} ---\n{}",
            log.display(),
            log_tail(log)
        ));
    }
    Err(Error::new(msg))
}

fn log_tail(path: &Path) -> String {
    let log = read_from(path, 0);
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

fn read_from(path: &Path, offset: u64) -> String {
    let mut buf = Vec::new();
    if let Ok(mut file) = fs::File::open(path) {
        if file.seek(SeekFrom::Start(offset)).is_ok() {
            let _ = file.read_to_end(&mut buf);
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A client program of the PostgreSQL install the throwaway clusters run on (`pg_dump`,
/// `pg_restore`, `psql`): from the same directory as their `initdb`, so its version matches
/// the server's.
pub fn postgres_binary(name: &str) -> Result<PathBuf, Error> {
    let bin_dir = find_bin_dir()?;
    // PATH may hold links to the server's programs only (/usr/local/bin/initdb → …/15/bin/initdb):
    // look beside the program they point at first.
    let install_dir = bin_dir
        .join("initdb")
        .canonicalize()
        .ok()
        .and_then(|initdb| initdb.parent().map(Path::to_path_buf));
    let found = install_dir
        .into_iter()
        .chain([bin_dir])
        .map(|dir| dir.join(name))
        .find(|path| is_executable(path));
    if let Some(path) = found {
        Ok(path)
    } else {
        let path = find_bin_dir()?.join(name);
        Err(Error::new(format!(
            "{name} is not installed next to initdb ({})",
            path.display()
        )))
    }
}

/// Finds a directory holding both `initdb` and `pg_ctl`.
fn find_bin_dir() -> Result<PathBuf, Error> {
    let mut candidates: Vec<PathBuf> = env::var_os("PATH")
        .map(|p| env::split_paths(&p).collect())
        .unwrap_or_default();
    // Debian/Ubuntu keep the server binaries out of PATH.
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .collect();
    versions.sort();
    candidates.extend(versions.into_iter().rev().map(|(_, dir)| dir));
    candidates.push(PathBuf::from("/usr/local/pgsql/bin"));

    candidates
        .into_iter()
        .find(|dir| is_executable(&dir.join("initdb")) && is_executable(&dir.join("pg_ctl")))
        // Commands run from the temp dir, so a relative PATH entry would break.
        .map(|dir| dir.canonicalize().unwrap_or(dir))
        .ok_or_else(|| {
            Error::new(format!(
                "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH, in \
                 /usr/lib/postgresql/<version>/bin or /usr/local/pgsql/bin. Install them \
                 (Debian/Ubuntu: `apt-get install postgresql`; Fedora: `dnf install \
                 postgresql-server`; macOS: `brew install postgresql@15`) or set \
                 {DATABASE_URL_ENV} to a postgres:// URL whose user may CREATE DATABASE."
            ))
        })
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// initdb and postgres refuse to run as root, so pick an unprivileged user then.
fn server_user() -> Result<Option<(u32, u32)>, Error> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    for name in ["postgres", "nobody"] {
        if let Some(user) = nix::unistd::User::from_name(name)? {
            return Ok(Some((user.uid.as_raw(), user.gid.as_raw())));
        }
    }
    Err(Error::new(
        "running as root, but neither a `postgres` nor a `nobody` user exists to run \
         PostgreSQL as (it refuses to run as root); create one, e.g. `useradd -r postgres`",
    ))
}

async fn connect(url: &str) -> Result<Client, Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

fn unique_database_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    let suffix = format!(
        "_{}_{}_{:08x}",
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::process::id(),
        hasher.finish() as u32
    );
    // Lowercase ASCII keeps the name valid unquoted and safe inside a URL.
    let mut name: String = prefix
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_') => c,
            _ => '_',
        })
        .take(63 - suffix.len())
        .collect();
    if name.is_empty() {
        name.push_str("test");
    }
    name + &suffix
}

/// Replaces the database (path) of a `postgres://` URL, keeping any query string.
fn replace_database(url: &str, db: &str) -> String {
    let (base, query) = url.split_at(url.find('?').unwrap_or(url.len()));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    format!("{}/{db}{query}", &base[..path])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_database_in_urls() {
        assert_eq!(
            replace_database("postgres://u@h:1/postgres", "x"),
            "postgres://u@h:1/x"
        );
        assert_eq!(
            replace_database("postgres://u@h:1", "x"),
            "postgres://u@h:1/x"
        );
        assert_eq!(
            replace_database("postgresql://u:p@h/db?sslmode=disable", "x"),
            "postgresql://u:p@h/x?sslmode=disable"
        );
    }

    #[test]
    fn database_names_are_unique_and_valid() {
        let a = unique_database_name("My-Test.Name");
        let b = unique_database_name("My-Test.Name");
        assert_ne!(a, b);
        assert!(a.starts_with("my_test_name_"));
        let long = unique_database_name(&"x".repeat(200));
        assert!(long.len() <= 63);
    }
}
