//! SelfSubjectReview (`authentication.k8s.io/v1`, create only): the requester's own user
//! information, as authentication saw it. `kubectl auth whoami` calls it.

use axum::body::Body;
use axum::http::{Extensions, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::UserInfo;
use crate::machinery::request_info::MAX_BODY_BYTES;
use crate::machinery::request_info::{ResourceRequest, Verb};
use crate::machinery::status::Status;
use crate::serving::response;

/// `kubectl auth whoami`: answered and forgotten, never stored.
pub struct SelfSubjectReviews;

#[async_trait::async_trait]
impl crate::kinds::Endpoint for SelfSubjectReviews {
    async fn create(
        &self,
        r: crate::kinds::EndpointRequest<'_>,
        body: Body,
    ) -> Result<Response, Status> {
        create(r.request, r.extensions, body).await
    }
}

pub async fn create(
    request: &ResourceRequest,
    extensions: &Extensions,
    body: Body,
) -> Result<Response, Status> {
    if request.verb != Verb::Create || request.name.is_some() || request.namespace.is_some() {
        return Err(Status::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({} selfsubjectreviews)",
            request.verb.as_str()
        )));
    }
    // The body says nothing (a SelfSubjectReview has no spec), but it is read within the limit.
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| Status::too_large(MAX_BODY_BYTES))?;
    let user = extensions
        .get::<UserInfo>()
        .cloned()
        .unwrap_or_else(UserInfo::anonymous);
    Ok(response::json(StatusCode::CREATED, &review(&user)))
}

pub fn review(user: &UserInfo) -> serde_json::Value {
    let mut user_info = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        user_info["uid"] = json!(user.uid);
    }
    if !user.extra.is_empty() {
        user_info["extra"] = json!(user.extra);
    }
    json!({
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": crate::machinery::object_meta::now_rfc3339()},
        "status": {"userInfo": user_info},
    })
}
