//! `authorization.k8s.io/v1`: the access reviews (`kubectl auth can-i`), create-only and never
//! stored; answered by `authz::reviews`.

use std::sync::Arc;

use k8s_openapi::api::authorization::v1;

use async_trait::async_trait;
use axum::body::Body;
use axum::response::Response;

use super::{schema_of, Endpoint, EndpointRequest, Kind, Names, SchemaSource, SchemeBuilder};
use crate::machinery::status::Status;
use crate::security::authz::reviews;
use crate::serving::state::AppState;

pub const GROUP: &str = "authorization.k8s.io";

pub fn install(scheme: &mut SchemeBuilder) {
    scheme.add(Review {
        names: Names::cluster(
            GROUP,
            "v1",
            "SelfSubjectAccessReview",
            "selfsubjectaccessreviews",
        ),
        schema: schema_of::<v1::SelfSubjectAccessReview>,
    });
    scheme.add(Review {
        names: Names::cluster(
            GROUP,
            "v1",
            "SelfSubjectRulesReview",
            "selfsubjectrulesreviews",
        ),
        schema: schema_of::<v1::SelfSubjectRulesReview>,
    });
    scheme.add(Review {
        names: Names::cluster(GROUP, "v1", "SubjectAccessReview", "subjectaccessreviews"),
        schema: schema_of::<v1::SubjectAccessReview>,
    });
}

/// One review kind: the three differ only in names and schema.
pub struct Review {
    names: Names,
    schema: fn(&mut schemars::SchemaGenerator) -> String,
}

impl Kind for Review {
    fn names(&self) -> Names {
        self.names
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Upstream(self.schema)
    }

    fn endpoint(&self) -> Option<Arc<dyn Endpoint>> {
        Some(Arc::new(Reviews))
    }
}

/// The endpoint of the three review kinds: answered and forgotten, never stored.
struct Reviews;

#[async_trait]
impl Endpoint for Reviews {
    async fn create(&self, r: EndpointRequest<'_>, body: Body) -> Result<Response, Status> {
        let state = AppState::of(r.server)?;
        Ok(reviews::handle(&state.authorizer, r.user, r.cluster, r.request, body).await)
    }
}
