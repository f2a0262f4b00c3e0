//! Request metrics, taken in dispatch where a request's verb and resource are known, and the
//! `/metrics` endpoint that serves them (in root, to those RBAC there grants `get` on the
//! non-resource URL `/metrics`: the group `system:monitoring` by default).
//!
//! Labels are kube-apiserver's. The group, version and resource are the built-in resource's
//! own strings (borrowed from the scheme, so nothing is allocated per request); a request for
//! anything else (a custom resource, a path that names no resource) is labelled
//! [`metrics::OTHER`], so what clients put in URLs never makes a new series.

use std::time::Instant;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use futures::StreamExt;

use crate::machinery::metrics::{self, Metrics, RequestLabels, OTHER};
use crate::machinery::request_info::{RequestInfo, Target, Verb};
use crate::serving::state::AppState;

/// What dispatch knows of a request for its metrics.
pub struct Measured<'a> {
    labels: RequestLabels<'a>,
    mutating: bool,
    watch: bool,
    started: Instant,
}

impl<'a> Measured<'a> {
    /// The labels of a request, resolved against the server's built-in resources.
    pub fn of(
        state: &'a AppState,
        info: &RequestInfo,
        method: &Method,
        headers: &HeaderMap,
        started: Instant,
    ) -> Measured<'a> {
        match &info.target {
            Target::Resource(request) => {
                let apply = request.verb == Verb::Patch
                    && headers
                        .get(header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|t| t.starts_with("application/apply-patch"));
                let (group, version, resource) = match state.registry.scheme().lookup(
                    &request.group,
                    &request.version,
                    &request.resource,
                ) {
                    Some(rt) => (rt.group.as_str(), rt.version.as_str(), rt.plural.as_str()),
                    None => (OTHER, OTHER, OTHER),
                };
                Measured {
                    labels: RequestLabels {
                        verb: metrics::verb_label(request.verb, apply),
                        group,
                        version,
                        resource,
                        subresource: metrics::subresource_label(request.subresource.as_deref()),
                        scope: metrics::scope_label(request),
                    },
                    mutating: !matches!(request.verb, Verb::Get | Verb::List | Verb::Watch),
                    watch: request.verb == Verb::Watch,
                    started,
                }
            }
            Target::NonResource(_) => Measured {
                labels: RequestLabels {
                    verb: method_label(method),
                    group: "",
                    version: "",
                    resource: "",
                    subresource: "",
                    scope: "",
                },
                mutating: !matches!(*method, Method::GET | Method::HEAD),
                watch: false,
                started,
            },
        }
    }

    pub fn mutating(&self) -> bool {
        self.mutating
    }

    /// Records the answered request; a watch that was opened stays counted as long-running
    /// until its response body is dropped (the watch ended or the client went away).
    pub fn finish(self, metrics: &Metrics, response: Response) -> Response {
        metrics.request(
            &self.labels,
            response.status().as_str(),
            self.started.elapsed(),
        );
        if !(self.watch && response.status() == StatusCode::OK) {
            return response;
        }
        let guard = metrics.long_running(&self.labels);
        response.map(|body| {
            Body::from_stream(body.into_data_stream().map(move |chunk| {
                let _counted = &guard;
                chunk
            }))
        })
    }
}

/// A non-resource request's verb: its method, from a fixed set.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => OTHER,
    }
}

/// `/metrics`: what is read when scraped (each shard's group commit and watch fan-out, the
/// workspaces per shard and phase) and everything recorded, in the text format.
pub fn scrape(state: &AppState) -> Response {
    let metrics = &state.metrics;
    for shard in state.shards.iter() {
        metrics.observe_store(
            &shard.name,
            shard.store.commit_stats(),
            shard.store.watchers(),
        );
    }
    metrics.set_workspaces(&state.workspaces.workspaces_per_shard_and_phase());
    let mut response = Response::new(Body::from(metrics.render()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    response
}

/// Refreshes `apiserver_storage_objects` from every shard (one aggregate query each) every
/// `every`, until the task is dropped. Resources that are not built in are summed as
/// [`OTHER`]: a tenant's CRDs never make series of their own.
pub async fn count_storage_objects(
    shards: std::sync::Arc<crate::tenancy::shards::ShardMap>,
    scheme: std::sync::Arc<crate::registry::Scheme>,
    metrics: std::sync::Arc<Metrics>,
    every: std::time::Duration,
) {
    let built_in: std::collections::HashSet<String> = scheme
        .resources()
        .iter()
        .map(|rt| rt.storage_resource())
        .collect();
    loop {
        let mut counts = std::collections::BTreeMap::new();
        let mut complete = true;
        for shard in shards.iter() {
            match shard.store.count_by_resource().await {
                Ok(per_resource) => {
                    for (resource, count) in per_resource {
                        let label = if built_in.contains(&resource) {
                            metrics::storage_resource_label(&resource)
                        } else {
                            OTHER.to_string()
                        };
                        *counts.entry(label).or_insert(0u64) += count;
                    }
                }
                Err(e) => {
                    complete = false;
                    tracing::debug!(shard = %shard.name, error = %e, "counting stored objects");
                }
            }
        }
        // A shard that did not answer keeps the last complete count standing.
        if complete {
            metrics.set_storage_objects(&counts);
        }
        tokio::time::sleep(every).await;
    }
}
