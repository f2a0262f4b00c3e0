//! GPUs published through Dynamic Resource Allocation (`resource.k8s.io/v1`): one device per
//! GPU in ResourceSlices (NVIDIA's driver: one pool per node, named after it), held by the
//! ResourceClaims whose `status.allocation` names them.
//!
//! Rules:
//! - A pool is `(driver, pool name)`. Only slices of its newest `pool.generation` count; if
//!   fewer of them are published than `pool.resourceSliceCount`, the pool is incomplete:
//!   none of its devices are counted (the scheduler allocates nothing from it either) and its
//!   name is reported in `incompletePools`. Nothing is guessed.
//! - A device is a GPU when it has a `productName` attribute and its `type` attribute, if
//!   any, is `gpu` (MIG devices are `mig`; they are not counted as whole GPUs). Attribute
//!   names may be bare (`productName`, in the driver's domain) or qualified
//!   (`gpu.nvidia.com/productName`).
//! - A device named by any claim's allocation is not free, whatever the claim's state.
//! - Devices count on their node only if it is schedulable and Ready; a slice for all nodes
//!   or a node selector counts as one pseudo-node per pool.
//! - Memory comes from capacity `memory` (a quantity, reported in MiB), the architecture
//!   lower-cased (`Hopper` → `hopper`, as GPU feature discovery writes it), the compute
//!   capability as `major.minor` (`9.0.0` → `9.0`).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::resource::v1::{Device, DeviceAttribute, ResourceClaim, ResourceSlice};

use super::ProductInfo;

/// One GPU device of a slice.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DraDevice {
    pub name: String,
    pub product: String,
    pub info: ProductInfo,
}

/// What the inventory needs of one ResourceSlice.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SliceGpus {
    pub driver: String,
    pub pool: String,
    pub generation: i64,
    pub slice_count: i64,
    /// The node its devices are on; `None` for all nodes or a node selector.
    pub node: Option<String>,
    pub devices: Vec<DraDevice>,
}

/// The GPUs of a cluster's ResourceSlices and which of them claims hold.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DraGpus {
    pub slices: Vec<SliceGpus>,
    /// (driver, pool, device) of every allocated device.
    pub allocated: BTreeSet<(String, String, String)>,
}

fn attribute<'a>(device: &'a Device, driver: &str, name: &str) -> Option<&'a DeviceAttribute> {
    let attributes = device.attributes.as_ref()?;
    attributes
        .get(name)
        .or_else(|| attributes.get(&format!("{driver}/{name}")))
}

/// `143771Mi` → 143771; other binary and decimal suffixes converted; `None` if unreadable.
pub fn mebibytes(quantity: &str) -> Option<i64> {
    let q = quantity.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor: f64 = match suffix {
        "" => 1.0 / 1_048_576.0,
        "Ki" => 1.0 / 1024.0,
        "Mi" => 1.0,
        "Gi" => 1024.0,
        "Ti" => 1_048_576.0,
        "k" => 1e3 / 1_048_576.0,
        "M" => 1e6 / 1_048_576.0,
        "G" => 1e9 / 1_048_576.0,
        "T" => 1e12 / 1_048_576.0,
        _ => return None,
    };
    let mib = (number * factor).round();
    (mib.is_finite() && (0.0..9e15).contains(&mib)).then_some(mib as i64)
}

/// `9.0.0` → `9.0`.
fn major_minor(version: &str) -> String {
    let mut parts = version.split('.');
    match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) => format!("{major}.{minor}"),
        _ => version.to_string(),
    }
}

