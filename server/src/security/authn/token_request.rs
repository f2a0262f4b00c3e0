//! The TokenRequest subresource (`POST …/namespaces/<ns>/serviceaccounts/<name>/token`, an
//! `authentication.k8s.io/v1` TokenRequest): how ServiceAccount tokens are minted, and what
//! `kubectl create token` calls.
//!
//! `spec.audiences` defaults to the hub's own ([`API_AUDIENCE`]); a token for other audiences
//! is not accepted by the hub. `spec.expirationSeconds` defaults to an hour, may not be under
//! ten minutes, and is capped at 48 hours. Binding to another object (`boundObjectRef`) is not
//! supported.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{Extensions, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::service_account::{
    ServiceAccountRef, ServiceAccountTokens, API_AUDIENCE, DEFAULT_EXPIRATION, MAX_EXPIRATION,
    MIN_EXPIRATION,
};
use crate::machinery::request_info::MAX_BODY_BYTES;
use crate::machinery::request_info::{ResourceRequest, Verb};
use crate::machinery::status::{Status, StatusCause, Subject};
use crate::serving::response;
use crate::tenancy::shards::ShardMap;

/// What a TokenRequest asks for.
#[derive(Debug, PartialEq)]
pub struct TokenSpec {
    pub audiences: Vec<String>,
    pub expiration: Duration,
}

fn invalid(name: &str, field: &str, message: String) -> Status {
    Status::invalid(
        &Subject {
            group: "authentication.k8s.io",
            resource: "TokenRequest",
            name,
        },
        "TokenRequest",
        vec![StatusCause {
            kind: "FieldValueInvalid".to_string(),
            message,
            field: field.to_string(),
        }],
    )
}

/// Reads and checks a TokenRequest body (JSON, or protobuf as kubectl sends it).
pub fn parse_spec(name: &str, body: &[u8]) -> Result<TokenSpec, Status> {
    let request: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else if body.starts_with(b"k8s\0") {
        crate::machinery::protobuf::decode(body, |api_version, kind| {
            (api_version == "authentication.k8s.io/v1" && kind == "TokenRequest").then_some(
                crate::machinery::protobuf::token_request as crate::machinery::protobuf::Converter,
            )
        })?
    } else {
        serde_json::from_slice(body).map_err(|e| {
            Status::bad_request(format!("the request body is not a TokenRequest: {e}"))
        })?
    };
    if !request.is_object() {
        return Err(Status::bad_request(
            "the request body is not a TokenRequest",
        ));
    }
    if let Some(kind) = request.get("kind").and_then(Value::as_str) {
        if kind != "TokenRequest" {
            return Err(Status::bad_request(format!(
                "expected a TokenRequest, got a {kind}"
            )));
        }
    }
    let spec = request.get("spec").cloned().unwrap_or(json!({}));
    let audiences = match spec.get("audiences") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|a| a.as_str().filter(|a| !a.is_empty()).map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                invalid(
                    name,
                    "spec.audiences",
                    "audiences must be non-empty strings".into(),
                )
            })?,
        Some(_) => {
            return Err(invalid(
                name,
                "spec.audiences",
                "must be a list of strings".into(),
            ))
        }
    };
    let audiences = if audiences.is_empty() {
        vec![API_AUDIENCE.to_string()]
    } else {
        audiences
    };
    let expiration = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_EXPIRATION,
        Some(v) => {
            let seconds = v.as_i64().ok_or_else(|| {
                invalid(name, "spec.expirationSeconds", "must be an integer".into())
            })?;
            if seconds < MIN_EXPIRATION.as_secs() as i64 {
                return Err(invalid(
                    name,
                    "spec.expirationSeconds",
                    format!(
                        "Invalid value: {seconds}: may not specify a duration less than 10 minutes"
                    ),
                ));
            }
            Duration::from_secs(seconds as u64).min(MAX_EXPIRATION)
        }
    };
    if spec.get("boundObjectRef").is_some_and(|b| !b.is_null()) {
        return Err(invalid(
            name,
            "spec.boundObjectRef",
            "binding a token to another object is not supported".into(),
        ));
    }
    Ok(TokenSpec {
        audiences,
        expiration,
    })
}

