//! ServiceAccount: an identity for processes in a namespace. Its `token` subresource
//! (TokenRequest, `kubectl create token`) is answered by authentication, never stored.

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::response::Response;
use k8s_openapi::api::core::v1;
use serde_json::Value;

use crate::kinds::{
    age_cell, cell_count, cell_text, schema_of, Column, Endpoint, EndpointRequest, Grants, Kind,
    ListMerge, Names, SchemaSource, AGE, NAME, READ, WRITE,
};
use crate::machinery::patch::strategic::ListStrategy;
use crate::machinery::status::Status;
use crate::security::authn::token_request;
use crate::serving::state::AppState;

pub struct ServiceAccount;

impl Kind for ServiceAccount {
    fn returns_deleted_object(&self) -> bool {
        true
    }

    fn names(&self) -> Names {
        Names::namespaced("", "v1", "ServiceAccount", "serviceaccounts").short(&["sa"])
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Upstream(schema_of::<v1::ServiceAccount>)
    }

    fn columns(&self) -> &'static [Column] {
        &[NAME, ("Secrets", "integer", 0), AGE]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![
            cell_text(o, "/metadata/name"),
            cell_count(o, &["/secrets"]),
            age_cell(o),
        ]
    }

    fn grants(&self) -> Grants {
        Grants {
            view: READ,
            edit: WRITE,
            admin: &[],
        }
    }

    fn list_merges(&self) -> &'static [ListMerge] {
        &[(&["secrets"], ListStrategy::MergeByKey("name"))]
    }

    fn protobuf(&self) -> Option<crate::machinery::protobuf::Converter> {
        Some(crate::machinery::protobuf::service_account)
    }

    fn endpoint_subresources(&self) -> Vec<(&'static str, Names, Arc<dyn Endpoint>)> {
        vec![(
            "token",
            Names::namespaced(
                "authentication.k8s.io",
                "v1",
                "TokenRequest",
                "tokenrequests",
            ),
            Arc::new(TokenRequests),
        )]
    }
}

/// `serviceaccounts/<name>/token`: mints a token, stores nothing.
struct TokenRequests;

#[async_trait]
impl Endpoint for TokenRequests {
    async fn create(&self, r: EndpointRequest<'_>, body: Body) -> Result<Response, Status> {
        let state = AppState::of(r.server)?;
        token_request::create(&state.shards, r.cluster, r.request, r.extensions, body).await
    }
}
