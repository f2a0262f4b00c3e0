//! The audit log (`--audit-log FILE`): one JSON line per request, with when, who (user and
//! groups, and `impersonatedUser`/`impersonatedGroups` when it acted as someone else), what (Kubernetes verb, workspace as written in the URL, resource, subresource,
//! namespace, name) and the response code. Never a credential or a request body.
//!
//! Every request has an audit ID, as in kube-apiserver: the client's `Audit-ID` header, or a
//! new UUID, given before anything else ([`assign_id`]) and answered in `Audit-Id` on every
//! response ([`stamp_id`]), with `Cache-Control: no-cache, private`; the log line carries it as
//! `auditID`.
//!
//! The log's line is begun before authentication ([`AuditLog::begin`], in
//! `serving::gate`), so refused requests (401, 429) are logged too. Lines go
//! through a bounded channel to one writer task: a request never waits for the disk. If the
//! writer falls behind by more than [`QUEUE`] lines, new lines are dropped and counted, and
//! the count is logged.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::machinery::request_info::{self, Target};
use crate::security::authn::impersonation::Impersonated;
use crate::security::authn::UserInfo;

const QUEUE: usize = 16 * 1024;

/// One line of the audit log.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AuditEvent {
    pub time: String,
    #[serde(rename = "auditID")]
    pub audit_id: String,
    pub user: String,
    pub groups: Vec<String>,
    /// Who the request acted as, when it impersonated someone (`user` made it).
    #[serde(rename = "impersonatedUser", skip_serializing_if = "String::is_empty")]
    pub impersonated_user: String,
    #[serde(rename = "impersonatedGroups", skip_serializing_if = "Vec::is_empty")]
    pub impersonated_groups: Vec<String>,
    pub verb: String,
    pub workspace: String,
    pub resource: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    /// The path of a non-resource request (`/healthz`, `/apis`…); empty otherwise.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
    pub code: u16,
}

/// Where audit events go.
#[derive(Clone)]
pub struct AuditLog {
    sender: mpsc::Sender<AuditEvent>,
    dropped: Arc<AtomicU64>,
}

impl AuditLog {
    /// Appends to `path` (created 0600 if missing) from a background task.
    pub async fn open(path: &Path) -> std::io::Result<AuditLog> {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .await?;
        let (sender, receiver) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(write_lines(file, receiver, dropped.clone()));
        Ok(AuditLog { sender, dropped })
    }

    /// Queues `event`; drops it if the writer is too far behind.
    pub fn send(&self, event: AuditEvent) {
        if self.sender.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn write_lines(
    file: tokio::fs::File,
    mut receiver: mpsc::Receiver<AuditEvent>,
    dropped: Arc<AtomicU64>,
) {
    let mut out = tokio::io::BufWriter::new(file);
    while let Some(event) = receiver.recv().await {
        let mut batch = vec![event];
        while let Ok(more) = receiver.try_recv() {
            batch.push(more);
            if batch.len() >= 1024 {
                break;
            }
        }
        for event in batch {
            let Ok(mut line) = serde_json::to_vec(&event) else {
                continue;
            };
            line.push(b'\n');
            if let Err(e) = out.write_all(&line).await {
                tracing::error!(error = %e, "cannot write the audit log");
            }
        }
        if let Err(e) = out.flush().await {
            tracing::error!(error = %e, "cannot write the audit log");
        }
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            tracing::warn!(lost, "audit events dropped: the audit log cannot keep up");
        }
    }
}

/// The audit event of a request, before its response code is known.
pub fn event_of(method: &str, path: &str, query: Option<&str>) -> AuditEvent {
    let query = crate::serving::query::Query::parse(query);
    let mut event = AuditEvent {
        time: String::new(),
        audit_id: String::new(),
        user: String::new(),
        groups: Vec::new(),
        impersonated_user: String::new(),
        impersonated_groups: Vec::new(),
        verb: method.to_ascii_lowercase(),
        workspace: String::new(),
        resource: String::new(),
        subresource: String::new(),
        namespace: String::new(),
        name: String::new(),
        path: String::new(),
        code: 0,
    };
    match request_info::parse(method, path, &query) {
        Ok(info) => {
            event.workspace = info.workspace;
            match info.target {
                Target::Resource(r) => {
                    event.verb = r.verb.as_str().to_string();
                    event.resource = if r.group.is_empty() {
                        r.resource
                    } else {
                        format!("{}.{}", r.resource, r.group)
                    };
                    event.subresource = r.subresource.unwrap_or_default();
                    event.namespace = r.namespace.unwrap_or_default();
                    event.name = r.name.unwrap_or_default();
                }
                Target::NonResource(path) => event.path = path,
            }
        }
        // Not a path the server understands: keep it (bounded), it may be an attack.
        Err(_) => event.path = path.chars().take(512).collect(),
    }
    event
}

impl AuditLog {
    /// The line `request` will be logged with, once [`AuditLog::finish`] knows the answer.
    pub fn begin(&self, request: &Request<Body>) -> AuditEvent {
        let mut event = event_of(
            request.method().as_str(),
            request.uri().path(),
            request.uri().query(),
        );
        if let Some(AuditId(id)) = request.extensions().get::<AuditId>() {
            event.audit_id = id.to_str().unwrap_or_default().to_string();
        }
        event
    }

