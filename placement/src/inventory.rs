//! A target's GPUs as its syncer reports them: for each GPU product (or MIG profile), how many
//! nodes have how many GPUs free, the `freeByNode` histogram, plus which placements the reading
//! already accounts for (see [`crate::Ledger`]).
//!
//! The shape is a histogram rather than a total because a replica's GPUs must all sit on one node:
//! eight free GPUs spread as one on each of eight nodes cannot run a 4-GPU replica, which a
//! cluster-wide sum hides. Nodes with the same number of free GPUs are interchangeable for
//! placement, so counting them per bucket loses nothing and stays small (nine buckets for 8-GPU
//! nodes, whatever the node count).
//!
//! MIG: a partition profile (`1g.18gb`) is reported as its own [`ProductId`] whose histogram
//! counts free *slices* per node; a class asking for that profile is placed on those slices exactly
//! as whole GPUs are placed on nodes. Whole GPUs and slices never mix: a class without a
//! partition only matches whole GPUs (see [`crate::GpuClass`]).

use std::collections::BTreeMap;
use std::fmt;

use crate::placement_key::PlacementKey;

/// The most free GPUs (or slices) one node may report: anything larger is a broken reading, and
/// refusing it keeps a histogram's memory bounded.
pub const MAX_FREE_PER_NODE: u32 = 1024;

/// A reading that cannot be a real node pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    #[error("a node reports {free} free GPUs; more than {MAX_FREE_PER_NODE} is not a real node")]
    TooManyFree { free: u32 },
    #[error("more than {} nodes in one histogram", u32::MAX)]
    TooManyNodes,
}

/// Which devices a histogram counts: a GPU product (`NVIDIA H200`, as `nvidia-smi` and DRA's
/// `productName` spell it), optionally narrowed to one MIG partition profile.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProductId {
    pub product: String,
    pub partition: Option<String>,
}

impl ProductId {
    /// Whole GPUs of a product.
    pub fn whole(product: impl Into<String>) -> Self {
        Self {
            product: product.into(),
            partition: None,
        }
    }

    /// MIG slices of one profile (`1g.18gb`) of a product.
    pub fn mig(product: impl Into<String>, profile: impl Into<String>) -> Self {
        Self {
            product: product.into(),
            partition: Some(profile.into()),
        }
    }
}

impl fmt::Display for ProductId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.partition {
            None => f.write_str(&self.product),
            Some(profile) => write!(f, "{} MIG {}", self.product, profile),
        }
    }
}

/// What a class can ask of a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuProduct {
    pub id: ProductId,
    /// Memory of one device (a whole GPU, or one slice), MiB: `143771` for an H200.
    pub memory_mib: u64,
    /// `Hopper` (DRA `architecture`; GPU feature discovery's `gpu.family` says `hopper`).
    pub architecture: Option<String>,
}

/// One product's devices on a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductInventory {
    pub product: GpuProduct,
    pub free_by_node: FreeByNode,
}

/// A target's reported GPUs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// When the syncer read it, seconds since the Unix epoch.
    pub observed_at: i64,
    /// One entry per product; names are unique (the first wins).
    pub products: Vec<ProductInventory>,
    /// Placements this reading already counts as using GPUs, with the newest booking id the
    /// syncer had applied when their replicas were all bound to nodes. The ledger releases its
    /// holds up to these ids.
    pub accounted: BTreeMap<PlacementKey, u64>,
}

impl Inventory {
    /// The entry for a product, with its index.
    pub fn product(&self, id: &ProductId) -> Option<(usize, &ProductInventory)> {
        self.products
            .iter()
            .enumerate()
            .find(|(_, p)| p.product.id == *id)
    }
}

/// Free GPUs per node → number of nodes with that many free, for one product on one target.
///
/// Kept canonical (no empty buckets at the top) so equal histograms compare equal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FreeByNode {
    /// `nodes_by_free[f]` nodes have `f` GPUs free.
    nodes_by_free: Vec<u32>,
}

impl FreeByNode {
    /// From `(free GPUs, nodes)` buckets; repeated buckets add up.
    pub fn from_buckets(
        buckets: impl IntoIterator<Item = (u32, u32)>,
    ) -> Result<Self, InventoryError> {
        let mut histogram = Self::default();
        let mut total: u32 = 0;
        for (free, nodes) in buckets {
            if nodes == 0 {
                continue;
            }
            if free > MAX_FREE_PER_NODE {
                return Err(InventoryError::TooManyFree { free });
            }
            total = total
                .checked_add(nodes)
                .ok_or(InventoryError::TooManyNodes)?;
            let i = free as usize;
            if histogram.nodes_by_free.len() <= i {
                histogram.nodes_by_free.resize(i + 1, 0);
            }
            // Cannot overflow: no bucket exceeds the checked total.
            histogram.nodes_by_free[i] += nodes;
        }
        Ok(histogram)
    }

