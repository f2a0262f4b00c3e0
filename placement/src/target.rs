//! A physical cluster as placement sees it (a `SyncTarget`): its labels and taints, the health its
//! syncer last showed, and the GPU inventory it last reported. Also the health policy: how old a
//! heartbeat or an inventory may be before the target gets no new replicas.
//!
//! Times are seconds since the Unix epoch, the resolution of Kubernetes timestamps; the caller
//! passes "now" in the [`crate::Snapshot`] so decisions never read a clock.

use std::collections::BTreeMap;

use crate::inventory::Inventory;
use crate::taint::Taint;

/// A sync target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// Unique among targets (the first of a repeated name wins).
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    /// The syncer's `Ready` condition.
    pub ready: bool,
    /// Cordoned by the platform team: running replicas stay, new ones go elsewhere.
    pub unschedulable: bool,
    /// The syncer's last heartbeat, seconds since the Unix epoch.
    pub last_heartbeat: i64,
    /// The last GPU inventory; `None` until the syncer's first report. A target without a fresh
    /// inventory is never assumed to have room.
    pub inventory: Option<Inventory>,
}

/// How fresh a target's signals must be for it to get new replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Oldest acceptable heartbeat, seconds.
    pub heartbeat_timeout_s: i64,
    /// Oldest acceptable inventory, seconds.
    pub inventory_max_age_s: i64,
}

impl Default for HealthPolicy {
    /// 40 s for heartbeats (the kubelet's node-monitor grace period), 120 s for inventories.
    fn default() -> Self {
        Self {
            heartbeat_timeout_s: 40,
            inventory_max_age_s: 120,
        }
    }
}
