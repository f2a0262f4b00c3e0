//! Limits on requests: how fast a user may send them, and how long a body may take to arrive.
//!
//! Per-user rate limit: a token bucket per authenticated user
//! (`--max-requests-per-second-per-user`, `--max-request-burst-per-user`; a ServiceAccount's
//! bucket is per workspace). A request beyond it gets 429 `TooManyRequests` with
//! `Retry-After`. A watch counts as one request when it starts.
//!
//! Members of `system:masters` are exempt, as kube-apiserver's priority and fairness exempts
//! them: the break-glass administrator is never locked out. The buckets of users idle for a
//! minute are forgotten, so memory follows the active users.
//!
//! Body deadline: a request body must arrive within [`BODY_READ_TIMEOUT`] of the request head,
//! or the request gets 408 and the connection slot is freed (a slow-loris client trickling a
//! body byte by byte). The size limit (3 MiB, 413) is applied where bodies are read.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;

use crate::machinery::status::{Status, StatusDetails};
use crate::security::authn::UserInfo;
use crate::serving::response;

/// Requests per second a user may make on average, and in a burst, by default.
pub const DEFAULT_RATE: f64 = 200.0;
pub const DEFAULT_BURST: f64 = 400.0;

const IDLE: Duration = Duration::from_secs(60);

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets by user name.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
    last_sweep: Mutex<Instant>,
}

impl RateLimiter {
    /// `rate` requests per second, bursts of up to `burst`. A rate of 0 disables the limit.
    pub fn new(rate: f64, burst: f64) -> Arc<RateLimiter> {
        Arc::new(RateLimiter {
            rate,
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
            last_sweep: Mutex::new(Instant::now()),
        })
    }

    /// Takes one token of `user`'s bucket at `now`: `Ok`, or how long until one is there.
    pub fn check(&self, user: &str, now: Instant) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        self.sweep(now);
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        let bucket = buckets.entry(user.to_string()).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }

    /// Forgets users idle for a while (their bucket would be full again anyway).
    fn sweep(&self, now: Instant) {
        {
            let Ok(mut last) = self.last_sweep.lock() else {
                return;
            };
            if now.saturating_duration_since(*last) < IDLE {
                return;
            }
            *last = now;
        }
        if let Ok(mut buckets) = self.buckets.lock() {
            buckets.retain(|_, b| now.saturating_duration_since(b.last) < IDLE);
        }
    }
}

/// The rate limit, the gate's second step (`serving::gate`; `user` is who
/// authentication found): the 429 when `user` is over their rate, counted in
/// `apiserver_request_total` as kube-apiserver counts what it drops.
pub fn over_rate(
    limiter: &RateLimiter,
    state: &crate::serving::state::AppState,
    user: &UserInfo,
    request: &Request<Body>,
) -> Option<Response> {
    if user.is_master() {
        return None;
    }
    let started = Instant::now();
    let wait = limiter.check(&bucket_key(user), started).err()?;
    let refused = response::status(too_many_requests(wait));
    Some(counted(state, request, started, refused))
}

/// Records a request answered before dispatch in the request metrics, labelled as dispatch
/// labels it.
fn counted(
    state: &crate::serving::state::AppState,
    request: &Request<Body>,
    started: Instant,
    response: Response,
) -> Response {
    if !state.metrics.enabled() {
        return response;
    }
    let query = crate::serving::query::Query::parse(request.uri().query());
    let Ok(info) = crate::machinery::request_info::parse(
        request.method().as_str(),
        request.uri().path(),
        &query,
    ) else {
        return response;
    };
    crate::serving::instrument::Measured::of(
        state,
        &info,
        request.method(),
        request.headers(),
        started,
    )
    .finish(&state.metrics, response)
}

/// Whose bucket a request draws from: the user name, and for a ServiceAccount also its
/// workspace (every workspace has its own `system:serviceaccount:default:default`).
fn bucket_key(user: &UserInfo) -> String {
    match user
        .extra
        .get(crate::security::authn::service_account::CLUSTER_EXTRA)
        .and_then(|c| c.first())
    {
        Some(cluster) => format!("{cluster}/{}", user.name),
        None => user.name.clone(),
    }
}

/// How long a request body may take to arrive.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A request body that fails once its deadline has passed.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    expired: Arc<AtomicBool>,
}

