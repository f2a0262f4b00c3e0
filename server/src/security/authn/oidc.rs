//! OpenID Connect ID tokens from one configured issuer (`--oidc-issuer-url`), for one client
//! (`--oidc-client-id`, the required audience), verified against the issuer's JSON Web Key
//! Set: read from a file (`--oidc-jwks-file`, for offline use) or fetched from the issuer's
//! discovery document (`<issuer>/.well-known/openid-configuration` → `jwks_uri`) and refreshed
//! every few minutes.
//!
//! The user name is a claim (`--oidc-username-claim`, default `sub`), prefixed as
//! kube-apiserver does by default: `<issuer>#` unless the claim is `email`
//! (`--oidc-username-prefix` overrides, `-` for none). Groups come from
//! `--oidc-groups-claim` (default `groups`; a string or a list), prefixed by
//! `--oidc-groups-prefix`. A name that would start with `system:` is refused: the identity
//! provider may not impersonate the hub's own users.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::{UserInfo, AUTHENTICATED};

/// Signature algorithms an ID token may use.
const ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// How often fetched keys are refreshed.
const REFRESH: Duration = Duration::from_secs(300);

#[derive(Clone, Debug)]
pub struct OidcOptions {
    pub issuer_url: String,
    pub client_id: String,
    /// Keys from this file instead of the issuer's `jwks_uri`.
    pub jwks_file: Option<PathBuf>,
    /// PEM CA certificates to trust for fetching keys, instead of the system's.
    pub ca_file: Option<PathBuf>,
    pub username_claim: String,
    /// `None`: kube-apiserver's default (see the module docs); `Some("-")`: no prefix.
    pub username_prefix: Option<String>,
    pub groups_claim: String,
    pub groups_prefix: String,
}

