//! Property tests of placement through its public API, on random worlds of H200 (and H100) targets
//! described node by node, random tenants' deployments and random pass orders:
//!
//! 1. no GPU is ever double-booked: replaying everything the ledger holds on the explicit nodes,
//!    no node ever gives more GPUs than it had free, and every scheduled deployment got all of
//!    its replicas booked;
//! 2. Spread is house-monotone: one more replica never takes any away from a target;
//! 3. stability: a second pass over unchanged inputs, with the decided assignments as running,
//!    changes nothing;
//! 4. a replica of N GPUs is only ever assigned where a node had at least N free;
//! 5. quota: no tenant holds more than its nominal quota plus its borrowing limit, and a pool's
//!    tenants together never more than the pool's nominal quotas;
//! 6. a pass over only the deployments created since the last pass, with the quota of the others
//!    charged ([`Snapshot::charged`], as the hub's passes over what changed do), decides them
//!    and books exactly as a pass over everything would.
//!
//! The node-level check is written here, independently of the crate's histogram.

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use proptest::prelude::*;
use trellis_placement::{
    place, Charge, Decision, Deployment, FreeByNode, GpuClass, GpuPool, GpuProduct, HealthPolicy,
    Inventory, LabelSelector, Ledger, Outcome, ProductId, ProductInventory, Quota, Snapshot,
    Strategy as Spreading, Target, Tenant,
};

const NOW: i64 = 1_750_000_000;
const H200: &str = "NVIDIA H200";
const H100: &str = "NVIDIA H100 80GB HBM3";

#[derive(Debug, Clone)]
struct TargetSpec {
    /// Free GPUs per node, per product: H200 then H100.
    nodes: [Vec<u32>; 2],
    ready: bool,
    unschedulable: bool,
    region: u8,
}

#[derive(Debug, Clone)]
struct DeploymentSpec {
    gpus: u32,
    replicas: u32,
    spread: bool,
    max_targets: u32,
    created: i64,
    tenant: u8,
    class: u8,
    region: Option<u8>,
}

#[derive(Debug, Clone)]
struct QuotaSpec {
    nominal: u32,
    borrowing_limit: Option<u32>,
    lending_limit: Option<u32>,
}

fn target_spec() -> impl Strategy<Value = TargetSpec> {
    (
        prop::collection::vec(0u32..=8, 1..10),
        prop::collection::vec(0u32..=8, 0..4),
        prop::bool::weighted(0.9),
        prop::bool::weighted(0.1),
        0u8..2,
    )
        .prop_map(|(h200, h100, ready, unschedulable, region)| TargetSpec {
            nodes: [h200, h100],
            ready,
            unschedulable,
            region,
        })
}

fn deployment_spec() -> impl Strategy<Value = DeploymentSpec> {
    (
        prop::sample::select(vec![1u32, 2, 4, 8]),
        0u32..6,
        any::<bool>(),
        0u32..4,
        0i64..6,
        0u8..3,
        0u8..2,
        prop::option::weighted(0.2, 0u8..2),
    )
        .prop_map(
            |(gpus, replicas, spread, max_targets, created, tenant, class, region)| {
                DeploymentSpec {
                    gpus,
                    replicas,
                    spread,
                    max_targets,
                    created,
                    tenant,
                    class,
                    region,
                }
            },
        )
}

fn quota_spec() -> impl Strategy<Value = QuotaSpec> {
    (
        0u32..120,
        prop::option::of(0u32..60),
        prop::option::of(0u32..60),
    )
        .prop_map(|(nominal, borrowing_limit, lending_limit)| QuotaSpec {
            nominal,
            borrowing_limit,
            lending_limit,
        })
}

fn product(which: usize) -> GpuProduct {
    match which {
        0 => GpuProduct {
            id: ProductId::whole(H200),
            memory_mib: 143_771,
            architecture: Some("Hopper".into()),
        },
        _ => GpuProduct {
            id: ProductId::whole(H100),
            memory_mib: 81_559,
            architecture: Some("Hopper".into()),
        },
    }
}

fn target(i: usize, spec: &TargetSpec) -> Target {
    let products = spec
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, nodes)| !nodes.is_empty())
        .map(|(p, nodes)| ProductInventory {
            product: product(p),
            free_by_node: FreeByNode::from_nodes(nodes.iter().copied()).unwrap(),
        })
        .collect();
    Target {
        name: format!("t{i}"),
        labels: BTreeMap::from([("region".to_string(), format!("r{}", spec.region))]),
        taints: Vec::new(),
        ready: spec.ready,
        unschedulable: spec.unschedulable,
        last_heartbeat: NOW - 1,
        inventory: Some(Inventory {
            observed_at: NOW - 1,
            products,
            accounted: BTreeMap::new(),
        }),
    }
}

