//! SyncTarget health as pure decisions of (target, now): whether heartbeats still arrive, the
//! conditions and the unreachable taint that follow, and when a deployment's replicas on a
//! tainted target are due to move.
//!
//! Rules:
//! - Heartbeats are healthy while the last one is at most the placement engine's heartbeat
//!   timeout old (40 s, the kubelet's node-monitor grace period; `HealthPolicy::default()`,
//!   so this module and placement never disagree). A target that never reported is not
//!   healthy.
//! - The hub owns `HeartbeatHealthy`. When heartbeats stop it also sets `Ready` False
//!   (`HeartbeatMissed`); when they resume it lifts only a `Ready` it set itself, and the
//!   syncer's next report says the rest. `SyncerReady` is the syncer's alone.
//! - A target that reported and then went silent gets one `trellis.dev/unreachable` taint,
//!   effect `NoExecute`, `timeAdded` = the moment the hub noticed (not the last heartbeat: a
//!   hub that was itself down heard nothing, and must not fail everything over on restart).
//!   `NoExecute` alone also keeps new replicas off (see `snapshot`). An existing taint keeps
//!   its `timeAdded` (one without gets it now; repeats collapse into the first), so the grace
//!   period is counted once. When heartbeats resume the hub removes every taint of that key.
//! - A deployment's replicas on a target are due to move once `failover.tolerationSeconds`
//!   have passed since a `NoExecute` taint's `timeAdded`. The placement pass does that move
//!   itself for each deployment (the snapshot gives it that toleration);
//!   [`failover_deadline`] tells the controller when to look again.

use k8s_openapi::api::core::v1::Taint;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use trellis_apis::compute::sync_target::{conditions, reasons, UNREACHABLE_TAINT};
use trellis_apis::compute::{SyncTarget, SyncTargetSpec};
use trellis_apis::serving::Failover;
use trellis_placement::HealthPolicy;

use super::conditions::{set, Wanted};
use super::time::{rfc3339, seconds, time_at};

const NO_EXECUTE: &str = "NoExecute";

/// How long a heartbeat stays fresh, seconds.
pub fn heartbeat_timeout_seconds() -> i64 {
    HealthPolicy::default().heartbeat_timeout_s
}

/// What the health controller should make of a SyncTarget.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetHealth {
    pub heartbeat_healthy: bool,
    /// `status.conditions` as they should be.
    pub conditions: Vec<Condition>,
    pub conditions_changed: bool,
    /// `spec.taints` as they should be.
    pub taints: Vec<Taint>,
    pub taints_changed: bool,
    /// When the heartbeat goes stale if no other arrives: look again then.
    pub recheck_at: Option<i64>,
}

/// The last heartbeat, seconds since the epoch.
fn last_heartbeat(target: &SyncTarget) -> Option<i64> {
    target
        .status
        .as_ref()
        .and_then(|s| s.last_heartbeat_time.as_ref())
        .map(seconds)
}

/// Whether heartbeats arrive in time at `now`.
pub fn heartbeat_healthy(target: &SyncTarget, now: i64) -> bool {
    last_heartbeat(target).is_some_and(|at| now.saturating_sub(at) <= heartbeat_timeout_seconds())
}

