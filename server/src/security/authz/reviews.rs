//! `authorization.k8s.io/v1` reviews, create-only virtual resources answered from the
//! authorizer and never stored: SelfSubjectAccessReview (`kubectl auth can-i`),
//! SubjectAccessReview (the same question about someone else) and SelfSubjectRulesReview
//! (`kubectl auth can-i --list`). Each is evaluated in the workspace of the request URL, with
//! the workspace access check included, as a real request there would be.

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::{entry, rbac::Rule, Attributes, Authorizer, Entry, ResourceAttributes};
use crate::machinery::request_info::MAX_BODY_BYTES;
use crate::machinery::request_info::{ResourceRequest, Verb};
use crate::machinery::status::Status;
use crate::security::authn::UserInfo;
use crate::serving::response;

pub const GROUP: &str = "authorization.k8s.io";
pub const SELF_SUBJECT_ACCESS_REVIEWS: &str = "selfsubjectaccessreviews";
pub const SUBJECT_ACCESS_REVIEWS: &str = "subjectaccessreviews";
pub const SELF_SUBJECT_RULES_REVIEWS: &str = "selfsubjectrulesreviews";

/// Whether a request is a review of the requesting user itself.
pub fn is_self_review(target: &crate::machinery::request_info::Target) -> bool {
    matches!(target, crate::machinery::request_info::Target::Resource(r)
        if (r.group == GROUP
            && matches!(r.resource.as_str(), SELF_SUBJECT_ACCESS_REVIEWS | SELF_SUBJECT_RULES_REVIEWS))
            // `kubectl auth whoami`.
            || (r.group == "authentication.k8s.io" && r.resource == "selfsubjectreviews"))
}

/// Answers a review posted by `user` in workspace `cluster` (already authorized to create it).
pub async fn handle(
    authz: &Authorizer,
    user: &UserInfo,
    cluster: &str,
    request: &ResourceRequest,
    body: Body,
) -> Response {
    match review(authz, user, cluster, request, body).await {
        Ok(object) => response::json(StatusCode::CREATED, &object),
        Err(status) => response::status(status),
    }
}

async fn review(
    authz: &Authorizer,
    user: &UserInfo,
    cluster: &str,
    request: &ResourceRequest,
    body: Body,
) -> Result<Value, Status> {
    if request.version != "v1" {
        return Err(Status::not_found_path());
    }
    if request.verb != Verb::Create || request.name.is_some() || request.namespace.is_some() {
        return Err(Status::method_not_allowed(format!(
            "{} only supports create",
            request.resource
        )));
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| Status::too_large(MAX_BODY_BYTES))?;
    let mut object: Value = if bytes.starts_with(b"k8s\0") {
        // client-go's typed clients (kubectl auth can-i) send protobuf.
        crate::machinery::protobuf::decode(&bytes, |api_version, kind| {
            use crate::machinery::protobuf as pb;
            match (api_version, kind) {
                ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => {
                    Some(pb::self_subject_access_review as pb::Converter)
                }
                ("authorization.k8s.io/v1", "SubjectAccessReview") => {
                    Some(pb::subject_access_review)
                }
                ("authorization.k8s.io/v1", "SelfSubjectRulesReview") => {
                    Some(pb::self_subject_rules_review)
                }
                _ => None,
            }
        })?
    } else {
        serde_json::from_slice(&bytes)
            .or_else(|_| serde_yaml_ng::from_slice(&bytes))
            .map_err(|e| Status::bad_request(format!("the request body is not valid JSON: {e}")))?
    };
    if !object.is_object() {
        return Err(Status::bad_request("the request body must be an object"));
    }
    let spec = object.get("spec").cloned().unwrap_or_else(|| json!({}));
    let status = match request.resource.as_str() {
        SELF_SUBJECT_RULES_REVIEWS => {
            let namespace = spec
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or_default();
            rules_review(authz, user, cluster, namespace).await?
        }
        SUBJECT_ACCESS_REVIEWS => {
            let subject = subject_of(&spec)?;
            access_review(authz, &subject, cluster, &spec).await?
        }
        _ => access_review(authz, user, cluster, &spec).await?,
    };
    object["status"] = status;
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    object["metadata"]["creationTimestamp"] = Value::Null;
    Ok(object)
}

