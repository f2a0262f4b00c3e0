//! Which targets may take a deployment's new replicas, and which may keep its running ones.
//!
//! New replicas ([`admit_new`]) need a target that is Ready, heartbeating within the policy, with
//! a fresh inventory, not cordoned, whose `NoSchedule`/`NoExecute` taints are all tolerated,
//! selected by the pool's and the deployment's selectors, and offering a product of the class. A
//! target without a fresh inventory is never assumed to have room: capacity unknown is capacity
//! zero (Karmada's issue 6861 assumed the opposite).
//!
//! Running replicas ([`keep_running`]) are judged more leniently, so that an unrelated change never
//! moves them: a cordon, a `NoSchedule` taint, a late heartbeat or a stale inventory stop new
//! replicas but do not evict. They leave when a `NoExecute` taint is not (or no longer) tolerated —
//! the health controller taints a silent target that way, and its grace period is the
//! toleration's `tolerationSeconds` — when a selector no longer selects the target, or when the
//! inventory shows their product no longer belongs to the class. A product missing from the
//! inventory is not proof that the replicas are gone, so it does not evict. A target whose
//! cluster could not schedule the deployment's replicas (`Deployment::refused_by`, from its
//! syncer's report) takes none of them and keeps none: they move as from a lost target.

use std::collections::BTreeMap;
use std::fmt;

use crate::deployment::Deployment;
use crate::inventory::{Inventory, ProductId};
use crate::pool::{GpuClass, GpuPool};
use crate::taint::{self, TaintEffect};
use crate::target::{HealthPolicy, Target};

/// What one filter pass needs to know about the deployment and its pool.
pub(crate) struct Scope<'a> {
    pub now: i64,
    pub health: &'a HealthPolicy,
    pub pool: &'a GpuPool,
    pub class: &'a GpuClass,
    pub deployment: &'a Deployment,
}

/// Why a target is not used.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Rejection {
    /// The target is no longer in the snapshot.
    Gone,
    /// The caller declared it lost (failover).
    Lost,
    NotReady,
    HeartbeatStale,
    NoInventory,
    InventoryStale,
    Unschedulable,
    Taint {
        key: String,
        effect: TaintEffect,
    },
    NotInPool,
    SelectorMismatch,
    NoMatchingProduct,
    ProductLeftClass,
    /// Beyond the deployment's `maxTargets`.
    OverMaxTargets,
    /// Its cluster could not schedule the deployment's replicas.
    RefusedReplicas,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Gone => f.write_str("gone"),
            Rejection::Lost => f.write_str("lost"),
            Rejection::NotReady => f.write_str("not ready"),
            Rejection::HeartbeatStale => f.write_str("heartbeat stale"),
            Rejection::NoInventory => f.write_str("no GPU inventory reported"),
            Rejection::InventoryStale => f.write_str("GPU inventory stale"),
            Rejection::Unschedulable => f.write_str("unschedulable"),
            Rejection::Taint { key, effect } => write!(f, "untolerated taint {key}:{effect}"),
            Rejection::NotInPool => f.write_str("not in the pool"),
            Rejection::SelectorMismatch => f.write_str("not selected by the deployment"),
            Rejection::NoMatchingProduct => f.write_str("no GPU of the class"),
            Rejection::ProductLeftClass => f.write_str("its GPU product left the class"),
            Rejection::OverMaxTargets => f.write_str("beyond maxTargets"),
            Rejection::RefusedReplicas => {
                f.write_str("its cluster could not schedule the replicas")
            }
        }
    }
}

/// Whether new replicas may go to the target; on success, its (fresh) inventory.
pub(crate) fn admit_new<'t>(s: &Scope<'_>, t: &'t Target) -> Result<&'t Inventory, Rejection> {
    if !t.ready {
        return Err(Rejection::NotReady);
    }
    if s.now.saturating_sub(t.last_heartbeat) > s.health.heartbeat_timeout_s {
        return Err(Rejection::HeartbeatStale);
    }
    let inventory = t.inventory.as_ref().ok_or(Rejection::NoInventory)?;
    if s.now.saturating_sub(inventory.observed_at) > s.health.inventory_max_age_s {
        return Err(Rejection::InventoryStale);
    }
    if t.unschedulable {
        return Err(Rejection::Unschedulable);
    }
    if s.deployment.refused_by.contains(&t.name) {
        return Err(Rejection::RefusedReplicas);
    }
    if let Some(taint) = taint::first_untolerated(&t.taints, &s.deployment.tolerations) {
        return Err(Rejection::Taint {
            key: taint.key.clone(),
            effect: taint.effect,
        });
    }
    if !s.pool.target_selector.matches(&t.labels) {
        return Err(Rejection::NotInPool);
    }
    if !s.deployment.target_selector.matches(&t.labels) {
        return Err(Rejection::SelectorMismatch);
    }
    if !inventory
        .products
        .iter()
        .any(|p| s.class.matches(&p.product))
    {
        return Err(Rejection::NoMatchingProduct);
    }
    Ok(inventory)
}

