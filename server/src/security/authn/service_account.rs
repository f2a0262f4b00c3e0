//! ServiceAccount tokens: JWTs the hub signs (ES256) for one ServiceAccount of one workspace,
//! minted through the TokenRequest subresource (`token_request.rs`).
//!
//! A token says who (`sub: system:serviceaccount:<ns>:<name>`, the account's uid), where (the
//! logical cluster id, claim `trellis.dev/cluster`), for whom (`aud`) and until when (`exp`).
//! The hub accepts a token only if it carries the hub's own audience ([`API_AUDIENCE`]), has not
//! expired, and is used in the workspace it was minted in ([`super::check_bound_cluster`]); the
//! account must still exist with the same uid.
//!
//! Every replica signs with the same key: the first replica to start generates it and stores it
//! as the Secret `kube-system/trellis-service-account-key` of the root workspace; the others
//! read it from there.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::json;
use trellis_storage::{ObjectKey, StorageError, Store};

use super::{UserInfo, AUTHENTICATED};

/// The `iss` of every token the hub mints, and the audience a token needs to be accepted by
/// the hub's API (the default audience of a TokenRequest).
pub const ISSUER: &str = "https://trellis.invalid";
pub const API_AUDIENCE: &str = ISSUER;

/// `UserInfo.extra` key naming the logical cluster a ServiceAccount token is bound to.
pub const CLUSTER_EXTRA: &str = "trellis.dev/cluster";
/// `UserInfo.extra` key with the token's id, as Kubernetes records it for audit.
pub const CREDENTIAL_ID_EXTRA: &str = "authentication.kubernetes.io/credential-id";

/// Where the signing key lives: a Secret of the root workspace.
pub const KEY_SECRET_NAMESPACE: &str = "kube-system";
pub const KEY_SECRET_NAME: &str = "trellis-service-account-key";
const KEY_FIELD: &str = "key.pem";

/// Shortest and longest lifetimes a TokenRequest may ask for.
pub const MIN_EXPIRATION: Duration = Duration::from_secs(600);
pub const MAX_EXPIRATION: Duration = Duration::from_secs(48 * 3600);
pub const DEFAULT_EXPIRATION: Duration = Duration::from_secs(3600);

/// Clock skew tolerated between replicas when checking `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("the signing key Secret cannot be read or written: {0}")]
    Storage(#[from] StorageError),
    #[error("the signing key is unusable: {0}")]
    Key(String),
}

/// The ServiceAccount a token speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccountRef {
    pub cluster: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl ServiceAccountRef {
    pub fn user_name(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }

    /// The storage key of the ServiceAccount object.
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(
            &self.cluster,
            "core/serviceaccounts",
            &self.namespace,
            &self.name,
        )
    }
}

/// A token that verified: whose it is, and its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedToken {
    pub account: ServiceAccountRef,
    pub token_id: String,
}

impl VerifiedToken {
    /// The user a ServiceAccount token authenticates as, bound to its workspace.
    pub fn user(&self) -> UserInfo {
        let ns = &self.account.namespace;
        let mut user = UserInfo {
            name: self.account.user_name(),
            uid: self.account.uid.clone(),
            groups: vec![
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{ns}"),
                AUTHENTICATED.to_string(),
            ],
            ..UserInfo::default()
        };
        user.extra.insert(
            CLUSTER_EXTRA.to_string(),
            vec![self.account.cluster.clone()],
        );
        user.extra.insert(
            CREDENTIAL_ID_EXTRA.to_string(),
            vec![format!("JTI={}", self.token_id)],
        );
        user
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: Vec<String>,
    exp: u64,
    iat: u64,
    nbf: u64,
    jti: String,
    #[serde(rename = "kubernetes.io")]
    kubernetes: KubernetesClaims,
    #[serde(rename = "trellis.dev/cluster")]
    cluster: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct KubernetesClaims {
    namespace: String,
    serviceaccount: NameUid,
}

#[derive(Debug, Serialize, Deserialize)]
struct NameUid {
    name: String,
    uid: String,
}

/// Why a token was refused. Only for logs: clients see a plain 401.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("not a token of this hub: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("the token's subject does not match its ServiceAccount claims")]
    Inconsistent,
}

/// Mints and verifies ServiceAccount tokens with the hub's signing key.
pub struct ServiceAccountTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for ServiceAccountTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceAccountTokens")
    }
}

