//! The way in: what every request passes between its connection and [`dispatch`], in order.
//!
//! 1. Its audit ID ([`audit::assign_id`]), and the audit log's line begun, when there is a log,
//!    so that refused requests are logged too.
//! 2. Authentication ([`authn::admit`]): who it is, or 401.
//! 3. The per-user rate limit ([`limits::over_rate`]): 429 beyond it.
//! 4. A deadline on its body ([`limits::with_body_deadline`]): 408 if it comes too late.
//! 5. Impersonation ([`impersonation::admit`]): whom it acts as, or 400/403.
//!
//! On the way out, the answer carries what the audit log reads (the user, and whom it acted
//! as) in its extensions, the audit ID in `Audit-Id`, and, as axum's router gave it,
//! `Content-Length` when the body's size is known, and no body for a HEAD.
//!
//! The steps are plain functions called in turn, one future per request: as a stack of
//! middleware layers, each step cloned the layers below it and boxed a future of its own.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method};
use axum::response::Response;

use crate::security::audit::{self, AuditLog};
use crate::security::authn;
use crate::security::authn::impersonation::{self, Impersonated};
use crate::serving::dispatch::dispatch;
use crate::serving::limits::{self, RateLimiter};
use crate::serving::state::AppState;

/// Everything the steps read; one per server, shared by its connections.
pub struct Gate {
    pub state: Arc<AppState>,
    pub limiter: Arc<RateLimiter>,
    pub audit_log: Option<AuditLog>,
}

impl Gate {
    /// Takes `request` through every step to dispatch, and its answer back.
    pub async fn serve(&self, mut request: Request<Body>) -> Response {
        let head = request.method() == Method::HEAD;
        let id = audit::assign_id(&mut request);
        let mut response = match &self.audit_log {
            Some(log) => {
                let event = log.begin(&request);
                let response = self.authenticated(request).await;
                log.finish(event, &response);
                response
            }
            None => self.authenticated(request).await,
        };
        audit::stamp_id(&mut response, id);
        set_content_length(&mut response);
        if head {
            *response.body_mut() = Body::empty();
        }
        response
    }

    async fn authenticated(&self, mut request: Request<Body>) -> Response {
        let user =
            match authn::admit(&self.state.authenticator, &self.state.shards, &mut request).await {
                Ok(user) => user,
                Err(refused) => return refused,
            };
        let mut response = match limits::over_rate(&self.limiter, &self.state, &user, &request) {
            Some(refused) => refused,
            None => {
                let (request, expired) = limits::with_body_deadline(request);
                limits::late_body(self.acting(request).await, &expired)
            }
        };
        response.extensions_mut().insert(user);
        response
    }

    async fn acting(&self, mut request: Request<Body>) -> Response {
        match impersonation::admit(&self.state.authorizer, &mut request).await {
            Ok(None) => dispatch(self.state.clone(), request).await,
            Ok(Some(user)) => {
                let mut response = dispatch(self.state.clone(), request).await;
                response.extensions_mut().insert(Impersonated(user));
                response
            }
            Err(refused) => refused,
        }
    }
}

/// `Content-Length` from the body's exact size, unless the answer has one (set before a HEAD's
/// body is dropped, so that it tells what a GET would carry).
fn set_content_length(response: &mut Response) {
    use http_body::Body as _;
    if response.headers().contains_key(header::CONTENT_LENGTH) {
        return;
    }
    if let Some(size) = response.body().size_hint().exact() {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
}
