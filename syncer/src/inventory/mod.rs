//! The GPU inventory a syncer reports on its SyncTarget, as pure functions of what it read
//! from its cluster.
//!
//! - [`nodes`]: a Node's GPUs in device-plugin mode (allocatable `nvidia.com/gpu` and
//!   `nvidia.com/mig-<profile>`, GPU feature discovery labels, time-slicing replicas).
//! - [`pods`]: what a pod holds (GPU limits), whether it is bound and still running, and
//!   which Placement it belongs to.
//! - [`dra`]: GPUs published as DRA ResourceSlices (newest generation of complete pools
//!   only) and the devices ResourceClaims hold.
//! - [`accounted`]: the Placements whose replicas the inventory already counts.
//! - [`build`] (here): per product, devices, free devices and the `freeByNode` histogram.
//!
//! Free devices on a node are its devices minus what its bound, non-terminated pods hold
//! (device plugin) or what any ResourceClaim's allocation holds (DRA). Only schedulable,
//! Ready nodes count. A node whose GPUs are published through DRA is counted from its
//! slices alone, never also from its allocatable.

pub mod accounted;
pub mod dra;
pub mod nodes;
pub mod pods;

use std::collections::{BTreeMap, BTreeSet};

use trellis_apis::compute::{FreeDevicesOnNodes, GPUInventory, GPUPartition};

use dra::DraGpus;
use nodes::NodeGpus;
use pods::PodGpus;

/// What the inventory part of a SyncTarget status says.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inventory {
    /// One entry per product, sorted by product name.
    pub gpus: Vec<GPUInventory>,
    /// DRA pools left out because not all their slices are published, sorted.
    pub incomplete_pools: Vec<String>,
}

/// What one product looks like, from the first node (or device) that reported it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProductInfo {
    pub memory_mib: Option<i64>,
    pub architecture: Option<String>,
    pub cuda_compute_capability: Option<String>,
}

/// One product's devices on one node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeProductCount {
    pub devices: i32,
    pub free: i32,
}

/// Accumulates devices per (product, node) and MIG partitions per (product, profile).
#[derive(Default)]
struct Tally {
    info: BTreeMap<String, ProductInfo>,
    per_node: BTreeMap<String, BTreeMap<String, NodeProductCount>>,
    partitions: BTreeMap<String, BTreeMap<String, (i32, i32)>>,
}

impl Tally {
    fn product(&mut self, product: &str, info: impl FnOnce() -> ProductInfo) {
        if !self.info.contains_key(product) {
            self.info.insert(product.to_string(), info());
        }
    }

    fn add(&mut self, product: &str, node: &str, devices: i32, free: i32) {
        let count = self
            .per_node
            .entry(product.to_string())
            .or_default()
            .entry(node.to_string())
            .or_default();
        count.devices = count.devices.saturating_add(devices);
        count.free = count.free.saturating_add(free);
    }

    fn finish(self) -> Vec<GPUInventory> {
        let mut out = Vec::new();
        for (product, info) in self.info {
            let nodes = self.per_node.get(&product);
            let mut histogram: BTreeMap<i32, i32> = BTreeMap::new();
            let (mut total, mut available) = (0i32, 0i32);
            for count in nodes.into_iter().flat_map(|n| n.values()) {
                total = total.saturating_add(count.devices);
                let free = count.free.clamp(0, count.devices.max(0));
                available = available.saturating_add(free);
                if free > 0 {
                    *histogram.entry(free).or_default() += 1;
                }
            }
            let partitions = self
                .partitions
                .get(&product)
                .into_iter()
                .flatten()
                .map(|(profile, (total, available))| GPUPartition {
                    r#type: profile.clone(),
                    total: *total,
                    available: (*available).clamp(0, *total),
                })
                .collect();
            out.push(GPUInventory {
                product_name: product,
                memory_mib: info.memory_mib,
                architecture: info.architecture,
                cuda_compute_capability: info.cuda_compute_capability,
                total_devices: total,
                allocated_devices: total - available,
                available_devices: available,
                free_by_node: histogram
                    .into_iter()
                    .rev()
                    .map(|(free_devices, nodes)| FreeDevicesOnNodes {
                        free_devices,
                        nodes,
                    })
                    .collect(),
                partitions,
            });
        }
        out
    }
}

/// The inventory of a cluster: `nodes` and `pods` as read (all of them; pods of any owner
/// hold GPUs), `dra` the GPUs of its ResourceSlices with what ResourceClaims hold (empty on
/// a cluster without DRA).
pub fn build(nodes: &[NodeGpus], pods: &[PodGpus], dra: &DraGpus) -> Inventory {
    let usable: BTreeSet<&str> = nodes
        .iter()
        .filter(|n| n.usable)
        .map(|n| n.name.as_str())
        .collect();
    let dra_nodes = dra.nodes();
    // What bound, running pods hold per node (device-plugin resources).
    let mut held: BTreeMap<&str, (i64, BTreeMap<&str, i64>)> = BTreeMap::new();
    for pod in pods.iter().filter(|p| p.active) {
        let Some(node) = pod.node.as_deref() else {
            continue;
        };
        let entry = held.entry(node).or_default();
        entry.0 = entry.0.saturating_add(pod.gpus);
        for (profile, n) in &pod.mig {
            let slot = entry.1.entry(profile.as_str()).or_default();
            *slot = slot.saturating_add(*n);
        }
    }
    let mut tally = Tally::default();
    for node in nodes.iter().filter(|n| n.usable) {
        if dra_nodes.contains(node.name.as_str()) {
            continue;
        }
        let Some(product) = node.product.as_deref() else {
            continue;
        };
        let (held_gpus, held_mig) = held.get(node.name.as_str()).cloned().unwrap_or_default();
        if node.gpus <= 0 && node.mig.is_empty() {
            continue;
        }
        tally.product(product, || node.info());
        if node.gpus > 0 {
            let (devices, free) = node.devices_and_free(held_gpus);
            tally.add(product, &node.name, devices, free);
        }
        for (profile, total) in &node.mig {
            let used = held_mig.get(profile.as_str()).copied().unwrap_or(0);
            let slot = tally
                .partitions
                .entry(product.to_string())
                .or_default()
                .entry(profile.clone())
                .or_default();
            let total = i32::try_from(*total).unwrap_or(i32::MAX);
            let free = i32::try_from((i64::from(total) - used).max(0)).unwrap_or(0);
            slot.0 = slot.0.saturating_add(total);
            slot.1 = slot.1.saturating_add(free);
        }
    }
    let incomplete = dra.tally_into(&usable, |product, node, info, devices, free| {
        tally.product(product, || info.clone());
        tally.add(product, node, devices, free);
    });
    Inventory {
        gpus: tally.finish(),
        incomplete_pools: incomplete,
    }
}

#[cfg(test)]
mod tests;
