//! Authentication: who is making a request.
//!
//! [`admit`] is the first step of every request's way in (`serving::gate`). It
//! accepts, in this order:
//! - a client certificate chaining to the hub CA ([`x509`]);
//! - a bearer token from the static token file ([`token_file`]);
//! - a ServiceAccount token signed by the hub ([`service_account`]), valid only in the
//!   workspace it was minted in ([`check_bound_cluster`], called once the workspace is known);
//! - an OpenID Connect ID token of the configured issuer ([`oidc`]).
//!
//! A request with none of them, or with one that does not verify, gets a 401 `Unauthorized`
//! Status, except that the health and version endpoints ([`is_public`]) answer a request that
//! carries no credentials at all. Credentials that are presented and fail get the 401 on every
//! path, as in kube-apiserver: a client with a broken token learns so at once.
//! Every request that reaches dispatch carries a [`UserInfo`] in its
//! extensions (`system:anonymous` on the public endpoints when no credential was given).
//!
//! A request may then act as another user ([`impersonation`]), authorized in its workspace.
//!
//! Authentication serves two endpoints itself: TokenRequest ([`token_request`], how
//! ServiceAccount tokens are minted) and SelfSubjectReview ([`self_subject_review`], who am I).

pub mod impersonation;
pub mod oidc;
pub mod self_subject_review;
pub mod service_account;
pub mod token_file;
pub mod token_request;
pub mod user;
pub mod x509;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, Extensions};
use axum::response::Response;

use crate::machinery::status::Status;
use crate::serving::response;
use crate::tenancy::shards::ShardMap;

pub use user::{UserInfo, ANONYMOUS, AUTHENTICATED, UNAUTHENTICATED};

/// The 401 every refused credential gets. It says nothing about why: the reason is logged.
pub fn unauthorized() -> Status {
    Status::new(401, "Unauthorized", "Unauthorized")
}

/// The ways a request may authenticate, as configured at start.
pub struct Authenticator {
    pub certificates: Option<x509::CertificateAuthenticator>,
    pub token_file: Option<token_file::TokenFile>,
    pub service_accounts: Arc<service_account::ServiceAccountTokens>,
    pub oidc: Option<Arc<oidc::OidcAuthenticator>>,
}

/// What the credentials of a request come to.
#[derive(Debug)]
pub enum Outcome {
    User(UserInfo),
    /// No certificate and no bearer token.
    NoCredentials,
    /// Credentials that do not verify; the reason is for logs only.
    Refused(String),
    /// The credentials could not be checked now (storage down): 503, not 401.
    Unavailable(String),
}

impl Authenticator {
    /// Authenticates a request from its certificate chain and `Authorization` header.
    pub async fn authenticate(
        &self,
        shards: &ShardMap,
        extensions: &Extensions,
        authorization: Option<&[u8]>,
    ) -> Outcome {
        let mut refused = None;
        if let Some(peer) = extensions.get::<x509::PeerCertificates>() {
            match &self.certificates {
                Some(certificates) => match certificates.authenticate_peer(peer) {
                    Ok(user) => return Outcome::User(user),
                    Err(e) => refused = Some(format!("client certificate: {e}")),
                },
                None => refused = Some("client certificates are not accepted".to_string()),
            }
        }
        let Some(authorization) = authorization else {
            return match refused {
                Some(why) => Outcome::Refused(why),
                None => Outcome::NoCredentials,
            };
        };
        let Some(token) = bearer_token(authorization) else {
            return Outcome::Refused("the Authorization header is not a bearer token".to_string());
        };
        self.authenticate_token(shards, token).await
    }

    /// Who a bearer token is; ServiceAccount tokens are checked against the account in `shards`.
    pub async fn authenticate_token(&self, shards: &ShardMap, token: &str) -> Outcome {
        if let Some(user) = self.token_file.as_ref().and_then(|f| f.authenticate(token)) {
            return Outcome::User(user);
        }
        if !service_account::looks_like_jwt(token) {
            return Outcome::Refused("unknown bearer token".to_string());
        }
        let issuer = service_account::unverified_issuer(token);
        let oidc = self
            .oidc
            .as_ref()
            .filter(|o| issuer.as_deref() == Some(o.issuer()));
        if let Some(oidc) = oidc {
            return match oidc.authenticate(token) {
                Ok(user) => Outcome::User(user),
                Err(e) => Outcome::Refused(format!("OIDC token: {e}")),
            };
        }
        let verified = match self.service_accounts.verify(token) {
            Ok(verified) => verified,
            Err(e) => return Outcome::Refused(format!("ServiceAccount token: {e}")),
        };
        // The account must still exist, and be the one the token was minted for (not a new
        // account of the same name).
        let account = &verified.account;
        let store = match shards.shard_for(&account.cluster).await {
            Ok(shard) => shard.store.clone(),
            Err(crate::tenancy::workspaces::Unroutable::Unavailable(e)) => {
                return Outcome::Unavailable(e.to_string())
            }
            Err(_) => return Outcome::Refused("the token's workspace is gone".to_string()),
        };
        match store.get(&account.key()).await {
            Ok(stored) if stored.uid == account.uid => Outcome::User(verified.user()),
            Ok(_) | Err(trellis_storage::StorageError::NotFound(_)) => Outcome::Refused(format!(
                "ServiceAccount {}/{} no longer exists",
                account.namespace, account.name
            )),
            Err(e) => Outcome::Unavailable(e.to_string()),
        }
    }
}

