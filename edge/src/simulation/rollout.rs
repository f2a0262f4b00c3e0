//! How many replicas each ReplicaSet of a Deployment should have, as kube-controller-manager's
//! rolling update decides (pure): the current template's set grows while the total stays
//! within `replicas + maxSurge`; old sets shrink, unavailable pods first, while at least
//! `replicas - maxUnavailable` stay available. `Recreate` retires every old pod before the new
//! set grows. Percentages round as Kubernetes rounds them (surge up, unavailable down).

/// A ReplicaSet's spec replicas and available pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Set {
    pub replicas: i32,
    pub available: i32,
}

/// The deployment's strategy, resolved against its replicas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    Rolling {
        max_surge: i32,
        max_unavailable: i32,
    },
    Recreate,
}

/// An int-or-percent of `total` (`"25%"`, `1`), rounded up or down.
pub fn resolve(value: Option<&str>, default: &str, total: i32, round_up: bool) -> i32 {
    let value = value.unwrap_or(default).trim();
    match value.strip_suffix('%') {
        Some(percent) => {
            let p: i64 = percent.trim().parse().unwrap_or(0);
            let scaled = i64::from(total) * p;
            (if round_up {
                (scaled + 99) / 100
            } else {
                scaled / 100
            }) as i32
        }
        None => value.parse().unwrap_or(0),
    }
}

/// The rolling-update bounds of a deployment of `replicas` (kube makes `maxUnavailable` 1
/// when both would be 0).
pub fn rolling(max_surge: Option<&str>, max_unavailable: Option<&str>, replicas: i32) -> Strategy {
    let surge = resolve(max_surge, "25%", replicas, true);
    let mut unavailable = resolve(max_unavailable, "25%", replicas, false);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Strategy::Rolling {
        max_surge: surge,
        max_unavailable: unavailable.min(replicas),
    }
}

/// The replicas of the new set and of each old set (same order) for `desired` replicas.
pub fn plan(desired: i32, strategy: Strategy, new: Set, old: &[Set]) -> (i32, Vec<i32>) {
    let mut old_replicas: Vec<i32> = old.iter().map(|s| s.replicas).collect();
    match strategy {
        Strategy::Recreate => {
            let old_pods: i32 = old.iter().map(|s| s.replicas.max(s.available)).sum();
            if old_pods > 0 {
                return (0, vec![0; old.len()]);
            }
            (desired, old_replicas)
        }
        Strategy::Rolling {
            max_surge,
            max_unavailable,
        } => {
            // The new set grows within the surge.
            let total: i32 = new.replicas + old_replicas.iter().sum::<i32>();
            let new_replicas = if new.replicas > desired {
                desired
            } else {
                let room = (desired + max_surge - total).max(0);
                (new.replicas + room).min(desired)
            };
            // Old sets shrink while enough stay available: unavailable pods first, then the
            // available beyond the minimum.
            let min_available = desired - max_unavailable;
            let all_pods = new_replicas + old_replicas.iter().sum::<i32>();
            let new_unavailable = (new_replicas - new.available).max(0);
            let mut budget = all_pods - min_available - new_unavailable;
            for (replicas, set) in old_replicas.iter_mut().zip(old) {
                if budget <= 0 {
                    break;
                }
                let unhealthy = (*replicas - set.available).max(0).min(budget);
                *replicas -= unhealthy;
                budget -= unhealthy;
            }
            let all_available: i32 = new.available + old.iter().map(|s| s.available).sum::<i32>();
            let mut surplus = all_available - min_available;
            for (replicas, set) in old_replicas.iter_mut().zip(old) {
                if surplus <= 0 {
                    break;
                }
                let down = (*replicas).min(set.available).min(surplus);
                *replicas -= down;
                surplus -= down;
            }
            (new_replicas, old_replicas)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(replicas: i32, available: i32) -> Set {
        Set {
            replicas,
            available,
        }
    }

    #[test]
    fn percentages_round_as_kube_rounds_them() {
        assert_eq!(resolve(Some("25%"), "25%", 2, true), 1);
        assert_eq!(resolve(Some("25%"), "25%", 2, false), 0);
        assert_eq!(resolve(Some("3"), "25%", 10, true), 3);
        assert_eq!(
            rolling(Some("0"), Some("0"), 4),
            Strategy::Rolling {
                max_surge: 0,
                max_unavailable: 1
            }
        );
    }

    #[test]
    fn a_first_rollout_creates_every_replica() {
        assert_eq!(plan(3, rolling(None, None, 3), set(0, 0), &[]), (3, vec![]));
    }

    #[test]
    fn an_update_without_spare_capacity_still_progresses() {
        // 4 replicas, all available on the old set; surge 1, unavailable 1.
        let strategy = rolling(None, None, 4);
        let (new, old) = plan(4, strategy, set(0, 0), &[set(4, 4)]);
        assert_eq!((new, old.clone()), (1, vec![3]));
        // The new pod is pending (no room); an old one has gone: the next pod can start.
        let (new, old) = plan(4, strategy, set(1, 0), &[set(3, 3)]);
        assert_eq!((new, old), (2, vec![3]));
        // Until the old set is gone.
        assert_eq!(plan(4, strategy, set(4, 4), &[set(1, 1)]), (4, vec![0]));
    }

    #[test]
    fn unavailable_old_pods_go_first() {
        let strategy = rolling(Some("0"), Some("1"), 2);
        let (new, old) = plan(2, strategy, set(0, 0), &[set(5, 4)]);
        assert_eq!(new, 0);
        // The unavailable one, then all but the one that must stay available.
        assert_eq!(old, vec![1]);
    }

    #[test]
    fn recreate_retires_the_old_pods_first() {
        assert_eq!(
            plan(3, Strategy::Recreate, set(0, 0), &[set(3, 3)]),
            (0, vec![0])
        );
        assert_eq!(
            plan(3, Strategy::Recreate, set(0, 0), &[set(0, 0)]),
            (3, vec![0])
        );
    }
}
