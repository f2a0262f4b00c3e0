//! list: one page of a resource, honouring `limit`, `continue` and the resourceVersion rules.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};
use trellis_storage::{
    ContinueToken, ListPosition, ListRequest, ListScope, ReadRevision, StorageError, Store,
    StoredObject,
};

use super::filter::Filter;
use super::listed::Listed;
use super::table::{self, PartialMetadata, Rendering};
use super::Target;
use crate::machinery::object_meta;
use crate::machinery::schema::FieldError;
use crate::machinery::status::{Status, StatusCause, Subject};
use crate::serving::query::Query;
use crate::serving::response;

/// How a list or watch request's `resourceVersion` and `resourceVersionMatch` read.
pub fn read_revision(query: &Query) -> Result<ReadRevision, Status> {
    let rv = match query.get("resourceVersion").filter(|v| !v.is_empty()) {
        None => return Ok(ReadRevision::Latest),
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| Status::bad_request(format!("invalid resourceVersion {v:?}")))?,
    };
    let has_limit = query.get("limit").is_some_and(|l| l != "0");
    Ok(match (rv, query.get("resourceVersionMatch")) {
        // "0" means any state; the latest is as good as any.
        (0, None | Some("NotOlderThan")) => ReadRevision::Latest,
        (n, Some("NotOlderThan")) => ReadRevision::NotOlderThan(n),
        (n, Some("Exact")) => ReadRevision::Exact(n),
        (n, None) if has_limit => ReadRevision::Exact(n),
        (n, None) => ReadRevision::NotOlderThan(n),
        (_, Some(other)) => {
            return Err(Status::bad_request(format!(
                "invalid resourceVersionMatch {other:?}"
            )))
        }
    })
}