impl OidcOptions {
    pub fn new(issuer_url: &str, client_id: &str) -> OidcOptions {
        OidcOptions {
            issuer_url: issuer_url.to_string(),
            client_id: client_id.to_string(),
            jwks_file: None,
            ca_file: None,
            username_claim: "sub".to_string(),
            username_prefix: None,
            groups_claim: "groups".to_string(),
            groups_prefix: String::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("reading the JWKS file {path}: {why}")]
    JwksFile { path: String, why: String },
    #[error("reading the OIDC CA file {path}: {why}")]
    CaFile { path: String, why: String },
    #[error("fetching the issuer's keys: {0}")]
    Fetch(String),
    #[error("the token is not valid: {0}")]
    Invalid(String),
}

/// Verifies ID tokens of the configured issuer.
pub struct OidcAuthenticator {
    options: OidcOptions,
    keys: RwLock<Arc<JwkSet>>,
    roots: Arc<rustls::RootCertStore>,
}

impl OidcAuthenticator {
    /// With keys from the JWKS file if one is configured; otherwise with none yet (call
    /// [`OidcAuthenticator::spawn_refresh`]).
    pub fn new(options: OidcOptions) -> Result<OidcAuthenticator, OidcError> {
        let keys = match &options.jwks_file {
            Some(path) => {
                let err = |why: String| OidcError::JwksFile {
                    path: path.display().to_string(),
                    why,
                };
                let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
                serde_json::from_str(&text).map_err(|e| err(e.to_string()))?
            }
            None => JwkSet { keys: Vec::new() },
        };
        let roots = match &options.ca_file {
            Some(path) => {
                use rustls::pki_types::pem::PemObject;
                let err = |why: String| OidcError::CaFile {
                    path: path.display().to_string(),
                    why,
                };
                let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
                let mut roots = rustls::RootCertStore::empty();
                for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
                    roots
                        .add(cert.map_err(|e| err(e.to_string()))?)
                        .map_err(|e| err(e.to_string()))?;
                }
                roots
            }
            None => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
                roots
            }
        };
        Ok(OidcAuthenticator {
            options,
            keys: RwLock::new(Arc::new(keys)),
            roots: Arc::new(roots),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.options.issuer_url
    }

    /// Replaces the keys (the refresh task, and tests).
    pub fn set_keys(&self, keys: JwkSet) {
        if let Ok(mut current) = self.keys.write() {
            *current = Arc::new(keys);
        }
    }

    /// Without a JWKS file: fetches the issuer's keys now and every few minutes, until `stop`.
    pub fn spawn_refresh(self: &Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        if self.options.jwks_file.is_some() {
            return;
        }
        let this = Arc::downgrade(self);
        let refresh = async move {
            loop {
                let Some(oidc) = this.upgrade() else { return };
                match fetch::jwks(&oidc.options.issuer_url, oidc.roots.clone()).await {
                    Ok(keys) => oidc.set_keys(keys),
                    Err(e) => {
                        tracing::warn!(issuer = %oidc.options.issuer_url, error = %e, "cannot fetch the OIDC keys")
                    }
                }
                let empty = oidc.keys.read().map(|k| k.keys.is_empty()).unwrap_or(true);
                drop(oidc);
                tokio::time::sleep(if empty {
                    Duration::from_secs(10)
                } else {
                    REFRESH
                })
                .await;
            }
        };
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = refresh => {}
            }
        });
    }

    fn key_for(&self, kid: Option<&str>) -> Option<Jwk> {
        let keys = self.keys.read().ok()?.clone();
        match kid {
            Some(kid) => keys
                .keys
                .iter()
                .find(|k| k.common.key_id.as_deref() == Some(kid))
                .cloned(),
            // No key id: only unambiguous with a single key.
            None if keys.keys.len() == 1 => keys.keys.first().cloned(),
            None => None,
        }
    }

    /// The user an ID token names, if the issuer signed it for our client and it is current.
    pub fn authenticate(&self, token: &str) -> Result<UserInfo, OidcError> {
        let invalid = |why: &str| OidcError::Invalid(why.to_string());
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| OidcError::Invalid(e.to_string()))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(invalid("signature algorithm not accepted"));
        }
        let jwk = self
            .key_for(header.kid.as_deref())
            .ok_or_else(|| invalid("signed with an unknown key"))?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| OidcError::Invalid(e.to_string()))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.options.issuer_url]);
        validation.set_audience(&[&self.options.client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = 5;
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|e| OidcError::Invalid(e.to_string()))?
            .claims;
        self.user_of(&claims)
    }

    fn user_of(&self, claims: &Value) -> Result<UserInfo, OidcError> {
        let invalid = |why: String| OidcError::Invalid(why);
        let claim = &self.options.username_claim;
        let value = claims
            .get(claim)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| invalid(format!("no {claim} claim")))?;
        if claim == "email" && claims.get("email_verified") == Some(&Value::Bool(false)) {
            return Err(invalid("the email address is not verified".to_string()));
        }
        let prefix = match self.options.username_prefix.as_deref() {
            Some("-") => String::new(),
            Some(prefix) => prefix.to_string(),
            None if claim == "email" => String::new(),
            None => format!("{}#", self.options.issuer_url),
        };
        let name = format!("{prefix}{value}");
        let mut groups: Vec<String> = match claims.get(&self.options.groups_claim) {
            Some(Value::String(g)) => vec![g.clone()],
            Some(Value::Array(gs)) => gs
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        }
        .into_iter()
        .map(|g| format!("{}{g}", self.options.groups_prefix))
        .collect();
        if name.starts_with("system:") || groups.iter().any(|g| g.starts_with("system:")) {
            return Err(invalid(
                "user and group names starting with system: are reserved".to_string(),
            ));
        }
        groups.push(AUTHENTICATED.to_string());
        Ok(UserInfo {
            name,
            uid: String::new(),
            groups,
            ..UserInfo::default()
        })
    }
}

/// Fetching the issuer's discovery document and keys over HTTPS.
mod fetch {
    use super::*;

    const LIMIT: usize = 1024 * 1024;

