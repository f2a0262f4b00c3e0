//! The one handler every request reaches: parse what it is about, resolve the workspace, and
//! hand it to discovery, the system endpoints or the REST layer.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;

use crate::http::query::Query;
use crate::http::response;
use crate::request_info::{self, Target};
use crate::state::AppState;
use crate::status::Status;
use crate::{discovery, rest};

pub async fn dispatch(State(state): State<Arc<AppState>>, request: Request<Body>) -> Response {
    let (parts, body) = request.into_parts();
    let query = Query::parse(parts.uri.query());
    let info =
        match request_info::parse(parts.method.as_str(), parts.uri.path(), query.flag("watch")) {
            Ok(info) => info,
            Err(_) => return response::status(Status::not_found_path()),
        };
    let Some(cluster) = state.resolve_workspace(&info.workspace) else {
        return response::status(Status::new(
            404,
            "NotFound",
            format!("workspace {:?} not found", info.workspace),
        ));
    };
    let span = tracing::debug_span!("request", workspace = %info.workspace, method = %parts.method, path = %parts.uri.path());
    let _entered = span.enter();
    match info.target {
        Target::NonResource(path) => non_resource(&path),
        Target::Resource(request) => {
            rest::handle(&state, cluster, request, query, &parts.headers, body).await
        }
    }
}

fn non_resource(path: &str) -> Response {
    match path {
        "/healthz" | "/livez" | "/readyz" => {
            let mut r = Response::new(Body::from("ok"));
            *r.status_mut() = StatusCode::OK;
            r
        }
        "/version" => response::json(StatusCode::OK, &discovery::version()),
        "/api" => response::json(StatusCode::OK, &discovery::api_versions()),
        "/apis" => response::json(StatusCode::OK, &discovery::api_group_list()),
        path => match discovery::resource_list(path) {
            Some(list) => response::json(StatusCode::OK, &list),
            None => response::status(Status::not_found_path()),
        },
    }
}
