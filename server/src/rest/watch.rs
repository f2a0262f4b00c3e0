//! watch: a chunked stream of `{"type": …, "object": …}` lines.
//!
//! Without a resourceVersion (or with `0`) the stream opens with the current state as ADDED
//! events; `sendInitialEvents=true` does the same and marks the end with a BOOKMARK annotated
//! `k8s.io/initial-events-end`. A revision too old to watch from is a 200 with one ERROR event
//! carrying a 410 Status, as kube-apiserver answers.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use trellis_storage::{Event, EventType, ListRequest, ReadRevision, StorageError};

use super::filter::Filter;
use super::list::{read_revision, scope};
use super::table::{self, Rendering};
use super::Target;
use crate::http::query::Query;
use crate::http::response;
use crate::object_meta;
use crate::status::Status;

/// How often a watch that asked for bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);
/// Longest watch when the client names no timeout (kube-apiserver picks 30–60 minutes).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

fn line(kind: &str, object: &Value) -> Bytes {
    let mut bytes =
        serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// The ERROR event that ends a watch: a too-old revision is a 410 `Expired` Status.
fn error_line(err: &StorageError) -> Bytes {
    let status = Status::from_storage(err, &Default::default());
    line("ERROR", &serde_json::to_value(&status).unwrap_or_default())
}

fn bookmark(target: &Target, revision: u64, initial_events_end: bool) -> Bytes {
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        &json!({"apiVersion": target.rt.api_version(), "kind": target.rt.kind, "metadata": metadata}),
    )
}

/// What a watcher with `filter` sees of a change: objects that start matching are ADDED, ones
/// that stop matching are DELETED, as kube-apiserver's watch cache reports them.
fn visible_change(filter: &Filter, event: &Event, object: &Value) -> Option<&'static str> {
    if filter.is_empty() {
        return Some(match event.kind {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        });
    }
    let before = event
        .prev
        .as_ref()
        .and_then(|p| serde_json::from_slice::<Value>(&p.value).ok())
        .is_some_and(|p| filter.matches(&p));
    let now = filter.matches(object);
    match (event.kind, before, now) {
        (EventType::Deleted, true, _) => Some("DELETED"),
        (EventType::Deleted, false, _) => None,
        (_, false, true) => Some("ADDED"),
        (_, true, true) => Some("MODIFIED"),
        (_, true, false) => Some("DELETED"),
        (_, false, false) => None,
    }
}

pub async fn watch(target: &Target<'_>, query: &Query) -> Response {
    match open(target, query).await {
        Ok(response) => response,
        Err(status) => response::status(status),
    }
}

