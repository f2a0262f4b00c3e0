//! The one handler every request reaches: parse what it is about, resolve the workspace,
//! authorize the user there (`authz`), and hand it to discovery, the system endpoints (health,
//! `/metrics`), the access reviews or the REST layer. Request metrics are taken here, where
//! the verb and resource are known ([`instrument`]), and so is each request's span (traces,
//! and the trace id on its log lines).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;

use crate::machinery::request_info::{self, Target, Verb};
use crate::machinery::status::Status;
use crate::registry::ResourceType;
use crate::security::authn::UserInfo;
use crate::serving::context::{RequestContext, Scope, Workspace};
use crate::serving::instrument::{self, Measured};
use crate::serving::query::Query;
use crate::serving::response;
use crate::serving::{health, state::AppState};
use crate::tenancy::workspaces::ROOT_CLUSTER;
use crate::{
    endpoints::discovery, endpoints::openapi, endpoints::rest, security::authn, security::authz,
};
use tracing::Instrument;

pub async fn dispatch(state: Arc<AppState>, request: Request<Body>) -> Response {
    let started = std::time::Instant::now();
    let (parts, body) = request.into_parts();
    let query = Query::parse(parts.uri.query());
    let info = match request_info::parse(parts.method.as_str(), parts.uri.path(), &query) {
        Ok(info) => info,
        Err(_) => return response::status(Status::not_found_path()),
    };
    // One span per request: what traces export (a child of the client's trace context), and
    // what every log line logged while serving it carries (its trace id). Instrument, not
    // enter: a guard held across an await would stay entered on this thread while the task
    // sleeps, and tag other requests' lines.
    let span = {
        let (verb, resource) = match &info.target {
            Target::Resource(request) => (request.verb.as_str(), request.resource.as_str()),
            Target::NonResource(path) => (parts.method.as_str(), path.as_str()),
        };
        trellis_telemetry::request_span(&parts.headers, &info.workspace, verb, resource)
    };
    async move {
        let response = if state.metrics.enabled() {
            let measured = Measured::of(&state, &info, &parts.method, &parts.headers, started);
            let _in_flight = state.metrics.in_flight(measured.mutating());
            let response = route(&state, parts, query, info, body).await;
            measured.finish(&state.metrics, response)
        } else {
            route(&state, parts, query, info, body).await
        };
        let code = response.status().as_u16();
        tracing::Span::current().record("code", code);
        tracing::debug!(code, took = ?started.elapsed(), "served");
        response
    }
    .instrument(span)
    .await
}

/// Authenticates (what the layer found), resolves the workspace, authorizes and hands the
/// request on.
async fn route(
    state: &Arc<AppState>,
    parts: axum::http::request::Parts,
    query: Query,
    info: request_info::RequestInfo,
    body: Body,
) -> Response {
    // Put there by authentication; without it only the health and version paths answer.
    static NOBODY: UserInfo = UserInfo {
        name: String::new(),
        uid: String::new(),
        groups: Vec::new(),
        extra: std::collections::BTreeMap::new(),
    };
    let user = match parts.extensions.get::<UserInfo>() {
        Some(user) => user,
        None if authz::is_public_target(&info.target) => &NOBODY,
        None => return response::status(Status::unauthorized()),
    };
    tracing::Span::current().record("user", user.name.as_str());
    if info.workspace == request_info::ALL_WORKSPACES {
        if let Err(status) = authn::check_bound_cluster(parts.extensions.get(), None) {
            return response::status(status);
        }
        if let Err(status) =
            authz::check_wildcard(&state.authorizer, user, &info.target, parts.method.as_str())
                .await
        {
            return response::status(status);
        }
        let ctx = RequestContext {
            state,
            scope: Scope::AllWorkspaces,
            user,
            admin: false,
            extensions: &parts.extensions,
        };
        return match info.target {
            Target::Resource(request)
                if matches!(request.verb, Verb::List | Verb::Watch)
                    && request.namespace.is_none()
                    && request.subresource.is_none() =>
            {
                rest::handle(&ctx, request, query, &parts.headers, body).await
            }
            // Discovery: the built-in kinds (no workspace's CRDs are served across all).
            Target::NonResource(path) => non_resource(&ctx, &path, &query, &parts.headers).await,
            _ => response::status(Status::new(
                405,
                "MethodNotAllowed",
                "across all workspaces (/clusters/*) only cluster-wide list and watch are served",
            )),
        };
    }
    let workspace = match resolve(state, &info.workspace).await {
        Ok(workspace) => workspace,
        Err(status) => return response::status(status),
    };
    if let Err(status) =
        authn::check_bound_cluster(parts.extensions.get(), Some(&workspace.cluster))
    {
        return response::status(status);
    }
    let admin = match authz::check_request(
        &state.authorizer,
        user,
        (&workspace.addressed, &workspace.cluster, &workspace.shard),
        &info.target,
        parts.method.as_str(),
    )
    .await
    {
        Ok(admin) => admin,
        Err(status) => return response::status(status),
    };
    let ctx = RequestContext {
        state,
        scope: Scope::Workspace(workspace),
        user,
        admin,
        extensions: &parts.extensions,
    };
    match info.target {
        Target::NonResource(path) => non_resource(&ctx, &path, &query, &parts.headers).await,
        Target::Resource(request) => rest::handle(&ctx, request, query, &parts.headers, body).await,
    }
}

