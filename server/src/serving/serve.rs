//! The listeners: HTTPS (rustls handshakes bounded in time, so a slow client cannot hold a
//! connection slot half-open, then HTTP/2 or HTTP/1.1 by ALPN; an HTTP/2 connection's frames
//! go to the socket together, see `gathered_writes`) and, only when asked for and
//! only on loopback, plain HTTP. Both take every request through the same [`Gate`] (authentication included) to dispatch.
//!
//! Against slow, idle or greedy clients ([`ConnectionLimits`]):
//! - a TLS handshake must finish within the handshake timeout (10 s);
//! - a connection with no request in flight for the idle timeout (30 s) is closed, HTTP/1.1
//!   and HTTP/2 alike, including one that never sent a request at all; a request counts as in
//!   flight until its response body has been sent, so a long watch keeps its connection;
//! - an HTTP/1.1 request head must arrive within [`HEADER_READ_TIMEOUT`]; HTTP/2 connections
//!   are pinged every [`KEEP_ALIVE_INTERVAL`] and closed when a ping goes unanswered for
//!   [`KEEP_ALIVE_TIMEOUT`];
//! - one client address may hold at most so many connections at once (256 by default); more
//!   are closed as soon as they are accepted, so one client cannot use up the file
//!   descriptors;
//! - one HTTP/2 connection carries at most [`MAX_CONCURRENT_STREAMS`] requests at once (watches
//!   included), as Go's HTTP/2 server allows: client-go opens another connection beyond that.
//!
//! On shutdown (the `closing` token of [`crate::serving::lifecycle`]) a listener stops
//! accepting at once, tells every connection to close once its requests in flight are
//! answered (HTTP/2 says GOAWAY), waits for them (each at most [`DRAIN_GRACE`]) and returns.

use std::collections::HashMap;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::security::authn::x509::PeerCertificates;
use crate::serving::gate::Gate;
use crate::serving::gathered_writes::GatheredWrites;

pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
pub const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Requests one HTTP/2 connection may have in flight at once: Go's HTTP/2 server default, what
/// client-go expects (hyper's own default is 200).
pub const MAX_CONCURRENT_STREAMS: u32 = 250;
/// How long a connection told to close when idle may take to do so.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long a connection may take to answer its requests in flight when the server closes.
pub const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// How long connections may idle, and how many one client may hold.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// A TLS handshake must finish within this.
    pub handshake_timeout: Duration,
    /// A connection without a request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// Connections one client IP address may hold open at once; 0 for no limit.
    pub max_per_client: usize,
}

/// The defaults of `trellis start`.
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 256;

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_per_client: DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
        }
    }
}

/// Serves `gate` over TLS on `listener` until `closing` is cancelled (then drains) or the
/// task is dropped.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    gate: Arc<Gate>,
    limits: ConnectionLimits,
    closing: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(tls);
    accept_loop(
        listener,
        gate,
        limits,
        closing,
        move |tcp, peer, gate, closing| {
            let acceptor = acceptor.clone();
            async move {
                let tls = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp))
                    .await
                    .map_err(|_| format!("TLS handshake with {peer} timed out"))??;
                let certificates = tls.get_ref().1.peer_certificates().map(|chain| {
                    PeerCertificates::new(chain.iter().map(|c| c.clone().into_owned()).collect())
                });
                let io = GatheredWrites::new(tls);
                connection(io, gate, certificates, limits.idle_timeout, closing).await
            }
        },
    )
    .await
}

/// Serves `gate` over plain HTTP (`--insecure-listen`; the caller makes sure it is loopback).
pub async fn serve_insecure(
    listener: TcpListener,
    gate: Arc<Gate>,
    limits: ConnectionLimits,
    closing: CancellationToken,
) {
    accept_loop(
        listener,
        gate,
        limits,
        closing,
        move |tcp, _peer, gate, closing| connection(tcp, gate, None, limits.idle_timeout, closing),
    )
    .await
}

type ConnectionResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

