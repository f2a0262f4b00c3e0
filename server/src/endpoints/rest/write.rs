//! create, update and delete.

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};
use trellis_storage::{Preconditions, StorageError};

use super::subresource::{self, Subresource};
use super::{Target, MAX_BODY_BYTES};
use crate::endpoints::openapi::{self, FieldValidation};
use crate::machinery::apply;
use crate::machinery::deletion::{self, Deleted};
use crate::machinery::object_meta;
use crate::machinery::patch::PatchType;
use crate::machinery::status::{Status, StatusCause, StatusDetails, Subject};
use crate::registry::ResourceType;
use crate::security::authz::defaults::DEFAULT_REVISION;
use crate::serving::query::Query;
use crate::serving::response;

/// Attempts of an update that did not name a resourceVersion, when it races another writer.
const UNCONDITIONAL_UPDATE_ATTEMPTS: usize = 5;

/// A request body: the object, and the fields it gave twice (JSON only: YAML refuses
/// duplicate keys outright).
pub struct Sent {
    pub object: Value,
    pub duplicates: Vec<String>,
}

/// Reads a JSON, YAML or (for kinds that decode it) protobuf object body of `rt`, enforcing
/// the size limit and the media type.
pub async fn read_object(
    headers: &HeaderMap,
    body: Body,
    rt: &ResourceType,
) -> Result<Sent, Status> {
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let essence = media_type.split(';').next().unwrap_or_default().trim();
    let accepted = [
        "application/json",
        "application/yaml",
        crate::machinery::protobuf::MEDIA_TYPE,
    ];
    if !accepted.contains(&essence) {
        return Err(Status::unsupported_media_type(media_type, &accepted));
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| Status::too_large(MAX_BODY_BYTES))?;
    let (value, duplicates) = if essence == crate::machinery::protobuf::MEDIA_TYPE {
        let converter = |api_version: &str, kind: &str| {
            (api_version == rt.api_version() && kind == rt.kind)
                .then(|| rt.protobuf())
                .flatten()
        };
        (
            crate::machinery::protobuf::decode(&bytes, converter)?,
            Vec::new(),
        )
    } else if essence == "application/yaml" {
        let value = serde_yaml_ng::from_slice(&bytes)
            .map_err(|e| Status::bad_request(format!("the request body is not valid YAML: {e}")))?;
        (value, Vec::new())
    } else {
        super::strict_json::parse(&bytes)
            .map_err(|e| Status::bad_request(format!("the request body is not valid JSON: {e}")))?
    };
    if !value.is_object() {
        return Err(Status::bad_request("the request body must be an object"));
    }
    Ok(Sent {
        object: value,
        duplicates,
    })
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
/// kube-apiserver's decoder answers; undeclared fields are dropped and, with fields given
/// twice, rejected (400, as a strict decoding error) or returned as warnings, as
/// `fieldValidation` asks.
fn validate_fields(
    object: &mut Value,
    duplicates: &[String],
    target: &Target,
    query: &Query,
) -> Result<Vec<String>, Status> {
    let mode = FieldValidation::from_query(query.get("fieldValidation"))?;
    let kind = &target.rt.kind;
    let report = match (target.rt.structural(), &target.rt.schema_name) {
        // Custom resources and our own kinds: what the schema does not declare is pruned,
        // then defaults apply.
        (Some(structural), _) => {
            let unknown = structural.prune(object);
            structural.apply_defaults(object);
            openapi::FieldReport {
                unknown,
                ..Default::default()
            }
        }
        (None, Some(root)) => openapi::check(object, root, &target.state.openapi.schemas),
        (None, None) => openapi::FieldReport::default(),
    };
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
    let problems: Vec<String> = report
        .unknown
        .iter()
        .map(|path| format!("unknown field {:?}", path.trim_start_matches('.')))
        .chain(
            duplicates
                .iter()
                .map(|path| format!("duplicate field {path:?}")),
        )
        .collect();
    match mode {
        FieldValidation::Strict if !problems.is_empty() => Err(Status::bad_request(format!(
            "{kind} in version {:?} cannot be handled as a {kind}: strict decoding error: {}",
            target.rt.version,
            problems.join(", ")
        ))),
        FieldValidation::Warn => Ok(problems),
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

/// The bytes to store for `object` of `target`'s type.
fn encode_stored(target: &Target, object: &Value) -> Result<Bytes, Status> {
    if target.rt.stored_as.is_none() {
        return encode(object);
    }
    let mut stored = object.clone();
    crate::registry::conversion::to_stored(target.rt, &mut stored);
    encode(&stored)
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
    let Sent {
        mut object,
        duplicates,
    } = read_object(headers, body, target.rt).await?;
    if target.rt.subresources.status {
        // Status is written through /status only.
        if let Some(map) = object.as_object_mut() {
            map.remove("status");
        }
    }
    let warnings = validate_fields(&mut object, &duplicates, target, query)?;
    let manager = Managers::of(target, query, headers)?;
    manager.track(target, None, &mut object);
    store_new(target, query, object, warnings).await
}

/// Stores a new object (from a create, or an apply of a missing object) whose managed
/// fields are already recorded.
async fn store_new(
    target: &Target<'_>,
    query: &Query,
    mut object: Value,
    warnings: Vec<String>,
) -> Result<Response, Status> {
    let (name, uid) = object_meta::prepare_create(&mut object, target.rt, target.namespace)?;
    let subject_target = Target {
        name: Some(&name),
        ..*target
    };
    crate::machinery::admission::check_namespace_accepts_content(&subject_target).await?;
    validate_and_admit(&subject_target, &mut object, None).await?;
    if dry_run(query)? {
        // A dry run answers what the create would: a name in use is a 409.
        match target.shard.store.get(&target.key(&name)).await {
            Ok(_) => {
                return Err(subject_target.storage_error(&StorageError::AlreadyExists(name.clone())))
            }
            Err(StorageError::NotFound(_)) => {}
            Err(e) => return Err(subject_target.storage_error(&e)),
        }
        return Ok(with_warnings(
            response::json(StatusCode::CREATED, &object),
            &warnings,
        ));
    }
    let stored = target
        .shard
        .store
        .create(target.key(&name), uid, encode_stored(target, &object)?)
        .await
        .map_err(|e| subject_target.storage_error(&e))?;
    // The stored bytes plus the revision: what decoding and re-encoding would give, cheaper.
    let object = object_meta::encode_with_revision(&stored.value, stored.revision, target.rt)?;
    Ok(with_warnings(
        response::json_bytes(StatusCode::CREATED, object),
        &warnings,
    ))
}

/// Who makes a write, and how their fields are recorded in `metadata.managedFields`.
struct Managers {
    manager: String,
    time: String,
}

impl Managers {
    fn of(target: &Target, query: &Query, headers: &HeaderMap) -> Result<Managers, Status> {
        let user_agent = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok());
        let manager = apply::field_manager(query.get("fieldManager"), user_agent)
            .map_err(|why| invalid_options(target, why))?;
        Ok(Managers {
            manager,
            time: object_meta::now_rfc3339(),
        })
    }

    /// Records a non-apply write of `new` over `old`.
    fn track(&self, target: &Target, old: Option<&Value>, new: &mut Value) {
        let api_version = target.rt.api_version();
        let subresource = target.subresource.name();
        apply::track_update(
            old,
            new,
            &apply::UpdateOptions {
                manager: &self.manager,
                api_version: &api_version,
                time: &self.time,
                subresource,
                ignored: reset_fields(target),
            },
            &merge_rules(target),
        );
    }
}

/// The fields an endpoint resets whatever the client sends: nobody gains them there.
fn reset_fields(target: &Target) -> &'static [&'static [&'static str]] {
    match target.subresource {
        Subresource::None if target.rt.subresources.status => &[&["status"]],
        Subresource::Status => &[&["spec"]],
        _ => &[],
    }
}

/// How lists and maps of `target`'s kind merge.
fn merge_rules<'a>(target: &Target<'a>) -> apply::MergeRules<'a> {
    match target.rt.openapi_schema() {
        Some(schema) => apply::MergeRules::Schema(schema),
        None => apply::MergeRules::Builtin(target.rt.strategies()),
    }
}

