//! A GPUPool's status from the pass's snapshot and decisions: per class, the devices on the
//! pool's targets and those assigned through the pool, in total and per target; per tenant
//! entry, the devices its deployments hold of each class and how many of them are borrowed.
//!
//! Rules:
//! - Capacity counts `totalDevices` of every product the class matches, on the targets the
//!   pool selects that are Ready and not cordoned (a GPU counts in every class it matches).
//! - Allocation counts the replicas of the pass's decisions for deployments of this pool and
//!   class, times their GPUs per replica, on whatever target they are (also a lost one whose
//!   replicas could not move: they still hold their GPUs). A target is listed when it has
//!   capacity or allocation.
//! - A tenant's `reserved` is the quota its deployments hold after the pass (the decisions'
//!   `quota_gpus`, charged to the tenant entry the engine chose); `borrowed` is the part
//!   beyond that entry's nominal quota of the class. Only classes and tenants with use are
//!   listed.
//! - `Ready` is False with `NoMatchingTargets` when the pool selects no target.

use std::collections::BTreeMap;

use trellis_apis::compute::gpu_pool::{conditions, reasons};
use trellis_apis::compute::{
    GPUClassStatus, GPUClassTargetStatus, GPUPool, GPUPoolStatus, GPUPoolTenantStatus,
    GPUTenantClassUsage,
};
use trellis_placement::{Decision, GpuPool, Target};

use super::conditions::{condition, Wanted};
use super::keys::{pool_key, split_key};
use super::snapshot::FleetSnapshot;

