//! The placement ledger across controller lifetimes: rebuilt from the Placement objects when
//! a controller becomes leader, and kept free of holds nothing will ever release.
//!
//! Rules:
//! - [`restore_ledger`]: a Placement whose `spec.booking` is newer than what its target's
//!   `status.accounted` reports for it is held again, for all its replicas (which of them
//!   were the new ones is not written down; holding too many wastes GPUs only until the next
//!   syncer report, holding too few could double-book them). Placements being deleted or
//!   retiring hold nothing: the pass that dropped them shrank their holds. Booking ids
//!   continue after the highest found on any Placement or in any `accounted` list, so a
//!   syncer never sees an id go backwards.
//! - [`prune_ledger`]: holds of deployments no longer in the pass (deleted) and of targets no
//!   longer in it (unregistered) are dropped; their Placements are going, and nothing would
//!   release them.

use std::collections::{BTreeMap, BTreeSet};

use trellis_apis::compute::placement::target_of_namespace;
use trellis_apis::compute::Placement;
use trellis_placement::{Hold, Ledger, PlacementKey, ProductId};

use super::keys::target_key;
use super::snapshot::{is_retiring, FleetSnapshot};

/// The ledger a new leader starts from: `fleet` built from the objects as read, `placements`
/// every Placement of every provider workspace.
pub fn restore_ledger(fleet: &FleetSnapshot, placements: &[(&str, &Placement)]) -> Ledger {
    let accounted: BTreeMap<&PlacementKey, u64> = fleet
        .snapshot
        .targets
        .iter()
        .filter_map(|t| t.inventory.as_ref())
        .flat_map(|inventory| inventory.accounted.iter().map(|(k, b)| (k, *b)))
        .collect();
    let mut last = accounted.values().copied().max().unwrap_or(0);
    let mut holds = Vec::new();
    for (workspace, p) in placements {
        let Ok(booking @ 1..) = u64::try_from(p.spec.booking) else {
            continue;
        };
        last = last.max(booking);
        if p.metadata.deletion_timestamp.is_some() || is_retiring(p) {
            continue;
        }
        let Some(target) = p
            .metadata
            .namespace
            .as_deref()
            .and_then(target_of_namespace)
        else {
            continue;
        };
        let key = PlacementKey::new(&p.spec.origin.uid, &target_key(workspace, target));
        if accounted.get(&key).is_some_and(|seen| *seen >= booking) {
            continue;
        }
        let (Ok(gpus @ 1..), Ok(replicas @ 1..)) = (
            u32::try_from(p.spec.resources.gpu.count),
            u32::try_from(p.spec.replicas),
        ) else {
            continue;
        };
        holds.push(Hold {
            booking,
            key,
            product: ProductId::whole(p.spec.resources.gpu.product_name.clone()),
            gpus_per_replica: gpus,
            replicas,
        });
    }
    Ledger::restore(holds, last)
}

/// Drops the holds of deployments and targets `fleet` no longer has.
pub fn prune_ledger(ledger: &mut Ledger, fleet: &FleetSnapshot) {
    let deployments: BTreeSet<&str> = fleet
        .snapshot
        .deployments
        .iter()
        .map(|d| d.uid.as_str())
        .chain(fleet.refused.iter().map(|d| d.uid.as_str()))
        .collect();
    let targets: BTreeSet<&str> = fleet
        .snapshot
        .targets
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    let mut gone_deployments = BTreeSet::new();
    let mut gone_targets = BTreeSet::new();
    for hold in ledger.holds() {
        if !deployments.contains(hold.key.deployment_uid.as_str()) {
            gone_deployments.insert(hold.key.deployment_uid.clone());
        }
        if !targets.contains(hold.key.target.as_str()) {
            gone_targets.insert(hold.key.target.clone());
        }
    }
    for uid in &gone_deployments {
        ledger.forget_deployment(uid);
    }
    for target in &gone_targets {
        ledger.forget_target(target);
    }
}

#[cfg(test)]
mod tests {
    use trellis_apis::compute::AccountedPlacement;
    use trellis_placement::place;

    use super::*;
    use crate::fleet::fixtures::*;
    use crate::fleet::snapshot::{build_snapshot, FleetObjects};

    #[test]
    fn a_new_leader_holds_what_no_syncer_has_accounted_and_books_after_the_last_id() {
        let bound = placement_on("eu-1", "uid-a", 1, 5);
        let partly = placement_on("eu-1", "uid-b", 2, 7);
        let fresh = placement_on("eu-2", "uid-c", 1, 9);
        let mut target = h200_target("eu-1", &[(8, 4)]);
        if let Some(status) = target.status.as_mut() {
            status.accounted = [(&bound, 5), (&partly, 3)]
                .iter()
                .map(|(p, booking)| AccountedPlacement {
                    placement: p.metadata.name.clone().unwrap_or_default(),
                    booking: *booking,
                })
                .collect();
        }
        let other = h200_target("eu-2", &[(8, 4)]);
        let placements = [bound, partly, fresh];
        let placement_pairs: Vec<(&str, &Placement)> =
            placements.iter().map(|p| (PROVIDER, p)).collect();
        let targets = [(PROVIDER, &target), (PROVIDER, &other)];
        let pool = h200_pool(64);
        let pools = [(PROVIDER, &pool)];
        let new = llama(1, 8);
        let deployments = [(TENANT, &new)];
        let fleet = build_snapshot(
            &FleetObjects {
                targets: &targets,
                pools: &pools,
                deployments: &deployments,
                placements: &placement_pairs,
            },
            NOW,
        );
        let mut ledger = restore_ledger(&fleet, &placement_pairs);
        let held: Vec<(u64, &str, u64)> = ledger
            .holds()
            .map(|h| (h.booking, h.key.deployment_uid.as_str(), h.gpus()))
            .collect();
        assert_eq!(held, vec![(7, "uid-b", 4), (9, "uid-c", 2)]);

        let decisions = place(&fleet.snapshot, &mut ledger);
        let bookings: Vec<u64> = decisions[0].bookings.values().copied().collect();
        assert_eq!(bookings, vec![10]);
    }

    #[test]
    fn holds_of_deleted_deployments_and_targets_are_dropped() {
        let placements = [
            placement_on("eu-1", "uid-kept", 1, 1),
            placement_on("eu-1", "uid-deleted", 1, 2),
            placement_on("eu-9", "uid-kept", 1, 3),
        ];
        let pairs: Vec<(&str, &Placement)> = placements.iter().map(|p| (PROVIDER, p)).collect();
        let target = h200_target("eu-1", &[(8, 4)]);
        let targets = [(PROVIDER, &target)];
        let mut kept = llama(2, 2);
        kept.metadata.uid = Some("uid-kept".into());
        let deployments = [(TENANT, &kept)];
        let fleet = build_snapshot(
            &FleetObjects {
                targets: &targets,
                deployments: &deployments,
                placements: &pairs,
                ..FleetObjects::default()
            },
            NOW,
        );
        let mut ledger = restore_ledger(&fleet, &pairs);
        assert_eq!(ledger.holds().count(), 3);
        prune_ledger(&mut ledger, &fleet);
        let left: Vec<u64> = ledger.holds().map(|h| h.booking).collect();
        assert_eq!(left, vec![1]);
    }
}