/// A 422 about the request's options (fieldManager).
fn invalid_options(target: &Target, why: String) -> Status {
    let (field, message) = why
        .split_once(": ")
        .map(|(f, m)| (f.to_string(), m.to_string()))
        .unwrap_or((String::new(), why.clone()));
    Status::invalid(
        &Subject {
            group: &target.rt.group,
            resource: &target.rt.plural,
            name: target.name.unwrap_or_default(),
        },
        "PatchOptions",
        vec![StatusCause {
            kind: "FieldValueRequired".into(),
            message,
            field,
        }],
    )
}

/// The kind's own validation (its rules, then its structural schema's), then its admission.
async fn validate_and_admit(
    target: &Target<'_>,
    object: &mut Value,
    old: Option<&Value>,
) -> Result<(), Status> {
    check_valid(target, object, old)?;
    if let Some(kind) = &target.rt.kind_rules {
        let admission = crate::kinds::Admission {
            server: target.state,
            cluster: target.cluster,
            shard: &target.shard.name,
            namespace: target.namespace,
            subject: target.subject(),
            user: Some(target.ctx.user).filter(|u| !u.name.is_empty()),
            admin: target.ctx.admin,
        };
        kind.admit(&admission, object, old).await?;
    }
    Ok(())
}

fn check_valid(target: &Target, object: &Value, old: Option<&Value>) -> Result<(), Status> {
    let mut causes = target.rt.validate(object, old);
    causes.extend(apply::validate_managed_fields(object));
    if let Some(structural) = target.rt.structural() {
        causes.extend(
            structural
                .validate(object, old)
                .into_iter()
                .map(|e| StatusCause {
                    kind: e.kind.to_string(),
                    message: e.message,
                    field: e.field,
                }),
        );
    }
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
    let Sent {
        object: mut sent,
        duplicates,
    } = read_object(headers, body, target.rt).await?;
    // A body without a name does not match either, as in kube-apiserver (`PUT …/finalize` with
    // `{}` is a 400, not an update of nothing).
    let sent_name = sent
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if sent_name != name {
        return Err(Status::bad_request(format!(
            "the name of the object ({sent_name}) does not match the name on the URL ({name})"
        )));
    }
    let managers = Managers::of(target, query, headers)?;
    if let (Subresource::Scale, Some(paths)) = (target.subresource, &target.rt.subresources.scale) {
        return rewrite(target, query, Some(&managers), |current| {
            Ok((subresource::apply_scale(current, &sent, paths)?, Vec::new()))
        })
        .await;
    }
    let warnings = validate_fields(&mut sent, &duplicates, target, query)?;
    rewrite(target, query, Some(&managers), |current| {
        // A uid in the body is a precondition of the update, as in kube-apiserver.
        let uid = |o: &Value| {
            o.pointer("/metadata/uid")
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        if let (Some(sent_uid), Some(current_uid)) = (uid(&sent), uid(current)) {
            if !sent_uid.is_empty() && sent_uid != current_uid {
                return Err(target.storage_error(&StorageError::Conflict {
                    key: name.to_string(),
                    reason: Preconditions::uid_failure(&sent_uid, &current_uid),
                }));
            }
        }
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
    if media_type.split(';').next().unwrap_or_default().trim()
        == crate::machinery::patch::APPLY_PATCH
    {
        return server_side_apply(target, query, body).await;
    }
    let kind = PatchType::from_media_type(media_type)?;
    let patch = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| Status::too_large(MAX_BODY_BYTES))?;
    let managers = Managers::of(target, query, headers)?;
    if target.rt.custom.is_some() && kind == PatchType::Strategic {
        return Err(Status::unsupported_media_type(
            media_type,
            &[
                crate::machinery::patch::JSON_PATCH,
                crate::machinery::patch::MERGE_PATCH,
                crate::machinery::patch::APPLY_PATCH,
            ],
        ));
    }
    if let (Subresource::Scale, Some(paths)) = (target.subresource, &target.rt.subresources.scale) {
        return rewrite(target, query, Some(&managers), |current| {
            let scale = subresource::scale_of(current, paths);
            let patched = crate::machinery::patch::apply(
                kind,
                &scale,
                &patch,
                &crate::machinery::patch::strategic::Strategies::with(&[]),
            )?;
            Ok((
                subresource::apply_scale(current, &patched, paths)?,
                Vec::new(),
            ))
        })
        .await;
    }
    rewrite(target, query, Some(&managers), |current| {
        let mut patched =
            crate::machinery::patch::apply(kind, current, &patch, &target.rt.strategies())?;
        let warnings = validate_fields(&mut patched, &[], target, query)?;
        Ok((patched, warnings))
    })
    .await
}

/// `PATCH` with `application/apply-patch+yaml`: server-side apply. The configuration's
/// fields become the manager's; a missing object is created.
async fn server_side_apply(
    target: &Target<'_>,
    query: &Query,
    body: Body,
) -> Result<Response, Status> {
    let manager = apply::apply_field_manager(query.get("fieldManager"))
        .map_err(|why| invalid_options(target, why))?;
    let force = match query.get("force") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(Status::bad_request(format!("invalid force {other:?}"))),
    };
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| Status::too_large(MAX_BODY_BYTES))?;
    // YAML, of which JSON is a part.
    let mut applied: Value = serde_yaml_ng::from_slice(&bytes)
        .map_err(|e| Status::bad_request(format!("error decoding YAML: {e}")))?;
    if !applied.is_object() {
        return Err(Status::bad_request(
            "the applied configuration must be an object",
        ));
    }
    if target.subresource == Subresource::None && target.rt.subresources.status {
        if let Some(map) = applied.as_object_mut() {
            map.remove("status");
        }
    }
    let warnings = validate_fields(&mut applied, &[], target, query)?;
    let api_version = target.rt.api_version();
    let time = object_meta::now_rfc3339();
    let options = apply::ApplyOptions {
        manager: &manager,
        api_version: &api_version,
        time: &time,
        force,
        subresource: target.subresource.name(),
        ignored: reset_fields(target),
    };
    let rules = merge_rules(target);
    let name = target.name.unwrap_or_default();
    match target.shard.store.get(&target.key(name)).await {
        // A default (a ClusterRole every workspace has) is applied to as it stands, below.
        Err(StorageError::NotFound(_))
            if target.subresource == Subresource::None
                && super::defaults::named(target, name).is_none() =>
        {
            let mut created =
                apply::apply(None, &applied, &options, &rules).map_err(|e| e.to_status())?;
            if let Some(meta) = created.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("name".into(), Value::String(name.to_string()));
            }
            match store_new(target, query, created, warnings.clone()).await {
                // Another writer created it meanwhile: apply to what it wrote, as
                // kube-apiserver's apply does when its create loses the race.
                Err(status) if status.reason == "AlreadyExists" => {}
                done => return done,
            }
        }
        Err(StorageError::NotFound(_)) if target.subresource == Subresource::None => {}
        Err(e) => return Err(target.storage_error(&e)),
        Ok(_) => {}
    }
    rewrite(target, query, None, |current| {
        let merged =
            apply::apply(Some(current), &applied, &options, &rules).map_err(|e| e.to_status())?;
        Ok((merged, warnings.clone()))
    })
    .await
}

