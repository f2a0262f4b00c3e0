//! The syncer's own metrics, in the Prometheus text format on a small HTTP listener of its
//! own (`--metrics-addr`): heartbeats sent and failed (and when the last one landed), the
//! Placements assigned, and what applying and removing them on the cluster came to. One
//! syncer serves one SyncTarget, so no label names a target, Placement or object.

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus::{Encoder, Gauge, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

pub struct Metrics {
    registry: Registry,
    heartbeats: IntCounterVec,
    last_heartbeat: Gauge,
    placements: IntGauge,
    applies: IntCounterVec,
    removals: IntCounterVec,
}

/// `ok` or `error`.
fn result<T, E>(outcome: &Result<T, E>) -> &'static str {
    if outcome.is_ok() {
        "ok"
    } else {
        "error"
    }
}

impl Metrics {
    pub fn new() -> anyhow::Result<Arc<Metrics>> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| -> anyhow::Result<IntCounterVec> {
            let metric = IntCounterVec::new(Opts::new(name, help), &["result"])?;
            registry.register(Box::new(metric.clone()))?;
            Ok(metric)
        };
        let heartbeats = counter(
            "trellis_syncer_heartbeats_total",
            "SyncTarget status reports (heartbeats) sent to the hub, by result.",
        )?;
        let applies = counter(
            "trellis_syncer_applies_total",
            "Placements applied on the cluster (their Deployment, Service and claims), by result.",
        )?;
        let removals = counter(
            "trellis_syncer_removals_total",
            "Objects of Placements no longer assigned removed from the cluster, by result.",
        )?;
        let last_heartbeat = Gauge::new(
            "trellis_syncer_last_heartbeat_timestamp_seconds",
            "When the hub last accepted a heartbeat, in seconds since the epoch.",
        )?;
        registry.register(Box::new(last_heartbeat.clone()))?;
        let placements = IntGauge::new(
            "trellis_syncer_placements",
            "Placements assigned to this syncer's SyncTarget.",
        )?;
        registry.register(Box::new(placements.clone()))?;
        // Both outcomes from the start, so a rate over them is defined before the first error.
        for family in [&heartbeats, &applies, &removals] {
            for outcome in ["ok", "error"] {
                family.with_label_values(&[outcome]);
            }
        }
        Ok(Arc::new(Metrics {
            registry,
            heartbeats,
            last_heartbeat,
            placements,
            applies,
            removals,
        }))
    }

    pub fn heartbeat<T, E>(&self, outcome: &Result<T, E>) {
        self.heartbeats.with_label_values(&[result(outcome)]).inc();
        if outcome.is_ok() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            self.last_heartbeat.set(now);
        }
    }

    pub fn applied<T, E>(&self, outcome: &Result<T, E>) {
        self.applies.with_label_values(&[result(outcome)]).inc();
    }

    pub fn removed<T, E>(&self, outcome: &Result<T, E>) {
        self.removals.with_label_values(&[result(outcome)]).inc();
    }

    pub fn set_placements(&self, count: usize) {
        self.placements
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Every metric in the text format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "encoding metrics");
        }
        out
    }
}

/// Serves `GET /metrics` on `addr` until the task is dropped; returns the bound address (for
/// port 0) once listening.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
) -> anyhow::Result<(SocketAddr, impl std::future::Future<Output = ()>)> {
    use axum::http::header;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    metrics.render(),
                )
            }
        }),
    );
    Ok((bound, async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::warn!(error = %e, "the metrics listener stopped");
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_counted_by_result() {
        let metrics = Metrics::new().unwrap();
        metrics.heartbeat(&Ok::<(), ()>(()));
        metrics.heartbeat(&Err::<(), ()>(()));
        metrics.applied(&Ok::<(), ()>(()));
        metrics.set_placements(3);
        let text = String::from_utf8(metrics.render()).unwrap();
        assert!(text.contains("trellis_syncer_heartbeats_total{result=\"ok\"} 1"));
        assert!(text.contains("trellis_syncer_heartbeats_total{result=\"error\"} 1"));
        assert!(text.contains("trellis_syncer_applies_total{result=\"ok\"} 1"));
        assert!(text.contains("trellis_syncer_removals_total{result=\"error\"} 0"));
        assert!(text.contains("trellis_syncer_placements 3"));
        assert!(!text.contains("trellis_syncer_last_heartbeat_timestamp_seconds 0\n"));
    }
}