impl ServiceAccountTokens {
    /// From a PKCS#8 PEM P-256 private key.
    pub fn from_pem(pem: &str) -> Result<ServiceAccountTokens, SigningKeyError> {
        let key = rcgen::KeyPair::from_pem(pem).map_err(|e| SigningKeyError::Key(e.to_string()))?;
        if !key.is_compatible(&rcgen::PKCS_ECDSA_P256_SHA256) {
            return Err(SigningKeyError::Key("not a P-256 key".to_string()));
        }
        let encoding = EncodingKey::from_ec_pem(pem.as_bytes())
            .map_err(|e| SigningKeyError::Key(e.to_string()))?;
        let decoding = DecodingKey::from_ec_der(key.public_key_raw());
        Ok(ServiceAccountTokens { encoding, decoding })
    }

    /// A new random key (PEM) and its tokens.
    pub fn generate() -> Result<(String, ServiceAccountTokens), SigningKeyError> {
        let key = rcgen::KeyPair::generate().map_err(|e| SigningKeyError::Key(e.to_string()))?;
        let pem = key.serialize_pem();
        Ok((pem.clone(), ServiceAccountTokens::from_pem(&pem)?))
    }

    /// The hub's key from the root workspace, created there by whichever replica comes first.
    pub async fn load_or_create(store: &Store) -> Result<ServiceAccountTokens, SigningKeyError> {
        let key = ObjectKey::new(
            crate::tenancy::workspaces::ROOT_CLUSTER,
            "core/secrets",
            KEY_SECRET_NAMESPACE,
            KEY_SECRET_NAME,
        );
        let stored = match store.get(&key).await {
            Ok(stored) => stored,
            Err(StorageError::NotFound(_)) => {
                let (pem, _) = ServiceAccountTokens::generate()?;
                let uid = uuid::Uuid::new_v4().to_string();
                let secret = json!({
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {
                        "name": KEY_SECRET_NAME,
                        "namespace": KEY_SECRET_NAMESPACE,
                        "uid": uid,
                        "creationTimestamp": crate::machinery::object_meta::now_rfc3339(),
                        "annotations": {"trellis.dev/description": "signs ServiceAccount tokens on every replica"},
                    },
                    "type": "Opaque",
                    "data": {KEY_FIELD: base64::engine::general_purpose::STANDARD.encode(&pem)},
                });
                match store
                    .create(key.clone(), uid, Bytes::from(secret.to_string()))
                    .await
                {
                    Ok(stored) => stored,
                    // Another replica was first: use its key.
                    Err(StorageError::AlreadyExists(_)) => store.get(&key).await?,
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        let secret: serde_json::Value = serde_json::from_slice(&stored.value)
            .map_err(|e| SigningKeyError::Key(e.to_string()))?;
        let pem = secret
            .pointer(&format!("/data/{}", KEY_FIELD.replace('/', "~1")))
            .and_then(serde_json::Value::as_str)
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| SigningKeyError::Key(format!("no {KEY_FIELD} in the Secret")))?;
        ServiceAccountTokens::from_pem(&pem)
    }

    /// A token for `account`, valid for `audiences` from `now` for `lifetime`; and its expiry.
    pub fn mint(
        &self,
        account: &ServiceAccountRef,
        audiences: &[String],
        lifetime: Duration,
        now: SystemTime,
    ) -> Result<(String, SystemTime), jsonwebtoken::errors::Error> {
        let issued = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let expires = now + lifetime;
        let claims = Claims {
            iss: ISSUER.to_string(),
            sub: account.user_name(),
            aud: audiences.to_vec(),
            exp: issued + lifetime.as_secs(),
            iat: issued,
            nbf: issued,
            jti: uuid::Uuid::new_v4().to_string(),
            kubernetes: KubernetesClaims {
                namespace: account.namespace.clone(),
                serviceaccount: NameUid {
                    name: account.name.clone(),
                    uid: account.uid.clone(),
                },
            },
            cluster: account.cluster.clone(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.encoding)?;
        Ok((token, expires))
    }

    /// The ServiceAccount a token speaks for, if this hub signed it for its API, and it has
    /// not expired. Whether the account still exists is the caller's check (it needs storage).
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        // Only ES256: a token cannot pick a weaker algorithm in its header.
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[API_AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)?.claims;
        let account = ServiceAccountRef {
            cluster: claims.cluster,
            namespace: claims.kubernetes.namespace,
            name: claims.kubernetes.serviceaccount.name,
            uid: claims.kubernetes.serviceaccount.uid,
        };
        if claims.sub != account.user_name() || account.cluster.is_empty() {
            return Err(TokenError::Inconsistent);
        }
        Ok(VerifiedToken {
            account,
            token_id: claims.jti,
        })
    }
}

/// Whether a bearer token looks like a JWT (three base64url parts), so that other kinds of
/// token are not parsed as one.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

/// Reads the `iss` claim without verifying anything, to route a JWT to its verifier.
pub fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> ServiceAccountRef {
        ServiceAccountRef {
            cluster: "2cynbfy2m0wtjqcs".into(),
            namespace: "default".into(),
            name: "builder".into(),
            uid: "u-1".into(),
        }
    }

    fn hub_audience() -> Vec<String> {
        vec![API_AUDIENCE.to_string()]
    }

    #[test]
    fn a_minted_token_verifies_as_its_service_account() {
        let (_, tokens) = ServiceAccountTokens::generate().unwrap();
        let (token, expires) = tokens
            .mint(
                &account(),
                &hub_audience(),
                DEFAULT_EXPIRATION,
                SystemTime::now(),
            )
            .unwrap();
        assert!(expires > SystemTime::now() + Duration::from_secs(3500));
        assert!(looks_like_jwt(&token));
        assert_eq!(unverified_issuer(&token).as_deref(), Some(ISSUER));
        let verified = tokens.verify(&token).unwrap();
        assert_eq!(verified.account, account());
        let user = verified.user();
        assert_eq!(user.name, "system:serviceaccount:default:builder");
        assert_eq!(
            user.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:default",
                AUTHENTICATED
            ]
        );
        assert_eq!(user.extra[CLUSTER_EXTRA], ["2cynbfy2m0wtjqcs"]);
    }

