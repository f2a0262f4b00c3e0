//! Benchmark of one placement pass, against the baseline it replaces, measured in the same run.
//!
//! Run with `cargo bench -p trellis-placement`. Results are machine-readable lines
//! `bench: <name> <value> <unit>`; lines starting with `#` are commentary.
//!
//! The world: 100 targets of 50 nodes with 8 H200 GPUs each (`NVIDIA H200`, 143771 MiB, from
//! `shared/fixtures/gpu/`), free GPUs per node drawn from a fixed seed, a few targets not ready or
//! tainted, four regions; one pool with ten tenants; 1,000 deployments with 1/2/4/8-GPU replicas,
//! 1–4 replicas, BinPack and Spread, some with `maxTargets` or a region selector.
//!
//! - `place_1000_on_100_ms`: the median of [`place`] over the whole world, from an empty ledger
//!   (the target is ≤ 100 ms).
//! - `place_baseline_aggregate_ms`: the same deployments placed with the cluster-wide-sum
//!   estimator (free GPUs ÷ GPUs per replica per target, as Karmada's general estimator does),
//!   same filters and order; `place_vs_aggregate_ratio` is the first over the second.
//! - `gpu_overcommit`: GPUs the final ledger holds that the reported inventories cannot hold node
//!   by node (must be 0); `aggregate_unplaceable_replicas`: replicas the baseline placed that fit
//!   on no node, which is what node-level counting avoids.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Instant;

use trellis_placement::{
    first_untolerated, place, Deployment, FreeByNode, GpuClass, GpuPool, GpuProduct, HealthPolicy,
    Inventory, LabelSelector, Ledger, Outcome, ProductId, ProductInventory, Quota, Snapshot,
    Strategy, Taint, TaintEffect, Target, Tenant,
};

const NOW: i64 = 1_750_000_000;
const TARGETS: usize = 100;
const NODES: usize = 50;
const DEPLOYMENTS: usize = 1_000;
const RUNS: usize = 21;

/// xorshift64*: a fixed, dependency-free sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn world() -> Snapshot {
    let mut rng = Rng(0x007e_1115_9ac0_ffee);
    let h200 = GpuProduct {
        id: ProductId::whole("NVIDIA H200"),
        memory_mib: 143_771,
        architecture: Some("Hopper".into()),
    };
    let targets = (0..TARGETS)
        .map(|i| {
            // Busy clusters: a third of the nodes full, the rest with 1–8 GPUs free.
            let nodes = (0..NODES).map(|_| match rng.below(3) {
                0 => 0,
                _ => 1 + rng.below(8) as u32,
            });
            let mut taints = Vec::new();
            if i % 33 == 7 {
                taints.push(Taint::new("dedicated", "beta", TaintEffect::NoSchedule));
            }
            Target {
                name: format!("gpu-{i:03}"),
                labels: BTreeMap::from([
                    ("region".to_string(), format!("r{}", i % 4)),
                    (
                        "nvidia.com/gpu.product".to_string(),
                        "NVIDIA-H200".to_string(),
                    ),
                ]),
                taints,
                ready: i % 20 != 13,
                unschedulable: false,
                last_heartbeat: NOW - 3,
                inventory: Some(Inventory {
                    observed_at: NOW - 5,
                    products: vec![ProductInventory {
                        product: h200.clone(),
                        free_by_node: FreeByNode::from_nodes(nodes).unwrap_or_default(),
                    }],
                    accounted: BTreeMap::new(),
                }),
            }
        })
        .collect();
    let pool = GpuPool {
        name: "h200".into(),
        target_selector: LabelSelector::everything(),
        classes: vec![GpuClass {
            name: "h200".into(),
            product: Some("NVIDIA H200".into()),
            ..GpuClass::default()
        }],
        tenants: (0..10)
            .map(|t| Tenant {
                workspace: format!("root:tenant-{t}"),
                weight: 1,
                quotas: vec![Quota {
                    class: "h200".into(),
                    nominal_quota: 1_200,
                    borrowing_limit: Some(400),
                    lending_limit: None,
                }],
            })
            .collect(),
    };
    let deployments = (0..DEPLOYMENTS)
        .map(|i| {
            let gpus = [1, 2, 4, 8][rng.below(4) as usize];
            Deployment {
                uid: format!("uid-{i:04}"),
                workspace: format!("root:tenant-{}:ml", rng.below(10)),
                namespace: "default".into(),
                name: format!("model-{i}"),
                created: NOW - 100_000 + i as i64,
                pool: "h200".into(),
                class: "h200".into(),
                gpus_per_replica: NonZeroU32::new(gpus).unwrap_or(NonZeroU32::MIN),
                replicas: 1 + rng.below(4) as u32,
                strategy: if i % 2 == 0 {
                    Strategy::BinPack
                } else {
                    Strategy::Spread
                },
                max_targets: NonZeroU32::new([0, 0, 2, 3][rng.below(4) as usize]),
                target_selector: if i % 5 == 0 {
                    LabelSelector::labels([("region", format!("r{}", i % 4).as_str())])
                } else {
                    LabelSelector::everything()
                },
                tolerations: Vec::new(),
                existing: BTreeMap::new(),
                refused_by: Default::default(),
            }
        })
        .collect();
    Snapshot {
        now: NOW,
        health: HealthPolicy::default(),
        pools: vec![pool],
        targets,
        deployments,
        charged: Vec::new(),
    }
}