    /// From one free count per node.
    pub fn from_nodes(free: impl IntoIterator<Item = u32>) -> Result<Self, InventoryError> {
        Self::from_buckets(free.into_iter().map(|f| (f, 1)))
    }

    /// Non-empty buckets `(free GPUs, nodes)`, fewest free first.
    pub fn buckets(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.nodes_by_free
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(f, n)| (f as u32, *n))
    }

    /// Nodes with exactly `free` GPUs free.
    pub fn nodes_with_free(&self, free: u32) -> u32 {
        self.nodes_by_free.get(free as usize).copied().unwrap_or(0)
    }

    pub fn node_count(&self) -> u64 {
        self.nodes_by_free.iter().map(|n| u64::from(*n)).sum()
    }

    /// Free GPUs summed over all nodes (what a cluster-wide estimator looks at).
    pub fn free_gpus(&self) -> u64 {
        self.buckets()
            .map(|(f, n)| u64::from(f) * u64::from(n))
            .sum()
    }

    /// The most GPUs free on any one node.
    pub fn max_free(&self) -> u32 {
        self.nodes_by_free.len().saturating_sub(1) as u32
    }

    /// Books `gpus` GPUs on one node, choosing the best fit: the node with the fewest free GPUs
    /// that still has `gpus`, so larger holes stay for larger replicas. The node moves to the
    /// bucket of what it has left. Returns how many GPUs that node had free, or `None` when no
    /// node has `gpus` free (or `gpus` is zero).
    pub fn take(&mut self, gpus: u32) -> Option<u32> {
        if gpus == 0 {
            return None;
        }
        let need = gpus as usize;
        let from = (need..self.nodes_by_free.len()).find(|&f| self.nodes_by_free[f] > 0)?;
        self.nodes_by_free[from] -= 1;
        self.nodes_by_free[from - need] += 1;
        while self.nodes_by_free.last() == Some(&0) {
            self.nodes_by_free.pop();
        }
        Some(from as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_add_up_and_stay_canonical() {
        let a = FreeByNode::from_buckets([(8, 2), (0, 3), (8, 1), (4, 0)]).unwrap();
        let b = FreeByNode::from_nodes([0, 8, 0, 8, 0, 8]).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.buckets().collect::<Vec<_>>(), vec![(0, 3), (8, 3)]);
        assert_eq!(a.node_count(), 6);
        assert_eq!(a.free_gpus(), 24);
        assert_eq!(a.max_free(), 8);
        assert_eq!(FreeByNode::default().max_free(), 0);
    }

    #[test]
    fn absurd_readings_are_refused() {
        assert_eq!(
            FreeByNode::from_buckets([(MAX_FREE_PER_NODE + 1, 1)]),
            Err(InventoryError::TooManyFree {
                free: MAX_FREE_PER_NODE + 1
            })
        );
        assert_eq!(
            FreeByNode::from_buckets([(1, u32::MAX), (2, 1)]),
            Err(InventoryError::TooManyNodes)
        );
    }

    #[test]
    fn take_chooses_the_best_fit_and_moves_the_node() {
        // Three H200 nodes: 8, 3 and 2 GPUs free.
        let mut h = FreeByNode::from_nodes([8, 3, 2]).unwrap();
        // A 2-GPU replica takes the node with 2 free, not the 8.
        assert_eq!(h.take(2), Some(2));
        assert_eq!(h, FreeByNode::from_nodes([8, 3, 0]).unwrap());
        // A 3-GPU replica takes the 3.
        assert_eq!(h.take(3), Some(3));
        // A 4-GPU replica must use the 8, leaving 4 there.
        assert_eq!(h.take(4), Some(8));
        assert_eq!(h, FreeByNode::from_nodes([4, 0, 0]).unwrap());
        assert_eq!(h.take(8), None);
        assert_eq!(h.take(0), None);
        assert_eq!(h.take(4), Some(4));
        assert_eq!(h.max_free(), 0);
        assert_eq!(h.node_count(), 3);
    }

    #[test]
    fn product_ids_name_partitions() {
        assert_eq!(ProductId::whole("NVIDIA H200").to_string(), "NVIDIA H200");
        assert_eq!(
            ProductId::mig("NVIDIA H200", "1g.18gb").to_string(),
            "NVIDIA H200 MIG 1g.18gb"
        );
        let inv = Inventory {
            observed_at: 0,
            products: vec![ProductInventory {
                product: GpuProduct {
                    id: ProductId::whole("NVIDIA H200"),
                    memory_mib: 143_771,
                    architecture: Some("Hopper".into()),
                },
                free_by_node: FreeByNode::from_buckets([(8, 4)]).unwrap(),
            }],
            accounted: BTreeMap::new(),
        };
        assert_eq!(
            inv.product(&ProductId::whole("NVIDIA H200")).map(|p| p.0),
            Some(0)
        );
        assert!(inv
            .product(&ProductId::mig("NVIDIA H200", "1g.18gb"))
            .is_none());
    }
}