    #[test]
    fn expired_forged_and_foreign_audience_tokens_are_refused() {
        let (pem, tokens) = ServiceAccountTokens::generate().unwrap();
        let hour_ago = SystemTime::now() - Duration::from_secs(2 * 3600);
        let (expired, _) = tokens
            .mint(&account(), &hub_audience(), MIN_EXPIRATION, hour_ago)
            .unwrap();
        assert!(tokens.verify(&expired).is_err());

        let (_, forger) = ServiceAccountTokens::generate().unwrap();
        let (forged, _) = forger
            .mint(
                &account(),
                &hub_audience(),
                DEFAULT_EXPIRATION,
                SystemTime::now(),
            )
            .unwrap();
        assert!(tokens.verify(&forged).is_err());

        let (vault, _) = tokens
            .mint(
                &account(),
                &["vault".to_string()],
                DEFAULT_EXPIRATION,
                SystemTime::now(),
            )
            .unwrap();
        assert!(tokens.verify(&vault).is_err());

        // The same key loaded again verifies what the first one signed (every replica).
        let again = ServiceAccountTokens::from_pem(&pem).unwrap();
        let (token, _) = tokens
            .mint(
                &account(),
                &hub_audience(),
                DEFAULT_EXPIRATION,
                SystemTime::now(),
            )
            .unwrap();
        assert!(again.verify(&token).is_ok());
    }

    #[test]
    fn a_token_with_its_signature_swapped_or_algorithm_none_is_refused() {
        let (_, tokens) = ServiceAccountTokens::generate().unwrap();
        let (token, _) = tokens
            .mint(
                &account(),
                &hub_audience(),
                DEFAULT_EXPIRATION,
                SystemTime::now(),
            )
            .unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        // Change the claims, keep the signature.
        let mut claims: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
        claims["kubernetes.io"]["namespace"] = json!("kube-system");
        claims["sub"] = json!("system:serviceaccount:kube-system:builder");
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            b64.encode(claims.to_string()),
            parts[2]
        );
        assert!(tokens.verify(&tampered).is_err());
        let none = format!(
            "{}.{}.",
            b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
            parts[1]
        );
        assert!(tokens.verify(&none).is_err());
    }
}