impl http_body::Body for DeadlineBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.expired.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(axum::Error::new(
                "the request body did not arrive in time",
            ))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Puts a deadline on `request`'s body (the gate's third step): the flag it returns is set
/// if the body did not arrive in time, and [`late_body`] then turns the answer into a 408.
pub fn with_body_deadline(request: Request<Body>) -> (Request<Body>, Arc<AtomicBool>) {
    let expired = Arc::new(AtomicBool::new(false));
    let request = request.map(|inner| {
        Body::new(DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(BODY_READ_TIMEOUT)),
            expired: expired.clone(),
        })
    });
    (request, expired)
}

/// `response`, or the 408 if the request's body missed its deadline.
pub fn late_body(response: Response, expired: &AtomicBool) -> Response {
    if !expired.load(Ordering::Relaxed) {
        return response;
    }
    response::status(Status::new(
        408,
        "Timeout",
        format!(
            "the request body did not arrive within {} s",
            BODY_READ_TIMEOUT.as_secs()
        ),
    ))
}

fn too_many_requests(wait: Duration) -> Status {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u32;
    let mut status = Status::new(
        429,
        "TooManyRequests",
        "Too many requests, please try again later.",
    );
    status.details = Some(Box::new(StatusDetails {
        retry_after_seconds: Some(seconds),
        ..StatusDetails::default()
    }));
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[test]
    fn a_burst_then_the_steady_rate() {
        let limiter = RateLimiter::new(10.0, 3.0);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check("alice", t0).is_ok());
        }
        let wait = limiter.check("alice", t0).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(100));
        // Another user has a bucket of their own.
        assert!(limiter.check("bob", t0).is_ok());
        // A tenth of a second later, one more.
        let t1 = t0 + Duration::from_millis(100);
        assert!(limiter.check("alice", t1).is_ok());
        assert!(limiter.check("alice", t1).is_err());
        // Idle users are forgotten, and come back with a full bucket.
        let later = t0 + IDLE * 2;
        assert!(limiter.check("carol", later).is_ok());
        assert_eq!(limiter.buckets.lock().unwrap().len(), 1);
    }

    #[test]
    fn service_accounts_of_different_workspaces_have_their_own_buckets() {
        let sa = |cluster: &str| {
            let mut user = UserInfo {
                name: "system:serviceaccount:default:default".into(),
                ..UserInfo::default()
            };
            user.extra.insert(
                crate::security::authn::service_account::CLUSTER_EXTRA.into(),
                vec![cluster.into()],
            );
            user
        };
        assert_ne!(bucket_key(&sa("a")), bucket_key(&sa("b")));
        let alice = UserInfo {
            name: "alice".into(),
            ..UserInfo::default()
        };
        assert_eq!(bucket_key(&alice), "alice");
    }

    #[tokio::test]
    async fn a_body_that_never_ends_times_out() {
        let expired = Arc::new(AtomicBool::new(false));
        let trickle = Body::from_stream(
            futures::stream::once(async {
                Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"{"))
            })
            .chain(futures::stream::pending()),
        );
        let body = Body::new(DeadlineBody {
            inner: trickle,
            deadline: Box::pin(tokio::time::sleep(Duration::from_millis(50))),
            expired: expired.clone(),
        });
        assert!(axum::body::to_bytes(body, 1024).await.is_err());
        assert!(expired.load(Ordering::Relaxed));
        // A body that arrives is untouched.
        let body = Body::new(DeadlineBody {
            inner: Body::from("{}"),
            deadline: Box::pin(tokio::time::sleep(BODY_READ_TIMEOUT)),
            expired: Arc::new(AtomicBool::new(false)),
        });
        assert_eq!(&axum::body::to_bytes(body, 1024).await.unwrap()[..], b"{}");
    }

    #[test]
    fn the_answer_is_429_with_retry_after() {
        let response = response::status(too_many_requests(Duration::from_millis(300)));
        assert_eq!(response.status().as_u16(), 429);
        assert_eq!(response.headers()["retry-after"], "1");
        let limiter = RateLimiter::new(0.0, 0.0);
        for _ in 0..1000 {
            assert!(limiter.check("x", Instant::now()).is_ok());
        }
    }
}
