//! Trellis GPU placement: the pure decisions of where tenants' model replicas run. Given a snapshot
//! of GPU pools, sync targets (with their free-GPUs-per-node inventories) and model deployments,
//! [`place`] decides for each deployment, in creation order: quota first (Kueue-style nominal
//! quota, borrowing and lending within a pool), then the targets that may take replicas, their
//! capacity counted node by node, and the assignment (BinPack or Spread, keeping what runs). What
//! it adds is held in a [`Ledger`] until the targets' syncers report it, so a batch of decisions,
//! or several passes before the inventories catch up, never double-book a GPU. [`fail_over`]
//! moves the replicas of a lost target.
//!
//! No I/O, no clock, no async, no JSON: the hub's placement controller converts API objects into
//! these structs, calls [`place`], and writes the [`Decision`]s back as `Placement` objects and
//! status. Every rule lives in the module named after it:
//!
//! | module | owns |
//! |---|---|
//! | `inventory` | products, MIG partitions, the `freeByNode` histogram and best-fit booking on it |
//! | `capacity` | replicas that fit node by node; the pass's view of free GPUs |
//! | `selector`, `taint` | Kubernetes label selectors, taints and tolerations |
//! | `filter` | which targets take new replicas, which keep running ones |
//! | `pool`, `quota` | pools, classes, tenant matching; quota admission |
//! | `assign` | BinPack and Spread (Sainte-Laguë), growing and shrinking |
//! | `ledger` | GPUs placed but not yet reported, and their release |
//! | `place`, `failover` | the passes that tie it together |
//!
//! ```ignore
//! let mut ledger = Ledger::new(); // kept by the controller between passes
//! let snapshot = Snapshot { now, health: HealthPolicy::default(), pools, targets, deployments, charged: vec![] };
//! for decision in place(&snapshot, &mut ledger) {
//!     match decision.outcome {
//!         Outcome::Scheduled => write_placements(&decision.uid, &decision.assignments, &decision.bookings),
//!         other => set_condition(&decision.uid, other.reason(), &decision.message),
//!     }
//! }
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod assign;
mod capacity;
mod decision;
mod deployment;
mod failover;
mod filter;
#[cfg(test)]
mod fixtures;
mod inventory;
mod ledger;
mod place;
mod placement_key;
mod pool;
mod quota;
mod selector;
mod taint;
mod target;

pub use capacity::{aggregate_estimate, replicas_that_fit};
pub use decision::{Decision, Outcome};
pub use deployment::{creation_order, Assignments, Deployment, Share, Strategy};
pub use failover::fail_over;
pub use inventory::{
    FreeByNode, GpuProduct, Inventory, InventoryError, ProductId, ProductInventory,
    MAX_FREE_PER_NODE,
};
pub use ledger::{Hold, Ledger};
pub use place::{place, Charge, Snapshot};
pub use placement_key::PlacementKey;
pub use pool::{workspace_covers, GpuClass, GpuPool, Quota, Tenant};
pub use selector::{LabelSelector, Operator, Requirement};
pub use taint::{evicting, first_untolerated, Taint, TaintEffect, Toleration, TolerationOperator};
pub use target::{HealthPolicy, Target};
