//! The hub's bookkeeping of GPUs it has promised but no inventory shows yet.
//!
//! A target's free-GPU histogram is only as new as its syncer's last report. Between the hub
//! placing replicas and the syncer reporting them bound to nodes, those GPUs still read as free; a
//! second deployment placed in that window would be given the same GPUs. So every replica the hub
//! adds to a target is *held* here, and placement subtracts the holds from the reported histogram
//! (replaying them, oldest first, with the same best-fit rule used to place them) before it looks
//! for room. Many tenants creating at once never double-book a GPU.
//!
//! Reconciliation rule: every change of a (deployment, target) placement gets a *booking id* from
//! the ledger's counter, and the controller writes it into that `Placement`'s spec. A syncer reports,
//! next to each inventory, the booking id of each placement whose replicas are all bound to nodes
//! and therefore already counted in that very histogram ([`crate::Inventory::accounted`]). A hold
//! is released when its placement is accounted at its booking id or a later one. Reading and
//! accounting come from one syncer snapshot, so a hold never leaves before the histogram shows its
//! GPUs used (which would double-book), and never outlives it for long (which would waste them).
//! Pods the edge's scheduler cannot bind keep their hold: the hub goes on assuming them there.
//!
//! Booking ids must grow across controller restarts, since syncers compare them: a new leader
//! rebuilds the ledger with [`Ledger::restore`] from the `Placement` objects (their booking ids,
//! and a hold for each whose id is newer than its target's accounted one).

use std::collections::BTreeMap;

use crate::inventory::ProductId;
use crate::placement_key::PlacementKey;

/// Replicas placed by the hub and not yet seen in the target's inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub booking: u64,
    pub key: PlacementKey,
    pub product: ProductId,
    pub gpus_per_replica: u32,
    pub replicas: u32,
}

impl Hold {
    pub fn gpus(&self) -> u64 {
        u64::from(self.gpus_per_replica) * u64::from(self.replicas)
    }
}

/// Outstanding holds, in booking order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ledger {
    next_booking: u64,
    holds: BTreeMap<u64, Hold>,
}

impl Default for Ledger {
    fn default() -> Self {
        Self::new()
    }
}

impl Ledger {
    /// An empty ledger whose first booking id is 1.
    pub fn new() -> Self {
        Self {
            next_booking: 1,
            holds: BTreeMap::new(),
        }
    }

    /// A ledger rebuilt after a restart: these holds, and booking ids continuing after
    /// `last_booking` (the highest id found on any `Placement`) and after every hold's.
    pub fn restore(holds: impl IntoIterator<Item = Hold>, last_booking: u64) -> Self {
        let holds: BTreeMap<u64, Hold> = holds.into_iter().map(|h| (h.booking, h)).collect();
        let last = holds
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .max(last_booking);
        Self {
            next_booking: last.saturating_add(1),
            holds,
        }
    }

    /// Outstanding holds, oldest booking first.
    pub fn holds(&self) -> impl Iterator<Item = &Hold> {
        self.holds.values()
    }

    /// GPUs held on a target.
    pub fn held_gpus(&self, target: &str) -> u64 {
        self.holds()
            .filter(|h| h.key.target == target)
            .map(Hold::gpus)
            .sum()
    }

    /// Releases the holds on `target` that its inventory accounts for: those whose placement is
    /// accounted at their booking id or later. Returns how many holds were released.
    pub fn reconcile(&mut self, target: &str, accounted: &BTreeMap<PlacementKey, u64>) -> usize {
        if accounted.is_empty() {
            return 0;
        }
        let before = self.holds.len();
        self.holds.retain(|booking, hold| {
            hold.key.target != target || accounted.get(&hold.key).is_none_or(|seen| seen < booking)
        });
        before - self.holds.len()
    }

    /// Drops every hold of a deleted deployment.
    pub fn forget_deployment(&mut self, uid: &str) {
        self.holds.retain(|_, h| h.key.deployment_uid != uid);
    }

    /// Drops every hold on a deleted target.
    pub fn forget_target(&mut self, target: &str) {
        self.holds.retain(|_, h| h.key.target != target);
    }

