//! Client certificates: a certificate chaining to the hub CA names its user in the subject's
//! common name and the user's groups in its organizations, as Kubernetes reads them.
//!
//! The TLS layer only proves the client holds the certificate's key ([`crate::security::tls`] accepts
//! any chain); whether the chain leads to the hub CA, and is within its validity period, is
//! decided here, so that a foreign or expired certificate gets a 401 like any other bad
//! credential instead of a failed handshake.
//!
//! A connection's chain cannot change, so the verdict on it is kept with the connection
//! ([`PeerCertificates`]): checking the chain's signatures (an ECDSA verification per
//! certificate) was a fifth of the hub's CPU time in a run of creates, once per request on
//! the same keep-alive connection. The kept verdict lasts until the first certificate of the
//! chain expires, and at most [`REVERIFY_AFTER`]; a refusal is not kept.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;

use super::{UserInfo, AUTHENTICATED};

/// How long a connection's accepted chain is trusted before it is verified again, however
/// long its certificates are valid.
pub const REVERIFY_AFTER: Duration = Duration::from_secs(60);

/// The certificate chain a client presented in its TLS handshake, leaf first, and what it was
/// last found to be. The listener makes one per connection and puts it into every request's
/// extensions.
#[derive(Clone, Debug)]
pub struct PeerCertificates {
    chain: Arc<Vec<CertificateDer<'static>>>,
    accepted: Arc<Mutex<Option<Accepted>>>,
}

/// The user an accepted chain names, and until when (seconds since the Unix epoch) that holds.
#[derive(Debug)]
struct Accepted {
    user: UserInfo,
    until: u64,
}

impl PeerCertificates {
    pub fn new(chain: Vec<CertificateDer<'static>>) -> PeerCertificates {
        PeerCertificates {
            chain: Arc::new(chain),
            accepted: Arc::default(),
        }
    }

    /// Leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    fn accepted_at(&self, now: u64) -> Option<UserInfo> {
        let accepted = self.accepted.lock().unwrap_or_else(|e| e.into_inner());
        accepted
            .as_ref()
            .filter(|a| now < a.until)
            .map(|a| a.user.clone())
    }

    fn accept(&self, user: UserInfo, until: u64) {
        *self.accepted.lock().unwrap_or_else(|e| e.into_inner()) = Some(Accepted { user, until });
    }
}

/// Why a client certificate was refused. Only for logs: clients see a plain 401.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("the certificate does not chain to the hub CA or is not valid now: {0}")]
    Untrusted(rustls::Error),
    #[error("the certificate cannot be parsed")]
    Malformed,
    #[error("the certificate names no user (empty common name)")]
    NoUser,
}

/// Checks client certificates against the hub CA.
pub struct CertificateAuthenticator {
    verifier: Arc<dyn ClientCertVerifier>,
}

impl CertificateAuthenticator {
    /// `verifier` decides trust: the WebPKI verifier over the hub CA ([`crate::security::tls`]).
    pub fn new(verifier: Arc<dyn ClientCertVerifier>) -> CertificateAuthenticator {
        CertificateAuthenticator { verifier }
    }