/// The conditions and taints `target` should have at `now`.
pub fn assess(target: &SyncTarget, now: i64) -> TargetHealth {
    let last = last_heartbeat(target);
    let healthy = heartbeat_healthy(target, now);
    let mut conds = target
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut conditions_changed;
    if healthy {
        conditions_changed = set(
            &mut conds,
            Wanted::new(
                conditions::HEARTBEAT_HEALTHY,
                true,
                reasons::HEARTBEAT_RECEIVED,
                format!("heartbeats arrive within {}s", heartbeat_timeout_seconds()),
            ),
            now,
        );
        let ours = conds
            .iter()
            .any(|c| c.type_ == conditions::READY && c.reason == reasons::HEARTBEAT_MISSED);
        if ours {
            conditions_changed |= set(
                &mut conds,
                Wanted::new(
                    conditions::READY,
                    true,
                    reasons::HEARTBEAT_RECEIVED,
                    "heartbeats resumed",
                ),
                now,
            );
        }
    } else {
        let message = match last {
            Some(at) => format!("no heartbeat since {}", rfc3339(at)),
            None => "no heartbeat received yet".to_string(),
        };
        conditions_changed = set(
            &mut conds,
            Wanted::new(
                conditions::HEARTBEAT_HEALTHY,
                false,
                reasons::HEARTBEAT_MISSED,
                message.clone(),
            ),
            now,
        );
        conditions_changed |= set(
            &mut conds,
            Wanted::new(conditions::READY, false, reasons::HEARTBEAT_MISSED, message),
            now,
        );
    }

    let taints = if healthy {
        target
            .spec
            .taints
            .iter()
            .filter(|t| t.key != UNREACHABLE_TAINT)
            .cloned()
            .collect()
    } else if last.is_some() {
        unreachable_taints(&target.spec.taints, now)
    } else {
        target.spec.taints.clone()
    };
    TargetHealth {
        heartbeat_healthy: healthy,
        conditions: conds,
        conditions_changed,
        taints_changed: taints != target.spec.taints,
        taints,
        recheck_at: healthy
            .then(|| last.map(|at| at.saturating_add(heartbeat_timeout_seconds() + 1)))
            .flatten(),
    }
}

/// The taints with exactly one unreachable `NoExecute` taint that has a `timeAdded`.
fn unreachable_taints(taints: &[Taint], now: i64) -> Vec<Taint> {
    let mut out = Vec::with_capacity(taints.len() + 1);
    let mut found = false;
    for t in taints {
        if t.key == UNREACHABLE_TAINT && t.effect == NO_EXECUTE {
            if found {
                continue;
            }
            found = true;
            out.push(Taint {
                time_added: Some(t.time_added.clone().unwrap_or_else(|| time_at(now))),
                ..t.clone()
            });
        } else {
            out.push(t.clone());
        }
    }
    if !found {
        out.push(Taint {
            key: UNREACHABLE_TAINT.to_string(),
            effect: NO_EXECUTE.to_string(),
            time_added: Some(time_at(now)),
            value: None,
        });
    }
    out
}

/// When replicas of a deployment with `failover` are due to leave a target with `spec`: the
/// earliest `timeAdded` of a `NoExecute` taint plus `tolerationSeconds`. `None` without such
/// a taint (one without `timeAdded` never runs out, as in the placement engine).
pub fn failover_deadline(spec: &SyncTargetSpec, failover: &Failover) -> Option<i64> {
    spec.taints
        .iter()
        .filter(|t| t.effect == NO_EXECUTE)
        .filter_map(|t| t.time_added.as_ref().map(seconds))
        .map(|added| added.saturating_add(failover.toleration_seconds.max(0)))
        .min()
}

