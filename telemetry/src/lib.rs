//! Logs and traces of Trellis's processes (the hub, `trellis-edge`, `trellis-syncer`).
//!
//! - **Logs**: `tracing` events through `tracing-subscriber`, filtered by `RUST_LOG` (default
//!   `info`), as text or one JSON object per line ([`LogFormat`]). A JSON line carries the
//!   fields of the spans it happened in, so a line logged while serving a request carries the
//!   request's `trace_id` (see [`request_span`]).
//! - **Traces**: OpenTelemetry over OTLP/HTTP (protobuf), off unless configured the standard
//!   way: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is) or `OTEL_EXPORTER_OTLP_ENDPOINT`
//!   (`/v1/traces` appended), or the processes' `--otlp-endpoint` flag (a base URL, like the
//!   latter); `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn it off again.
//!   The service is named by `OTEL_SERVICE_NAME`, else after the process. Sampling follows
//!   `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`, parent-based always-on by default: a
//!   client's sampled `traceparent` is honoured, and so is its decision not to sample. Spans
//!   go out in batches (`OTEL_BSP_*`), from the SDK's own thread. The W3C trace context
//!   (`traceparent`, `tracestate`) is what is read from and written into requests.
//!
//! Traces take the spans at `info` and above, whatever `RUST_LOG` says of the logs. Span
//! names: `request` (one per API request: workspace, verb, resource, user, code),
//! `storage.get` / `storage.list` / `storage.write` (one per storage call) and
//! `storage.group_commit` (one per batch committed, a child of its first writer's span and
//! linked from the others'), `reconcile` (one per controller reconcile).

use std::fmt;

use http::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people: one line per event, spans' fields inline.
    #[default]
    Text,
    /// For log pipelines: one JSON object per line, with the current span's fields.
    Json,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// What a process asks of [`init`].
#[derive(Clone, Debug, Default)]
pub struct TelemetryOptions {
    /// The service name when `OTEL_SERVICE_NAME` is not set, e.g. `trellis`.
    pub service: String,
    pub log_format: LogFormat,
    /// An OTLP/HTTP base URL (`http://127.0.0.1:4318`): traces go to `<url>/v1/traces`.
    /// Overrides the environment.
    pub otlp_endpoint: Option<String>,
}

/// Keeps the trace exporter running; [`Telemetry::shutdown`] (or dropping it) sends what is
/// still buffered.
#[must_use = "dropping it stops the trace exporter"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Sends the spans still buffered and stops the exporter.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("trace exporter shutdown: {e}");
            }
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Installs the process's logging and, when configured, trace export. Call once, early in
/// `main`, inside the Tokio runtime.
pub fn init(options: &TelemetryOptions) -> Result<Telemetry, String> {
    let provider = tracer_provider(options)?;
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let fmt = match options.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    // Traces take every span at `info` and above, whatever `RUST_LOG` keeps of the logs.
    let otel = provider.as_ref().map(|provider| {
        // Without the per-span busy/idle clock (a clock read on every poll of an instrumented
        // future), thread and source location: about half of what exporting cost per create
        // (BENCHMARKS.md, "Tracing overhead").
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("trellis"))
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_location(false)
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
    });
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter()))
        .with(otel)
        .try_init()
        .map_err(|e| format!("installing the log subscriber: {e}"))?;
    Ok(Telemetry { provider })
}

/// The trace endpoint configured, if any: the option, else the standard variables.
fn endpoint(options: &TelemetryOptions) -> Option<String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"))
    {
        return None;
    }
    if let Some(base) = &options.otlp_endpoint {
        return Some(format!("{}/v1/traces", base.trim_end_matches('/')));
    }
    var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| {
        var("OTEL_EXPORTER_OTLP_ENDPOINT")
            .map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
    })
}

fn tracer_provider(options: &TelemetryOptions) -> Result<Option<SdkTracerProvider>, String> {
    let Some(endpoint) = endpoint(options) else {
        return Ok(None);
    };
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint.clone())
        .build()
        .map_err(|e| format!("OTLP exporter for {endpoint}: {e}"))?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(options.service.clone());
    }
    // The sampler comes from `OTEL_TRACES_SAMPLER` (parent-based always-on by default).
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    Ok(Some(provider))
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeadersMut<'a>(&'a mut HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// The W3C trace context a request carries (empty when it carries none, or a broken one).
pub fn extract(headers: &HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&Headers(headers))
}

/// Writes the current span's trace context into outgoing request headers.
pub fn inject(span: &Span, headers: &mut HeaderMap) {
    TraceContextPropagator::new().inject_context(&span.context(), &mut HeadersMut(headers));
}

/// The trace context of `span` as a `traceparent` value, for objects that carry it to the
/// next process (empty when the span is not traced).
pub fn traceparent(span: &Span) -> Option<String> {
    let mut headers = HeaderMap::new();
    inject(span, &mut headers);
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Makes the trace context in a `traceparent` value the parent of `span`.
pub fn continue_from(span: &Span, traceparent: &str) {
    let mut headers = HeaderMap::new();
    if let Ok(value) = http::HeaderValue::from_str(traceparent) {
        headers.insert("traceparent", value);
        let _ = span.set_parent(extract(&headers));
    }
}

/// The span of one API request, child of the trace context its headers carry. Its
/// `trace_id` field (logged on every line inside it) is the exported trace's id; with
/// tracing off, the id the client sent, or a new one, so a request's lines can still be
/// found together.
pub fn request_span(headers: &HeaderMap, workspace: &str, verb: &str, resource: &str) -> Span {
    let span = tracing::info_span!(
        "request",
        workspace = %workspace,
        verb = %verb,
        resource = %resource,
        user = tracing::field::Empty,
        code = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    let parent = extract(headers);
    let sent = parent.span().span_context().trace_id();
    let _ = span.set_parent(parent);
    let traced = span.context().span().span_context().trace_id();
    let id = [traced, sent]
        .into_iter()
        .find(|id| *id != TraceId::INVALID)
        .unwrap_or_else(|| TraceId::from_bytes(rand::random::<[u8; 16]>()));
    span.record("trace_id", tracing::field::display(id));
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_span_keeps_the_trace_id_the_client_sent() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        );
        let parent = extract(&headers);
        assert_eq!(
            parent.span().span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        // Broken ones are no context at all.
        let mut broken = HeaderMap::new();
        broken.insert("traceparent", http::HeaderValue::from_static("00-zz-00-01"));
        assert_eq!(
            extract(&broken).span().span_context().trace_id(),
            TraceId::INVALID
        );
    }

    #[test]
    fn the_endpoint_option_is_a_base_url() {
        let options = TelemetryOptions {
            otlp_endpoint: Some("http://127.0.0.1:4318/".into()),
            ..TelemetryOptions::default()
        };
        assert_eq!(
            endpoint(&options).as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
    }
}
