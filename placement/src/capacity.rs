//! How many replicas fit on a target, and the working view of free GPUs a placement pass consumes.
//!
//! Capacity is counted node by node: a replica of N GPUs fits only on a node with at least N free,
//! so a target holds `Σ nodes × ⌊free / N⌋` such replicas ([`replicas_that_fit`]). The cluster-wide
//! estimate `Σ free / N` ([`aggregate_estimate`], what Karmada's general estimator does) would put
//! a 4-GPU replica on four nodes with one GPU free each; it is kept only as the benchmark's
//! baseline and for messages that tell the two apart.
//!
//! [`Availability`] is the pass's view: each target's reported histograms minus the ledger's holds,
//! then consumed replica by replica (best fit, see [`FreeByNode::take`]) as decisions are made, so
//! one pass can never hand out a GPU twice. Taking one N-GPU replica best-fit lowers that target's
//! capacity for N-GPU replicas by exactly one, so a plan sized by [`replicas_that_fit`] can always
//! be taken.

use std::collections::HashMap;

use crate::inventory::FreeByNode;
use crate::ledger::Ledger;
use crate::target::Target;

/// Replicas of `gpus` GPUs each that fit, each on a single node.
pub fn replicas_that_fit(free: &FreeByNode, gpus: u32) -> u64 {
    if gpus == 0 {
        return 0;
    }
    free.buckets()
        .filter(|(f, _)| *f >= gpus)
        .map(|(f, nodes)| u64::from(nodes) * u64::from(f / gpus))
        .sum()
}

/// The cluster-wide estimate `Σ free / gpus`: wrong whenever free GPUs are scattered. For
/// comparison only.
pub fn aggregate_estimate(free: &FreeByNode, gpus: u32) -> u64 {
    if gpus == 0 {
        return 0;
    }
    free.free_gpus() / u64::from(gpus)
}

/// Free GPUs per (target, product) as one placement pass sees them. Indexed like the snapshot:
/// `free[target][product]` follows `targets[target].inventory.products[product]`.
#[derive(Debug, Clone)]
pub(crate) struct Availability {
    free: Vec<Vec<FreeByNode>>,
    overcommitted: u64,
}