    pub async fn jwks(
        issuer: &str,
        roots: Arc<rustls::RootCertStore>,
    ) -> Result<JwkSet, OidcError> {
        let discovery = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let document: Value = get_json(&discovery, roots.clone()).await?;
        let jwks_uri = document
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| OidcError::Fetch("the discovery document has no jwks_uri".into()))?;
        serde_json::from_value(get_json(jwks_uri, roots).await?)
            .map_err(|e| OidcError::Fetch(e.to_string()))
    }

    async fn get_json(url: &str, roots: Arc<rustls::RootCertStore>) -> Result<Value, OidcError> {
        let err = |e: &dyn std::fmt::Display| OidcError::Fetch(format!("{url}: {e}"));
        let parsed = url::Url::parse(url).map_err(|e| err(&e))?;
        if parsed.scheme() != "https" {
            return Err(err(&"only https is allowed"));
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| err(&"no host"))?
            .to_string();
        let port = parsed.port_or_known_default().unwrap_or(443);
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| err(&e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let server_name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| err(&e))?
            .to_owned();
        let request = async {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| err(&e))?;
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(server_name, tcp)
                .await
                .map_err(|e| err(&e))?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                    .await
                    .map_err(|e| err(&e))?;
            tokio::spawn(connection);
            let path = match parsed.query() {
                Some(q) => format!("{}?{q}", parsed.path()),
                None => parsed.path().to_string(),
            };
            let request = hyper::Request::get(path)
                .header(hyper::header::HOST, &host)
                .header(hyper::header::ACCEPT, "application/json")
                .body(axum::body::Body::empty())
                .map_err(|e| err(&e))?;
            let response = sender.send_request(request).await.map_err(|e| err(&e))?;
            if !response.status().is_success() {
                return Err(err(&response.status()));
            }
            let body = axum::body::to_bytes(axum::body::Body::new(response.into_body()), LIMIT)
                .await
                .map_err(|e| err(&e))?;
            serde_json::from_slice(&body).map_err(|e| err(&e))
        };
        tokio::time::timeout(Duration::from_secs(10), request)
            .await
            .map_err(|_| err(&"timed out"))?
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    /// An ES256 issuer for tests: its JWKS and a way to sign tokens.
    pub struct TestIssuer {
        pub jwks: JwkSet,
        key: EncodingKey,
    }

    impl TestIssuer {
        pub fn new(kid: &str) -> TestIssuer {
            let key = rcgen::KeyPair::generate().unwrap();
            let raw = key.public_key_raw();
            // Uncompressed point: 0x04 || x || y.
            let b64 = |b: &[u8]| {
                use base64::Engine;
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
            };
            let jwks: JwkSet = serde_json::from_value(json!({"keys": [{
                "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
                "x": b64(&raw[1..33]), "y": b64(&raw[33..65]),
            }]}))
            .unwrap();
            TestIssuer {
                jwks,
                key: EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap(),
            }
        }

        pub fn sign(&self, kid: &str, claims: &Value) -> String {
            let mut header = Header::new(Algorithm::ES256);
            header.kid = Some(kid.to_string());
            jsonwebtoken::encode(&header, claims, &self.key).unwrap()
        }
    }

    const ISSUER: &str = "https://idp.example.com";

    fn claims(exp_offset: i64) -> Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        json!({"iss": ISSUER, "aud": "trellis", "sub": "1234", "email": "jane@example.com",
               "groups": ["ml", "admins"], "exp": now + exp_offset, "iat": now})
    }

    fn authenticator(issuer: &TestIssuer) -> OidcAuthenticator {
        let oidc = OidcAuthenticator::new(OidcOptions::new(ISSUER, "trellis")).unwrap();
        oidc.set_keys(issuer.jwks.clone());
        oidc
    }

    #[test]
    fn a_valid_id_token_names_its_subject_and_groups() {
        let issuer = TestIssuer::new("k1");
        let user = authenticator(&issuer)
            .authenticate(&issuer.sign("k1", &claims(600)))
            .unwrap();
        assert_eq!(user.name, "https://idp.example.com#1234");
        assert_eq!(user.groups, ["ml", "admins", AUTHENTICATED]);

        let mut options = OidcOptions::new(ISSUER, "trellis");
        options.username_claim = "email".into();
        options.groups_prefix = "oidc:".into();
        let oidc = OidcAuthenticator::new(options).unwrap();
        oidc.set_keys(issuer.jwks.clone());
        let user = oidc.authenticate(&issuer.sign("k1", &claims(600))).unwrap();
        assert_eq!(user.name, "jane@example.com");
        assert_eq!(user.groups, ["oidc:ml", "oidc:admins", AUTHENTICATED]);
    }

    #[test]
    fn expired_foreign_and_wrong_audience_tokens_are_refused() {
        let issuer = TestIssuer::new("k1");
        let oidc = authenticator(&issuer);
        assert!(oidc
            .authenticate(&issuer.sign("k1", &claims(-600)))
            .is_err());
        let mut other_client = claims(600);
        other_client["aud"] = json!("someone-else");
        assert!(oidc
            .authenticate(&issuer.sign("k1", &other_client))
            .is_err());
        let mut other_issuer = claims(600);
        other_issuer["iss"] = json!("https://evil.example.com");
        assert!(oidc
            .authenticate(&issuer.sign("k1", &other_issuer))
            .is_err());
        // Same key id, different key: a forgery.
        let forger = TestIssuer::new("k1");
        assert!(oidc.authenticate(&forger.sign("k1", &claims(600))).is_err());
        assert!(oidc.authenticate(&issuer.sign("k2", &claims(600))).is_err());
        let mut reserved = claims(600);
        reserved["groups"] = json!(["system:masters"]);
        assert!(oidc.authenticate(&issuer.sign("k1", &reserved)).is_err());
    }

    /// The keys are fetched from the issuer's discovery document over HTTPS.
    #[tokio::test]
    async fn keys_are_fetched_from_the_issuer() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let issuer = TestIssuer::new("k1");
        let dir = tempfile::tempdir().unwrap();
        let pki =
            crate::security::tls::load_or_create(dir.path(), &["localhost".to_string()]).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://localhost:{}",
            listener.local_addr().unwrap().port()
        );
        let acceptor =
            tokio_rustls::TlsAcceptor::from(crate::security::tls::server_config(&pki).unwrap());
        let (discovery, jwks) = (
            json!({"issuer": url, "jwks_uri": format!("{url}/keys")}).to_string(),
            serde_json::to_string(&issuer.jwks).unwrap(),
        );
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = tls.read(&mut buf).await.unwrap();
                    head.extend_from_slice(&buf[..n]);
                }
                let head = String::from_utf8_lossy(&head);
                let body = if head.starts_with("GET /.well-known/openid-configuration ") {
                    &discovery
                } else if head.starts_with("GET /keys ") {
                    &jwks
                } else {
                    "{}"
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                tls.write_all(response.as_bytes()).await.unwrap();
                let _ = tls.shutdown().await;
            }
        });
        let mut options = OidcOptions::new(&url, "trellis");
        options.ca_file = Some(dir.path().join("ca.crt"));
        let oidc = Arc::new(OidcAuthenticator::new(options).unwrap());
        oidc.spawn_refresh(tokio_util::sync::CancellationToken::new());
        let mut claims = claims(600);
        claims["iss"] = json!(url);
        let token = issuer.sign("k1", &claims);
        for _ in 0..100 {
            if oidc.authenticate(&token).is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the keys were not fetched");
    }

    #[test]
    fn keys_come_from_the_jwks_file() {
        let issuer = TestIssuer::new("k1");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, serde_json::to_string(&issuer.jwks).unwrap()).unwrap();
        let mut options = OidcOptions::new(ISSUER, "trellis");
        options.jwks_file = Some(path);
        let oidc = OidcAuthenticator::new(options).unwrap();
        assert!(oidc.authenticate(&issuer.sign("k1", &claims(600))).is_ok());
    }
}