/// The baseline: the same pass with per-target capacity `Σ free ÷ gpus`. Returns what it placed:
/// per target, the GPUs-per-replica of each replica, in order.
fn place_aggregate(snap: &Snapshot) -> Vec<Vec<u32>> {
    let policy = snap.health;
    let mut free: Vec<u64> = snap
        .targets
        .iter()
        .map(|t| {
            t.inventory.as_ref().map_or(0, |inv| {
                inv.products
                    .iter()
                    .map(|p| p.free_by_node.free_gpus())
                    .sum()
            })
        })
        .collect();
    let mut placed: Vec<Vec<u32>> = vec![Vec::new(); snap.targets.len()];
    let mut order: Vec<&Deployment> = snap.deployments.iter().collect();
    order.sort_by(|a, b| trellis_placement::creation_order(a, b));
    for d in order {
        let gpus = d.gpus_per_replica.get();
        let mut cands: Vec<(usize, u64)> = snap
            .targets
            .iter()
            .enumerate()
            .filter(|(_, t)| {
                t.ready
                    && snap.now - t.last_heartbeat <= policy.heartbeat_timeout_s
                    && t.inventory.is_some()
                    && !t.unschedulable
                    && first_untolerated(&t.taints, &d.tolerations).is_none()
                    && d.target_selector.matches(&t.labels)
            })
            .map(|(i, _)| (i, free[i] / u64::from(gpus)))
            .filter(|(_, cap)| *cap > 0)
            .collect();
        cands.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        cands.truncate(d.max_targets.map_or(usize::MAX, |m| m.get() as usize));
        let want = u64::from(d.replicas);
        if cands.iter().map(|c| c.1).sum::<u64>() < want {
            continue;
        }
        let mut adds = vec![0u64; cands.len()];
        let mut left = want;
        match d.strategy {
            Strategy::BinPack => {
                for (k, (_, cap)) in cands.iter().enumerate() {
                    adds[k] = (*cap).min(left);
                    left -= adds[k];
                }
            }
            Strategy::Spread => {
                let total: u64 = cands.iter().map(|c| c.1).sum();
                for (k, (_, cap)) in cands.iter().enumerate() {
                    adds[k] = (want * cap / total).min(*cap);
                    left -= adds[k];
                }
                for (k, (_, cap)) in cands.iter().enumerate() {
                    let more = (cap - adds[k]).min(left);
                    adds[k] += more;
                    left -= more;
                }
            }
        }
        for (k, (t, _)) in cands.iter().enumerate() {
            free[*t] -= adds[k] * u64::from(gpus);
            placed[*t].extend(std::iter::repeat_n(gpus, adds[k] as usize));
        }
    }
    placed
}

fn median_ms(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let snap = world();
    let nodes: usize = snap.targets.len() * NODES;
    let free: u64 = snap
        .targets
        .iter()
        .filter_map(|t| t.inventory.as_ref())
        .map(|inv| inv.products[0].free_by_node.free_gpus())
        .sum();
    println!(
        "# {} targets, {nodes} H200 nodes, {free} GPUs free; {} deployments",
        snap.targets.len(),
        snap.deployments.len()
    );

    let mut decisions = Vec::new();
    let mut ledger = Ledger::new();
    let mut samples = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        ledger = Ledger::new();
        let start = Instant::now();
        decisions = black_box(place(black_box(&snap), &mut ledger));
        samples.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let place_ms = median_ms(samples);

    let mut placed = Vec::new();
    let mut samples = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        placed = black_box(place_aggregate(black_box(&snap)));
        samples.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let baseline_ms = median_ms(samples);

    let mut by_outcome: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &decisions {
        *by_outcome.entry(d.outcome.reason()).or_default() += 1;
    }
    let scheduled_replicas: u64 = decisions
        .iter()
        .filter(|d| d.outcome == Outcome::Scheduled)
        .map(|d| d.replicas())
        .sum();
    println!("# outcomes: {by_outcome:?}; {scheduled_replicas} replicas placed");

    // What the baseline placed, replayed node by node (best fit, in its order).
    let mut unplaceable = 0u64;
    let mut baseline_replicas = 0u64;
    for (t, replicas) in placed.iter().enumerate() {
        let Some(inventory) = snap.targets[t].inventory.as_ref() else {
            continue;
        };
        let mut histogram = inventory.products[0].free_by_node.clone();
        for &gpus in replicas {
            baseline_replicas += 1;
            if histogram.take(gpus).is_none() {
                unplaceable += 1;
            }
        }
    }
    println!("# baseline placed {baseline_replicas} replicas");

    println!("bench: place_1000_on_100_ms {place_ms:.3} ms");
    println!("bench: place_baseline_aggregate_ms {baseline_ms:.3} ms");
    println!(
        "bench: place_vs_aggregate_ratio {:.2} x",
        place_ms / baseline_ms
    );
    println!(
        "bench: gpu_overcommit {} gpus",
        ledger.overcommit(&snap.targets)
    );
    println!("bench: aggregate_unplaceable_replicas {unplaceable} replicas");
}