    /// Holds `replicas` added to a placement; returns the booking id.
    pub(crate) fn book(
        &mut self,
        key: PlacementKey,
        product: ProductId,
        gpus_per_replica: u32,
        replicas: u32,
    ) -> u64 {
        let booking = self.stamp();
        self.holds.insert(
            booking,
            Hold {
                booking,
                key,
                product,
                gpus_per_replica,
                replicas,
            },
        );
        booking
    }

    /// A booking id for a change that holds nothing (a placement shrank).
    pub(crate) fn stamp(&mut self) -> u64 {
        let booking = self.next_booking;
        self.next_booking = self.next_booking.saturating_add(1);
        booking
    }

    /// `replicas` fewer on a placement: its newest holds shrink first (replicas never started need
    /// no GPUs; older ones may already run).
    pub(crate) fn shrink(&mut self, key: &PlacementKey, replicas: u32) {
        let mut left = replicas;
        let mut emptied = Vec::new();
        for (booking, hold) in self.holds.iter_mut().rev() {
            if left == 0 {
                break;
            }
            if hold.key != *key {
                continue;
            }
            let cut = hold.replicas.min(left);
            hold.replicas -= cut;
            left -= cut;
            if hold.replicas == 0 {
                emptied.push(*booking);
            }
        }
        for booking in emptied {
            self.holds.remove(&booking);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h200() -> ProductId {
        ProductId::whole("NVIDIA H200")
    }

    #[test]
    fn reconcile_releases_what_the_inventory_accounts_for() {
        let mut ledger = Ledger::new();
        let a = PlacementKey::new("uid-a", "eu-1");
        let b = PlacementKey::new("uid-b", "eu-1");
        let c = PlacementKey::new("uid-c", "us-1");
        let first_a = ledger.book(a.clone(), h200(), 4, 2);
        let second_a = ledger.book(a.clone(), h200(), 4, 1);
        ledger.book(b.clone(), h200(), 8, 1);
        ledger.book(PlacementKey::new("uid-c", "us-1"), h200(), 1, 1);
        assert_eq!(ledger.held_gpus("eu-1"), 20);

        // The syncer saw a's first booking bound; its second is still pending.
        let accounted = BTreeMap::from([(a.clone(), first_a), (c.clone(), 99)]);
        assert_eq!(ledger.reconcile("eu-1", &accounted), 1);
        assert_eq!(ledger.held_gpus("eu-1"), 12);
        // Another target's report does not release eu-1's holds, nor does a key of another target.
        assert_eq!(
            ledger.reconcile("us-1", &BTreeMap::from([(a.clone(), 99)])),
            0
        );
        // Caught up.
        assert_eq!(
            ledger.reconcile("eu-1", &BTreeMap::from([(a, second_a), (b, 1_000)])),
            2
        );
        assert_eq!(ledger.held_gpus("eu-1"), 0);
        assert_eq!(ledger.held_gpus("us-1"), 1);
    }

    #[test]
    fn shrink_takes_the_newest_holds_first() {
        let mut ledger = Ledger::new();
        let a = PlacementKey::new("uid-a", "eu-1");
        let old = ledger.book(a.clone(), h200(), 2, 3);
        ledger.book(PlacementKey::new("uid-b", "eu-1"), h200(), 2, 1);
        ledger.book(a.clone(), h200(), 2, 2);
        ledger.shrink(&a, 3);
        let left: Vec<(u64, u32)> = ledger
            .holds()
            .filter(|h| h.key == a)
            .map(|h| (h.booking, h.replicas))
            .collect();
        assert_eq!(left, vec![(old, 2)]);
        ledger.shrink(&a, 10);
        assert_eq!(ledger.holds().count(), 1);
    }

    #[test]
    fn restore_continues_booking_ids() {
        let hold = Hold {
            booking: 41,
            key: PlacementKey::new("uid-a", "eu-1"),
            product: h200(),
            gpus_per_replica: 8,
            replicas: 1,
        };
        let mut ledger = Ledger::restore([hold.clone()], 7);
        assert_eq!(ledger.stamp(), 42);
        let mut ledger2 = Ledger::restore([hold], 100);
        assert_eq!(ledger2.stamp(), 101);
        ledger.forget_deployment("uid-a");
        assert_eq!(ledger.holds().count(), 0);
        ledger2.forget_target("eu-1");
        assert_eq!(ledger2.holds().count(), 0);
    }
}