const TENANTS: [&str; 3] = ["root:acme", "root:beta", "root:gamma"];

fn pool(quotas: &[(QuotaSpec, QuotaSpec); 2]) -> GpuPool {
    GpuPool {
        name: "gpus".into(),
        target_selector: LabelSelector::everything(),
        classes: vec![
            GpuClass {
                name: "h200".into(),
                product: Some(H200.into()),
                ..GpuClass::default()
            },
            GpuClass {
                name: "hopper".into(),
                architecture: Some("Hopper".into()),
                min_memory_mib: Some(80_000),
                ..GpuClass::default()
            },
        ],
        // root:gamma is not a tenant.
        tenants: quotas
            .iter()
            .zip(TENANTS)
            .map(|((h200, hopper), workspace)| Tenant {
                workspace: workspace.into(),
                weight: 1,
                quotas: [("h200", h200), ("hopper", hopper)]
                    .into_iter()
                    .map(|(class, q)| Quota {
                        class: class.into(),
                        nominal_quota: q.nominal,
                        borrowing_limit: q.borrowing_limit,
                        lending_limit: q.lending_limit,
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn deployment(i: usize, spec: &DeploymentSpec) -> Deployment {
    Deployment {
        uid: format!("d{i:03}"),
        workspace: format!("{}:team", TENANTS[usize::from(spec.tenant)]),
        namespace: "default".into(),
        name: format!("model-{i}"),
        created: NOW - 1_000 + spec.created,
        pool: "gpus".into(),
        class: ["h200", "hopper"][usize::from(spec.class)].into(),
        gpus_per_replica: NonZeroU32::new(spec.gpus).unwrap(),
        replicas: spec.replicas,
        strategy: if spec.spread {
            Spreading::Spread
        } else {
            Spreading::BinPack
        },
        max_targets: NonZeroU32::new(spec.max_targets),
        target_selector: match spec.region {
            Some(r) => LabelSelector::labels([("region", format!("r{r}").as_str())]),
            None => LabelSelector::everything(),
        },
        tolerations: Vec::new(),
        existing: BTreeMap::new(),
        refused_by: Default::default(),
    }
}

fn world(
    targets: &[TargetSpec],
    quotas: &[(QuotaSpec, QuotaSpec); 2],
    deployments: &[DeploymentSpec],
) -> Snapshot {
    Snapshot {
        now: NOW,
        health: HealthPolicy::default(),
        pools: vec![pool(quotas)],
        targets: targets
            .iter()
            .enumerate()
            .map(|(i, t)| target(i, t))
            .collect(),
        deployments: deployments
            .iter()
            .enumerate()
            .map(|(i, d)| deployment(i, d))
            .collect(),
        charged: Vec::new(),
    }
}

fn feed_back(snap: &mut Snapshot, decisions: &[Decision]) {
    for d in &mut snap.deployments {
        if let Some(decision) = decisions.iter().find(|x| x.uid == d.uid) {
            d.existing = decision.assignments.clone();
        }
    }
}

/// Replays every hold on the explicit nodes, best fit, oldest booking first; fails if a replica
/// finds no node with its GPUs free, or was booked where no node ever had that many free.
fn check_nodes(specs: &[TargetSpec], ledger: &Ledger) -> Result<(), TestCaseError> {
    let mut nodes: Vec<[Vec<u32>; 2]> = specs.iter().map(|s| s.nodes.clone()).collect();
    for hold in ledger.holds() {
        let t: usize = hold.key.target[1..].parse().unwrap();
        let p = if hold.product.product == H200 { 0 } else { 1 };
        let n = hold.gpus_per_replica;
        // (4) only where a node had at least N free.
        prop_assert!(
            specs[t].nodes[p].iter().any(|&free| free >= n),
            "{n}-GPU replica booked on {} where no node had {n} free: {:?}",
            hold.key.target,
            specs[t].nodes[p]
        );
        for _ in 0..hold.replicas {
            // (1) a real node gives the GPUs: the one with the fewest free that has enough.
            let node = nodes[t][p]
                .iter_mut()
                .filter(|free| **free >= n)
                .min_by_key(|free| **free);
            match node {
                Some(free) => *free -= n,
                None => {
                    return Err(TestCaseError::fail(format!(
                        "double-booked: no node of {} has {n} GPUs left for {}",
                        hold.key.target, hold.key.deployment_uid
                    )))
                }
            }
        }
    }
    Ok(())
}

/// Every scheduled deployment got all its replicas, and the ledger holds exactly what was added.
fn check_booked(
    snap: &Snapshot,
    decisions: &[Decision],
    ledger: &Ledger,
) -> Result<(), TestCaseError> {
    let mut held: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for hold in ledger.holds() {
        *held
            .entry((&hold.key.deployment_uid, &hold.key.target))
            .or_default() += u64::from(hold.replicas);
    }
    for decision in decisions {
        let d = snap
            .deployments
            .iter()
            .find(|d| d.uid == decision.uid)
            .unwrap();
        if decision.outcome == Outcome::Scheduled {
            prop_assert_eq!(
                decision.replicas(),
                u64::from(d.replicas),
                "{}",
                decision.uid
            );
        }
        for (target, share) in &decision.assignments {
            prop_assert_eq!(
                held.get(&(decision.uid.as_str(), target.as_str())).copied(),
                Some(u64::from(share.replicas)),
                "{} on {}",
                decision.uid,
                target
            );
        }
    }
    let assigned: u64 = decisions.iter().map(Decision::replicas).sum();
    prop_assert_eq!(held.values().sum::<u64>(), assigned);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// (1), (4): random targets, deployments arriving over up to three passes before any syncer
    /// reports; nothing is double-booked and everything scheduled is booked.
    #[test]
    fn no_gpu_is_ever_double_booked(
        targets in prop::collection::vec(target_spec(), 1..6),
        quotas in [(quota_spec(), quota_spec()), (quota_spec(), quota_spec())],
        deployments in prop::collection::vec(deployment_spec(), 1..16),
        batches in prop::collection::vec(0usize..3, 16),
    ) {
        let full = world(&targets, &quotas, &deployments);
        let mut ledger = Ledger::new();
        let mut snap = Snapshot { deployments: Vec::new(), ..full.clone() };
        let mut decisions = Vec::new();
        for pass in 0..3 {
            snap.deployments.extend(
                full.deployments.iter().zip(&batches).filter(|(_, b)| **b == pass).map(|(d, _)| d.clone()),
            );
            decisions = place(&snap, &mut ledger);
            check_nodes(&targets, &ledger)?;
            feed_back(&mut snap, &decisions);
        }
        check_booked(&snap, &decisions, &ledger)?;
        prop_assert_eq!(ledger.overcommit(&snap.targets), 0);
    }

    /// (2): adding a replica to a Spread deployment never takes one away from a target.
    #[test]
    fn spread_is_house_monotone(
        targets in prop::collection::vec(target_spec(), 1..8),
        spec in deployment_spec(),
        replicas in 1u32..20,
    ) {
        let quota = QuotaSpec { nominal: 10_000, borrowing_limit: None, lending_limit: None };
        let quotas = [(quota.clone(), quota.clone()), (quota.clone(), quota)];
        let spec = DeploymentSpec { spread: true, tenant: 0, replicas, ..spec };
        let bigger = DeploymentSpec { replicas: replicas + 1, ..spec.clone() };
        let small = place(&world(&targets, &quotas, &[spec]), &mut Ledger::new());
        let large = place(&world(&targets, &quotas, &[bigger]), &mut Ledger::new());
        if large[0].outcome == Outcome::Scheduled {
            prop_assert_eq!(small[0].outcome, Outcome::Scheduled);
            for (target, share) in &small[0].assignments {
                let after = large[0].assignments.get(target).map_or(0, |s| s.replicas);
                prop_assert!(after >= share.replicas, "{} lost replicas: {:?} → {:?}", target, small[0].assignments, large[0].assignments);
            }
        }
    }

    /// (3): a second pass over unchanged inputs, with what was decided now running, changes
    /// nothing: same assignments, no booking, the ledger untouched.
    #[test]
    fn placement_is_stable(
        targets in prop::collection::vec(target_spec(), 1..6),
        quotas in [(quota_spec(), quota_spec()), (quota_spec(), quota_spec())],
        deployments in prop::collection::vec(deployment_spec(), 1..16),
    ) {
        let mut snap = world(&targets, &quotas, &deployments);
        let mut ledger = Ledger::new();
        let first = place(&snap, &mut ledger);
        feed_back(&mut snap, &first);
        let held = ledger.clone();
        let second = place(&snap, &mut ledger);
        prop_assert_eq!(&ledger, &held);
        for (a, b) in first.iter().zip(&second) {
            prop_assert_eq!(&a.uid, &b.uid);
            prop_assert_eq!(&a.assignments, &b.assignments, "{}", a.uid);
            prop_assert!(b.bookings.is_empty(), "{} booked again: {:?}", b.uid, b.bookings);
            if a.outcome == Outcome::Scheduled {
                prop_assert_eq!(b.outcome, Outcome::Scheduled, "{}: {}", b.uid, b.message);
            }
        }
    }

    /// (5): what tenants hold stays within their quotas.
    #[test]
    fn quota_is_never_exceeded(
        targets in prop::collection::vec(target_spec(), 1..6),
        quotas in [(quota_spec(), quota_spec()), (quota_spec(), quota_spec())],
        deployments in prop::collection::vec(deployment_spec(), 1..16),
    ) {
        let snap = world(&targets, &quotas, &deployments);
        let decisions = place(&snap, &mut Ledger::new());
        let class_of = |uid: &str| {
            snap.deployments.iter().find(|x| x.uid == uid).map(|x| x.class.as_str())
        };
        for (class, pick) in [("h200", 0usize), ("hopper", 1)] {
            let mut total = 0;
            for (t, (h200, hopper)) in quotas.iter().enumerate() {
                let q = [h200, hopper][pick];
                let used: u64 = decisions
                    .iter()
                    .filter(|d| d.tenant.as_deref() == Some(TENANTS[t]))
                    .filter(|d| class_of(&d.uid) == Some(class))
                    .map(|d| d.quota_gpus)
                    .sum();
                if let Some(limit) = q.borrowing_limit {
                    prop_assert!(
                        used <= u64::from(q.nominal + limit),
                        "{} {}: {} > {} + {}", TENANTS[t], class, used, q.nominal, limit
                    );
                }
                total += used;
            }
            let nominal: u64 = quotas.iter().map(|(a, b)| u64::from([a, b][pick].nominal)).sum();
            prop_assert!(total <= nominal, "{}: {} > {}", class, total, nominal);
        }
        for decision in &decisions {
            let spec = &deployments[decision.uid[1..].parse::<usize>().unwrap()];
            if spec.tenant == 2 {
                prop_assert_eq!(decision.outcome, Outcome::NotAllowed);
            }
        }
    }

    /// (6): the deployments created since the last pass, decided alone with the quota of the
    /// others charged, get the decisions and bookings a pass over everything gives them.
    #[test]
    fn a_pass_over_new_deployments_alone_decides_as_a_whole_pass(
        targets in prop::collection::vec(target_spec(), 1..6),
        quotas in [(quota_spec(), quota_spec()), (quota_spec(), quota_spec())],
        older in prop::collection::vec(deployment_spec(), 0..12),
        newer in prop::collection::vec(deployment_spec(), 1..6),
    ) {
        // The new ones are younger than every deployment already decided.
        let newer: Vec<DeploymentSpec> = newer
            .into_iter()
            .map(|d| DeploymentSpec { created: d.created + 10_000, ..d })
            .collect();
        let split = older.len();
        let full = world(&targets, &quotas, &[older, newer].concat());
        let mut settled = Snapshot { deployments: full.deployments[..split].to_vec(), ..full.clone() };
        let mut ledger = Ledger::new();
        let first = place(&settled, &mut ledger);
        feed_back(&mut settled, &first);

        let mut whole = settled.clone();
        whole.deployments.extend(full.deployments[split..].iter().cloned());
        let mut whole_ledger = ledger.clone();
        let whole_decisions = place(&whole, &mut whole_ledger);

        let charged = settled
            .deployments
            .iter()
            .map(|d| Charge {
                pool: d.pool.clone(),
                class: d.class.clone(),
                workspace: d.workspace.clone(),
                gpus: d.existing_replicas().min(u64::from(d.replicas)) * u64::from(d.gpus_per_replica.get()),
            })
            .collect();
        let partial = Snapshot { deployments: full.deployments[split..].to_vec(), charged, ..full.clone() };
        let mut partial_ledger = ledger.clone();
        let partial_decisions = place(&partial, &mut partial_ledger);

        prop_assert_eq!(&partial_ledger, &whole_ledger);
        prop_assert_eq!(partial_decisions.len(), full.deployments.len() - split);
        for decision in &partial_decisions {
            let same = whole_decisions.iter().find(|d| d.uid == decision.uid);
            prop_assert_eq!(Some(decision), same);
        }
    }
}
