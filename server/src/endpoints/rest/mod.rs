//! The REST layer: one generic implementation of the Kubernetes verbs for every resource,
//! over the storage layer. Per-kind rules live in the registry and `object_meta`, not here.

mod custom_columns;
mod defaults;
mod filter;
mod list;
mod listed;
mod negotiation;
mod strict_json;
pub mod subresource;
pub mod table;
mod watch;
mod wildcard;
mod write;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;
use trellis_storage::ObjectKey;

use crate::kinds::Home;
use crate::machinery::object_meta;
use crate::machinery::request_info::{self, ResourceRequest, Verb};
use crate::machinery::status::{Status, Subject};
use crate::registry::ResourceType;
use crate::serving::context::{RequestContext, Scope};
use crate::serving::query::Query;
use crate::serving::response;
use crate::serving::state::AppState;
use crate::tenancy::shards::Shard;
use subresource::Subresource;

/// Marks an object of a wildcard list or watch with its workspace's path (its logical cluster
/// id if this replica does not know the path).
pub(crate) fn mark_cluster(
    index: &crate::tenancy::workspaces::WorkspaceIndex,
    object: &mut Value,
    cluster: &str,
) {
    let path = index
        .cached_path(cluster)
        .unwrap_or_else(|| cluster.to_string());
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(map) = annotations.as_object_mut() {
            map.insert(
                trellis_apis::CLUSTER_ANNOTATION.to_string(),
                Value::String(path),
            );
        }
    }
}

pub use crate::machinery::request_info::MAX_BODY_BYTES;

/// Serves one resource request, its answer encoded as the client's `Accept` asks.
pub async fn handle(
    ctx: &RequestContext<'_>,
    request: ResourceRequest,
    query: Query,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    match negotiation::negotiate(accept, request.verb == Verb::Watch) {
        Ok(encoding) => {
            let response = serve(ctx, request, query, headers, body).await;
            negotiation::encode(response, encoding).await
        }
        Err(status) => response::status(status),
    }
}

async fn serve(
    ctx: &RequestContext<'_>,
    request: ResourceRequest,
    query: Query,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let (state, cluster) = (ctx.state, ctx.cluster());
    let Some(rt) = state
        .registry
        .lookup(cluster, &request.group, &request.version, &request.resource)
        .await
    else {
        return response::status(Status::not_found_path());
    };
    // Kinds and subresources answered by code, never stored (reviews, TokenRequest).
    let endpoint = match request.subresource.as_deref() {
        Some(name) => rt.endpoint_subresource(name),
        None => rt.endpoint(),
    };
    if let Some(endpoint) = endpoint {
        let endpoint_request = crate::kinds::EndpointRequest {
            server: state,
            cluster,
            user: ctx.user,
            request: &request,
            extensions: ctx.extensions,
        };
        return endpoint
            .create(endpoint_request, body)
            .await
            .unwrap_or_else(response::status);
    }
    let Some(subresource) = Subresource::parse(request.subresource.as_deref(), &rt) else {
        return response::status(Status::not_found_path());
    };
    if !rt.namespaced && request.namespace.is_some() {
        return response::status(Status::not_found_path());
    }
    if subresource != Subresource::None && !subresource.verbs().contains(&request.verb.as_str()) {
        return response::status(Status::new(
            405,
            "MethodNotAllowed",
            format!(
                "the server does not allow this method on the requested resource ({} {}/{})",
                request.verb.as_str(),
                rt.plural,
                request.subresource.as_deref().unwrap_or_default()
            ),
        ));
    }
    // Creates go to a collection, updates and patches to an object (or its subresource).
    let misplaced = match request.verb {
        Verb::Create => request.name.is_some() && subresource == Subresource::None,
        Verb::Update | Verb::Patch => request.name.is_none(),
        _ => false,
    };
    if misplaced {
        return response::status(Status::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    if request.verb == Verb::DeleteCollection && !rt.verbs().contains(&"deletecollection") {
        return response::status(Status::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({} {})",
            request.verb.as_str(),
            rt.plural
        )));
    }
    let mut query = query;
    if let (Verb::List | Verb::Watch, Some(name)) = (request.verb, &request.name) {
        // One object's watch (a deprecated `/watch/…/<name>` path) is its collection's, limited
        // to the name; a name taken from the selector matches it already.
        match query.get("fieldSelector").filter(|s| !s.is_empty()) {
            None => query.set("fieldSelector", &format!("metadata.name={name}")),
            Some(selector) if request_info::selected_name(selector) != Some(name.as_str()) => {
                return response::status(Status::bad_request(
                    "fieldSelector metadata.name doesn't match requested name",
                ));
            }
            Some(_) => {}
        }
    }
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let shard = match (&ctx.scope, rt.home()) {
        (Scope::Workspace(workspace), Home::Workspace) => workspace.shard.clone(),
        // The tenancy tree lives in the root shard; requests across all workspaces read every
        // shard themselves, and the root shard stands in.
        (Scope::Workspace(_), Home::RootShard) | (Scope::AllWorkspaces, _) => {
            state.shards.root().clone()
        }
    };
    let target = Target {
        state,
        ctx,
        shard: &shard,
        cluster,
        rt: &rt,
        namespace: request.namespace.as_deref(),
        name: request.name.as_deref(),
        subresource,
        rendering: table::rendering(accept),
    };
    let result = match request.verb {
        Verb::Get => target.get(&query).await,
        Verb::List => list::list(&target, &query).await,
        Verb::Watch => return watch::watch(&target, &query).await,
        Verb::Create => write::create(&target, &query, headers, body).await,
        Verb::Update => write::update(&target, &query, headers, body).await,
        Verb::Delete => write::delete(&target, &query, body).await,
        Verb::Patch => write::patch(&target, &query, headers, body).await,
        Verb::DeleteCollection => write::delete_collection(&target, &query, body).await,
    };
    let mut response = result.unwrap_or_else(response::status);
    // A deprecated custom resource version says so on every response, as kube-apiserver does.
    if let Some(warning) = rt
        .custom
        .as_ref()
        .and_then(|c| c.deprecation_warning.as_ref())
    {
        let text = format!("299 - {}", Value::String(warning.clone()));
        if let Ok(value) = axum::http::HeaderValue::from_str(&text) {
            response.headers_mut().append("warning", value);
        }
    }
    response
}

