//! etcd as a benchmark baseline: a private throwaway etcd server, and the smallest gRPC client
//! the benchmark needs (KV/Put and a prefix Watch of the etcd v3 API).
//!
//! The client is tonic over plain HTTP/2 on loopback with message structs written by hand for
//! the few messages used, rather than a client crate: the maintained ones generate their code
//! from etcd's .proto files at build time and so need `protoc`, which `cargo test` on a fresh
//! machine does not have (dev-dependencies are built by it too). Field numbers follow etcd's
//! `etcdserverpb/rpc.proto` and `mvccpb/kv.proto`; fields the benchmark never reads are left
//! out, and prost skips them when decoding.
//!
//! The server runs with etcd's durability defaults (fsync of its WAL on every commit), a data
//! directory in a temporary directory, and client and peer ports on 127.0.0.1. It is stopped
//! when its guard drops, including on an error path; if this process dies without dropping it
//! (SIGKILL), a small watchdog shell stops the server and deletes its data.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use http::uri::PathAndQuery;
use tonic::client::Grpc;
use tonic::transport::{Channel, Endpoint};
use tonic_prost::ProstCodec;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

/// How long a fresh server may take to elect itself leader and answer a put.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the server may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts at starting the server: another process may take a probed port before etcd binds it.
const START_ATTEMPTS: usize = 3;

// ---------------------------------------------------------------------------------------------
// Messages (etcdserverpb, mvccpb)

#[derive(Clone, PartialEq, prost::Message)]
struct ResponseHeader {
    #[prost(int64, tag = "3")]
    revision: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PutRequest {
    #[prost(bytes = "bytes", tag = "1")]
    key: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    value: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PutResponse {
    #[prost(message, optional, tag = "1")]
    header: Option<ResponseHeader>,
}

/// `WatchRequest`, whose `request_union` oneof is only ever a create request here: a oneof
/// with one member set encodes exactly like that member as an optional field.
#[derive(Clone, PartialEq, prost::Message)]
struct WatchRequest {
    #[prost(message, optional, tag = "1")]
    create_request: Option<WatchCreateRequest>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct WatchCreateRequest {
    #[prost(bytes = "bytes", tag = "1")]
    key: Bytes,
    /// Exclusive end of the watched range; the key with its last byte incremented watches
    /// every key under the prefix.
    #[prost(bytes = "bytes", tag = "2")]
    range_end: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
struct WatchResponse {
    #[prost(int64, tag = "2")]
    watch_id: i64,
    #[prost(bool, tag = "3")]
    created: bool,
    #[prost(bool, tag = "4")]
    canceled: bool,
    #[prost(string, tag = "6")]
    cancel_reason: String,
    #[prost(message, repeated, tag = "11")]
    events: Vec<Event>,
}

/// `mvccpb.Event`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// `PUT` = 0, `DELETE` = 1.
    #[prost(int32, tag = "1")]
    pub kind: i32,
    #[prost(message, optional, tag = "2")]
    pub kv: Option<KeyValue>,
}

/// `mvccpb.KeyValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    #[prost(int64, tag = "3")]
    pub mod_revision: i64,
    #[prost(bytes = "bytes", tag = "5")]
    pub value: Bytes,
}

// ---------------------------------------------------------------------------------------------
// Client

/// One HTTP/2 connection to the server, without TLS. Clones share the connection.
#[derive(Clone)]
pub struct Connection {
    grpc: Grpc<Channel>,
}

impl Connection {
    pub async fn open(client_url: &str) -> Result<Connection> {
        let channel = Endpoint::from_shared(client_url.to_string())?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await?;
        Ok(Connection {
            grpc: Grpc::new(channel),
        })
    }

    /// `KV/Put`; returns the revision of the write.
    pub async fn put(&self, key: impl Into<Bytes>, value: Bytes) -> Result<i64> {
        let mut grpc = self.grpc.clone();
        grpc.ready().await?;
        let request = PutRequest {
            key: key.into(),
            value,
        };
        let response: PutResponse = grpc
            .unary(
                tonic::Request::new(request),
                PathAndQuery::from_static("/etcdserverpb.KV/Put"),
                ProstCodec::default(),
            )
            .await?
            .into_inner();
        Ok(response.header.map_or(0, |h| h.revision))
    }

    /// A watch of every key under `prefix`, from now on, on its own `Watch/Watch` stream.
    /// Returns once the server has confirmed that the watcher exists, so that every write
    /// started afterwards is delivered to it.
    pub async fn watch_prefix(&self, prefix: &str) -> Result<Watch> {
        let mut grpc = self.grpc.clone();
        grpc.ready().await?;
        let create = WatchRequest {
            create_request: Some(WatchCreateRequest {
                key: Bytes::copy_from_slice(prefix.as_bytes()),
                range_end: prefix_end(prefix.as_bytes()),
            }),
        };
        // The request side stays open: a client that closes it is going away.
        let requests = futures::stream::once(async { create }).chain(futures::stream::pending());
        let mut responses = grpc
            .streaming(
                tonic::Request::new(requests),
                PathAndQuery::from_static("/etcdserverpb.Watch/Watch"),
                ProstCodec::<WatchRequest, WatchResponse>::default(),
            )
            .await?
            .into_inner();
        let first = responses
            .message()
            .await?
            .ok_or("the watch stream ended before the watcher was created")?;
        if !first.created || first.canceled {
            return Err(format!("watch not created: {:?}", first.cancel_reason).into());
        }
        Ok(Watch {
            id: first.watch_id,
            responses,
        })
    }
}

/// The end of the key range holding every key that starts with `prefix`.
fn prefix_end(prefix: &[u8]) -> Bytes {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Bytes::from(end);
        }
    }
    // All 0xff (or empty): every key from the prefix on.
    Bytes::from_static(&[0])
}

