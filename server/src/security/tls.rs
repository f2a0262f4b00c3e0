//! The hub's PKI: a CA generated on first start and kept in the data directory, a serving
//! certificate signed by it, and the admin's client certificate.
//!
//! The serving certificate names `localhost`, `127.0.0.1`, `::1`, the host name and any extra
//! names given: rustls-based clients such as kube-rs check IP SANs. It is re-issued on every
//! start (the CA stays), so a new `--tls-san` takes effect without deleting anything.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("reading {what}: {why}")]
    Pem { what: &'static str, why: String },
}

/// A certificate and its private key, PEM-encoded.
#[derive(Clone)]
pub struct PemPair {
    pub cert: String,
    pub key: String,
}

/// Everything TLS the hub needs after start-up.
pub struct Pki {
    pub ca_cert_pem: String,
    pub serving: PemPair,
    pub admin: PemPair,
}

const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const ADMIN_CERT: &str = "admin.crt";
const ADMIN_KEY: &str = "admin.key";

fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "trellis-ca");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

fn read(path: &Path) -> Result<Option<String>, TlsError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TlsError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

fn write(path: &Path, contents: &str, private: bool) -> Result<(), TlsError> {
    let io = |source| TlsError::Io {
        path: path.display().to_string(),
        source,
    };
    std::fs::write(path, contents).map_err(io)?;
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    Ok(())
}

/// Loads the CA and admin credential from `dir`, creating them on first start, and issues a
/// serving certificate for `names` (DNS names or IP addresses).
pub fn load_or_create(dir: &Path, names: &[String]) -> Result<Pki, TlsError> {
    let (ca_cert_pem, ca_key) = match (read(&dir.join(CA_CERT))?, read(&dir.join(CA_KEY))?) {
        (Some(cert), Some(key)) => {
            let key = KeyPair::from_pem(&key)?;
            (cert, key)
        }
        _ => {
            let key = KeyPair::generate()?;
            let cert = ca_params()?.self_signed(&key)?;
            write(&dir.join(CA_CERT), &cert.pem(), false)?;
            write(&dir.join(CA_KEY), &key.serialize_pem(), true)?;
            (cert.pem(), key)
        }
    };
    // The CA's subject is fixed, so its parameters plus the saved key sign exactly as the
    // saved certificate does.
    let issuer = Issuer::new(ca_params()?, ca_key);

    let serving = {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = {
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, "trellis");
            dn
        };
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => n.clone().try_into().map(SanType::DnsName),
            })
            .collect::<Result<_, _>>()?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        PemPair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    };

    let admin = match (read(&dir.join(ADMIN_CERT))?, read(&dir.join(ADMIN_KEY))?) {
        (Some(cert), Some(key)) => PemPair { cert, key },
        _ => {
            let pair = client_certificate(&issuer, "trellis-admin", &["system:masters"])?;
            write(&dir.join(ADMIN_CERT), &pair.cert, false)?;
            write(&dir.join(ADMIN_KEY), &pair.key, true)?;
            pair
        }
    };
    Ok(Pki {
        ca_cert_pem,
        serving,
        admin,
    })
}

/// A client certificate for `user` in `groups`, signed by the CA kept in `dir` (for tests,
/// benchmarks and operators handing out credentials).
pub fn issue_client_certificate(
    dir: &Path,
    user: &str,
    groups: &[&str],
) -> Result<PemPair, TlsError> {
    let key = read(&dir.join(CA_KEY))?.ok_or_else(|| TlsError::Pem {
        what: "CA key",
        why: format!("no {CA_KEY} in {}", dir.display()),
    })?;
    let issuer = Issuer::new(ca_params()?, KeyPair::from_pem(&key)?);
    client_certificate(&issuer, user, groups)
}