    /// Logs `event` with the user authentication found (in the response's extensions) and the
    /// response code.
    pub fn finish(&self, mut event: AuditEvent, response: &Response) {
        let user = response.extensions().get::<UserInfo>();
        event.user = user.map(|u| u.name.clone()).unwrap_or_default();
        event.groups = user.map(|u| u.groups.clone()).unwrap_or_default();
        if let Some(Impersonated(acted_as)) = response.extensions().get::<Impersonated>() {
            event.impersonated_user = acted_as.name.clone();
            event.impersonated_groups = acted_as.groups.clone();
        }
        event.code = response.status().as_u16();
        event.time = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        self.send(event);
    }
}

/// A request's audit ID.
#[derive(Clone, Debug)]
pub struct AuditId(pub HeaderValue);

/// The header a client may name its request's audit ID with, and the response carries it in.
const AUDIT_ID: &str = "audit-id";

/// Gives the request its audit ID (the client's, if it sent a usable one), before anything
/// else; [`stamp_id`] puts it on the response.
pub fn assign_id(request: &mut Request<Body>) -> HeaderValue {
    let id = request
        .headers()
        .get(AUDIT_ID)
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.to_str().is_ok())
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .expect("a UUID is a header value")
        });
    request.extensions_mut().insert(AuditId(id.clone()));
    id
}

/// Answers the request's audit ID in `Audit-Id`, with kube-apiserver's `Cache-Control`.
pub fn stamp_id(response: &mut Response, id: HeaderValue) {
    let headers = response.headers_mut();
    headers.insert(AUDIT_ID, id);
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-cache, private"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_name_the_kubernetes_verb_and_object() {
        let e = event_of(
            "DELETE",
            "/clusters/root:acme/apis/apps/v1/namespaces/ml/deployments/web",
            None,
        );
        assert_eq!(
            (
                e.verb.as_str(),
                e.workspace.as_str(),
                e.resource.as_str(),
                e.namespace.as_str(),
                e.name.as_str()
            ),
            ("delete", "root:acme", "deployments.apps", "ml", "web")
        );
        let e = event_of("GET", "/api/v1/configmaps", Some("watch=true"));
        assert_eq!((e.verb.as_str(), e.workspace.as_str()), ("watch", "root"));
        let e = event_of(
            "POST",
            "/api/v1/namespaces/default/serviceaccounts/sa/token",
            None,
        );
        assert_eq!(
            (e.verb.as_str(), e.resource.as_str(), e.subresource.as_str()),
            ("create", "serviceaccounts", "token")
        );
        let e = event_of("GET", "/clusters/x/readyz", None);
        assert_eq!((e.verb.as_str(), e.path.as_str()), ("get", "/readyz"));
    }

    #[tokio::test]
    async fn lines_reach_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&path).await.unwrap();
        let mut event = event_of("GET", "/api/v1/namespaces/default/secrets/s", None);
        event.user = "alice".into();
        event.code = 200;
        log.send(event);
        let mut text = String::new();
        for _ in 0..100 {
            text = std::fs::read_to_string(&path).unwrap();
            if !text.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["user"], "alice");
        assert_eq!(line["resource"], "secrets");
        assert_eq!(line["code"], 200);
    }
}
