//! The listeners: HTTPS (rustls handshakes bounded in time, so a slow client cannot hold a
//! connection slot half-open, then HTTP/2 or HTTP/1.1 by ALPN) and, only when asked for and
//! only on loopback, plain HTTP. Both serve the same axum router, authentication included.
//!
//! Against slow or idle clients: an HTTP/1.1 request head must arrive within
//! [`HEADER_READ_TIMEOUT`] (this also closes keep-alive connections idle that long between
//! requests); HTTP/2 connections are pinged every [`KEEP_ALIVE_INTERVAL`] and closed when a
//! ping goes unanswered for [`KEEP_ALIVE_TIMEOUT`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::authn::x509::PeerCertificates;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
pub const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves `router` over TLS on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, router: axum::Router) {
    let acceptor = TlsAcceptor::from(tls);
    accept_loop(listener, router, move |tcp, peer, router| {
        let acceptor = acceptor.clone();
        async move {
            let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
                .await
                .map_err(|_| format!("TLS handshake with {peer} timed out"))??;
            let certificates = tls.get_ref().1.peer_certificates().map(|chain| {
                PeerCertificates(Arc::new(
                    chain.iter().map(|c| c.clone().into_owned()).collect(),
                ))
            });
            connection(tls, router, certificates).await
        }
    })
    .await
}

/// Serves `router` over plain HTTP (`--insecure-listen`; the caller makes sure it is loopback).
pub async fn serve_insecure(listener: TcpListener, router: axum::Router) {
    accept_loop(listener, router, |tcp, _peer, router| {
        connection(tcp, router, None)
    })
    .await
}

type ConnectionResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

async fn accept_loop<F, Fut>(listener: TcpListener, router: axum::Router, handle: F)
where
    F: Fn(tokio::net::TcpStream, SocketAddr, axum::Router) -> Fut,
    Fut: std::future::Future<Output = ConnectionResult> + Send + 'static,
{
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(err) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let connection = handle(tcp, peer, router.clone());
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }
}

async fn connection<IO>(
    io: IO,
    router: axum::Router,
    certificates: Option<PeerCertificates>,
) -> ConnectionResult
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let router = router.clone();
            let mut request = request.map(axum::body::Body::new);
            if let Some(certificates) = &certificates {
                request.extensions_mut().insert(certificates.clone());
            }
            async move {
                use tower::ServiceExt;
                router.oneshot(request).await
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
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT);
    builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .await
}