/// The workspace a request addresses, with its shard.
async fn resolve(state: &AppState, addressed: &str) -> Result<Workspace, Status> {
    let located = state
        .workspaces
        .resolve(addressed)
        .await
        .map_err(|unroutable| unroutable.into_status(addressed))?;
    let shard = state
        .shards
        .named(&located.shard)
        .map_err(|unroutable| unroutable.into_status(addressed))?;
    Ok(Workspace {
        addressed: addressed.to_string(),
        cluster: located.cluster,
        shard,
    })
}

async fn non_resource(
    ctx: &RequestContext<'_>,
    path: &str,
    query: &Query,
    headers: &HeaderMap,
) -> Response {
    let state = ctx.state;
    if let Some(response) = health::respond(state, path, query).await {
        return response;
    }
    match path {
        "/version" => return response::json(StatusCode::OK, &discovery::version()),
        // The server's own metrics, in root (authorization already asked RBAC there).
        "/metrics" if state.metrics.enabled() && ctx.cluster() == ROOT_CLUSTER => {
            return instrument::scrape(state);
        }
        _ => {}
    }
    let resources = match &ctx.scope {
        Scope::Workspace(workspace) => state.registry.resources(&workspace.cluster).await,
        Scope::AllWorkspaces => state.registry.scheme().resources().to_vec(),
    };
    if let Some(rest) = path.strip_prefix("/openapi/v3") {
        let docs = &state.openapi;
        return openapi_v3(docs, &resources, rest.trim_start_matches('/'), query);
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let aggregated = discovery::wants_aggregated(accept);
    match path {
        "/api" | "/apis" if aggregated => {
            let mut r = response::json(
                StatusCode::OK,
                &discovery::aggregated(&resources, path == "/api"),
            );
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(discovery::AGGREGATED_MEDIA_TYPE),
            );
            r.headers_mut()
                .insert(header::VARY, HeaderValue::from_static("Accept"));
            r
        }
        "/api" => response::json(StatusCode::OK, &discovery::api_versions()),
        "/apis" => response::json(StatusCode::OK, &discovery::api_group_list(&resources)),
        // The protobuf encoding is not served: a client asking only for it gets 406 and reads
        // the v3 documents instead.
        "/openapi/v2" if !accepts_json(accept) => response::status(Status::not_found_path()),
        "/openapi/v2" => response::json(StatusCode::OK, &openapi::v2(&state.openapi, &resources)),
        path => match discovery::resource_list(&resources, path) {
            Some(list) => response::json(StatusCode::OK, &list),
            None => response::status(Status::not_found_path()),
        },
    }
}

fn accepts_json(accept: Option<&str>) -> bool {
    accept.is_none_or(|accept| {
        accept.split(',').any(|media| {
            let essence = media.split(';').next().unwrap_or_default().trim();
            matches!(essence, "application/json" | "*/*" | "application/*")
        })
    })
}

/// `/openapi/v3` (the index) and `/openapi/v3/<group-version path>`. A request naming the
/// current hash may be cached for good, as kube-apiserver allows.
fn openapi_v3(
    docs: &openapi::Documents,
    resources: &[Arc<ResourceType>],
    group_version: &str,
    query: &Query,
) -> Response {
    let (body, cache) = if group_version.is_empty() {
        (openapi::v3_index(docs, resources), "no-cache, private")
    } else if let Some((hash, body)) = openapi::custom_v3(docs, resources, group_version) {
        let cache = if query.get("hash") == Some(hash.as_str()) {
            "public, immutable"
        } else {
            "no-cache, private"
        };
        (body, cache)
    } else {
        match docs.by_group_version.get(group_version) {
            Some((hash, body)) if query.get("hash") == Some(hash.as_str()) => {
                (body.clone(), "public, immutable")
            }
            Some((_, body)) => (body.clone(), "no-cache, private"),
            None => return response::status(Status::not_found_path()),
        }
    };
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}