/// Whether those replicas are due to leave at `now`.
#[cfg(test)]
pub fn failover_due(spec: &SyncTargetSpec, failover: &Failover, now: i64) -> bool {
    failover_deadline(spec, failover).is_some_and(|at| now >= at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::fixtures::*;

    fn silent_since(at: i64) -> SyncTarget {
        let mut target = h200_target("eu-1", &[(8, 4)]);
        if let Some(status) = target.status.as_mut() {
            status.last_heartbeat_time = Some(time_at(at));
        }
        target
    }

    fn condition<'a>(health: &'a TargetHealth, type_: &str) -> (&'a str, &'a str, i64) {
        match health.conditions.iter().find(|c| c.type_ == type_) {
            Some(c) => (
                c.status.as_str(),
                c.reason.as_str(),
                seconds(&c.last_transition_time),
            ),
            None => panic!("no {type_}"),
        }
    }

    /// What the controller writes back.
    fn applied(mut target: SyncTarget, health: &TargetHealth) -> SyncTarget {
        target.spec.taints = health.taints.clone();
        if let Some(status) = target.status.as_mut() {
            status.conditions = health.conditions.clone();
        }
        target
    }

    #[test]
    fn a_fresh_heartbeat_is_healthy_until_forty_seconds_pass() {
        let target = silent_since(NOW - 40);
        let health = assess(&target, NOW);
        assert!(health.heartbeat_healthy);
        assert_eq!(
            condition(&health, "HeartbeatHealthy"),
            ("True", "HeartbeatReceived", NOW)
        );
        assert!(health.taints.is_empty() && !health.taints_changed);
        assert_eq!(health.recheck_at, Some(NOW + 1));
        assert!(!heartbeat_healthy(&target, NOW + 1));
    }

    #[test]
    fn silence_taints_once_and_a_return_lifts_it() {
        let target = silent_since(NOW - 41);
        let health = assess(&target, NOW);
        assert!(!health.heartbeat_healthy && health.taints_changed);
        assert_eq!(
            condition(&health, "HeartbeatHealthy"),
            ("False", "HeartbeatMissed", NOW)
        );
        assert_eq!(
            condition(&health, "Ready"),
            ("False", "HeartbeatMissed", NOW)
        );
        assert_eq!(
            health.taints,
            vec![Taint {
                key: UNREACHABLE_TAINT.into(),
                effect: "NoExecute".into(),
                time_added: Some(time_at(NOW)),
                value: None,
            }]
        );
        assert_eq!(health.recheck_at, None);

        // A minute later: the same taint, the same conditions, nothing to write.
        let tainted = applied(target, &health);
        let later = assess(&tainted, NOW + 60);
        assert!(!later.taints_changed && !later.conditions_changed);
        assert_eq!(later.taints, health.taints);

        // Heartbeats resume: the taint goes, Ready is lifted, the transition time moves.
        let mut back = tainted;
        if let Some(status) = back.status.as_mut() {
            status.last_heartbeat_time = Some(time_at(NOW + 90));
        }
        let back = assess(&back, NOW + 95);
        assert!(back.heartbeat_healthy && back.taints.is_empty() && back.taints_changed);
        assert_eq!(
            condition(&back, "Ready"),
            ("True", "HeartbeatReceived", NOW + 95)
        );
        assert_eq!(
            condition(&back, "HeartbeatHealthy"),
            ("True", "HeartbeatReceived", NOW + 95)
        );
    }

    #[test]
    fn repeated_or_timeless_unreachable_taints_collapse_into_one_with_a_time() {
        let mut target = silent_since(NOW - 600);
        let maintenance = Taint {
            key: "maintenance".into(),
            effect: "NoSchedule".into(),
            ..Taint::default()
        };
        let timeless = Taint {
            key: UNREACHABLE_TAINT.into(),
            effect: "NoExecute".into(),
            ..Taint::default()
        };
        target.spec.taints = vec![maintenance.clone(), timeless.clone(), timeless];
        let health = assess(&target, NOW);
        assert_eq!(health.taints.len(), 2);
        assert_eq!(health.taints[0], maintenance);
        assert_eq!(health.taints[1].time_added, Some(time_at(NOW)));
        // Back: only the hub's key goes.
        let mut back = applied(target, &health);
        if let Some(status) = back.status.as_mut() {
            status.last_heartbeat_time = Some(time_at(NOW + 1));
        }
        assert_eq!(assess(&back, NOW + 2).taints, vec![maintenance]);
    }

    #[test]
    fn a_target_that_never_reported_is_unhealthy_but_not_tainted() {
        let mut target = h200_target("eu-9", &[]);
        target.status = None;
        let health = assess(&target, NOW);
        assert!(!health.heartbeat_healthy && health.taints.is_empty());
        assert_eq!(condition(&health, "HeartbeatHealthy").1, "HeartbeatMissed");
    }

    #[test]
    fn failover_is_due_once_the_toleration_has_passed() {
        let target = silent_since(NOW - 200);
        let health = assess(&target, NOW - 100);
        let tainted = applied(target, &health);
        let failover = Failover {
            toleration_seconds: 300,
            ..Failover::default()
        };
        assert_eq!(failover_deadline(&tainted.spec, &failover), Some(NOW + 200));
        assert!(!failover_due(&tainted.spec, &failover, NOW + 199));
        assert!(failover_due(&tainted.spec, &failover, NOW + 200));
        let healthy = h200_target("eu-2", &[(8, 1)]);
        assert_eq!(failover_deadline(&healthy.spec, &failover), None);
    }
}