/// Read, compute the new object from the current one, write with the current revision as a
/// precondition; when another writer got in between and the client named no resourceVersion,
/// read again and recompute, as kube-apiserver's GuaranteedUpdate does.
async fn rewrite(
    target: &Target<'_>,
    query: &Query,
    managers: Option<&Managers>,
    compute: impl Fn(&Value) -> Result<(Value, Vec<String>), Status>,
) -> Result<Response, Status> {
    let name = target.name.unwrap_or_default();
    let dry = dry_run(query)?;
    let store = &target.shard.store;
    for _ in 0..UNCONDITIONAL_UPDATE_ATTEMPTS {
        // A default (`defaults`) is written to as it stands, and stored by the write.
        let (revision, current, default) = match store.get(&target.key(name)).await {
            Ok(existing) => (
                existing.revision,
                object_meta::decode(&existing.value, existing.revision, target.rt)?,
                false,
            ),
            Err(e @ StorageError::NotFound(_)) => match super::defaults::named(target, name) {
                Some(default) if target.subresource == Subresource::None => {
                    (DEFAULT_REVISION, default, true)
                }
                _ => return Err(target.storage_error(&e)),
            },
            Err(e) => return Err(target.storage_error(&e)),
        };
        let (mut object, warnings) = compute(&current)?;
        match target.subresource {
            Subresource::Status => object = subresource::only_status(&object, &current),
            Subresource::Finalize => object = subresource::only_finalizers(&object, &current),
            Subresource::None => {
                if target.rt.subresources.status {
                    subresource::keep_status(&mut object, &current)
                }
                if target.rt.subresources.finalize {
                    subresource::keep_finalizers(&mut object, &current)
                }
            }
            _ => {}
        }
        let requested = object_meta::requested_revision(&object)?;
        if requested.is_some_and(|rev| rev != revision) {
            return Err(target.storage_error(&StorageError::Conflict {
                key: name.to_string(),
                reason: "stale resourceVersion".into(),
            }));
        }
        object_meta::check_identity(&object, &current, target.rt)?;
        object_meta::prepare_update(&mut object, &current, target.rt)?;
        validate_and_admit(target, &mut object, Some(&current)).await?;
        // An apply has recorded its fields already (`managers` is None then).
        if let Some(managers) = managers {
            managers.track(target, Some(&current), &mut object);
        }
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("name".into(), Value::String(name.to_string()));
        }
        // A write that changes nothing but the managers' times stores nothing.
        apply::keep_times_if_unchanged(&current, &mut object);
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
                .delete(target.key(name), Preconditions::revision(revision))
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
            let object = object_meta::decode(&encode(&object)?, revision, target.rt)?;
            return Ok(respond(target, StatusCode::OK, object, &warnings));
        }
        let bytes = encode_stored(target, &object)?;
        let written = if default {
            let uid = current
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            match store.create(target.key(name), uid, bytes).await {
                // Someone stored it meanwhile: write to what they stored.
                Err(StorageError::AlreadyExists(_)) if requested.is_none() => continue,
                Err(StorageError::AlreadyExists(key)) => Err(StorageError::Conflict {
                    key,
                    reason: "stale resourceVersion".into(),
                }),
                other => other,
            }
        } else {
            store
                .update(target.key(name), bytes, Preconditions::revision(revision))
                .await
        };
        match written {
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

/// The `DeleteOptions` a delete or deletecollection may carry in its body (kubectl sends
/// `dryRun`, `propagationPolicy` and `preconditions` there); an empty body is none.
struct DeleteOptions {
    preconditions: Preconditions,
    propagation: deletion::Propagation,
    dry_run: bool,
}

impl DeleteOptions {
    async fn read(query: &Query, body: Body) -> Result<DeleteOptions, Status> {
        let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
            .await
            .map_err(|_| Status::too_large(MAX_BODY_BYTES))?;
        let options: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|e| Status::bad_request(format!("invalid DeleteOptions: {e}")))?
        };
        let revision = match options
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
        {
            Some(v) => Some(
                v.parse()
                    .map_err(|_| Status::bad_request(format!("invalid resourceVersion {v:?}")))?,
            ),
            None => None,
        };
        let uid = options
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        Ok(DeleteOptions {
            preconditions: Preconditions { revision, uid },
            propagation: propagation(query, &options)?,
            dry_run: dry_run(query)? || dry_run_in_body(&options)?,
        })
    }
}

