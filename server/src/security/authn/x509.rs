//! Client certificates: a certificate chaining to the hub CA names its user in the subject's
//! common name and the user's groups in its organizations, as Kubernetes reads them.
//!
//! The TLS layer only proves the client holds the certificate's key ([`crate::security::tls`] accepts
//! any chain); whether the chain leads to the hub CA, and is within its validity period, is
//! decided here, so that a foreign or expired certificate gets a 401 like any other bad
//! credential instead of a failed handshake.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;

use super::{UserInfo, AUTHENTICATED};

/// The certificate chain a client presented in its TLS handshake, leaf first. The listener
/// puts it into every request's extensions.
#[derive(Clone, Debug)]
pub struct PeerCertificates(pub Arc<Vec<CertificateDer<'static>>>);

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

    /// The user a certificate chain names, if the hub CA vouches for it now.
    pub fn authenticate(&self, chain: &[CertificateDer<'_>]) -> Result<UserInfo, CertificateError> {
        let (leaf, intermediates) = chain.split_first().ok_or(CertificateError::Malformed)?;
        self.verifier
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map_err(CertificateError::Untrusted)?;
        user_of(leaf)
    }
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

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    #[test]
    fn common_name_is_the_user_and_organizations_the_groups() {
        let (ca_pem, issuer) = ca("hub");
        let pair = crate::security::tls::client_certificate(&issuer, "alice", &["dev"]).unwrap();
        let user = authenticator(&ca_pem)
            .authenticate(&[der(&pair.cert)])
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
            .authenticate(&[der(&pair.cert)])
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
            .authenticate(&[der(&cert.pem())])
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
            .authenticate(&[der(&cert.pem())])
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
            .authenticate(&[der(&cert.pem())])
            .unwrap_err();
        assert!(matches!(err, CertificateError::NoUser), "{err}");
    }
}
