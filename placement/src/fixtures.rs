//! Test data for the passes' unit tests, from the real readings in `shared/fixtures/gpu/`: H200
//! nodes (`NVIDIA H200`, 143771 MiB, Hopper) with 8 GPUs each, grouped in healthy targets, one pool
//! with an `h200` class, and deployments of the `root:acme` / `root:beta` tenants.

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use crate::deployment::{Deployment, Share, Strategy};
use crate::inventory::{FreeByNode, GpuProduct, Inventory, ProductId, ProductInventory};
use crate::place::Snapshot;
use crate::pool::{GpuClass, GpuPool, Quota, Tenant};
use crate::selector::LabelSelector;
use crate::target::{HealthPolicy, Target};

pub const NOW: i64 = 1_750_000_000;
pub const H200: &str = "NVIDIA H200";

pub fn h200_id() -> ProductId {
    ProductId::whole(H200)
}

pub fn h200() -> GpuProduct {
    GpuProduct {
        id: h200_id(),
        memory_mib: 143_771,
        architecture: Some("Hopper".into()),
    }
}

/// A healthy target whose H200 nodes have these `(free GPUs, nodes)` buckets.
pub fn target(name: &str, buckets: &[(u32, u32)]) -> Target {
    Target {
        name: name.into(),
        labels: BTreeMap::from([
            ("region".to_string(), "eu-west".to_string()),
            (
                "nvidia.com/gpu.product".to_string(),
                "NVIDIA-H200".to_string(),
            ),
        ]),
        ready: true,
        last_heartbeat: NOW - 5,
        inventory: Some(Inventory {
            observed_at: NOW - 10,
            products: vec![ProductInventory {
                product: h200(),
                free_by_node: FreeByNode::from_buckets(buckets.iter().copied()).unwrap(),
            }],
            accounted: BTreeMap::new(),
        }),
        ..Target::default()
    }
}

/// Pool `h200-eu`, class `h200`, tenants with a nominal quota each (no limits).
pub fn pool(tenants: &[(&str, u32)]) -> GpuPool {
    GpuPool {
        name: "h200-eu".into(),
        target_selector: LabelSelector::everything(),
        classes: vec![GpuClass {
            name: "h200".into(),
            product: Some(H200.into()),
            ..GpuClass::default()
        }],
        tenants: tenants
            .iter()
            .map(|(workspace, nominal)| Tenant {
                workspace: workspace.to_string(),
                weight: 1,
                quotas: vec![Quota {
                    class: "h200".into(),
                    nominal_quota: *nominal,
                    borrowing_limit: None,
                    lending_limit: None,
                }],
            })
            .collect(),
    }
}

/// A deployment of `root:acme` created `created` seconds after a fixed origin.
pub fn deployment(
    uid: &str,
    gpus: u32,
    replicas: u32,
    strategy: Strategy,
    created: i64,
) -> Deployment {
    Deployment {
        uid: uid.into(),
        workspace: "root:acme:ml".into(),
        namespace: "default".into(),
        name: format!("model-{uid}"),
        created: NOW - 10_000 + created,
        pool: "h200-eu".into(),
        class: "h200".into(),
        gpus_per_replica: NonZeroU32::new(gpus).unwrap(),
        replicas,
        strategy,
        max_targets: None,
        target_selector: LabelSelector::everything(),
        tolerations: Vec::new(),
        existing: BTreeMap::new(),
        refused_by: Default::default(),
    }
}

pub fn snapshot(targets: Vec<Target>, deployments: Vec<Deployment>) -> Snapshot {
    Snapshot {
        now: NOW,
        health: HealthPolicy::default(),
        pools: vec![pool(&[("root:acme", 1_000), ("root:beta", 1_000)])],
        targets,
        deployments,
        charged: Vec::new(),
    }
}

/// `[(target, replicas)]` as assignments of H200s.
pub fn shares(pairs: &[(&str, u32)]) -> BTreeMap<String, Share> {
    pairs
        .iter()
        .map(|(t, r)| {
            (
                t.to_string(),
                Share {
                    product: h200_id(),
                    replicas: *r,
                },
            )
        })
        .collect()
}

/// `(target, replicas)` of assignments, for compact assertions.
pub fn counts(assignments: &BTreeMap<String, Share>) -> Vec<(&str, u32)> {
    assignments
        .iter()
        .map(|(t, s)| (t.as_str(), s.replicas))
        .collect()
}