impl SliceGpus {
    pub fn from_slice(slice: &ResourceSlice) -> SliceGpus {
        let spec = &slice.spec;
        let driver = spec.driver.clone();
        let devices = spec
            .devices
            .iter()
            .flatten()
            .filter_map(|d| {
                let product = attribute(d, &driver, "productName")?.string.clone()?;
                let kind = attribute(d, &driver, "type").and_then(|t| t.string.as_deref());
                if kind.is_some_and(|k| k != "gpu") {
                    return None;
                }
                Some(DraDevice {
                    name: d.name.clone(),
                    product,
                    info: ProductInfo {
                        memory_mib: d
                            .capacity
                            .as_ref()
                            .and_then(|c| c.get("memory"))
                            .and_then(|c| mebibytes(&c.value.0)),
                        architecture: attribute(d, &driver, "architecture")
                            .and_then(|a| a.string.as_deref())
                            .map(str::to_ascii_lowercase),
                        cuda_compute_capability: attribute(d, &driver, "cudaComputeCapability")
                            .and_then(|a| a.version.as_deref().or(a.string.as_deref()))
                            .map(major_minor),
                    },
                })
            })
            .collect();
        SliceGpus {
            driver,
            pool: spec.pool.name.clone(),
            generation: spec.pool.generation,
            slice_count: spec.pool.resource_slice_count,
            node: spec.node_name.clone().filter(|n| !n.is_empty()),
            devices,
        }
    }
}

impl DraGpus {
    pub fn from_objects<'a>(
        slices: impl IntoIterator<Item = &'a ResourceSlice>,
        claims: impl IntoIterator<Item = &'a ResourceClaim>,
    ) -> DraGpus {
        DraGpus {
            slices: slices.into_iter().map(SliceGpus::from_slice).collect(),
            allocated: claims.into_iter().flat_map(allocated_devices).collect(),
        }
    }

    /// Nodes with GPUs published through DRA: their allocatable is not counted.
    pub fn nodes(&self) -> BTreeSet<&str> {
        self.slices
            .iter()
            .filter(|s| !s.devices.is_empty())
            .filter_map(|s| s.node.as_deref())
            .collect()
    }

    /// Calls `add(product, node, info, devices, free)` per device of complete pools on usable
    /// nodes; the names of incomplete pools, sorted.
    pub fn tally_into(
        &self,
        usable: &BTreeSet<&str>,
        mut add: impl FnMut(&str, &str, &ProductInfo, i32, i32),
    ) -> Vec<String> {
        // Drivers that publish GPUs: only their pools matter.
        let drivers: BTreeSet<&str> = self
            .slices
            .iter()
            .filter(|s| !s.devices.is_empty())
            .map(|s| s.driver.as_str())
            .collect();
        let mut pools: BTreeMap<(&str, &str), Vec<&SliceGpus>> = BTreeMap::new();
        for s in self
            .slices
            .iter()
            .filter(|s| drivers.contains(s.driver.as_str()))
        {
            pools.entry((&s.driver, &s.pool)).or_default().push(s);
        }
        let mut incomplete = BTreeSet::new();
        for ((driver, pool), slices) in pools {
            let newest = slices.iter().map(|s| s.generation).max().unwrap_or(0);
            let current: Vec<&SliceGpus> = slices
                .into_iter()
                .filter(|s| s.generation == newest)
                .collect();
            let expected = current.iter().map(|s| s.slice_count).max().unwrap_or(0);
            if i64::try_from(current.len()).unwrap_or(i64::MAX) < expected {
                incomplete.insert(pool.to_string());
                continue;
            }
            for s in current {
                let pseudo;
                let node = match s.node.as_deref() {
                    Some(node) if usable.contains(node) => node,
                    Some(_) => continue,
                    None => {
                        pseudo = format!("pool:{driver}/{pool}");
                        pseudo.as_str()
                    }
                };
                for d in &s.devices {
                    let key = (driver.to_string(), pool.to_string(), d.name.clone());
                    let free = i32::from(!self.allocated.contains(&key));
                    add(&d.product, node, &d.info, 1, free);
                }
            }
        }
        incomplete.into_iter().collect()
    }
}

/// (driver, pool, device) of each device `claim` holds.
fn allocated_devices(claim: &ResourceClaim) -> Vec<(String, String, String)> {
    claim
        .status
        .as_ref()
        .and_then(|s| s.allocation.as_ref())
        .and_then(|a| a.devices.as_ref())
        .and_then(|d| d.results.as_ref())
        .into_iter()
        .flatten()
        .map(|r| (r.driver.clone(), r.pool.clone(), r.device.clone()))
        .collect()
}
