//! create, update and delete.

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;
use trellis_storage::{Preconditions, StorageError};

use super::subresource::{self, Subresource};
use super::{Target, MAX_BODY_BYTES};
use crate::deletion::{self, Deleted};
use crate::http::query::Query;
use crate::http::response;
use crate::namespace_cache::Admission;
use crate::object_meta;
use crate::openapi::{self, FieldValidation};
use crate::patch::PatchType;
use crate::status::{Status, StatusCause, Subject};

/// Attempts of an update that did not name a resourceVersion, when it races another writer.
const UNCONDITIONAL_UPDATE_ATTEMPTS: usize = 5;

/// Reads a JSON or YAML object body, enforcing the size limit and the media type.
pub async fn read_object(headers: &HeaderMap, body: Body) -> Result<Value, Status> {
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let essence = media_type.split(';').next().unwrap_or_default().trim();
    let accepted = [
        "application/json",
        "application/yaml",
        crate::protobuf::MEDIA_TYPE,
    ];
    if !accepted.contains(&essence) {
        return Err(Status::unsupported_media_type(media_type, &accepted));
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| Status::too_large(MAX_BODY_BYTES))?;
    let value: Value = if essence == crate::protobuf::MEDIA_TYPE {
        crate::protobuf::decode(&bytes)?
    } else if essence == "application/yaml" {
        serde_yaml_ng::from_slice(&bytes)
            .map_err(|e| Status::bad_request(format!("the request body is not valid YAML: {e}")))?
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| Status::bad_request(format!("the request body is not valid JSON: {e}")))?
    };
    if !value.is_object() {
        return Err(Status::bad_request("the request body must be an object"));
    }
    Ok(value)
}

fn dry_run(query: &Query) -> Result<bool, Status> {
    match query.get("dryRun") {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(Status::bad_request(format!(
            "invalid dryRun value {other:?}: only \"All\" is supported"
        ))),
    }
}

/// Applies the kind's schema to a request body. Values of the wrong type are a 400, as
/// kube-apiserver's decoder answers; undeclared fields are dropped and, as `fieldValidation`
/// asks, rejected (422) or returned as warnings.
fn validate_fields(
    object: &mut Value,
    target: &Target,
    query: &Query,
) -> Result<Vec<String>, Status> {
    let mode = FieldValidation::from_query(query.get("fieldValidation"))?;
    let Some(root) = openapi::schema_name(target.rt) else {
        return Ok(Vec::new());
    };
    let report = openapi::check(object, root, &openapi::documents().schemas);
    let kind = &target.rt.kind;
    if !report.wrong_types.is_empty() {
        let problems: Vec<String> = report
            .wrong_types
            .iter()
            .map(|(path, why)| format!("{}: {why}", path.trim_start_matches('.')))
            .collect();
        return Err(Status::bad_request(format!(
            "{kind} in version {:?} cannot be handled as a {kind}: {}",
            target.rt.version,
            problems.join(", ")
        )));
    }
    let unknown: Vec<String> = report
        .unknown
        .iter()
        .map(|path| format!("unknown field {:?}", path.trim_start_matches('.')))
        .collect();
    match mode {
        FieldValidation::Strict if !unknown.is_empty() => {
            let name = object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let causes = report
                .unknown
                .iter()
                .zip(&unknown)
                .map(|(path, message)| StatusCause {
                    kind: "FieldValueInvalid".into(),
                    message: format!("strict decoding error: {message}"),
                    field: path.trim_start_matches('.').to_string(),
                })
                .collect();
            Err(Status::invalid(
                &Subject {
                    group: &target.rt.group,
                    resource: &target.rt.plural,
                    name,
                },
                kind,
                causes,
            ))
        }
        FieldValidation::Warn => Ok(unknown),
        _ => Ok(Vec::new()),
    }
}

/// Adds `Warning: 299 - "…"` headers, as kube-apiserver reports dropped fields.
fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        let text = format!("299 - {}", serde_json::Value::String(warning.clone()));
        if let Ok(value) = axum::http::HeaderValue::from_str(&text) {
            response.headers_mut().append("warning", value);
        }
    }
    response
}

/// A write's response: the object as the target shows it, with the warnings.
fn respond(target: &Target, code: StatusCode, object: Value, warnings: &[String]) -> Response {
    with_warnings(response::json(code, &target.output(object)), warnings)
}

fn encode(object: &Value) -> Result<Bytes, Status> {
    serde_json::to_vec(object)
        .map(Bytes::from)
        .map_err(|e| Status::internal(format!("encoding the object: {e}")))
}