/// Whether replicas of `product` running on the target may stay.
pub(crate) fn keep_running(
    s: &Scope<'_>,
    t: &Target,
    product: &ProductId,
) -> Result<(), Rejection> {
    if s.deployment.refused_by.contains(&t.name) {
        return Err(Rejection::RefusedReplicas);
    }
    if let Some(taint) = taint::evicting(&t.taints, &s.deployment.tolerations, s.now) {
        return Err(Rejection::Taint {
            key: taint.key.clone(),
            effect: taint.effect,
        });
    }
    if !s.pool.target_selector.matches(&t.labels) {
        return Err(Rejection::NotInPool);
    }
    if !s.deployment.target_selector.matches(&t.labels) {
        return Err(Rejection::SelectorMismatch);
    }
    let left_class = t
        .inventory
        .as_ref()
        .and_then(|inv| inv.product(product))
        .is_some_and(|(_, p)| !s.class.matches(&p.product));
    if left_class {
        return Err(Rejection::ProductLeftClass);
    }
    Ok(())
}

/// Kubernetes-scheduler-style counts of why targets were passed over, for messages:
/// `"2 not ready, 1 untolerated taint trellis.dev/unreachable:NoExecute"`.
pub(crate) fn summarize(rejections: impl IntoIterator<Item = Rejection>) -> String {
    let mut counts: BTreeMap<Rejection, usize> = BTreeMap::new();
    for r in rejections {
        *counts.entry(r).or_default() += 1;
    }
    counts
        .iter()
        .map(|(r, n)| format!("{n} {r}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::Strategy;
    use crate::inventory::{FreeByNode, GpuProduct, ProductInventory};
    use crate::selector::LabelSelector;
    use crate::taint::{Taint, Toleration};
    use std::num::NonZeroU32;

    const NOW: i64 = 1_750_000_000;

    fn h200_target(name: &str) -> Target {
        Target {
            name: name.into(),
            labels: [("region".to_string(), "eu-west".to_string())].into(),
            ready: true,
            last_heartbeat: NOW - 5,
            inventory: Some(Inventory {
                observed_at: NOW - 10,
                products: vec![ProductInventory {
                    product: GpuProduct {
                        id: ProductId::whole("NVIDIA H200"),
                        memory_mib: 143_771,
                        architecture: Some("Hopper".into()),
                    },
                    free_by_node: FreeByNode::from_buckets([(8, 50)]).unwrap(),
                }],
                accounted: BTreeMap::new(),
            }),
            ..Target::default()
        }
    }

    fn deployment() -> Deployment {
        Deployment {
            uid: "uid-1".into(),
            workspace: "root:acme".into(),
            namespace: "default".into(),
            name: "llama".into(),
            created: NOW - 100,
            pool: "h200-eu".into(),
            class: "h200".into(),
            gpus_per_replica: NonZeroU32::MIN,
            replicas: 1,
            strategy: Strategy::BinPack,
            max_targets: None,
            target_selector: LabelSelector::everything(),
            tolerations: Vec::new(),
            existing: BTreeMap::new(),
            refused_by: Default::default(),
        }
    }

    fn check(
        t: &Target,
        d: &Deployment,
        pool: &GpuPool,
        class: &GpuClass,
    ) -> Result<(), Rejection> {
        let health = HealthPolicy::default();
        let s = Scope {
            now: NOW,
            health: &health,
            pool,
            class,
            deployment: d,
        };
        admit_new(&s, t).map(|_| ())
    }

    #[test]
    fn each_rule_rejects_new_replicas() {
        let pool = GpuPool::default();
        let class = GpuClass {
            name: "h200".into(),
            product: Some("NVIDIA H200".into()),
            ..GpuClass::default()
        };
        let d = deployment();
        assert_eq!(check(&h200_target("ok"), &d, &pool, &class), Ok(()));

        let cases: Vec<(Target, Rejection)> = vec![
            (
                Target {
                    ready: false,
                    ..h200_target("a")
                },
                Rejection::NotReady,
            ),
            (
                Target {
                    last_heartbeat: NOW - 41,
                    ..h200_target("b")
                },
                Rejection::HeartbeatStale,
            ),
            (
                Target {
                    inventory: None,
                    ..h200_target("c")
                },
                Rejection::NoInventory,
            ),
            (
                {
                    let mut t = h200_target("d");
                    if let Some(inv) = t.inventory.as_mut() {
                        inv.observed_at = NOW - 121;
                    }
                    t
                },
                Rejection::InventoryStale,
            ),
            (
                Target {
                    unschedulable: true,
                    ..h200_target("e")
                },
                Rejection::Unschedulable,
            ),
            (
                Target {
                    taints: vec![Taint::new("dedicated", "beta", TaintEffect::NoSchedule)],
                    ..h200_target("f")
                },
                Rejection::Taint {
                    key: "dedicated".into(),
                    effect: TaintEffect::NoSchedule,
                },
            ),
        ];
        for (target, want) in cases {
            assert_eq!(
                check(&target, &d, &pool, &class),
                Err(want),
                "{}",
                target.name
            );
        }

        let us_only = GpuPool {
            target_selector: LabelSelector::labels([("region", "us-east")]),
            ..GpuPool::default()
        };
        assert_eq!(
            check(&h200_target("g"), &d, &us_only, &class),
            Err(Rejection::NotInPool)
        );
        let picky = Deployment {
            target_selector: LabelSelector::labels([("region", "us-east")]),
            ..deployment()
        };
        assert_eq!(
            check(&h200_target("h"), &picky, &pool, &class),
            Err(Rejection::SelectorMismatch)
        );
        let h100 = GpuClass {
            product: Some("NVIDIA H100 80GB HBM3".into()),
            ..class.clone()
        };
        assert_eq!(
            check(&h200_target("i"), &d, &pool, &h100),
            Err(Rejection::NoMatchingProduct)
        );
        let tolerant = Deployment {
            tolerations: vec![Toleration::exists("dedicated")],
            ..deployment()
        };
        let tainted = Target {
            taints: vec![Taint::new("dedicated", "beta", TaintEffect::NoSchedule)],
            ..h200_target("j")
        };
        assert_eq!(check(&tainted, &tolerant, &pool, &class), Ok(()));
    }

    #[test]
    fn running_replicas_survive_cordons_and_silence_but_not_eviction() {
        let pool = GpuPool::default();
        let class = GpuClass {
            name: "h200".into(),
            product: Some("NVIDIA H200".into()),
            ..GpuClass::default()
        };
        let d = deployment();
        let health = HealthPolicy::default();
        let s = Scope {
            now: NOW,
            health: &health,
            pool: &pool,
            class: &class,
            deployment: &d,
        };
        let h200 = ProductId::whole("NVIDIA H200");
        let silent = Target {
            ready: false,
            unschedulable: true,
            last_heartbeat: NOW - 3_600,
            inventory: None,
            taints: vec![Taint::new("maintenance", "", TaintEffect::NoSchedule)],
            ..h200_target("silent")
        };
        assert_eq!(keep_running(&s, &silent, &h200), Ok(()));
        let evicted = Target {
            taints: vec![Taint::new(
                "trellis.dev/unreachable",
                "",
                TaintEffect::NoExecute,
            )],
            ..h200_target("evicted")
        };
        assert!(matches!(
            keep_running(&s, &evicted, &h200),
            Err(Rejection::Taint { .. })
        ));
        // A product the inventory does not list is not proof the replicas are gone.
        assert_eq!(
            keep_running(&s, &h200_target("x"), &ProductId::whole("NVIDIA B200")),
            Ok(())
        );
        let h100_class = GpuClass {
            product: Some("NVIDIA H100 80GB HBM3".into()),
            ..class.clone()
        };
        let s2 = Scope {
            class: &h100_class,
            ..s
        };
        assert_eq!(
            keep_running(&s2, &h200_target("y"), &h200),
            Err(Rejection::ProductLeftClass)
        );
    }

    #[test]
    fn summaries_count_reasons() {
        let text = summarize([
            Rejection::NotReady,
            Rejection::Taint {
                key: "trellis.dev/unreachable".into(),
                effect: TaintEffect::NoExecute,
            },
            Rejection::NotReady,
        ]);
        assert_eq!(
            text,
            "2 not ready, 1 untolerated taint trellis.dev/unreachable:NoExecute"
        );
    }
}