/// A client certificate: CN is the user name, O the groups, as Kubernetes reads them.
/// rcgen keeps one value per subject attribute, so only the last group survives; for several
/// groups, sign a CSR with `openssl` (README, "Adding a user").
pub fn client_certificate(
    issuer: &Issuer<'_, KeyPair>,
    user: &str,
    groups: &[&str],
) -> Result<PemPair, TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, user);
    for group in groups {
        dn.push(DnType::OrganizationName, *group);
    }
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok(PemPair {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// The hub CA's verdict on client certificates: the WebPKI verifier over the CA.
/// Authentication ([`crate::security::authn::x509`]) asks it, per request.
pub fn client_verifier(
    pki: &Pki,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(pki.ca_cert_pem.as_bytes()) {
        roots.add(ca.map_err(|e| TlsError::Pem {
            what: "CA certificate",
            why: e.to_string(),
        })?)?;
    }
    rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| TlsError::Pem {
        what: "client verifier",
        why: e.to_string(),
    })
}

/// The handshake asks for a client certificate and checks that the client holds its key, but
/// leaves trust to authentication: a certificate from another CA, or an expired one, then gets
/// the 401 any bad credential gets instead of a failed handshake that clients report as a
/// network error.
#[derive(Debug)]
struct ProofOfPossessionOnly(Arc<dyn rustls::server::danger::ClientCertVerifier>);

impl rustls::server::danger::ClientCertVerifier for ProofOfPossessionOnly {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The rustls server configuration: TLS 1.2 and 1.3 only (rustls implements nothing older),
/// HTTP/2 and HTTP/1.1 by ALPN, client certificates requested but not required, their trust
/// left to authentication.
pub fn server_config(pki: &Pki) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let pem = |what: &'static str| {
        move |e: rustls::pki_types::pem::Error| TlsError::Pem {
            what,
            why: e.to_string(),
        }
    };
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(pki.serving.cert.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(pem("serving certificate"))?;
    let key =
        PrivateKeyDer::from_pem_slice(pki.serving.key.as_bytes()).map_err(pem("serving key"))?;
    let verifier = Arc::new(ProofOfPossessionOnly(client_verifier(pki)?));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(serving_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // The server's order decides, as Go's (kube-apiserver's) does.
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

/// ring's cipher suites, AES-128-GCM first: as kube-apiserver (Go's crypto/tls on hardware
/// with AES instructions) picks it, and about a third cheaper per byte than AES-256-GCM, which
/// counts for a watch sent to a thousand clients.
fn serving_provider() -> rustls::crypto::CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|suite| !suite_uses_aes_128(suite.suite()));
    provider
}

fn suite_uses_aes_128(suite: rustls::CipherSuite) -> bool {
    use rustls::CipherSuite as Suite;
    matches!(
        suite,
        Suite::TLS13_AES_128_GCM_SHA256
            | Suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            | Suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
    )
}

/// The names the serving certificate carries by default.
pub fn default_names(listen: &std::net::SocketAddr, extra: &[String]) -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
        let host = host.trim();
        if !host.is_empty() {
            names.push(host.to_string());
        }
    }
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    names.extend(extra.iter().cloned());
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TLS 1.1 ClientHello (no supported_versions extension) is refused during the handshake.
    #[test]
    fn tls_1_1_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pki = load_or_create(dir.path(), &["localhost".to_string()]).unwrap();
        let config = server_config(&pki).unwrap();
        let mut body = vec![0x03, 0x02]; // client_version TLS 1.1
        body.extend([7u8; 32]); // random
        body.push(0); // no session id
        body.extend([0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]); // ECDHE-RSA-AES128-SHA, AES128-SHA
        body.extend([0x01, 0x00]); // null compression
                                   // Extensions: signature_algorithms (ecdsa_secp256r1_sha256), so only the version is wrong.
        body.extend([0x00, 0x08, 0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0x04, 0x03]);
        let mut handshake = vec![0x01, 0x00, 0x00, body.len() as u8];
        handshake.extend(body);
        let mut record = vec![0x16, 0x03, 0x02, 0x00, handshake.len() as u8];
        record.extend(handshake);

        let mut conn = rustls::ServerConnection::new(config).unwrap();
        conn.read_tls(&mut record.as_slice()).unwrap();
        let err = conn.process_new_packets().unwrap_err();
        assert!(matches!(err, rustls::Error::PeerIncompatible(_)), "{err:?}");
        assert!(format!("{err:?}").contains("Tls12NotOffered"), "{err:?}");
    }

    /// A client that prefers AES-256-GCM (rustls', kube-rs's) gets AES-128-GCM, as from
    /// kube-apiserver.
    #[test]
    fn aes_128_gcm_is_chosen_whatever_the_clients_order() {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;
        use rustls::{CipherSuite, ClientConnection, ServerConnection};
        let dir = tempfile::tempdir().unwrap();
        let pki = load_or_create(dir.path(), &["localhost".to_string()]).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(pki.ca_cert_pem.as_bytes()) {
            roots.add(ca.unwrap()).unwrap();
        }
        let provider = rustls::crypto::ring::default_provider();
        assert_eq!(
            provider.cipher_suites[0].suite(),
            CipherSuite::TLS13_AES_256_GCM_SHA384
        );
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut client =
            ClientConnection::new(Arc::new(client), "localhost".try_into().unwrap()).unwrap();
        let mut server = ServerConnection::new(server_config(&pki).unwrap()).unwrap();
        let mut wire = Vec::new();
        for _ in 0..10 {
            if !client.is_handshaking() && !server.is_handshaking() {
                break;
            }
            wire.clear();
            client.write_tls(&mut wire).unwrap();
            server.read_tls(&mut wire.as_slice()).unwrap();
            server.process_new_packets().unwrap();
            wire.clear();
            server.write_tls(&mut wire).unwrap();
            client.read_tls(&mut wire.as_slice()).unwrap();
            client.process_new_packets().unwrap();
        }
        assert!(!server.is_handshaking());
        assert_eq!(
            server.negotiated_cipher_suite().map(|s| s.suite()),
            Some(CipherSuite::TLS13_AES_128_GCM_SHA256)
        );
    }
}
