//! A Node's GPUs in device-plugin mode, read from what NVIDIA's device plugin and GPU
//! feature discovery (GFD) publish: allocatable `nvidia.com/gpu` and `nvidia.com/mig-<profile>`,
//! and the labels `nvidia.com/gpu.product`, `.memory` (MiB), `.family`, `.compute.major` and
//! `.minor`, `.count` and `.replicas`.
//!
//! Time-slicing (`nvidia.com/gpu.replicas` > 1) advertises each physical GPU that many times;
//! a replica asking for N GPUs would share them, so devices and free devices are reported as
//! whole physical GPUs: allocatable and what pods hold divided by the replicas, rounded down.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;

use super::ProductInfo;

pub const GPU_RESOURCE: &str = "nvidia.com/gpu";
pub const MIG_RESOURCE_PREFIX: &str = "nvidia.com/mig-";
pub const PRODUCT_LABEL: &str = "nvidia.com/gpu.product";
pub const MEMORY_LABEL: &str = "nvidia.com/gpu.memory";
pub const FAMILY_LABEL: &str = "nvidia.com/gpu.family";
pub const COUNT_LABEL: &str = "nvidia.com/gpu.count";
pub const REPLICAS_LABEL: &str = "nvidia.com/gpu.replicas";
pub const COMPUTE_MAJOR_LABEL: &str = "nvidia.com/gpu.compute.major";
pub const COMPUTE_MINOR_LABEL: &str = "nvidia.com/gpu.compute.minor";

/// What the inventory needs of one Node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeGpus {
    pub name: String,
    /// Schedulable (not cordoned) and `Ready`.
    pub usable: bool,
    pub product: Option<String>,
    pub memory_mib: Option<i64>,
    pub family: Option<String>,
    pub compute: Option<String>,
    /// Allocatable `nvidia.com/gpu` (time-sliced replicas included).
    pub gpus: i64,
    /// Time-slicing replicas per physical GPU, at least 1.
    pub replicas: i64,
    /// Allocatable MIG devices by profile (`1g.10gb`).
    pub mig: BTreeMap<String, i64>,
}

/// A whole-number quantity (extended resources are integers); 0 for anything else.
pub fn count(quantity: &str) -> i64 {
    quantity.trim().parse::<i64>().unwrap_or(0).max(0)
}

impl NodeGpus {
    pub fn from_node(node: &Node) -> NodeGpus {
        let labels = node.metadata.labels.as_ref();
        let label = |key: &str| labels.and_then(|l| l.get(key)).cloned();
        let ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let cordoned = node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        let mut gpus = 0;
        let mut mig = BTreeMap::new();
        for (resource, quantity) in node
            .status
            .as_ref()
            .and_then(|s| s.allocatable.as_ref())
            .into_iter()
            .flatten()
        {
            if resource == GPU_RESOURCE {
                gpus = count(&quantity.0);
            } else if let Some(profile) = resource.strip_prefix(MIG_RESOURCE_PREFIX) {
                let n = count(&quantity.0);
                if n > 0 {
                    mig.insert(profile.to_string(), n);
                }
            }
        }
        let compute = match (label(COMPUTE_MAJOR_LABEL), label(COMPUTE_MINOR_LABEL)) {
            (Some(major), Some(minor)) => Some(format!("{major}.{minor}")),
            _ => None,
        };
        NodeGpus {
            name: node.metadata.name.clone().unwrap_or_default(),
            usable: ready && !cordoned,
            product: label(PRODUCT_LABEL).filter(|p| !p.is_empty()),
            memory_mib: label(MEMORY_LABEL).and_then(|m| m.parse().ok()),
            family: label(FAMILY_LABEL),
            compute,
            gpus,
            replicas: label(REPLICAS_LABEL)
                .and_then(|r| r.parse::<i64>().ok())
                .unwrap_or(1)
                .max(1),
            mig,
        }
    }

    pub fn info(&self) -> ProductInfo {
        ProductInfo {
            memory_mib: self.memory_mib,
            architecture: self.family.clone(),
            cuda_compute_capability: self.compute.clone(),
        }
    }

    /// Physical devices and free physical devices, given the `nvidia.com/gpu` pods hold.
    pub fn devices_and_free(&self, held: i64) -> (i32, i32) {
        let devices = self.gpus / self.replicas;
        let free = (self.gpus - held).max(0) / self.replicas;
        (
            i32::try_from(devices).unwrap_or(i32::MAX),
            i32::try_from(free.min(devices)).unwrap_or(i32::MAX),
        )
    }
}
