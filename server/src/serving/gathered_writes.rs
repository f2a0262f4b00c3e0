//! One send to the socket per round of an HTTP/2 connection's writes, instead of one per frame.
//!
//! The `h2` crate writes every DATA frame on its own and flushes after each (hyperium/h2#902).
//! Under TLS each flush is a system call, so a connection carrying 250 watches sends 250
//! small writes where one would do. (hyperium/h2#903 proposes gathering in h2 itself; until
//! then this does it below h2.)
//!
//! [`GatheredWrites`] sits between h2 and rustls. A write is encrypted into rustls's send
//! buffer at once (no extra copy), but the records go to the socket only
//! - when h2 flushes twice with nothing written in between: h2 flushes after every frame, then
//!   once more when it has no frame left, so that second flush ends the round;
//! - when rustls's send buffer (64 KiB of records) is full;
//! - on shutdown.
//!
//! A flush it puts off also wakes the connection's task, so a round that ends some other way
//! still reaches the socket on the task's next poll. HTTP/1.1 connections pass through
//! unchanged: hyper already writes an HTTP/1.1 response's pieces with one `writev`.

use std::io::{self, Write};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::server::TlsStream;

/// A server TLS stream whose writes are gathered per round when `gather` is on (HTTP/2).
pub struct GatheredWrites<IO> {
    tls: TlsStream<IO>,
    gather: bool,
    /// Something was written since the last flush.
    wrote: bool,
}

impl<IO> GatheredWrites<IO> {
    /// Gathers writes when the client and server agreed on HTTP/2 (ALPN `h2`).
    pub fn new(tls: TlsStream<IO>) -> GatheredWrites<IO> {
        let gather = tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
        GatheredWrites {
            tls,
            gather,
            wrote: false,
        }
    }
}

impl<IO> AsyncRead for GatheredWrites<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tls).poll_read(cx, buf)
    }
}