/// `Bearer <token>` (the scheme in any case).
fn bearer_token(header: &[u8]) -> Option<&str> {
    let header = std::str::from_utf8(header).ok()?;
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Health and version endpoints, in any workspace: served without credentials.
pub fn is_public(path: &str) -> bool {
    let path = match path.strip_prefix("/clusters/") {
        Some(rest) => match rest.find('/') {
            Some(slash) => &rest[slash..],
            None => return false,
        },
        None => path,
    };
    is_public_path(path)
}

/// The health checks (each alone too: `/readyz/shard-root`) and the version, as a path in a
/// workspace: public in every workspace.
pub fn is_public_path(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    let probe = match path.get(1..).and_then(|p| p.split_once('/')) {
        Some((probe, check)) if !check.is_empty() && !check.contains('/') => probe,
        Some(_) => return false,
        None => path.trim_start_matches('/'),
    };
    match path.matches('/').count() {
        1 => matches!(probe, "healthz" | "livez" | "readyz" | "version"),
        _ => matches!(probe, "healthz" | "livez" | "readyz"),
    }
}

/// Authentication, the gate's first step (`serving::gate`): puts the [`UserInfo`]
/// into the request's extensions and answers who it is (the gate copies it into the response's
/// extensions, for the audit log), or answers the 401 (503 when it cannot tell now).
/// ServiceAccount tokens are checked against their accounts in `shards`.
pub async fn admit(
    authenticator: &Authenticator,
    shards: &ShardMap,
    request: &mut Request<Body>,
) -> Result<UserInfo, Response> {
    let outcome = {
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        authenticator
            .authenticate(shards, request.extensions(), authorization)
            .await
    };
    let user = match outcome {
        Outcome::User(user) => user,
        // Credentials that fail are refused everywhere, public paths included, as
        // kube-apiserver does: only a request without any may read them anonymously.
        Outcome::NoCredentials if is_public(request.uri().path()) => UserInfo::anonymous(),
        Outcome::NoCredentials => return Err(response::status(unauthorized())),
        Outcome::Refused(why) => {
            tracing::debug!(path = %request.uri().path(), %why, "authentication refused");
            return Err(response::status(unauthorized()));
        }
        Outcome::Unavailable(why) => {
            return Err(response::status(Status::unavailable(
                format!("credentials cannot be verified now: {why}"),
                1,
            )))
        }
    };
    // Nothing after this step needs the credential; keep it out of anything that might log it.
    request.headers_mut().remove(header::AUTHORIZATION);
    request.extensions_mut().insert(user.clone());
    request
        .extensions_mut()
        .insert(authenticator.service_accounts.clone());
    Ok(user)
}

/// A ServiceAccount token is valid only in the workspace (logical cluster) it was minted in:
/// 401 for `user` in any other, and across all workspaces (`cluster` `None`).
pub fn check_bound_cluster(user: Option<&UserInfo>, cluster: Option<&str>) -> Result<(), Status> {
    match user.and_then(|u| u.extra.get(service_account::CLUSTER_EXTRA)) {
        Some(bound) if bound.len() != 1 || Some(bound[0].as_str()) != cluster => {
            Err(unauthorized())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_and_version_are_public_in_every_workspace() {
        for path in [
            "/healthz",
            "/livez",
            "/readyz/",
            "/version",
            "/clusters/root:acme/readyz",
            "/clusters/abc/version",
            "/readyz/shard-root",
            "/clusters/root/livez/ping",
        ] {
            assert!(is_public(path), "{path}");
        }
        for path in [
            "/",
            "/api",
            "/clusters/readyz",
            "/healthzz",
            "/version/x",
            "/readyz/a/b",
            "/metrics",
            "/clusters/x/api/v1/namespaces",
            "/api/v1/namespaces/default/configmaps/readyz",
        ] {
            assert!(!is_public(path), "{path}");
        }
    }

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer_token(b"Bearer abc"), Some("abc"));
        assert_eq!(bearer_token(b"bearer  abc "), Some("abc"));
        assert_eq!(bearer_token(b"Basic abc"), None);
        assert_eq!(bearer_token(b"Bearer "), None);
        assert_eq!(bearer_token(b"Bearer \xff"), None);
    }

    #[test]
    fn a_bound_user_is_refused_outside_its_cluster() {
        let mut user = UserInfo::default();
        assert!(check_bound_cluster(Some(&user), Some("a")).is_ok());
        assert!(check_bound_cluster(None, Some("a")).is_ok());
        user.extra.insert(
            service_account::CLUSTER_EXTRA.to_string(),
            vec!["a".to_string()],
        );
        assert!(check_bound_cluster(Some(&user), Some("a")).is_ok());
        assert_eq!(
            check_bound_cluster(Some(&user), Some("b"))
                .unwrap_err()
                .code,
            401
        );
        assert_eq!(
            check_bound_cluster(Some(&user), None).unwrap_err().code,
            401
        );
    }
}