/// kube-apiserver's checks of a list's or watch's options (its `ValidateListOptions`): a 422
/// naming `ListOptions.meta.k8s.io`, or a 400 for a resourceVersion beside a continue token.
pub fn check_options(query: &Query, watch: bool) -> Result<(), Status> {
    let given = |name: &str| query.get(name).filter(|v| !v.is_empty());
    let (matching, revision, continued) = (
        given("resourceVersionMatch"),
        given("resourceVersion"),
        given("continue").is_some(),
    );
    let initial_events = query.get("sendInitialEvents").is_some();
    let field = "resourceVersionMatch";
    let mut errors = Vec::new();
    if watch {
        if initial_events && matching != Some("NotOlderThan") {
            errors.push(FieldError::forbidden(
                field,
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if let Some(m) = matching {
            if !initial_events {
                errors.push(FieldError::forbidden(
                    field,
                    "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                ));
            }
            if m != "NotOlderThan" {
                errors.push(FieldError::not_supported(
                    field,
                    &Value::String(m.into()),
                    &["NotOlderThan".to_string()],
                ));
            }
            if continued {
                errors.push(FieldError::forbidden(
                    field,
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
        }
    } else {
        if let Some(m) = matching {
            if revision.is_none() {
                errors.push(FieldError::forbidden(
                    field,
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            if continued {
                errors.push(FieldError::forbidden(
                    field,
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
            if m != "Exact" && m != "NotOlderThan" {
                errors.push(FieldError::not_supported(
                    field,
                    &Value::String(m.into()),
                    &[
                        "Exact".to_string(),
                        "NotOlderThan".to_string(),
                        String::new(),
                    ],
                ));
            }
            if m == "Exact" && revision == Some("0") {
                errors.push(FieldError::forbidden(
                    field,
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
        }
        if initial_events {
            errors.push(FieldError::forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for list",
            ));
        }
    }
    if !errors.is_empty() {
        let subject = Subject {
            group: "meta.k8s.io",
            resource: "ListOptions",
            name: "",
        };
        return Err(Status::invalid(
            &subject,
            "ListOptions",
            errors.into_iter().map(StatusCause::from).collect(),
        ));
    }
    if continued && revision.is_some_and(|r| r != "0") {
        return Err(Status::bad_request(
            "specifying resource version is not allowed when using continue",
        ));
    }
    Ok(())
}

pub fn scope(target: &Target) -> ListScope {
    let resource = target.rt.storage_resource();
    if target.wildcard() {
        return ListScope::all_clusters(resource);
    }
    match target.namespace {
        Some(ns) => ListScope::namespace(target.cluster, resource, ns),
        None => ListScope::cluster(target.cluster, resource),
    }
}

/// `limit` from the query; `0` or none is no limit.
pub(super) fn limit(query: &Query) -> Result<Option<usize>, Status> {
    match query.get("limit") {
        None => Ok(None),
        Some(l) => Ok(Some(
            l.parse::<usize>()
                .map_err(|_| Status::bad_request(format!("invalid limit {l:?}")))?,
        )
        .filter(|l| *l > 0)),
    }
}

/// A list error as the client sees it: an expired continue token is a 410 that says what to do;
/// an expired resourceVersion (`resourceVersionMatch=Exact`, or with `limit`) a 410 naming it.
pub(super) fn list_error(target: &Target, query: &Query, e: StorageError) -> Status {
    match e {
        StorageError::Expired {
            requested,
            compacted,
        } if query.get("continue").is_none_or(str::is_empty) => Status::gone(expired_revision(
            requested, compacted,
        )),
        StorageError::Expired { .. } => Status::gone(
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
        ),
        other => target.storage_error(&other),
    }
}

/// kube-apiserver's words for a list at a compacted resourceVersion, with the revisions named.
fn expired_revision(requested: u64, compacted: u64) -> String {
    format!(
        "The resourceVersion for the provided list is too old: resourceVersion {requested} has \
         been compacted (the oldest available is {compacted}). List again without a \
         resourceVersion, or with resourceVersionMatch=NotOlderThan."
    )
}

/// Where a paged read stopped.
pub(super) struct PagesRead {
    /// The revision every page was read at.
    pub revision: u64,
    /// Where the next page starts, when objects remain.
    pub continue_token: Option<String>,
}

/// Reads pages of `request` until `limit` objects were kept by `keep` (which says whether it
/// kept each object it is shown) or the list ends, as kube-apiserver fills a page even when
/// selectors drop objects. The continue token then points after the last object kept.
pub(super) async fn read_pages(
    store: &Store,
    mut request: ListRequest,
    limit: Option<usize>,
    mut keep: impl FnMut(&StoredObject) -> Result<bool, Status>,
) -> Result<Result<PagesRead, StorageError>, Status> {
    let mut kept = 0;
    loop {
        let page = match store.list(request.clone()).await {
            Ok(page) => page,
            Err(e) => return Ok(Err(e)),
        };
        let count = page.items.len();
        for (i, stored) in page.items.iter().enumerate() {
            if !keep(stored)? {
                continue;
            }
            kept += 1;
            if limit.is_some_and(|l| kept >= l) {
                let more = i + 1 < count || page.continue_token.is_some();
                let continue_token = more.then(|| {
                    ContinueToken {
                        revision: page.revision,
                        resource: stored.key.resource.clone(),
                        after: ListPosition {
                            cluster: stored.key.cluster.clone(),
                            namespace: stored.key.namespace.clone(),
                            name: stored.key.name.clone(),
                        },
                    }
                    .encode()
                });
                return Ok(Ok(PagesRead {
                    revision: page.revision,
                    continue_token,
                }));
            }
        }
        match page.continue_token {
            None => {
                return Ok(Ok(PagesRead {
                    revision: page.revision,
                    continue_token: None,
                }))
            }
            Some(next) => request.continue_token = Some(next),
        }
    }
}

pub async fn list(target: &Target<'_>, query: &Query) -> Result<Response, Status> {
    check_options(query, false)?;
    if super::wildcard::across_shards(target) {
        return super::wildcard::list(target, query).await;
    }
    let limit = limit(query)?;
    let filter = Filter::from_query(query, target.rt)?;
    let request = ListRequest {
        scope: scope(target),
        revision: read_revision(query)?,
        limit,
        continue_token: query.get("continue").map(str::to_string),
    };
    // Plain lists without selectors are the stored bytes plus revisions, concatenated: no
    // parse, no re-encoding.
    let raw = filter.is_empty() && target.rendering == Rendering::Object && !target.wildcard();
    let mut items = Vec::new();
    let mut raw_items: Vec<Vec<u8>> = Vec::new();
    // The names stored, for the defaults they replace; complete when this is the first page.
    let mut stored_names = std::collections::HashSet::new();
    let has_defaults = super::defaults::exist(target);
    let first_page = query.get("continue").is_none();
    let read = read_pages(&target.shard.store, request, limit, |stored| {
        if has_defaults {
            stored_names.insert(stored.key.name.clone());
        }
        if raw {
            raw_items.push(object_meta::encode_with_revision(
                &stored.value,
                stored.revision,
                target.rt,
            )?);
            return Ok(true);
        }
        keep_matching(target, query, &filter, &mut items, stored)
    })
    .await?
    .map_err(|e| list_error(target, query, e))?;
    let mut metadata = json!({"resourceVersion": read.revision.to_string()});
    match read.continue_token {
        Some(token) => metadata["continue"] = Value::String(token),
        // The last page: the defaults no stored object replaces.
        None if !target.wildcard() => {
            let seen = first_page.then_some(&stored_names);
            for object in super::defaults::unshadowed(target, seen).await? {
                if !filter.matches(&object) {
                    continue;
                }
                if raw {
                    raw_items.push(serde_json::to_vec(&object).map_err(|e| {
                        Status::internal(format!("encoding a default object: {e}"))
                    })?);
                } else {
                    items.push(Listed::whole(object));
                }
            }
        }
        None => {}
    }
    if raw {
        return Ok(response::json_bytes(
            StatusCode::OK,
            raw_list(target, &metadata, &raw_items)?,
        ));
    }
    Ok(rendered_list(target, query, metadata, items))
}

/// Decodes `stored` (marked with its workspace in a wildcard list) into `items` if it
/// matches `filter`; whether it did.
///
/// A Table or metadata list only passes managedFields through: they stay unparsed unless the
/// rows carry whole objects.
pub(super) fn keep_matching(
    target: &Target,
    query: &Query,
    filter: &Filter,
    items: &mut Vec<Listed>,
    stored: &StoredObject,
) -> Result<bool, Status> {
    let passed_through = match target.rendering {
        Rendering::Object => false,
        Rendering::Table => query.get("includeObject") != Some("Object"),
        Rendering::PartialMetadata => true,
    };
    let mut listed = if passed_through {
        Listed::decode(&stored.value, stored.revision, target.rt)?
    } else {
        Listed::whole(object_meta::decode(
            &stored.value,
            stored.revision,
            target.rt,
        )?)
    };
    if target.wildcard() {
        super::mark_cluster(
            &target.state.workspaces,
            &mut listed.object,
            &stored.key.cluster,
        );
    }
    if !filter.matches(&listed.object) {
        return Ok(false);
    }
    items.push(listed);
    Ok(true)
}

/// A list response of decoded objects, rendered as the client asked.
pub(super) fn rendered_list(
    target: &Target,
    query: &Query,
    metadata: Value,
    items: Vec<Listed>,
) -> Response {
    match target.rendering {
        Rendering::Table => response::json(
            StatusCode::OK,
            &table::table(target.rt, items, metadata, query.get("includeObject")),
        ),
        Rendering::PartialMetadata => response::json(
            StatusCode::OK,
            &List {
                api_version: "meta.k8s.io/v1".into(),
                items: items.into_iter().map(PartialMetadata::of).collect(),
                kind: "PartialObjectMetadataList".into(),
                metadata,
            },
        ),
        Rendering::Object => response::json(
            StatusCode::OK,
            &List {
                api_version: target.rt.api_version(),
                items: items.into_iter().map(Listed::into_value).collect(),
                kind: target.rt.list_kind(),
                metadata,
            },
        ),
    }
}

/// A list answer, serialized straight from its items (a map of them would first copy every
/// item), its keys in the order a map puts them.
#[derive(serde::Serialize)]
pub(super) struct List<T> {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub items: Vec<T>,
    pub kind: String,
    pub metadata: Value,
}

/// A list object around already encoded items.
fn raw_list(target: &Target, metadata: &Value, items: &[Vec<u8>]) -> Result<Vec<u8>, Status> {
    let head = json!({
        "apiVersion": target.rt.api_version(),
        "kind": target.rt.list_kind(),
        "metadata": metadata,
    });
    let mut out = serde_json::to_vec(&head)
        .map_err(|e| Status::internal(format!("encoding the list: {e}")))?;
    // `{…}` → `{…,"items":[…]}`.
    out.pop();
    out.extend_from_slice(b",\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

#[cfg(test)]
mod tests {

    fn checked(q: &str, watch: bool) -> Result<(), (u16, String)> {
        check_options(&Query::parse(Some(q)), watch).map_err(|s| (s.code, s.message))
    }

    #[test]
    fn list_options_as_kube_apiserver_checks_them() {
        for fine in [
            "",
            "resourceVersion=5&resourceVersionMatch=Exact",
            "resourceVersion=0&resourceVersionMatch=NotOlderThan",
            "limit=2&continue=abc",
            "continue=abc&resourceVersion=0",
        ] {
            assert_eq!(checked(fine, false), Ok(()), "{fine}");
        }
        let (code, message) =
            checked("resourceVersion=0&resourceVersionMatch=Exact", false).unwrap_err();
        assert_eq!(code, 422);
        assert_eq!(
            message,
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: \
             resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""
        );
        for refused in [
            "resourceVersionMatch=Exact",
            "resourceVersion=5&resourceVersionMatch=Sometimes",
            "sendInitialEvents=true",
        ] {
            assert_eq!(checked(refused, false).unwrap_err().0, 422, "{refused}");
        }
        assert_eq!(
            checked("continue=abc&resourceVersion=5", false),
            Err((
                400,
                "specifying resource version is not allowed when using continue".into()
            ))
        );
    }

    #[test]
    fn watch_options_as_kube_apiserver_checks_them() {
        for fine in [
            "",
            "resourceVersion=7",
            "sendInitialEvents=true&resourceVersionMatch=NotOlderThan",
            "sendInitialEvents=false&resourceVersionMatch=NotOlderThan",
        ] {
            assert_eq!(checked(fine, true), Ok(()), "{fine}");
        }
        for refused in [
            "sendInitialEvents=true",
            "resourceVersion=7&resourceVersionMatch=NotOlderThan",
            "sendInitialEvents=true&resourceVersionMatch=Exact",
        ] {
            assert_eq!(checked(refused, true).unwrap_err().0, 422, "{refused}");
        }
    }

    use super::*;

    fn rr(q: &str) -> Result<ReadRevision, Status> {
        read_revision(&Query::parse(Some(q)))
    }

    #[test]
    fn resource_version_rules() {
        assert_eq!(rr("").unwrap(), ReadRevision::Latest);
        assert_eq!(rr("resourceVersion=0").unwrap(), ReadRevision::Latest);
        assert_eq!(
            rr("resourceVersion=5").unwrap(),
            ReadRevision::NotOlderThan(5)
        );
        assert_eq!(
            rr("resourceVersion=5&limit=10").unwrap(),
            ReadRevision::Exact(5)
        );
        assert_eq!(
            rr("resourceVersion=5&resourceVersionMatch=Exact").unwrap(),
            ReadRevision::Exact(5)
        );
        assert_eq!(rr("resourceVersion=x").unwrap_err().code, 400);
        assert_eq!(
            rr("resourceVersion=5&resourceVersionMatch=Bogus")
                .unwrap_err()
                .code,
            400
        );
    }
}