async fn open(target: &Target<'_>, query: &Query) -> Result<Response, Status> {
    let bookmarks = query.flag("allowWatchBookmarks");
    let send_initial = match query.get("sendInitialEvents") {
        Some("true") => true,
        Some("false") | None => false,
        Some(other) => {
            return Err(Status::bad_request(format!(
                "invalid sendInitialEvents {other:?}"
            )))
        }
    };
    if send_initial && !bookmarks {
        return Err(Status::bad_request(
            "sendInitialEvents requires allowWatchBookmarks=true",
        ));
    }
    let timeout = match query.get("timeoutSeconds") {
        Some(t) => Duration::from_secs(
            t.parse()
                .map_err(|_| Status::bad_request(format!("invalid timeoutSeconds {t:?}")))?,
        ),
        None => DEFAULT_TIMEOUT,
    };
    let store = target.state.store.clone();
    let scope = scope(target);
    let filter = Filter::from_query(query, target.rt)?;
    let revision = read_revision(query)?;

    // Initial state, when asked for (explicitly, or by giving no revision / "0").
    let mut initial = Vec::new();
    let from = match (send_initial, revision, query.get("resourceVersion")) {
        (true, _, _) | (false, ReadRevision::Latest, _) => {
            let listed = store
                .list(ListRequest {
                    scope: scope.clone(),
                    revision: if send_initial {
                        revision
                    } else {
                        ReadRevision::Latest
                    },
                    limit: None,
                    continue_token: None,
                })
                .await
                .map_err(|e| target.storage_error(&e))?;
            for o in &listed.items {
                initial.push(line(
                    "ADDED",
                    &object_meta::decode(&o.value, o.revision, target.rt)?,
                ));
            }
            if send_initial {
                initial.push(bookmark(target, listed.revision, true));
            }
            Some(listed.revision)
        }
        (false, ReadRevision::NotOlderThan(n) | ReadRevision::Exact(n), _) => Some(n),
    };

    let render = {
        let (rt, rendering) = (target.rt.clone(), target.rendering);
        let include = query.get("includeObject").map(str::to_string);
        move |object: Value| -> Value {
            match rendering {
                Rendering::Object => object,
                Rendering::PartialMetadata => table::partial_metadata(&object),
                Rendering::Table => {
                    let meta = json!({"resourceVersion": object.pointer("/metadata/resourceVersion").cloned()});
                    table::table(&rt, &[object], meta, include.as_deref())
                }
            }
        }
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let stream = store.watch(scope, from).await;
    let api_version = target.rt.api_version();
    let rt_for_events = target.rt.clone();
    let kind = target.rt.kind.clone();
    tokio::spawn(async move {
        for chunk in initial {
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
        let mut stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                let _ = tx.send(error_line(&e)).await;
                return;
            }
        };
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
        ticker.tick().await;
        loop {
            let chunk = tokio::select! {
                _ = &mut deadline => return,
                // The client hung up: stop now, not at the next event or the timeout.
                _ = tx.closed() => return,
                _ = ticker.tick(), if bookmarks => {
                    let meta = json!({"resourceVersion": stream.revision().to_string()});
                    line("BOOKMARK", &json!({"apiVersion": api_version, "kind": kind, "metadata": meta}))
                }
                event = stream.next() => match event {
                    None => return,
                    Some(Ok(event)) => {
                        let Ok(object) = object_meta::decode(&event.object.value, event.object.revision, &rt_for_events) else {
                            continue;
                        };
                        let Some(kind) = visible_change(&filter, &event, &object) else {
                            continue;
                        };
                        line(kind, &render(object))
                    }
                    Some(Err(e)) => {
                        let _ = tx.send(error_line(&e)).await;
                        return;
                    }
                },
            };
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
    });

    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    }));
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::query::Query;
    use crate::registry::lookup_builtin;
    use trellis_storage::{ObjectKey, StoredObject};

    fn stored(labels: Value, revision: u64) -> StoredObject {
        StoredObject {
            key: ObjectKey::new("root", "core/configmaps", "default", "x"),
            uid: "u".into(),
            create_revision: 1,
            revision,
            value: bytes::Bytes::from(
                json!({"metadata": {"name": "x", "labels": labels}}).to_string(),
            ),
        }
    }

    fn event(kind: EventType, before: Option<Value>, after: Value) -> (Event, Value) {
        let object = stored(after, 3);
        let value = serde_json::from_slice(&object.value).unwrap();
        (
            Event {
                kind,
                object,
                prev: before.map(|b| stored(b, 2)),
            },
            value,
        )
    }

    #[test]
    fn objects_entering_and_leaving_a_selector() {
        let cm = lookup_builtin("", "v1", "configmaps").unwrap();
        let filter =
            Filter::from_query(&Query::parse(Some("labelSelector=app%3Dweb")), cm).unwrap();
        let see = |kind, before: Option<Value>, after: Value| {
            let (e, v) = event(kind, before, after);
            visible_change(&filter, &e, &v)
        };
        let web = json!({"app": "web"});
        let db = json!({"app": "db"});
        assert_eq!(see(EventType::Added, None, web.clone()), Some("ADDED"));
        assert_eq!(see(EventType::Added, None, db.clone()), None);
        assert_eq!(
            see(EventType::Modified, Some(db.clone()), web.clone()),
            Some("ADDED")
        );
        assert_eq!(
            see(EventType::Modified, Some(web.clone()), web.clone()),
            Some("MODIFIED")
        );
        assert_eq!(
            see(EventType::Modified, Some(web.clone()), db.clone()),
            Some("DELETED")
        );
        assert_eq!(see(EventType::Modified, Some(db.clone()), db.clone()), None);
        assert_eq!(
            see(EventType::Deleted, Some(web.clone()), web),
            Some("DELETED")
        );
        assert_eq!(see(EventType::Deleted, Some(db.clone()), db), None);
    }
}
