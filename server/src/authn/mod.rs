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