async fn accept_loop<F, Fut>(
    listener: TcpListener,
    gate: Arc<Gate>,
    limits: ConnectionLimits,
    closing: CancellationToken,
    handle: F,
) where
    F: Fn(tokio::net::TcpStream, SocketAddr, Arc<Gate>, CancellationToken) -> Fut,
    Fut: std::future::Future<Output = ConnectionResult> + Send + 'static,
{
    let clients = Arc::new(ClientConnections::default());
    // Owned by the loop: when the server stops (this future is dropped), every connection it
    // accepted ends with it.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = closing.cancelled() => break,
            accepted = listener.accept() => accepted,
            // Reap finished connections as they end, so the set stays small.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (tcp, peer) = match accepted {
            Ok(conn) => conn,
            Err(err) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = clients.admit(peer.ip(), limits.max_per_client) else {
            tracing::debug!(%peer, "too many connections from this client; closed");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let connection = handle(tcp, peer, gate.clone(), closing.clone());
        connections.spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
            drop(slot);
        });
    }
    // Closing: accept nothing more; every connection answers what it has in flight and
    // closes (each bounded by its drain grace).
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Open connections per client address.
#[derive(Default)]
struct ClientConnections {
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl ClientConnections {
    /// A slot for one more connection from `ip`, unless it holds `max` already (0: no limit).
    fn admit(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let mut open = self.open.lock().ok()?;
        let count = open.entry(ip).or_default();
        if max > 0 && *count >= max {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            clients: self.clone(),
            ip,
        })
    }
}

/// One open connection of a client; freed when dropped.
struct ClientSlot {
    clients: Arc<ClientConnections>,
    ip: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.clients.open.lock() {
            if let Some(count) = open.get_mut(&self.ip) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    open.remove(&self.ip);
                }
            }
        }
    }
}

/// Requests in flight on one connection, and when the last one ended.
struct Activity {
    since: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `since` of the last request start or end.
    last: AtomicU64,
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity {
            since: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last: AtomicU64::new(0),
        })
    }

    fn touch(&self) {
        let now = self.since.elapsed().as_millis();
        self.last
            .store(u64::try_from(now).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// How long the connection has had no request in flight; `None` while one is.
    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let last = self.since + Duration::from_millis(self.last.load(Ordering::Relaxed));
        Some(last.elapsed())
    }
}

/// One request in flight, until its response body is done or dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.touch();
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request in flight while it is being sent.
struct TrackedBody {
    inner: axum::body::Body,
    _in_flight: InFlight,
}

impl http_body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

async fn connection<IO>(
    io: IO,
    gate: Arc<Gate>,
    certificates: Option<PeerCertificates>,
    idle_timeout: Duration,
    closing: CancellationToken,
) -> ConnectionResult
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new();
    let tracked = activity.clone();
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let gate = gate.clone();
            let in_flight = InFlight::start(&tracked);
            let mut request = request.map(axum::body::Body::new);
            if let Some(certificates) = &certificates {
                request.extensions_mut().insert(certificates.clone());
            }
            async move {
                let response = gate.serve(request).await;
                Ok::<_, std::convert::Infallible>(response.map(|inner| {
                    axum::body::Body::new(TrackedBody {
                        inner,
                        _in_flight: in_flight,
                    })
                }))
            }
        });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut check = idle_timeout;
    let mut grace = SHUTDOWN_GRACE;
    loop {
        tokio::select! {
            ended = connection.as_mut() => return ended,
            _ = closing.cancelled() => {
                grace = DRAIN_GRACE;
                break;
            }
            _ = tokio::time::sleep(check) => {}
        }
        match activity.idle_for() {
            Some(idle) if idle >= idle_timeout => break,
            Some(idle) => check = idle_timeout - idle,
            None => check = idle_timeout,
        }
    }
    // Idle too long, or the server closes: close (HTTP/2 says GOAWAY first); the requests in
    // flight (or one that slipped in meanwhile) are answered within the grace period.
    connection.as_mut().graceful_shutdown();
    match tokio::time::timeout(grace, connection).await {
        Ok(ended) => ended,
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_get_so_many_connections() {
        let clients = Arc::new(ClientConnections::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = clients.admit(a, 2).unwrap();
        let _second = clients.admit(a, 2).unwrap();
        assert!(clients.admit(a, 2).is_none());
        assert!(clients.admit(b, 2).is_some(), "another client has its own");
        drop(first);
        assert!(clients.admit(a, 2).is_some(), "a closed one frees its slot");
        assert!(clients.admit(a, 0).is_some(), "0: no limit");
    }

    #[test]
    fn a_connection_is_idle_only_without_requests_in_flight() {
        let activity = Activity::new();
        assert!(activity.idle_for().is_some());
        let request = InFlight::start(&activity);
        assert!(activity.idle_for().is_none());
        drop(request);
        assert!(activity.idle_for().unwrap() < Duration::from_secs(1));
    }
}
