//! The HTTPS listener: rustls handshakes (bounded in time, so a slow client cannot hold a
//! connection slot half-open), then HTTP/2 or HTTP/1.1 by ALPN, served by the axum router.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, router: axum::Router) {
    let acceptor = TlsAcceptor::from(tls);
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
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            if let Err(err) = connection(acceptor, tcp, peer, router).await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }
}

async fn connection(
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    router: axum::Router,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
        .await
        .map_err(|_| format!("TLS handshake with {peer} timed out"))??;
    let user = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(crate::authn::from_peer_certificates);
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let router = router.clone();
            let mut request = request.map(axum::body::Body::new);
            if let Some(user) = &user {
                request.extensions_mut().insert(user.clone());
            }
            async move {
                use tower::ServiceExt;
                router.oneshot(request).await
            }
        });
    auto::Builder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(TokioIo::new(tls), service)
        .await
}