impl<IO> AsyncWrite for GatheredWrites<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if !self.gather {
            return Pin::new(&mut self.get_mut().tls).poll_write(cx, buf);
        }
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    /// Gathering: encrypts what rustls's send buffer takes of `bufs`; when that buffer is full,
    /// sends it first.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !this.gather || bufs.iter().all(|buf| buf.is_empty()) {
            return Pin::new(&mut this.tls).poll_write_vectored(cx, bufs);
        }
        let mut taken = this.tls.get_mut().1.writer().write_vectored(bufs)?;
        if taken == 0 {
            ready!(Pin::new(&mut this.tls).poll_flush(cx))?;
            taken = this.tls.get_mut().1.writer().write_vectored(bufs)?;
        }
        this.wrote |= taken > 0;
        Poll::Ready(Ok(taken))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.gather && std::mem::take(&mut this.wrote) {
            // Put off: more of this round may follow. Should none, the next poll sends it.
            cx.waker().wake_by_ref();
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.tls).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tls).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;
    use futures::stream::{self, BoxStream, StreamExt};
    use http_body::Body as _;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use rustls::pki_types::pem::PemObject;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::watch;

    use super::*;
    use crate::security::tls;

    /// A socket that counts the writes that reached it.
    struct Counted {
        tcp: TcpStream,
        writes: Arc<AtomicUsize>,
    }

    impl AsyncRead for Counted {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Counted {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let written = ready!(Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs));
            this.writes.fetch_add(1, Ordering::Relaxed);
            Poll::Ready(written)
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
        }
    }

    const STREAMS: usize = 100;
    const CHUNKS: usize = 8;
    const CHUNK: usize = 1_500;

    type Sender = hyper::client::conn::http2::SendRequest<axum::body::Body>;

    fn chunk() -> io::Result<Bytes> {
        Ok(Bytes::from(vec![b'x'; CHUNK]))
    }

    /// An HTTP/2 connection over TLS on loopback to a server whose answers are `CHUNKS` chunks
    /// sent once `go` opens, or, for `/lone`, one chunk at once and no end. Returns the client's
    /// side and the count of the server's socket writes.
    async fn connect(gather: bool, go: watch::Receiver<bool>) -> (Sender, Arc<AtomicUsize>) {
        let dir = tempfile::tempdir().unwrap();
        let pki = tls::load_or_create(dir.path(), &["127.0.0.1".to_string()]).unwrap();
        let server = tls::server_config(&pki).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(
                rustls::pki_types::CertificateDer::from_pem_slice(pki.ca_cert_pem.as_bytes())
                    .unwrap(),
            )
            .unwrap();
        let mut client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        client.alpn_protocols = vec![b"h2".to_vec()];

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let writes = Arc::new(AtomicUsize::new(0));
        let counted = writes.clone();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let tcp = Counted {
                tcp,
                writes: counted,
            };
            let tls = tokio_rustls::TlsAcceptor::from(server)
                .accept(tcp)
                .await
                .unwrap();
            let mut io = GatheredWrites::new(tls);
            assert!(io.gather, "the client asked for h2");
            io.gather = gather;
            let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
                let mut go = go.clone();
                let chunks: BoxStream<'static, io::Result<Bytes>> =
                    if request.uri().path() == "/lone" {
                        stream::iter([chunk()]).chain(stream::pending()).boxed()
                    } else {
                        stream::once(async move { go.wait_for(|open| *open).await.is_ok() })
                            .flat_map(move |_| stream::iter((0..CHUNKS).map(|_| chunk())))
                            .boxed()
                    };
                std::future::ready(Ok::<_, std::convert::Infallible>(hyper::Response::new(
                    axum::body::Body::from_stream(chunks),
                )))
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(io), service)
                .await;
        });

        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect(name, tcp)
            .await
            .unwrap();
        let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(connection);
        (sender, writes)
    }

    async fn get(sender: &mut Sender, path: &str) -> hyper::body::Incoming {
        sender.ready().await.unwrap();
        let request = hyper::Request::get(format!("https://127.0.0.1{path}"))
            .body(axum::body::Body::empty())
            .unwrap();
        sender.send_request(request).await.unwrap().into_body()
    }

    /// Socket writes the server made to send `STREAMS` answers of `CHUNKS` chunks each, all
    /// ready at once.
    async fn writes_for_many_streams(gather: bool) -> usize {
        let (open, go) = watch::channel(false);
        let (sender, writes) = connect(gather, go).await;
        let mut bodies = Vec::new();
        for _ in 0..STREAMS {
            bodies.push(get(&mut sender.clone(), "/").await);
        }
        let before = writes.load(Ordering::Relaxed);
        open.send(true).unwrap();
        let received = futures::future::join_all(bodies.into_iter().map(|body| async move {
            axum::body::to_bytes(axum::body::Body::new(body), usize::MAX)
                .await
                .unwrap()
                .len()
        }));
        let received = tokio::time::timeout(Duration::from_secs(30), received)
            .await
            .expect("every answer arrives");
        assert_eq!(
            received,
            vec![CHUNKS * CHUNK; STREAMS],
            "every byte arrives"
        );
        writes.load(Ordering::Relaxed) - before
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_http2_connection_sends_its_frames_together() {
        let frames = STREAMS * CHUNKS;
        let one_by_one = writes_for_many_streams(false).await;
        // A write can carry two frames when the socket was full for the one before.
        assert!(
            one_by_one * 2 >= frames,
            "h2 alone writes each DATA frame: {one_by_one} writes for {frames} frames"
        );
        let gathered = writes_for_many_streams(true).await;
        assert!(
            gathered * 8 <= frames,
            "{gathered} writes for {frames} frames of {CHUNK} bytes"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_frame_is_not_held_back() {
        let (_open, go) = watch::channel(false);
        let (mut sender, _) = connect(true, go).await;
        let mut body = get(&mut sender, "/lone").await;
        let frame = tokio::time::timeout(
            Duration::from_secs(10),
            std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)),
        )
        .await
        .expect("the one chunk arrives although the answer goes on")
        .unwrap()
        .unwrap();
        assert_eq!(frame.into_data().unwrap().len(), CHUNK);
    }
}
