//! The hub over HTTP/2 (ALPN `h2`, as client-go speaks to it), from hyper's client.

use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use kube::client::ConfigExt;
use kube::config::{KubeConfigOptions, Kubeconfig};
use trellis_integration_tests::{Backend, Hub};

type Sender = hyper::client::conn::http2::SendRequest<Full<bytes::Bytes>>;

/// An HTTP/2 connection to the hub, with the admin's client certificate.
async fn connect(hub: &Hub) -> Sender {
    let kubeconfig = Kubeconfig::read_from(hub.kubeconfig()).unwrap();
    let mut tls = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap()
        .rustls_client_config()
        .unwrap();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let addr = hub.started.addr;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(name, tcp)
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(b"h2".as_slice()));
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

/// A body over the 3 MiB limit is answered 413 with its Status while the client is still
/// sending, and the connection goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_gets_its_413_over_http2() {
    let hub = Hub::start(Backend::Sqlite).await;
    let mut sender = connect(&hub).await;
    let addr = hub.started.addr;
    let url = format!("https://{addr}/clusters/root/api/v1/namespaces/default/configmaps");
    let big = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"},
        "data": {"a": "x".repeat(4_200_000)},
    });
    let request = http::Request::post(&url)
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(big.to_string())))
        .unwrap();
    sender.ready().await.unwrap();
    let response = sender.send_request(request).await.expect("an answer");
    assert_eq!(response.status(), 413);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("the whole answer, not a reset stream")
        .to_bytes();
    let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status["reason"], "RequestEntityTooLarge", "{status}");

    // The same connection serves the next request.
    let small = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "small"},
    });
    let request = http::Request::post(&url)
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(small.to_string())))
        .unwrap();
    sender.ready().await.unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 201);
}