fn count(n: u64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The status of `pool`, read from provider workspace `workspace`, after the pass that built
/// `fleet` and decided `decisions` (the engine's and the refused ones alike), at `now`.
pub fn pool_status(
    workspace: &str,
    pool: &GPUPool,
    fleet: &FleetSnapshot,
    decisions: &[Decision],
    now: i64,
) -> GPUPoolStatus {
    let key = pool_key(workspace, pool.metadata.name.as_deref().unwrap_or_default());
    let generation = pool.metadata.generation;
    let previous = pool.status.as_ref().map_or(&[][..], |s| &s.conditions[..]);
    let Some(engine_pool) = fleet.snapshot.pools.iter().find(|p| p.name == key) else {
        return GPUPoolStatus {
            observed_generation: generation,
            ..GPUPoolStatus::default()
        };
    };
    let selected: Vec<&Target> = fleet
        .snapshot
        .targets
        .iter()
        .filter(|t| engine_pool.target_selector.matches(&t.labels))
        .collect();
    let name_of = |target_key: &str| match split_key(target_key) {
        Some((ws, name)) if ws == workspace => name.to_string(),
        _ => target_key.to_string(),
    };

    // (class, target key) → devices assigned; (tenant, class) → quota held.
    let mut allocated: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let mut reserved: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for decision in decisions {
        let Some(d) = fleet.deployment(&decision.uid).filter(|d| d.pool == key) else {
            continue;
        };
        for (target, share) in &decision.assignments {
            *allocated.entry((&d.class, target)).or_default() +=
                u64::from(share.replicas) * u64::from(d.gpus_per_replica.get());
        }
        if let Some(tenant) = &decision.tenant {
            *reserved.entry((tenant, &d.class)).or_default() += decision.quota_gpus;
        }
    }

    let classes = engine_pool
        .classes
        .iter()
        .map(|class| {
            let mut per_target: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
            for t in selected.iter().filter(|t| t.ready && !t.unschedulable) {
                let capacity: u64 = fleet
                    .totals
                    .get(&t.name)
                    .into_iter()
                    .flatten()
                    .filter(|(product, _)| class.matches(product))
                    .map(|(_, devices)| devices)
                    .sum();
                per_target.entry(&t.name).or_default().0 += capacity;
            }
            for ((_, target), gpus) in allocated.iter().filter(|((c, _), _)| *c == class.name) {
                per_target.entry(target).or_default().1 += gpus;
            }
            per_target.retain(|_, (capacity, used)| *capacity > 0 || *used > 0);
            GPUClassStatus {
                name: class.name.clone(),
                capacity: count(per_target.values().map(|(c, _)| c).sum()),
                allocated: count(per_target.values().map(|(_, a)| a).sum()),
                targets: per_target
                    .iter()
                    .map(|(target, (capacity, used))| GPUClassTargetStatus {
                        target: name_of(target),
                        capacity: count(*capacity),
                        allocated: count(*used),
                    })
                    .collect(),
            }
        })
        .collect();

    let tenants = tenant_usage(engine_pool, &reserved);

    let ready = if selected.is_empty() {
        Wanted::new(
            conditions::READY,
            false,
            reasons::NO_MATCHING_TARGETS,
            format!("the target selector matches no SyncTarget in {workspace}"),
        )
    } else {
        Wanted::new(
            conditions::READY,
            true,
            reasons::TARGETS_SELECTED,
            format!("{} SyncTarget(s) selected", selected.len()),
        )
    };
    GPUPoolStatus {
        observed_generation: generation,
        conditions: vec![condition(previous, ready, generation, now)],
        classes,
        tenants,
    }
}

fn tenant_usage(
    pool: &GpuPool,
    reserved: &BTreeMap<(&str, &str), u64>,
) -> Vec<GPUPoolTenantStatus> {
    pool.tenants
        .iter()
        .filter_map(|tenant| {
            let classes: Vec<GPUTenantClassUsage> = pool
                .classes
                .iter()
                .filter_map(|class| {
                    let held = *reserved.get(&(tenant.workspace.as_str(), class.name.as_str()))?;
                    let nominal = tenant
                        .quotas
                        .iter()
                        .find(|q| q.class == class.name)
                        .map_or(0, |q| u64::from(q.nominal_quota));
                    (held > 0).then(|| GPUTenantClassUsage {
                        class: class.name.clone(),
                        reserved: count(held),
                        borrowed: count(held.saturating_sub(nominal)),
                    })
                })
                .collect();
            (!classes.is_empty()).then(|| GPUPoolTenantStatus {
                workspace: tenant.workspace.clone(),
                classes,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use trellis_apis::compute::{GPUClass, GPUClassMatch, GPUPoolTenant, GPUQuota};
    use trellis_placement::{place, Ledger, Outcome};

    use super::*;
    use crate::fleet::fixtures::*;
    use crate::fleet::snapshot::{build_snapshot, FleetObjects};

    #[test]
    fn capacity_allocation_and_borrowing_per_class_target_and_tenant() {
        let mut pool = h200_pool(16);
        pool.spec.classes.push(GPUClass {
            name: "large-memory".into(),
            r#match: GPUClassMatch {
                min_memory_mib: Some(141_000),
                architecture: Some("hopper".into()),
                ..GPUClassMatch::default()
            },
        });
        pool.spec.tenants.push(GPUPoolTenant {
            workspace: "root:beta".into(),
            weight: 1,
            quotas: vec![GPUQuota {
                class: "h200".into(),
                nominal_quota: 32,
                ..GPUQuota::default()
            }],
        });
        let eu1 = h200_target("eu-1", &[(8, 3)]);
        let mut cordoned = h200_target("eu-2", &[(8, 2)]);
        cordoned.spec.unschedulable = true;
        // Three replicas of 8: 24 GPUs for a tenant with 16, 8 borrowed from root:beta.
        let md = llama(3, 8);
        let targets = [(PROVIDER, &eu1), (PROVIDER, &cordoned)];
        let pools = [(PROVIDER, &pool)];
        let deployments = [(TENANT, &md)];
        let fleet = build_snapshot(
            &FleetObjects {
                targets: &targets,
                pools: &pools,
                deployments: &deployments,
                placements: &[],
            },
            NOW,
        );
        let decisions = place(&fleet.snapshot, &mut Ledger::new());
        assert_eq!(decisions[0].outcome, Outcome::Scheduled);
        let status = pool_status(PROVIDER, &pool, &fleet, &decisions, NOW);

        assert_eq!(status.observed_generation, Some(1));
        assert_eq!(status.conditions[0].reason, "TargetsSelected");
        let h200 = &status.classes[0];
        assert_eq!(
            (h200.name.as_str(), h200.capacity, h200.allocated),
            ("h200", 24, 24)
        );
        assert_eq!(
            h200.targets,
            vec![GPUClassTargetStatus {
                target: "eu-1".into(),
                capacity: 24,
                allocated: 24,
            }]
        );
        // The same GPUs count in every class they match; nothing was allocated through it.
        let large = &status.classes[1];
        assert_eq!((large.capacity, large.allocated), (24, 0));
        assert_eq!(
            status.tenants,
            vec![GPUPoolTenantStatus {
                workspace: "root:acme".into(),
                classes: vec![GPUTenantClassUsage {
                    class: "h200".into(),
                    reserved: 24,
                    borrowed: 8,
                }],
            }]
        );
    }

    #[test]
    fn a_pool_selecting_nothing_is_not_ready() {
        let pool = h200_pool(16);
        let pools = [(PROVIDER, &pool)];
        let fleet = build_snapshot(
            &FleetObjects {
                pools: &pools,
                ..FleetObjects::default()
            },
            NOW,
        );
        let status = pool_status(PROVIDER, &pool, &fleet, &[], NOW);
        assert_eq!(status.conditions[0].status, "False");
        assert_eq!(status.conditions[0].reason, "NoMatchingTargets");
        assert!(status.tenants.is_empty());
        assert_eq!(status.classes[0].capacity, 0);
    }
}