/// The user a SubjectAccessReview asks about.
fn subject_of(spec: &Value) -> Result<UserInfo, Status> {
    let name = spec.get("user").and_then(Value::as_str).unwrap_or_default();
    let groups: Vec<String> = spec
        .get("groups")
        .and_then(Value::as_array)
        .map(|g| {
            g.iter()
                .filter_map(|g| g.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if name.is_empty() && groups.is_empty() {
        return Err(Status::invalid(
            &crate::machinery::status::Subject {
                group: GROUP,
                resource: SUBJECT_ACCESS_REVIEWS,
                name: "",
            },
            "SubjectAccessReview",
            vec![crate::machinery::status::StatusCause {
                kind: "FieldValueRequired".into(),
                message: "Required value: at least one of user or group must be specified".into(),
                field: "spec.user".into(),
            }],
        ));
    }
    Ok(UserInfo {
        name: name.to_string(),
        uid: spec
            .get("uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        groups,
        ..UserInfo::default()
    })
}

/// The attributes a review's `spec` asks about.
fn attributes_of(spec: &Value) -> Result<Attributes, Status> {
    let text = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    if let Some(r) = spec.get("resourceAttributes").filter(|r| r.is_object()) {
        let subresource = text(r, "subresource");
        return Ok(Attributes {
            verb: text(r, "verb"),
            resource: Some(ResourceAttributes {
                api_group: text(r, "group"),
                resource: text(r, "resource"),
                subresource: (!subresource.is_empty()).then_some(subresource),
                namespace: text(r, "namespace"),
                name: text(r, "name"),
            }),
            path: String::new(),
        });
    }
    if let Some(n) = spec.get("nonResourceAttributes").filter(|n| n.is_object()) {
        return Ok(Attributes::non_resource(&text(n, "verb"), &text(n, "path")));
    }
    Err(Status::bad_request(
        "exactly one of spec.resourceAttributes and spec.nonResourceAttributes must be set",
    ))
}

async fn access_review(
    authz: &Authorizer,
    user: &UserInfo,
    cluster: &str,
    spec: &Value,
) -> Result<Value, Status> {
    let attrs = attributes_of(spec)?;
    match entry(authz, user, cluster).await? {
        Entry::Admin => {
            return Ok(json!({"allowed": true, "reason": "admin of this workspace"}));
        }
        Entry::Denied => {
            return Ok(json!({
                "allowed": false,
                "reason": format!("User {:?} cannot access this workspace", user.name),
            }));
        }
        Entry::Member => {}
    }
    let allowed = authz
        .cache_for(cluster)
        .await?
        .allows(cluster, user, &attrs);
    Ok(if allowed {
        json!({"allowed": true, "reason": "allowed by RBAC"})
    } else {
        json!({"allowed": false})
    })
}

async fn rules_review(
    authz: &Authorizer,
    user: &UserInfo,
    cluster: &str,
    namespace: &str,
) -> Result<Value, Status> {
    let rules = match entry(authz, user, cluster).await? {
        Entry::Admin => vec![
            Rule::new(&["*"], &["*"], &["*"]),
            Rule::non_resource(&["*"], &["*"]),
        ],
        Entry::Member => authz
            .cache_for(cluster)
            .await?
            .rules(cluster, user, namespace),
        Entry::Denied => Vec::new(),
    };
    let (resource, non_resource): (Vec<Rule>, Vec<Rule>) = rules
        .into_iter()
        .partition(|r| r.non_resource_urls.is_empty());
    let resource_rules: Vec<Value> = resource
        .iter()
        .map(|r| {
            let mut v =
                json!({"verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources});
            if !r.resource_names.is_empty() {
                v["resourceNames"] = json!(r.resource_names);
            }
            v
        })
        .collect();
    let non_resource_rules: Vec<Value> = non_resource
        .iter()
        .map(|r| json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}))
        .collect();
    Ok(json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": false,
    }))
}