/// `serviceaccounts/<name>/token`: mints a token for the ServiceAccount the request names,
/// in `cluster`; stores nothing.
pub async fn create(
    shards: &ShardMap,
    cluster: &str,
    request: &ResourceRequest,
    extensions: &Extensions,
    body: Body,
) -> Result<Response, Status> {
    if request.verb != Verb::Create {
        return Err(Status::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({} serviceaccounts/token)",
            request.verb.as_str()
        )));
    }
    let (Some(namespace), Some(name)) = (request.namespace.as_deref(), request.name.as_deref())
    else {
        return Err(Status::not_found_path());
    };
    let tokens = extensions
        .get::<Arc<ServiceAccountTokens>>()
        .ok_or_else(|| Status::internal("ServiceAccount tokens are not configured"))?;
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| Status::too_large(MAX_BODY_BYTES))?;
    let spec = parse_spec(name, &body)?;
    let mut account = ServiceAccountRef {
        cluster: cluster.to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
        uid: String::new(),
    };
    let store = shards
        .shard_for(cluster)
        .await
        .map_err(|e| Status::unavailable(format!("the workspace's store: {e:?}"), 1))?
        .store
        .clone();
    let subject = Subject {
        group: "",
        resource: "serviceaccounts",
        name,
    };
    let stored = store
        .get(&account.key())
        .await
        .map_err(|e| Status::from_storage(&e, &subject))?;
    account.uid = stored.uid;
    let (token, expires) = tokens
        .mint(
            &account,
            &spec.audiences,
            spec.expiration,
            SystemTime::now(),
        )
        .map_err(|e| Status::internal(format!("signing the token: {e}")))?;
    let body = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": crate::machinery::object_meta::now_rfc3339(),
        },
        "spec": {
            "audiences": spec.audiences,
            "expirationSeconds": spec.expiration.as_secs(),
            "boundObjectRef": null,
        },
        "status": {
            "token": token,
            "expirationTimestamp": humantime::format_rfc3339_seconds(expires).to_string(),
        },
    });
    Ok(response::json(StatusCode::CREATED, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_limits() {
        let spec = parse_spec("sa", b"").unwrap();
        assert_eq!(spec.audiences, [API_AUDIENCE]);
        assert_eq!(spec.expiration, DEFAULT_EXPIRATION);
        let spec = parse_spec(
            "sa",
            br#"{"kind":"TokenRequest","apiVersion":"authentication.k8s.io/v1","spec":{"audiences":["vault"],"expirationSeconds":999999}}"#,
        )
        .unwrap();
        assert_eq!(spec.audiences, ["vault"]);
        assert_eq!(spec.expiration, MAX_EXPIRATION);
        let short = parse_spec("sa", br#"{"spec":{"expirationSeconds":60}}"#).unwrap_err();
        assert_eq!(short.code, 422);
        // The kind is qualified by its group once, as kube-apiserver words it.
        assert_eq!(
            short.message,
            "TokenRequest.authentication.k8s.io \"sa\" is invalid: spec.expirationSeconds: \
             Invalid value: 60: may not specify a duration less than 10 minutes"
        );
        assert_eq!(parse_spec("sa", b"{not json").unwrap_err().code, 400);
        // kubectl sends protobuf.
        use k8s_pb::api::authentication::v1 as pb;
        use prost::Message;
        let request = pb::TokenRequest {
            spec: Some(pb::TokenRequestSpec {
                audiences: vec!["a".into()],
                expiration_seconds: Some(700),
                ..Default::default()
            }),
            ..Default::default()
        };
        let envelope = k8s_pb::apimachinery::pkg::runtime::Unknown {
            type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
                api_version: Some("authentication.k8s.io/v1".into()),
                kind: Some("TokenRequest".into()),
            }),
            raw: Some(request.encode_to_vec()),
            ..Default::default()
        };
        let body = [b"k8s\0".as_slice(), &envelope.encode_to_vec()].concat();
        assert_eq!(
            parse_spec("sa", &body).unwrap(),
            TokenSpec {
                audiences: vec!["a".into()],
                expiration: Duration::from_secs(700)
            }
        );
        assert_eq!(parse_spec("sa", b"[]").unwrap_err().code, 400);
        assert_eq!(
            parse_spec("sa", br#"{"spec":{"audiences":[1]}}"#)
                .unwrap_err()
                .code,
            422
        );
        assert_eq!(
            parse_spec(
                "sa",
                br#"{"spec":{"boundObjectRef":{"kind":"Pod","name":"p"}}}"#
            )
            .unwrap_err()
            .code,
            422
        );
    }
}
