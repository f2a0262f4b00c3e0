//! The key of a placement: one deployment on one target, as the ledger holds it and a
//! target's inventory accounts for it.

/// A placement: one deployment on one target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PlacementKey {
    pub deployment_uid: String,
    pub target: String,
}

impl PlacementKey {
    pub fn new(deployment_uid: &str, target: &str) -> Self {
        Self {
            deployment_uid: deployment_uid.to_string(),
            target: target.to_string(),
        }
    }
}