pub async fn create(
    target: &Target<'_>,
    query: &Query,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Status> {
    if target.rt.custom.as_ref().is_some_and(|c| c.terminating) {
        return Err(Status::new(
            405,
            "MethodNotAllowed",
            format!(
                "create not allowed while custom resource definition is terminating ({})",
                target.rt.plural
            ),
        ));
    }
    let mut object = read_object(headers, body).await?;
    if target.rt.subresources.status {
        // Status is written through /status only.
        if let Some(map) = object.as_object_mut() {
            map.remove("status");
        }
    }
    let warnings = validate_fields(&mut object, target, query)?;
    let (name, uid) = object_meta::prepare_create(&mut object, target.rt, target.namespace)?;
    let subject_target = Target {
        name: Some(&name),
        ..*target
    };
    check_namespace_accepts_content(&subject_target).await?;
    check_strategy(&subject_target, &object, None)?;
    if dry_run(query)? {
        return Ok(with_warnings(
            response::json(StatusCode::CREATED, &object),
            &warnings,
        ));
    }
    let stored = target
        .state
        .store
        .create(target.key(&name), uid, encode(&object)?)
        .await
        .map_err(|e| subject_target.storage_error(&e))?;
    // The stored bytes plus the revision: what decoding and re-encoding would give, cheaper.
    let object = object_meta::encode_with_revision(&stored.value, stored.revision, target.rt)?;
    Ok(with_warnings(
        response::json_bytes(StatusCode::CREATED, object),
        &warnings,
    ))
}

/// Like kube-apiserver's NamespaceLifecycle admission: new objects need an existing namespace
/// that is not being terminated.
async fn check_namespace_accepts_content(target: &Target<'_>) -> Result<(), Status> {
    let Some(namespace) = target.namespace.filter(|_| target.rt.namespaced) else {
        return Ok(());
    };
    let terminating = || {
        Status::forbidden(
            &target.subject(),
            &format!("unable to create new content in namespace {namespace} because it is being terminated"),
        )
    };
    // Usually answered from the hub's own view of the namespaces, without a storage read.
    match target
        .state
        .namespaces
        .admission(&target.state.store, target.cluster, namespace)
        .await
    {
        Admission::Accepts => return Ok(()),
        Admission::Terminating => return Err(terminating()),
        Admission::Unknown => {}
    }
    let key = trellis_storage::ObjectKey::new(target.cluster, "core/namespaces", "", namespace);
    let stored = match target.state.store.get(&key).await {
        Ok(stored) => stored,
        Err(StorageError::NotFound(_)) => {
            return Err(Status::not_found(&Subject {
                group: "",
                resource: "namespaces",
                name: namespace,
            }))
        }
        Err(e) => return Err(target.storage_error(&e)),
    };
    let object: Value = serde_json::from_slice(&stored.value)
        .map_err(|e| Status::internal(format!("stored namespace is not JSON: {e}")))?;
    if deletion::is_deleting(&object) {
        return Err(terminating());
    }
    Ok(())
}

/// The kind's own validation.
fn check_strategy(target: &Target, object: &Value, old: Option<&Value>) -> Result<(), Status> {
    let causes = crate::registry::strategy::validate(target.rt, object, old);
    if causes.is_empty() {
        return Ok(());
    }
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Err(Status::invalid(
        &Subject {
            group: &target.rt.group,
            resource: &target.rt.plural,
            name,
        },
        &target.rt.kind,
        causes,
    ))
}

pub async fn update(
    target: &Target<'_>,
    query: &Query,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Status> {
    let name = target.name.unwrap_or_default();
    let mut sent = read_object(headers, body).await?;
    match sent.pointer("/metadata/name").and_then(Value::as_str) {
        Some(n) if n != name => {
            return Err(Status::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )))
        }
        _ => {}
    }
    if let (Subresource::Scale, Some(paths)) = (target.subresource, &target.rt.subresources.scale) {
        return rewrite(target, query, |current| {
            Ok((subresource::apply_scale(current, &sent, paths)?, Vec::new()))
        })
        .await;
    }
    let warnings = validate_fields(&mut sent, target, query)?;
    rewrite(target, query, |_current| {
        Ok((sent.clone(), warnings.clone()))
    })
    .await
}