/// `dryRun` of a DeleteOptions body: a list whose only allowed value is `All`.
fn dry_run_in_body(options: &Value) -> Result<bool, Status> {
    let Some(values) = options.get("dryRun") else {
        return Ok(false);
    };
    let values = match values {
        Value::Null => return Ok(false),
        Value::Array(values) => values,
        _ => {
            return Err(Status::bad_request(
                "invalid DeleteOptions: dryRun must be a list",
            ))
        }
    };
    let mut dry = false;
    for value in values {
        match value.as_str() {
            Some("All") => dry = true,
            other => {
                return Err(Status::bad_request(format!(
                    "invalid dryRun value {}: only \"All\" is supported",
                    other.map_or_else(|| value.to_string(), |s| format!("{s:?}"))
                )))
            }
        }
    }
    Ok(dry)
}

pub async fn delete(target: &Target<'_>, query: &Query, body: Body) -> Result<Response, Status> {
    let name = target.name.unwrap_or_default();
    let options = DeleteOptions::read(query, body).await?;
    if let Some(kind) = &target.rt.kind_rules {
        if let Err(why) = kind.may_delete(name) {
            return Err(Status::forbidden(&target.subject(), &why));
        }
    }
    let store = &target.shard.store;
    let existing = store
        .get(&target.key(name))
        .await
        .map_err(|e| target.storage_error(&e))?;
    if options.dry_run {
        options
            .preconditions
            .check(&existing)
            .map_err(|e| target.storage_error(&e))?;
        let object = object_meta::decode(&existing.value, existing.revision, target.rt)?;
        return Ok(response::json(StatusCode::OK, &object));
    }
    let deleted = deletion::delete(
        store,
        target.rt,
        target.key(name),
        &existing,
        options.preconditions,
        options.propagation,
    )
    .await
    .map_err(|e| target.storage_error(&e))?;
    let returns_object = target
        .rt
        .kind_rules
        .as_ref()
        .is_some_and(|k| k.returns_deleted_object());
    let stored = match deleted {
        // Gone at once: kube-apiserver answers with a Status naming what went (its uid lets a
        // client tell it from a namesake), unless the kind returns the object.
        Deleted::Gone(stored) if !returns_object => {
            return Ok(response::json(
                StatusCode::OK,
                &json!({
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": StatusDetails {
                        uid: stored.uid,
                        ..target.subject().details()
                    },
                }),
            ));
        }
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
pub async fn delete_collection(
    target: &Target<'_>,
    query: &Query,
    body: Body,
) -> Result<Response, Status> {
    let filter = super::filter::Filter::from_query(query, target.rt)?;
    let options = DeleteOptions::read(query, body).await?;
    let store = &target.shard.store;
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
        if options.dry_run {
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
            options.preconditions.clone(),
            options.propagation,
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
    let list = super::list::List {
        api_version: target.rt.api_version(),
        items: deleted,
        kind: target.rt.list_kind(),
        metadata: serde_json::json!({"resourceVersion": listed.revision.to_string()}),
    };
    Ok(response::json(StatusCode::OK, &list))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(media_type: &str, body: &str) -> Result<Value, Status> {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, media_type.parse().unwrap());
        let cm = crate::registry::scheme::test_scheme()
            .lookup("", "v1", "configmaps")
            .unwrap();
        read_object(&headers, Body::from(body.to_string()), cm)
            .await
            .map(|sent| sent.object)
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
