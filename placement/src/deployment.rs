//! A `ModelDeployment` as placement sees it: which pool and class it draws from, how many GPUs per
//! replica and how many replicas it wants now, how to spread them, which targets it accepts, and
//! where its replicas already run. Also the order deployments are served in.
//!
//! `replicas` is the number to place now; the controller derives it from the API's min/max replicas
//! (and, later, an autoscaler). Placement is all-or-nothing for an increase: either every added
//! replica finds a node, or none is placed and the running ones stay as they are.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;

use crate::inventory::ProductId;
use crate::placement_key::PlacementKey;
use crate::selector::LabelSelector;
use crate::taint::Toleration;

/// How replicas are distributed over targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// As few targets as possible (see `assign.rs` for the exact rule).
    BinPack,
    /// Proportional to each target's capacity, by Sainte-Laguë apportionment.
    Spread,
}

/// Replicas of one deployment on one target, on one product: the syncer renders one Deployment per
/// (deployment, target) with a node selector on the exact product, so a target never mixes two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub product: ProductId,
    pub replicas: u32,
}

/// Target name → the deployment's share there.
pub type Assignments = BTreeMap<String, Share>;

/// A model deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// The object's uid: unique across workspaces; names its placements in the ledger.
    pub uid: String,
    /// The tenant workspace's path (`root:acme:ml`).
    pub workspace: String,
    pub namespace: String,
    pub name: String,
    /// `creationTimestamp`, seconds since the Unix epoch: the older, the earlier it is served.
    pub created: i64,
    pub pool: String,
    pub class: String,
    pub gpus_per_replica: NonZeroU32,
    pub replicas: u32,
    pub strategy: Strategy,
    /// The most targets its replicas may span; `None`: no limit.
    pub max_targets: Option<NonZeroU32>,
    pub target_selector: LabelSelector,
    pub tolerations: Vec<Toleration>,
    /// Where its replicas run now (as last decided); empty for a new deployment.
    pub existing: Assignments,
    /// Targets whose cluster could not schedule its replicas (the syncer reported them
    /// unschedulable past its timeout): its replicas leave them, as from a lost target, and
    /// none are placed there while that report stands.
    pub refused_by: BTreeSet<String>,
}

impl Deployment {
    /// The key of its placement on a target.
    pub fn key(&self, target: &str) -> PlacementKey {
        PlacementKey::new(&self.uid, target)
    }

    /// Replicas running now, over all targets.
    pub fn existing_replicas(&self) -> u64 {
        self.existing.values().map(|s| u64::from(s.replicas)).sum()
    }
}

/// The order deployments are served in, for quota and for capacity alike: creation time, then uid
/// (unique, so the order is total and the same on every replica of the controller), then path and
/// name for inputs that repeat a uid.
pub fn creation_order(a: &Deployment, b: &Deployment) -> Ordering {
    (a.created, &a.uid, &a.workspace, &a.namespace, &a.name).cmp(&(
        b.created,
        &b.uid,
        &b.workspace,
        &b.namespace,
        &b.name,
    ))
}