    /// The user a certificate chain names, if the hub CA vouches for it at `now`.
    fn authenticate_at(
        &self,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<UserInfo, CertificateError> {
        let (leaf, intermediates) = chain.split_first().ok_or(CertificateError::Malformed)?;
        self.verifier
            .verify_client_cert(leaf, intermediates, now)
            .map_err(CertificateError::Untrusted)?;
        user_of(leaf)
    }

    /// The user a connection's certificate chain names, if the hub CA vouches for it: the
    /// verdict its earlier requests got while that holds, else a fresh one (kept if it
    /// accepts).
    pub fn authenticate_peer(&self, peer: &PeerCertificates) -> Result<UserInfo, CertificateError> {
        let now = UnixTime::now();
        if let Some(user) = peer.accepted_at(now.as_secs()) {
            return Ok(user);
        }
        let user = self.authenticate_at(peer.chain(), now)?;
        if let Some(expires) = expiry(peer.chain()) {
            let until = expires.min(now.as_secs().saturating_add(REVERIFY_AFTER.as_secs()));
            peer.accept(user.clone(), until);
        }
        Ok(user)
    }
}

/// When the first certificate of `chain` expires (seconds since the Unix epoch); `None` if one
/// cannot be read.
fn expiry(chain: &[CertificateDer<'_>]) -> Option<u64> {
    chain
        .iter()
        .map(|der| {
            let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
            u64::try_from(cert.validity().not_after.timestamp()).ok()
        })
        .try_fold(u64::MAX, |earliest, expires| Some(earliest.min(expires?)))
}

/// CN → user name, every O → a group, plus `system:authenticated`.
pub fn user_of(leaf: &CertificateDer<'_>) -> Result<UserInfo, CertificateError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(leaf).map_err(|_| CertificateError::Malformed)?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|cn| !cn.is_empty())
        .ok_or(CertificateError::NoUser)?
        .to_string();
    let mut groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_string)
        .collect();
    groups.push(AUTHENTICATED.to_string());
    Ok(UserInfo {
        name,
        groups,
        ..UserInfo::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    };
    use rustls::pki_types::pem::PemObject;

    fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), Issuer::new(params, key))
    }

    fn authenticator(ca_pem: &str) -> CertificateAuthenticator {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
            .unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        CertificateAuthenticator::new(verifier)
    }

    /// A connection's chain of one certificate.
    fn peer(pem: &str) -> PeerCertificates {
        PeerCertificates::new(vec![CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()])
    }

    /// The hub CA's verifier, counting the chains it is asked to check.
    #[derive(Debug)]
    struct Counting {
        verifier: Arc<dyn ClientCertVerifier>,
        checked: std::sync::atomic::AtomicUsize,
    }

    impl ClientCertVerifier for Counting {
        fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
            self.verifier.root_hint_subjects()
        }

        fn verify_client_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            now: UnixTime,
        ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
            self.checked
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.verifier
                .verify_client_cert(end_entity, intermediates, now)
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            self.verifier.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            self.verifier.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.verifier.supported_verify_schemes()
        }
    }

    #[test]
    fn a_connection_is_verified_on_its_first_request_only() {
        let (ca_pem, issuer) = ca("hub");
        let counting = Arc::new(Counting {
            verifier: authenticator(&ca_pem).verifier,
            checked: Default::default(),
        });
        let authenticator = CertificateAuthenticator::new(counting.clone());
        let pair = crate::security::tls::client_certificate(&issuer, "alice", &["dev"]).unwrap();
        let connection = peer(&pair.cert);
        for _ in 0..3 {
            let user = authenticator.authenticate_peer(&connection).unwrap();
            assert_eq!(user.name, "alice");
            assert_eq!(user.groups, ["dev", AUTHENTICATED]);
        }
        let checked = || counting.checked.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(checked(), 1, "one verification for the connection");
        // Another connection with the same certificate is verified for itself.
        authenticator.authenticate_peer(&peer(&pair.cert)).unwrap();
        assert_eq!(checked(), 2);
        // A refusal is not kept: each request of a foreign chain is checked (and refused).
        let (_, foreign) = ca("hub");
        let mallory = peer(
            &crate::security::tls::client_certificate(&foreign, "mallory", &[])
                .unwrap()
                .cert,
        );
        for _ in 0..2 {
            assert!(authenticator.authenticate_peer(&mallory).is_err());
        }
        assert_eq!(checked(), 4);
    }

    #[test]
    fn a_kept_verdict_ends_when_the_certificate_expires() {
        let (ca_pem, issuer) = ca("hub");
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "brief");
        params.distinguished_name = dn;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(now + 2);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let authenticator = authenticator(&ca_pem);
        let connection = peer(&cert.pem());
        assert_eq!(
            authenticator.authenticate_peer(&connection).unwrap().name,
            "brief"
        );
        std::thread::sleep(Duration::from_secs(3));
        let err = authenticator.authenticate_peer(&connection).unwrap_err();
        assert!(matches!(err, CertificateError::Untrusted(_)), "{err}");
    }

    #[test]
    fn common_name_is_the_user_and_organizations_the_groups() {
        let (ca_pem, issuer) = ca("hub");
        let pair = crate::security::tls::client_certificate(&issuer, "alice", &["dev"]).unwrap();
        let user = authenticator(&ca_pem)
            .authenticate_peer(&peer(&pair.cert))
            .unwrap();
        assert_eq!(user.name, "alice");
        assert_eq!(user.groups, ["dev", AUTHENTICATED]);
    }

    #[test]
    fn a_certificate_from_another_ca_is_refused() {
        let (ca_pem, _) = ca("hub");
        let (_, foreign) = ca("hub");
        let pair =
            crate::security::tls::client_certificate(&foreign, "mallory", &["system:masters"])
                .unwrap();
        let err = authenticator(&ca_pem)
            .authenticate_peer(&peer(&pair.cert))
            .unwrap_err();
        assert!(matches!(err, CertificateError::Untrusted(_)), "{err}");
    }

    #[test]
    fn a_server_certificate_of_the_hub_ca_is_not_a_client_certificate() {
        let (ca_pem, issuer) = ca("hub");
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "trellis");
        params.distinguished_name = dn;
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let err = authenticator(&ca_pem)
            .authenticate_peer(&peer(&cert.pem()))
            .unwrap_err();
        assert!(matches!(err, CertificateError::Untrusted(_)), "{err}");
    }

    #[test]
    fn an_expired_certificate_is_refused() {
        let (ca_pem, issuer) = ca("hub");
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "old");
        params.distinguished_name = dn;
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let err = authenticator(&ca_pem)
            .authenticate_peer(&peer(&cert.pem()))
            .unwrap_err();
        assert!(matches!(err, CertificateError::Untrusted(_)), "{err}");
    }

    #[test]
    fn a_certificate_without_a_common_name_names_no_user() {
        let (ca_pem, issuer) = ca("hub");
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = DistinguishedName::new();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let err = authenticator(&ca_pem)
            .authenticate_peer(&peer(&cert.pem()))
            .unwrap_err();
        assert!(matches!(err, CertificateError::NoUser), "{err}");
    }
}