impl Availability {
    /// The reported histograms minus the ledger's holds, replayed in booking order. A hold that
    /// finds no node (its target reports no such product, or too few free GPUs) is counted as
    /// overcommitted; holds on targets not in `targets` are skipped.
    pub(crate) fn project(targets: &[Target], ledger: &Ledger) -> Self {
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(targets.len());
        for (i, t) in targets.iter().enumerate() {
            index.entry(t.name.as_str()).or_insert(i);
        }
        let mut free: Vec<Vec<FreeByNode>> = targets
            .iter()
            .map(|t| {
                t.inventory
                    .as_ref()
                    .map(|inv| {
                        inv.products
                            .iter()
                            .map(|p| p.free_by_node.clone())
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        let mut overcommitted = 0;
        for hold in ledger.holds() {
            let Some(&t) = index.get(hold.key.target.as_str()) else {
                continue;
            };
            let product = targets[t]
                .inventory
                .as_ref()
                .and_then(|inv| inv.product(&hold.product))
                .map(|(p, _)| p);
            match product.and_then(|p| free[t].get_mut(p)) {
                Some(histogram) => {
                    for _ in 0..hold.replicas {
                        if histogram.take(hold.gpus_per_replica).is_none() {
                            overcommitted += u64::from(hold.gpus_per_replica);
                        }
                    }
                }
                None => overcommitted += hold.gpus(),
            }
        }
        Self {
            free,
            overcommitted,
        }
    }

    /// The free histogram of a target's product, after holds and this pass's placements.
    pub(crate) fn free(&self, target: usize, product: usize) -> Option<&FreeByNode> {
        self.free.get(target).and_then(|t| t.get(product))
    }

    /// Takes `replicas` replicas of `gpus` each, best fit; returns how many were taken (all of
    /// them whenever `replicas <= replicas_that_fit(..)`).
    pub(crate) fn take(&mut self, target: usize, product: usize, gpus: u32, replicas: u32) -> u32 {
        let Some(histogram) = self.free.get_mut(target).and_then(|t| t.get_mut(product)) else {
            return 0;
        };
        let mut taken = 0;
        while taken < replicas && histogram.take(gpus).is_some() {
            taken += 1;
        }
        taken
    }

    pub(crate) fn overcommitted_gpus(&self) -> u64 {
        self.overcommitted
    }
}

impl Ledger {
    /// GPUs held that the targets' reported inventories cannot hold node by node: holds replayed
    /// oldest first, best fit, on each reported histogram; whatever finds no node counts. Zero
    /// means no GPU is double-booked. Holds on targets missing from `targets` are not counted.
    pub fn overcommit(&self, targets: &[Target]) -> u64 {
        Availability::project(targets, self).overcommitted_gpus()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{GpuProduct, Inventory, ProductId, ProductInventory};
    use crate::placement_key::PlacementKey;

    #[test]
    fn a_replica_needs_its_gpus_on_one_node() {
        // Karmada's bug: four nodes with one free GPU each "fit" a 4-GPU replica by the sum.
        let scattered = FreeByNode::from_buckets([(1, 4)]).unwrap();
        assert_eq!(aggregate_estimate(&scattered, 4), 1);
        assert_eq!(replicas_that_fit(&scattered, 4), 0);
        assert_eq!(replicas_that_fit(&scattered, 1), 4);
    }

    #[test]
    fn capacity_sums_whole_replicas_per_node() {
        // Fifty 8-GPU H200 nodes in varied states.
        let h = FreeByNode::from_buckets([(8, 10), (6, 5), (3, 20), (1, 10), (0, 5)]).unwrap();
        assert_eq!(replicas_that_fit(&h, 8), 10);
        assert_eq!(replicas_that_fit(&h, 4), 10 * 2 + 5);
        assert_eq!(replicas_that_fit(&h, 2), 10 * 4 + 5 * 3 + 20);
        assert_eq!(replicas_that_fit(&h, 1), 80 + 30 + 60 + 10);
        assert_eq!(replicas_that_fit(&h, 0), 0);
    }

    #[test]
    fn taking_lowers_capacity_by_exactly_one() {
        let mut h = FreeByNode::from_buckets([(8, 2), (5, 1), (3, 3), (2, 1)]).unwrap();
        for gpus in [3, 2, 4, 1, 3, 2, 8] {
            let before = replicas_that_fit(&h, gpus);
            if before == 0 {
                assert_eq!(h.take(gpus), None);
                continue;
            }
            assert!(h.take(gpus).is_some());
            assert_eq!(replicas_that_fit(&h, gpus), before - 1, "{gpus} GPUs");
        }
    }

    #[test]
    fn holds_are_subtracted_and_overcommit_is_counted() {
        let h200 = ProductId::whole("NVIDIA H200");
        let target = Target {
            name: "eu-1".into(),
            inventory: Some(Inventory {
                observed_at: 0,
                products: vec![ProductInventory {
                    product: GpuProduct {
                        id: h200.clone(),
                        memory_mib: 143_771,
                        architecture: Some("Hopper".into()),
                    },
                    free_by_node: FreeByNode::from_buckets([(8, 1), (4, 1)]).unwrap(),
                }],
                accounted: Default::default(),
            }),
            ..Target::default()
        };
        let mut ledger = Ledger::new();
        ledger.book(PlacementKey::new("a", "eu-1"), h200.clone(), 4, 2);
        let view = Availability::project(std::slice::from_ref(&target), &ledger);
        assert_eq!(
            view.free(0, 0),
            Some(&FreeByNode::from_buckets([(4, 1), (0, 1)]).unwrap())
        );
        assert_eq!(view.overcommitted_gpus(), 0);

        ledger.book(PlacementKey::new("b", "eu-1"), h200, 8, 1);
        ledger.book(
            PlacementKey::new("c", "eu-1"),
            ProductId::whole("NVIDIA H100 80GB HBM3"),
            1,
            2,
        );
        ledger.book(
            PlacementKey::new("d", "elsewhere"),
            ProductId::whole("x"),
            1,
            1,
        );
        assert_eq!(ledger.overcommit(&[target]), 8 + 2);
    }
}