pub struct Watch {
    id: i64,
    responses: tonic::Streaming<WatchResponse>,
}

impl Watch {
    /// The events of the next response of this watch (several when the server batched them);
    /// `None` when the stream ended.
    pub async fn next(&mut self) -> Result<Option<Vec<Event>>> {
        loop {
            let Some(response) = self.responses.message().await? else {
                return Ok(None);
            };
            if response.canceled {
                return Err(format!("watch canceled: {:?}", response.cancel_reason).into());
            }
            // Progress notifications and responses of other watchers carry no events for us.
            if response.watch_id == self.id && !response.events.is_empty() {
                return Ok(Some(response.events));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Server

/// The etcd binary: `etcd` on the PATH, else Debian's `/usr/bin/etcd` (package etcd-server).
pub fn binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("etcd"));
    on_path
        .chain([PathBuf::from("/usr/bin/etcd")])
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A running single-member etcd cluster; stopped and deleted on drop.
pub struct Server {
    child: Child,
    /// Holds the read end of our pipe; see [`spawn_watchdog`].
    watchdog: Option<Child>,
    client_url: String,
    data_dir: PathBuf,
    log: PathBuf,
    version: String,
    // Dropped after `Drop::drop` stopped the server.
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts a server and waits until it answers a put.
    pub async fn start(binary: &Path) -> Result<Server> {
        let version = version(binary)?;
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let mut server = Server::spawn(binary, version.clone())?;
            match server.wait_ready().await {
                Ok(()) => return Ok(server),
                // Exited early, most likely a port taken in the meantime: try other ports.
                Err(err) if server.exited() => last_error = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last_error.unwrap_or_else(|| "etcd did not start".into()))
    }

    fn spawn(binary: &Path, version: String) -> Result<Server> {
        let dir = tempfile::Builder::new()
            .prefix("trellis-bench-etcd-")
            .tempdir()?;
        let data_dir = dir.path().join("data");
        let log = dir.path().join("etcd.log");
        let client_url = format!("http://127.0.0.1:{}", trellis_testkit::free_loopback_port());
        let peer_url = format!("http://127.0.0.1:{}", trellis_testkit::free_loopback_port());
        let child = Command::new(binary)
            .arg("--name=bench")
            .arg(format!("--data-dir={}", data_dir.display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=bench={peer_url}"))
            .arg("--initial-cluster-state=new")
            .arg("--logger=zap")
            .arg("--log-outputs=stderr")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        let watchdog = spawn_watchdog(child.id(), dir.path());
        Ok(Server {
            child,
            watchdog: watchdog.ok(),
            client_url,
            data_dir,
            log,
            version,
            _dir: dir,
        })
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(format!("etcd exited ({status}): {}", self.log_tail()).into());
            }
            let answer = async {
                Connection::open(&self.client_url)
                    .await?
                    .put("/trellis-bench/ready", Bytes::from_static(b"1"))
                    .await
            };
            match tokio::time::timeout(Duration::from_secs(5), answer).await {
                Ok(Ok(_)) => return Ok(()),
                _ if Instant::now() > deadline => {
                    return Err(format!(
                        "etcd did not answer within {READY_TIMEOUT:?}: {}",
                        self.log_tail()
                    )
                    .into())
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    pub fn client_url(&self) -> &str {
        &self.client_url
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// The etcd process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The watchdog goes first: it must not signal a pid that may be reused by then.
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        if self.exited() {
            return;
        }
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if self.exited() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A shell that waits for end-of-file on its stdin, a pipe from this process: when this process
/// is gone without stopping the server, it kills the server and deletes `dir`. In its own process
/// group and deaf to SIGINT, so a Ctrl-C aimed at the benchmark does not skip the cleanup.
fn spawn_watchdog(pid: u32, dir: &Path) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    let script = r#"trap '' HUP INT TERM
cat >/dev/null
kill -KILL "$1" 2>/dev/null
rm -rf "$2""#;
    Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .arg("trellis-etcd-watchdog")
        .arg(pid.to_string())
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
}

/// "3.4.23" from the first line of `etcd --version` ("etcd Version: 3.4.23").
fn version(binary: &Path) -> Result<String> {
    let output = Command::new(binary).arg("--version").output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let first = text.lines().next().unwrap_or_default();
    Ok(first
        .rsplit(' ')
        .next()
        .unwrap_or("unknown")
        .trim()
        .to_string())
}
