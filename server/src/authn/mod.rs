//! Authentication: who is making a request.
//!
//! Every request that reaches [`crate::http::dispatch`] carries a [`UserInfo`] in its
//! extensions, put there by the authentication layer.

/// The authenticated subject of a request, as Kubernetes' `user.Info`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}

/// Members of this group bypass authorization everywhere, as in Kubernetes.
pub const SYSTEM_MASTERS: &str = "system:masters";

impl UserInfo {
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == SYSTEM_MASTERS)
    }
}

/// Group every authenticated user is in, as in Kubernetes.
pub const SYSTEM_AUTHENTICATED: &str = "system:authenticated";

/// The user a verified client certificate names: CN is the user name, each O a group, as
/// Kubernetes reads them. `None` without a certificate or with one that does not parse (the
/// TLS layer has already checked that it chains to the hub CA).
///
/// Interim: stands in for the authentication layer until it merges, which owns this.
pub fn from_peer_certificates(
    certificates: &[rustls::pki_types::CertificateDer<'_>],
) -> Option<UserInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(certificates.first()?).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let mut groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    if !groups.iter().any(|g| g == SYSTEM_AUTHENTICATED) {
        groups.push(SYSTEM_AUTHENTICATED.to_string());
    }
    Some(UserInfo {
        name,
        groups,
        ..UserInfo::default()
    })
}