/// The resource (and, for single-object verbs, the object) a request addresses.
pub struct Target<'a> {
    pub state: &'a AppState,
    /// The request's workspace and user.
    pub ctx: &'a RequestContext<'a>,
    /// The shard holding the addressed objects.
    pub shard: &'a Shard,
    pub cluster: &'a str,
    pub rt: &'a Arc<ResourceType>,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
    pub subresource: Subresource,
    /// How reads render objects (plain, Table, metadata only), from `Accept`.
    pub rendering: table::Rendering,
}

impl Target<'_> {
    /// A request across every workspace (`/clusters/*`).
    pub fn wildcard(&self) -> bool {
        self.ctx.all_workspaces()
    }

    pub(crate) fn subject(&self) -> Subject<'_> {
        Subject {
            group: &self.rt.group,
            resource: &self.rt.plural,
            name: self.name.unwrap_or_default(),
        }
    }

    fn key(&self, name: &str) -> ObjectKey {
        ObjectKey::new(
            self.cluster,
            self.rt.storage_resource(),
            self.namespace.unwrap_or_default(),
            name,
        )
    }

    pub(crate) fn storage_error(&self, err: &trellis_storage::StorageError) -> Status {
        Status::from_storage(err, &self.subject())
    }

    /// What a response shows of a stored object: itself, or its Scale.
    fn output(&self, object: Value) -> Value {
        match (self.subresource, &self.rt.subresources.scale) {
            (Subresource::Scale, Some(paths)) => subresource::scale_of(&object, paths),
            _ => object,
        }
    }

    /// Renders one object as the client asked.
    fn render(&self, object: Value, query: &Query) -> Value {
        let object = self.output(object);
        if self.subresource == Subresource::Scale {
            return object;
        }
        table::render_one(self.rt, self.rendering, object, query.get("includeObject"))
    }

    async fn get(&self, query: &Query) -> Result<Response, Status> {
        let name = self.name.unwrap_or_default();
        let key = self.key(name);
        let stored = match self.shard.store.get(&key).await {
            Ok(stored) => stored,
            Err(e @ trellis_storage::StorageError::NotFound(_)) => {
                return match defaults::named(self, name) {
                    Some(object) if self.subresource == Subresource::None => {
                        Ok(response::json(StatusCode::OK, &self.render(object, query)))
                    }
                    _ => Err(self.storage_error(&e)),
                };
            }
            Err(e) => return Err(self.storage_error(&e)),
        };
        if self.subresource == Subresource::None && self.rendering == table::Rendering::Object {
            // The object as stored plus its revision: no parse and re-encode.
            let object =
                object_meta::encode_with_revision(&stored.value, stored.revision, self.rt)?;
            return Ok(response::json_bytes(StatusCode::OK, object));
        }
        let object = object_meta::decode(&stored.value, stored.revision, self.rt)?;
        Ok(response::json(StatusCode::OK, &self.render(object, query)))
    }
}