pub async fn patch(
    target: &Target<'_>,
    query: &Query,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Status> {
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let kind = PatchType::from_media_type(media_type)?;
    let patch = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| Status::too_large(MAX_BODY_BYTES))?;
    if target.rt.custom.is_some() && kind == PatchType::Strategic {
        return Err(Status::unsupported_media_type(
            media_type,
            &[
                crate::patch::JSON_PATCH,
                crate::patch::MERGE_PATCH,
                crate::patch::APPLY_PATCH,
            ],
        ));
    }
    if let (Subresource::Scale, Some(paths)) = (target.subresource, &target.rt.subresources.scale) {
        return rewrite(target, query, |current| {
            let scale = subresource::scale_of(current, paths);
            let patched = crate::patch::apply(kind, &scale, &patch, "Scale")?;
            Ok((
                subresource::apply_scale(current, &patched, paths)?,
                Vec::new(),
            ))
        })
        .await;
    }
    rewrite(target, query, |current| {
        let mut patched = crate::patch::apply(kind, current, &patch, &target.rt.kind)?;
        let warnings = validate_fields(&mut patched, target, query)?;
        Ok((patched, warnings))
    })
    .await
}

/// Read, compute the new object from the current one, write with the current revision as a
/// precondition; when another writer got in between and the client named no resourceVersion,
/// read again and recompute, as kube-apiserver's GuaranteedUpdate does.
async fn rewrite(
    target: &Target<'_>,
    query: &Query,
    compute: impl Fn(&Value) -> Result<(Value, Vec<String>), Status>,
) -> Result<Response, Status> {
    let name = target.name.unwrap_or_default();
    let dry = dry_run(query)?;
    let store = &target.state.store;
    for _ in 0..UNCONDITIONAL_UPDATE_ATTEMPTS {
        let existing = store
            .get(&target.key(name))
            .await
            .map_err(|e| target.storage_error(&e))?;
        let current = object_meta::decode(&existing.value, existing.revision, target.rt)?;
        let (mut object, warnings) = compute(&current)?;
        match target.subresource {
            Subresource::Status => object = subresource::only_status(&object, &current),
            Subresource::None if target.rt.subresources.status => {
                subresource::keep_status(&mut object, &current)
            }
            _ => {}
        }
        let requested = object_meta::requested_revision(&object)?;
        if requested.is_some_and(|rev| rev != existing.revision) {
            return Err(target.storage_error(&StorageError::Conflict {
                key: name.to_string(),
                reason: "stale resourceVersion".into(),
            }));
        }
        object_meta::prepare_update(&mut object, &current, target.rt)?;
        check_strategy(target, &object, Some(&current))?;
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("name".into(), Value::String(name.to_string()));
        }
        let added = deletion::new_finalizers_while_deleting(&current, &object);
        if !added.is_empty() {
            return Err(Status::invalid(
                &target.subject(),
                &target.rt.kind,
                vec![StatusCause {
                    kind: "FieldValueForbidden".into(),
                    message: format!("Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"),
                    field: "metadata.finalizers".into(),
                }],
            ));
        }
        if !dry && deletion::update_completes_deletion(&object) {
            // The last finalizer is gone: the object goes.
            let gone = store
                .delete(target.key(name), Preconditions::revision(existing.revision))
                .await;
            match gone {
                Ok(stored) => {
                    let object =
                        object_meta::decode(&encode(&object)?, stored.revision, target.rt)?;
                    return Ok(respond(target, StatusCode::OK, object, &warnings));
                }
                Err(StorageError::Conflict { .. }) if requested.is_none() => continue,
                Err(e) => return Err(target.storage_error(&e)),
            }
        }
        if dry {
            let object = object_meta::decode(&encode(&object)?, existing.revision, target.rt)?;
            return Ok(respond(target, StatusCode::OK, object, &warnings));
        }
        match store
            .update(
                target.key(name),
                encode(&object)?,
                Preconditions::revision(existing.revision),
            )
            .await
        {
            Ok(stored) => {
                let object = object_meta::decode(&stored.value, stored.revision, target.rt)?;
                return Ok(respond(target, StatusCode::OK, object, &warnings));
            }
            Err(StorageError::Conflict { .. }) if requested.is_none() => continue,
            Err(e) => return Err(target.storage_error(&e)),
        }
    }
    Err(target.storage_error(&StorageError::Conflict {
        key: name.to_string(),
        reason: "too many concurrent writers".into(),
    }))
}

