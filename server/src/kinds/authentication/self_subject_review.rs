//! SelfSubjectReview: who the server takes the caller for.

use std::sync::Arc;

use k8s_openapi::api::authentication::v1;

use crate::kinds::{schema_of, Endpoint, Kind, Names, SchemaSource};

pub struct SelfSubjectReview;

impl Kind for SelfSubjectReview {
    fn names(&self) -> Names {
        Names::cluster(
            super::GROUP,
            "v1",
            "SelfSubjectReview",
            "selfsubjectreviews",
        )
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Upstream(schema_of::<v1::SelfSubjectReview>)
    }

    fn endpoint(&self) -> Option<Arc<dyn Endpoint>> {
        Some(Arc::new(
            crate::security::authn::self_subject_review::SelfSubjectReviews,
        ))
    }
}
