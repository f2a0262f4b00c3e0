//! TokenReview: whether a bearer token is valid here, and whose it is, as kube-apiserver
//! answers it for webhook authenticators and agents. Create only, never stored; the caller
//! needs `create` on `tokenreviews`. A token the hub minted is valid for the hub's audience;
//! a review naming other audiences that the token cannot serve says so in `status.error`.

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use k8s_openapi::api::authentication::v1;
use serde_json::{json, Value};

use crate::kinds::{schema_of, Endpoint, EndpointRequest, Kind, Names, SchemaSource};
use crate::machinery::request_info::Verb;
use crate::machinery::status::Status;
use crate::security::authn::service_account::API_AUDIENCE;
use crate::security::authn::Outcome;
use crate::serving::response;
use crate::serving::state::AppState;

pub struct TokenReview;

impl Kind for TokenReview {
    fn names(&self) -> Names {
        Names::cluster(super::GROUP, "v1", "TokenReview", "tokenreviews")
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Upstream(schema_of::<v1::TokenReview>)
    }

    fn endpoint(&self) -> Option<Arc<dyn Endpoint>> {
        Some(Arc::new(Reviews))
    }
}

struct Reviews;

#[async_trait]
impl Endpoint for Reviews {
    async fn create(&self, r: EndpointRequest<'_>, body: Body) -> Result<Response, Status> {
        if r.request.verb != Verb::Create || r.request.name.is_some() {
            return Err(Status::method_not_allowed(
                "tokenreviews only supports create".to_string(),
            ));
        }
        let bytes = axum::body::to_bytes(body, crate::machinery::request_info::MAX_BODY_BYTES)
            .await
            .map_err(|_| Status::too_large(crate::machinery::request_info::MAX_BODY_BYTES))?;
        let mut review: Value = serde_json::from_slice(&bytes)
            .or_else(|_| serde_yaml_ng::from_slice(&bytes))
            .map_err(|e| Status::bad_request(format!("the request body is not valid JSON: {e}")))?;
        let token = review
            .pointer("/spec/token")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if token.is_empty() {
            return Err(Status::bad_request("spec.token: Required value"));
        }
        let wanted: Vec<String> = review
            .pointer("/spec/audiences")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let state = AppState::of(r.server)?;
        let outcome = state
            .authenticator
            .authenticate_token(&state.shards, &token)
            .await;
        review["status"] = status_of(outcome, &wanted)?;
        review["apiVersion"] = json!("authentication.k8s.io/v1");
        review["kind"] = json!("TokenReview");
        Ok(response::json(StatusCode::CREATED, &review))
    }
}

/// The review's status for what authentication made of the token, against the audiences the
/// caller asked for (none: the hub's own).
fn status_of(outcome: Outcome, wanted: &[String]) -> Result<Value, Status> {
    let audiences: Vec<&str> = if wanted.is_empty() {
        vec![API_AUDIENCE]
    } else {
        wanted
            .iter()
            .map(String::as_str)
            .filter(|a| *a == API_AUDIENCE)
            .collect()
    };
    Ok(match outcome {
        Outcome::User(_) if audiences.is_empty() => json!({
            "authenticated": false,
            "error": format!("token audiences are invalid for the target audiences {wanted:?}"),
        }),
        Outcome::User(user) => json!({
            "authenticated": true,
            "user": {
                "username": user.name,
                "uid": user.uid,
                "groups": user.groups,
                "extra": user.extra,
            },
            "audiences": audiences,
        }),
        Outcome::Refused(why) => json!({"authenticated": false, "error": why}),
        Outcome::NoCredentials => json!({"authenticated": false}),
        Outcome::Unavailable(why) => {
            return Err(Status::unavailable(
                format!("the token cannot be verified now: {why}"),
                1,
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::authn::UserInfo;

    #[test]
    fn reviews_say_who_and_for_which_audiences() {
        let user = || {
            Outcome::User(UserInfo {
                name: "system:serviceaccount:default:robot".into(),
                uid: "u1".into(),
                groups: vec!["system:serviceaccounts".into()],
                ..UserInfo::default()
            })
        };
        let ok = status_of(user(), &[]).unwrap();
        assert_eq!(ok["authenticated"], true);
        assert_eq!(
            ok["user"]["username"],
            "system:serviceaccount:default:robot"
        );
        assert_eq!(ok["audiences"], json!([API_AUDIENCE]));
        let other = status_of(user(), &["vault".to_string()]).unwrap();
        assert_eq!(other["authenticated"], false);
        assert!(other["error"].as_str().unwrap().contains("vault"));
        let refused = status_of(Outcome::Refused("expired".into()), &[]).unwrap();
        assert_eq!(refused, json!({"authenticated": false, "error": "expired"}));
        assert_eq!(
            status_of(Outcome::Unavailable("down".into()), &[])
                .unwrap_err()
                .code,
            503
        );
    }
}
