//! Traces and logs of a `trellis start` process, as a platform team would collect them: the
//! hub exports over OTLP/HTTP to a real receiver in this process (decoding the protobuf that
//! arrives), with its logs as JSON. A request's span continues the client's W3C trace
//! context (and honours its decision not to sample); storage calls and group commits are its
//! children; controllers' reconciles are spans of their own; the request's log lines carry
//! its trace id.

use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use trellis_integration_tests::otlp::{OtlpReceiver, ReceivedSpan};
use trellis_integration_tests::Replica;

/// The hub binary on its embedded store, exporting to `otlp`, its logs as JSON in
/// `log`'s directory. (The environment is this test's: the only test of this binary sets
/// what the exporter reads.)
fn start_hub(otlp: &str, logs: &Path) -> Replica {
    std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "100");
    std::env::set_var("RUST_LOG", "info,trellis_server::serving=debug");
    std::env::remove_var("OTEL_EXPORTER_OTLP_ENDPOINT");
    std::env::remove_var("OTEL_TRACES_SAMPLER");
    let log = std::fs::File::create(logs.join("hub.log")).expect("log file");
    Replica::spawn(
        None,
        None,
        &["--log-format", "json", "--otlp-endpoint", otlp],
        log.into(),
    )
}

fn log_lines(logs: &Path) -> Vec<serde_json::Value> {
    let file = std::fs::File::open(logs.join("hub.log")).expect("log");
    std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str(&line).ok())
        .collect()
}

/// A kube-rs client whose every request carries `traceparent`.
async fn client_sending(kubeconfig: &Path, traceparent: &'static str) -> kube::Client {
    let file = Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .expect("client config");
    let inject =
        tower::util::MapRequestLayer::new(move |mut request: http::Request<kube::client::Body>| {
            request
                .headers_mut()
                .insert("traceparent", http::HeaderValue::from_static(traceparent));
            request
        });
    kube::client::ClientBuilder::try_from(config)
        .expect("client builder")
        .with_layer(&inject)
        .build()
}

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "data": {"model": "llama"},
    }))
    .expect("a ConfigMap")
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";
const SAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const UNSAMPLED: &str = "00-5cf92f3577b34da6a3ce929d0e0e4737-00f067aa0ba902b8-00";

fn in_trace<'a>(spans: &'a [ReceivedSpan], name: &str) -> Vec<&'a ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.trace_id == TRACE && s.name == name)
        .collect()
}

/// The names of a span's ancestors, nearest first.
fn ancestors<'a>(spans: &'a [ReceivedSpan], mut span: &'a ReceivedSpan) -> Vec<String> {
    let mut chain = Vec::new();
    while let Some(parent) = spans
        .iter()
        .find(|s| s.trace_id == span.trace_id && s.span_id == span.parent_span_id)
    {
        chain.push(parent.name.clone());
        span = parent;
    }
    chain
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_storage_and_controllers_are_traced_and_logged_with_the_trace_id() {
    let receiver = OtlpReceiver::start().await;
    let logs = tempfile::tempdir().expect("temp dir");
    let hub = start_hub(&receiver.endpoint, logs.path());

    // Step 1: a create continuing the client's sampled trace.
    let sampled = client_sending(&hub.kubeconfig(), SAMPLED).await;
    let maps: Api<ConfigMap> = Api::namespaced(sampled, "default");
    maps.create(&PostParams::default(), &config_map("traced"))
        .await
        .expect("create");
    let spans = receiver
        .wait_for("the create's spans", Duration::from_secs(30), |spans| {
            !in_trace(spans, "request").is_empty()
                && !in_trace(spans, "storage.group_commit").is_empty()
        })
        .await;
    let request = in_trace(&spans, "request")[0];
    assert_eq!(request.service, "trellis");
    assert_eq!(request.parent_span_id, CLIENT_SPAN, "{request:?}");
    assert_eq!(request.attribute("verb"), Some("create"));
    assert_eq!(request.attribute("resource"), Some("configmaps"));
    assert_eq!(request.attribute("workspace"), Some("root"));
    assert_eq!(request.attribute("code"), Some("201"));
    assert!(request.attribute("user").is_some_and(|u| !u.is_empty()));
    // Storage: the write a child of the request (possibly through the REST layer's own
    // spans), the group commit a child of the write.
    let write = in_trace(&spans, "storage.write")
        .into_iter()
        .find(|s| s.attribute("op") == Some("create"))
        .expect("the storage write");
    assert!(
        ancestors(&spans, write).contains(&"request".to_string()),
        "{write:?}"
    );
    let commit = in_trace(&spans, "storage.group_commit")[0];
    assert_eq!(commit.parent_span_id, write.span_id);
    assert!(commit.attribute("writes").is_some());

    // Step 2: controllers' reconciles are spans of their own.
    receiver
        .wait_for("a reconcile span", Duration::from_secs(30), |spans| {
            spans
                .iter()
                .any(|s| s.name == "reconcile" && s.attribute("controller").is_some())
        })
        .await;

    // Step 3: a client that decided not to sample is not sampled here either.
    let unsampled = client_sending(&hub.kubeconfig(), UNSAMPLED).await;
    let maps: Api<ConfigMap> = Api::namespaced(unsampled, "default");
    maps.create(&PostParams::default(), &config_map("untraced"))
        .await
        .expect("create");
    // A sampled request after it, so the exporter has sent anything the unsampled one made.
    let again = client_sending(&hub.kubeconfig(), SAMPLED).await;
    let maps: Api<ConfigMap> = Api::namespaced(again, "default");
    maps.get("traced").await.expect("get");
    let spans = receiver
        .wait_for("the get's span", Duration::from_secs(30), |spans| {
            in_trace(spans, "request")
                .iter()
                .any(|s| s.attribute("verb") == Some("get"))
        })
        .await;
    assert!(
        spans
            .iter()
            .all(|s| s.trace_id != "5cf92f3577b34da6a3ce929d0e0e4737"),
        "an unsampled request was exported"
    );

    // Step 4: the request's log lines carry its trace id.
    let lines = log_lines(logs.path());
    let served: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l.pointer("/span/name").and_then(|v| v.as_str()) == Some("request"))
        .collect();
    assert!(!served.is_empty(), "no log line inside a request");
    assert!(
        served.iter().all(|l| l
            .pointer("/span/trace_id")
            .and_then(|v| v.as_str())
            .is_some()),
        "a request's log line without its trace id: {served:?}"
    );
    assert!(
        served
            .iter()
            .any(|l| l.pointer("/span/trace_id").and_then(|v| v.as_str()) == Some(TRACE)),
        "no log line with the client's trace id"
    );
}
