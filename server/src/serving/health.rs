//! `/livez`, `/readyz` and `/healthz`, as kube-apiserver answers them: `ok`, or with
//! `?verbose` one line per check (`[+]ping ok`, `[-]shard-eu failed: reason withheld`) and a
//! closing `livez check passed`; one check alone at `/readyz/<name>`. A failing probe answers
//! 500 with the list.
//!
//! Checks: `ping` (the server answers), `shard-<name>` for every shard (its database answers a
//! read within [`SHARD_TIMEOUT`]) and, for readiness only, `shutdown` (fails from the moment
//! the server starts draining, before it stops accepting).

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

use crate::serving::query::Query;
use crate::serving::state::AppState;

/// How long a shard's database may take to answer a health read.
pub const SHARD_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    Live,
    Ready,
    Healthz,
}

impl Probe {
    fn of(name: &str) -> Option<Probe> {
        match name {
            "livez" => Some(Probe::Live),
            "readyz" => Some(Probe::Ready),
            "healthz" => Some(Probe::Healthz),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Probe::Live => "livez",
            Probe::Ready => "readyz",
            Probe::Healthz => "healthz",
        }
    }
}

/// One check's outcome: its name, and why it failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub failure: Option<String>,
}

/// `/livez`, `/readyz/shard-root`…: the probe and the one check asked for, if any.
pub fn parse_path(path: &str) -> Option<(Probe, Option<&str>)> {
    let path = path.strip_prefix('/')?.trim_end_matches('/');
    match path.split_once('/') {
        None => Some((Probe::of(path)?, None)),
        Some((probe, check)) if !check.is_empty() && !check.contains('/') => {
            Some((Probe::of(probe)?, Some(check)))
        }
        Some(_) => None,
    }
}

/// The answer to a probe given its checks' outcomes (`only`: the one check asked for).
pub fn render(
    probe: Probe,
    checks: &[Check],
    only: Option<&str>,
    verbose: bool,
) -> (StatusCode, String) {
    if let Some(name) = only {
        return match checks.iter().find(|c| c.name == name) {
            None => (StatusCode::NOT_FOUND, "404 page not found\n".into()),
            Some(Check { failure: None, .. }) => (StatusCode::OK, "ok".into()),
            Some(Check {
                failure: Some(why), ..
            }) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("internal server error: {why}\n"),
            ),
        };
    }
    let failed = checks.iter().any(|c| c.failure.is_some());
    if !failed && !verbose {
        return (StatusCode::OK, "ok".into());
    }
    let mut body = String::new();
    for check in checks {
        match &check.failure {
            None => body.push_str(&format!("[+]{} ok\n", check.name)),
            // kube-apiserver withholds the reason from the list; the single check tells it.
            Some(_) => body.push_str(&format!("[-]{} failed: reason withheld\n", check.name)),
        }
    }
    if failed {
        body.push_str(&format!("{} check failed\n", probe.name()));
        (StatusCode::INTERNAL_SERVER_ERROR, body)
    } else {
        body.push_str(&format!("{} check passed\n", probe.name()));
        (StatusCode::OK, body)
    }
}

/// Runs the checks of `probe` (only `only`, when given).
async fn run_checks(state: &AppState, probe: Probe, only: Option<&str>) -> Vec<Check> {
    let wanted = |name: &str| only.is_none_or(|o| o == name);
    let mut checks = vec![Check {
        name: "ping".into(),
        failure: None,
    }];
    let shards = state.shards.iter().filter_map(|shard| {
        let name = format!("shard-{}", shard.name);
        wanted(&name).then(|| {
            let store = shard.store.clone();
            async move {
                let failure = match tokio::time::timeout(SHARD_TIMEOUT, store.revisions()).await {
                    Ok(Ok(_)) => None,
                    Ok(Err(e)) => Some(format!("the store is unreachable: {e}")),
                    Err(_) => Some(format!(
                        "the store did not answer within {} s",
                        SHARD_TIMEOUT.as_secs()
                    )),
                };
                Check { name, failure }
            }
        })
    });
    checks.extend(futures::future::join_all(shards).await);
    if probe == Probe::Ready {
        checks.push(Check {
            name: "shutdown".into(),
            failure: state
                .lifecycle
                .is_draining()
                .then(|| "the server is shutting down".to_string()),
        });
    }
    checks
}

/// The answer to a health path, or `None` when `path` is not one.
pub async fn respond(state: &AppState, path: &str, query: &Query) -> Option<Response> {
    let (probe, only) = parse_path(path)?;
    let checks = run_checks(state, probe, only).await;
    let (status, body) = render(probe, &checks, only, query.get("verbose").is_some());
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response.headers_mut().insert(
        header::HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, failure: Option<&str>) -> Check {
        Check {
            name: name.into(),
            failure: failure.map(str::to_string),
        }
    }

    #[test]
    fn paths_of_probes_and_single_checks() {
        assert_eq!(parse_path("/livez"), Some((Probe::Live, None)));
        assert_eq!(parse_path("/readyz/"), Some((Probe::Ready, None)));
        assert_eq!(
            parse_path("/readyz/shard-root"),
            Some((Probe::Ready, Some("shard-root")))
        );
        assert_eq!(parse_path("/readyz/a/b"), None);
        assert_eq!(parse_path("/metrics"), None);
    }

    #[test]
    fn answers_as_kube_apiserver() {
        let good = [check("ping", None), check("shard-root", None)];
        assert_eq!(
            render(Probe::Live, &good, None, false),
            (StatusCode::OK, "ok".into())
        );
        assert_eq!(
            render(Probe::Live, &good, None, true),
            (
                StatusCode::OK,
                "[+]ping ok\n[+]shard-root ok\nlivez check passed\n".into()
            )
        );
        let draining = [
            check("ping", None),
            check("shutdown", Some("shutting down")),
        ];
        assert_eq!(
            render(Probe::Ready, &draining, None, false),
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "[+]ping ok\n[-]shutdown failed: reason withheld\nreadyz check failed\n".into()
            )
        );
        assert_eq!(
            render(Probe::Ready, &draining, Some("ping"), false),
            (StatusCode::OK, "ok".into())
        );
        assert_eq!(
            render(Probe::Ready, &draining, Some("shutdown"), false).0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            render(Probe::Ready, &draining, Some("nope"), false).0,
            StatusCode::NOT_FOUND
        );
    }
}