pub async fn delete(target: &Target<'_>, query: &Query, body: Body) -> Result<Response, Status> {
    let name = target.name.unwrap_or_default();
    // DeleteOptions may come in the body; an empty body is fine.
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| Status::too_large(MAX_BODY_BYTES))?;
    let options: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| Status::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    let preconditions = Preconditions {
        revision: match options
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
        {
            Some(v) => Some(
                v.parse()
                    .map_err(|_| Status::bad_request(format!("invalid resourceVersion {v:?}")))?,
            ),
            None => None,
        },
        uid: options
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    let propagation = propagation(query, &options)?;
    let store = &target.state.store;
    let existing = store
        .get(&target.key(name))
        .await
        .map_err(|e| target.storage_error(&e))?;
    if dry_run(query)? {
        let object = object_meta::decode(&existing.value, existing.revision, target.rt)?;
        return Ok(response::json(StatusCode::OK, &object));
    }
    let stored = match deletion::delete(
        store,
        target.rt,
        target.key(name),
        &existing,
        preconditions,
        propagation,
    )
    .await
    .map_err(|e| target.storage_error(&e))?
    {
        Deleted::Gone(stored) | Deleted::Pending(stored) => stored,
    };
    let object = object_meta::decode(&stored.value, stored.revision, target.rt)?;
    Ok(response::json(StatusCode::OK, &object))
}

/// How a delete treats dependents: `propagationPolicy` from the query or DeleteOptions, or
/// the legacy `orphanDependents`.
fn propagation(query: &Query, options: &Value) -> Result<deletion::Propagation, Status> {
    let policy = query
        .get("propagationPolicy")
        .or_else(|| options.get("propagationPolicy").and_then(Value::as_str));
    let orphan = query.flag("orphanDependents")
        || options.get("orphanDependents") == Some(&Value::Bool(true));
    match (policy, orphan) {
        (None, true) => Ok(deletion::Propagation::Orphan),
        (policy, _) => deletion::Propagation::parse(policy).map_err(Status::bad_request),
    }
}

/// deletecollection: every object the selectors match, each deleted as a single delete would.
pub async fn delete_collection(target: &Target<'_>, query: &Query) -> Result<Response, Status> {
    let filter = super::filter::Filter::from_query(query, target.rt)?;
    let propagation = propagation(query, &Value::Null)?;
    let dry = dry_run(query)?;
    let store = &target.state.store;
    let listed = store
        .list(trellis_storage::ListRequest::new(super::list::scope(
            target,
        )))
        .await
        .map_err(|e| target.storage_error(&e))?;
    let mut deleted = Vec::new();
    for existing in listed.items {
        let object = object_meta::decode(&existing.value, existing.revision, target.rt)?;
        if !filter.matches(&object) {
            continue;
        }
        if dry {
            deleted.push(object);
            continue;
        }
        let key = existing.key.clone();
        let item = Target {
            name: Some(&key.name),
            ..*target
        };
        match deletion::delete(
            store,
            target.rt,
            key.clone(),
            &existing,
            Preconditions::none(),
            propagation,
        )
        .await
        {
            Ok(Deleted::Gone(stored) | Deleted::Pending(stored)) => deleted.push(
                object_meta::decode(&stored.value, stored.revision, target.rt)?,
            ),
            // Deleted by someone else meanwhile: nothing to do.
            Err(StorageError::NotFound(_)) => {}
            Err(e) => return Err(item.storage_error(&e)),
        }
    }
    Ok(response::json(
        StatusCode::OK,
        &serde_json::json!({
            "apiVersion": target.rt.api_version(),
            "kind": target.rt.list_kind(),
            "metadata": {"resourceVersion": listed.revision.to_string()},
            "items": deleted,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(media_type: &str, body: &str) -> Result<Value, Status> {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, media_type.parse().unwrap());
        read_object(&headers, Body::from(body.to_string())).await
    }

    #[tokio::test]
    async fn bodies_in_json_and_yaml() {
        let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\ndata:\n  a: \"1\"\n";
        let from_yaml = read("application/yaml", yaml).await.unwrap();
        assert_eq!(from_yaml["metadata"]["name"], "y");
        assert_eq!(from_yaml["data"]["a"], "1");
        assert_eq!(
            read("application/yaml", "a: [").await.unwrap_err().code,
            400
        );
        assert_eq!(read("application/json", "{").await.unwrap_err().code, 400);
        assert_eq!(read("application/json", "[1]").await.unwrap_err().code, 400);
        assert_eq!(read("text/plain", "{}").await.unwrap_err().code, 415);
        let huge = format!("{{\"a\": \"{}\"}}", "x".repeat(MAX_BODY_BYTES));
        assert_eq!(read("application/json", &huge).await.unwrap_err().code, 413);
    }
}
