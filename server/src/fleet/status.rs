//! A ModelDeployment's status, from its placement decision, the plan rendered from it and what
//! the targets' syncers report on its Placements.
//!
//! Rules:
//! - `placements` has one entry per Placement of the plan: `replicas` is what the decision
//!   assigns there (0 for a retiring one, which still runs until its replacement is
//!   available), `readyReplicas` and `endpoint` are what the syncer reports. A target is
//!   named as in its pool's workspace, or by its full `<workspace>/<name>` key when it lives
//!   elsewhere (a deployment that changed pools).
//! - `replicas` and `readyReplicas` add up what the syncers report (running copies that are
//!   retiring included: they serve); `selector` selects the deployment's Placements.
//! - Conditions, always all six, in the order a deployment passes them:
//!   `QuotaReserved` fails with the outcome's reason (QuotaExceeded, PoolNotFound,
//!   ClassNotFound, NotAllowed, or whatever kept a refused spec from the engine);
//!   `Scheduled` is True only when the decision is `Scheduled`, else False with its reason;
//!   `Synced` waits for Placements still to be written and syncers that have not reported on
//!   the current generation; `Available` counts ready replicas against `minReplicas`; `Ready`
//!   needs every wanted replica assigned and ready; `Degraded` is `NoAlternativeCapacity`
//!   first, then `TargetLost` (assigned replicas on a target without a heartbeat for the
//!   health policy's timeout, or gone), then `ReplicasFailing` (a syncer reports
//!   `Progressing` False), else False.
//! - A condition's `lastTransitionTime` stays when its status does (see `conditions`).

use std::collections::BTreeMap;

use trellis_apis::compute::placement::{
    conditions as placement_conditions, target_of_namespace, ORIGIN_UID_LABEL,
};
use trellis_apis::compute::Placement;
use trellis_apis::serving::conditions as types;
use trellis_apis::serving::reasons;
use trellis_apis::serving::{ModelDeployment, ModelDeploymentStatus, PlacedReplicas};
use trellis_placement::{Decision, Outcome};

use super::conditions::{condition, Wanted};
use super::keys::target_key;
use super::render::{PlacementRef, Plan};
use super::snapshot::FleetSnapshot;
use super::time::rfc3339;

/// One Placement of the plan with what its syncer reports.
struct Row<'a> {
    key: String,
    target: String,
    assigned: i32,
    retiring: bool,
    changed: bool,
    current: Option<&'a Placement>,
}

impl Row<'_> {
    fn reported(&self) -> (i32, i32) {
        self.current
            .and_then(|p| p.status.as_ref())
            .map_or((0, 0), |s| (s.replicas, s.ready_replicas))
    }

    /// The syncer has the spec we want and has reported on it.
    fn synced(&self) -> bool {
        !self.changed
            && self.current.is_some_and(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.observed_generation)
                    .is_some_and(|seen| seen >= p.metadata.generation.unwrap_or(0))
            })
    }
}

/// The status of `deployment` after `decision`, rendered as `plan`, with `previous` the
/// deployment's Placements as read (their status is the syncers'), at `now`.
pub fn deployment_status(
    deployment: &ModelDeployment,
    decision: &Decision,
    plan: &Plan,
    previous: &[(&str, &Placement)],
    fleet: &FleetSnapshot,
    now: i64,
) -> ModelDeploymentStatus {
    let md = deployment;
    let uid = md.metadata.uid.as_deref().unwrap_or_default();
    let generation = md.metadata.generation;
    let current: BTreeMap<PlacementRef, &Placement> = previous
        .iter()
        .filter(|(_, p)| p.spec.origin.uid == uid)
        .map(|(ws, p)| (PlacementRef::of(ws, p), *p))
        .collect();
    let pool_workspace = md.spec.placement.pool_reference().map(|(ws, _)| ws);
    let rows: Vec<Row<'_>> = plan
        .apply
        .iter()
        .map(|d| {
            let at = d.reference();
            let name = target_of_namespace(&at.namespace).unwrap_or_default();
            let key = target_key(&at.workspace, name);
            Row {
                target: if pool_workspace == Some(at.workspace.as_str()) {
                    name.to_string()
                } else {
                    key.clone()
                },
                key,
                assigned: if d.retiring {
                    0
                } else {
                    d.placement.spec.replicas
                },
                retiring: d.retiring,
                changed: d.changed,
                current: current.get(&at).copied(),
            }
        })
        .collect();

    let (replicas, ready) = rows.iter().fold((0i32, 0i32), |(r, k), row| {
        let (running, ready) = row.reported();
        (r.saturating_add(running), k.saturating_add(ready))
    });
    let assigned: i32 = rows.iter().map(|r| r.assigned).fold(0, i32::saturating_add);
    let ready_assigned: i32 = rows
        .iter()
        .filter(|r| !r.retiring)
        .map(|r| r.reported().1.min(r.assigned))
        .fold(0, i32::saturating_add);
    let wanted = md.spec.wanted_replicas();
    let minimum = md.spec.min_replicas;

    let outcome = decision.outcome;
    let quota_refused = decision.tenant.is_none()
        || matches!(
            outcome,
            Outcome::QuotaExceeded
                | Outcome::PoolNotFound
                | Outcome::ClassNotFound
                | Outcome::NotAllowed
        );
    let quota = if quota_refused {
        Wanted::new(
            types::QUOTA_RESERVED,
            false,
            outcome.reason(),
            &decision.message,
        )
    } else {
        Wanted::new(
            types::QUOTA_RESERVED,
            true,
            reasons::QUOTA_RESERVED,
            format!(
                "{} GPU(s) reserved against the quota of {} in GPU pool {}",
                decision.quota_gpus,
                decision.tenant.as_deref().unwrap_or_default(),
                md.spec.placement.pool
            ),
        )
    };
    let scheduled = if outcome == Outcome::Scheduled {
        let message = if decision.message.is_empty() {
            format!("{assigned} replica(s) on {} target(s)", rows.len())
        } else {
            decision.message.clone()
        };
        Wanted::new(types::SCHEDULED, true, reasons::SCHEDULED, message)
    } else {
        Wanted::new(types::SCHEDULED, false, outcome.reason(), &decision.message)
    };
    let waiting: Vec<&str> = rows
        .iter()
        .filter(|r| !r.retiring && !r.synced())
        .map(|r| r.target.as_str())
        .collect();
    let synced = if waiting.is_empty() {
        Wanted::new(
            types::SYNCED,
            true,
            reasons::SYNCED,
            format!(
                "{} placement(s) in sync",
                rows.iter().filter(|r| !r.retiring).count()
            ),
        )
    } else {
        Wanted::new(
            types::SYNCED,
            false,
            reasons::SYNC_PENDING,
            format!("waiting for the syncer of {}", waiting.join(", ")),
        )
    };
    let available = Wanted::new(
        types::AVAILABLE,
        ready >= minimum,
        if ready >= minimum {
            reasons::MINIMUM_REPLICAS_AVAILABLE
        } else {
            reasons::MINIMUM_REPLICAS_UNAVAILABLE
        },
        format!("{ready} replica(s) ready, {minimum} needed"),
    );
    let all_ready = assigned >= wanted && ready_assigned >= wanted;
    let ready_condition = Wanted::new(
        types::READY,
        all_ready,
        if all_ready {
            reasons::ALL_REPLICAS_READY
        } else {
            reasons::REPLICAS_NOT_READY
        },
        format!("{ready_assigned}/{wanted} replica(s) ready"),
    );
    let degraded = degraded(md, decision, &rows, fleet, now);

    let conditions = [
        quota,
        scheduled,
        synced,
        available,
        ready_condition,
        degraded,
    ]
    .into_iter()
    .map(|w| {
        let previous = md.status.as_ref().map_or(&[][..], |s| &s.conditions[..]);
        condition(previous, w, generation, now)
    })
    .collect();
    ModelDeploymentStatus {
        observed_generation: generation,
        replicas,
        ready_replicas: ready,
        selector: Some(format!("{ORIGIN_UID_LABEL}={uid}")),
        conditions,
        placements: rows
            .iter()
            .map(|r| PlacedReplicas {
                target: r.target.clone(),
                replicas: r.assigned,
                ready_replicas: r.reported().1,
                endpoint: r
                    .current
                    .and_then(|p| p.status.as_ref())
                    .and_then(|s| s.endpoint.clone()),
            })
            .collect(),
    }
}

fn degraded(
    md: &ModelDeployment,
    decision: &Decision,
    rows: &[Row<'_>],
    fleet: &FleetSnapshot,
    now: i64,
) -> Wanted<'static> {
    if decision.outcome == Outcome::NoAlternativeCapacity {
        return Wanted::new(
            types::DEGRADED,
            true,
            reasons::NO_ALTERNATIVE_CAPACITY,
            &decision.message,
        );
    }
    let timeout = fleet.snapshot.health.heartbeat_timeout_s;
    let lost: Vec<String> = rows
        .iter()
        .filter(|r| !r.retiring && r.assigned > 0)
        .filter_map(|r| match fleet.target(&r.key) {
            None => Some(format!("{} (gone)", r.target)),
            Some(t) if now.saturating_sub(t.last_heartbeat) > timeout => Some(format!(
                "{} (last heartbeat {})",
                r.target,
                if t.last_heartbeat == 0 {
                    "never".to_string()
                } else {
                    rfc3339(t.last_heartbeat)
                }
            )),
            Some(_) => None,
        })
        .collect();
    if !lost.is_empty() {
        return Wanted::new(
            types::DEGRADED,
            true,
            reasons::TARGET_LOST,
            format!(
                "stopped reporting: {}; replicas there move elsewhere {}s after the target is tainted unreachable (failover.tolerationSeconds)",
                lost.join(", "),
                md.spec.failover.toleration_seconds
            ),
        );
    }
    let failing: Vec<String> =
        rows.iter()
            .filter(|r| !r.retiring)
            .filter_map(|r| {
                let status = r.current?.status.as_ref()?;
                let stuck = status.conditions.iter().find(|c| {
                    c.type_ == placement_conditions::PROGRESSING && c.status == "False"
                })?;
                Some(if stuck.message.is_empty() {
                    format!("{}: {}", r.target, stuck.reason)
                } else {
                    format!("{}: {}: {}", r.target, stuck.reason, stuck.message)
                })
            })
            .collect();
    if !failing.is_empty() {
        return Wanted::new(
            types::DEGRADED,
            true,
            reasons::REPLICAS_FAILING,
            failing.join("; "),
        );
    }
    Wanted::new(types::DEGRADED, false, reasons::AS_EXPECTED, "")
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
    use trellis_apis::compute::PlacementStatus;
    use trellis_placement::{ProductId, Share};

    use super::*;
    use crate::fleet::fixtures::*;
    use crate::fleet::render::{render, Origin};
    use crate::fleet::time::{seconds, time_at};

    fn decision(outcome: Outcome, on: &[(&str, u32)]) -> Decision {
        Decision {
            uid: "uid-llama".into(),
            outcome,
            message: String::new(),
            assignments: on
                .iter()
                .map(|(t, r)| {
                    (
                        format!("{PROVIDER}/{t}"),
                        Share {
                            product: ProductId::whole("NVIDIA H200"),
                            replicas: *r,
                        },
                    )
                })
                .collect(),
            bookings: BTreeMap::new(),
            tenant: Some("root:acme".into()),
            quota_gpus: on.iter().map(|(_, r)| u64::from(*r) * 2).sum(),
            borrowed_gpus: 0,
        }
    }

    fn find<'a>(status: &'a ModelDeploymentStatus, type_: &str) -> &'a Condition {
        match status.conditions.iter().find(|c| c.type_ == type_) {
            Some(c) => c,
            None => panic!("no {type_} condition"),
        }
    }

    fn brief(c: &Condition) -> (&str, &str) {
        (c.status.as_str(), c.reason.as_str())
    }

    /// The status after the syncers report on what `decision` rendered.
    fn reported(
        md: &ModelDeployment,
        decision: &Decision,
        report: impl Fn(&mut Placement),
        fleet: &FleetSnapshot,
    ) -> ModelDeploymentStatus {
        let origin = Origin {
            workspace: TENANT,
            cluster: CLUSTER,
            deployment: md,
        };
        let written: Vec<Placement> = render(&origin, decision, &[], NOW)
            .apply
            .into_iter()
            .map(|d| {
                let mut p = d.placement;
                p.metadata.generation = Some(1);
                report(&mut p);
                p
            })
            .collect();
        let previous: Vec<(&str, &Placement)> = written.iter().map(|p| (PROVIDER, p)).collect();
        let plan = render(&origin, decision, &previous, NOW);
        deployment_status(md, decision, &plan, &previous, fleet, NOW)
    }

    fn healthy_fleet() -> FleetSnapshot {
        fleet_of(&[
            h200_target("eu-1", &[(8, 4)]),
            h200_target("eu-2", &[(8, 4)]),
        ])
    }

    #[test]
    fn all_ready_reports_every_condition_true_but_degraded() {
        let md = llama(3, 2);
        let d = decision(Outcome::Scheduled, &[("eu-1", 2), ("eu-2", 1)]);
        let status = reported(
            &md,
            &d,
            |p| {
                let n = p.spec.replicas;
                p.status = Some(PlacementStatus {
                    observed_generation: Some(1),
                    endpoint: Some(format!("http://10.0.4.{n}:8000")),
                    ..available(n)
                });
            },
            &healthy_fleet(),
        );
        assert_eq!(status.observed_generation, Some(1));
        assert_eq!((status.replicas, status.ready_replicas), (3, 3));
        assert_eq!(
            status.selector.as_deref(),
            Some("trellis.dev/origin-uid=uid-llama")
        );
        let types: Vec<(&str, &str)> = status.conditions.iter().map(brief).collect();
        assert_eq!(
            types,
            vec![
                ("True", "QuotaReserved"),
                ("True", "Scheduled"),
                ("True", "Synced"),
                ("True", "MinimumReplicasAvailable"),
                ("True", "AllReplicasReady"),
                ("False", "AsExpected"),
            ]
        );
        assert_eq!(
            status.placements,
            vec![
                PlacedReplicas {
                    target: "eu-1".into(),
                    replicas: 2,
                    ready_replicas: 2,
                    endpoint: Some("http://10.0.4.2:8000".into()),
                },
                PlacedReplicas {
                    target: "eu-2".into(),
                    replicas: 1,
                    ready_replicas: 1,
                    endpoint: Some("http://10.0.4.1:8000".into()),
                },
            ]
        );
        assert!(status
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(1)));
    }

    #[test]
    fn waiting_for_syncers_and_failing_replicas_show() {
        let md = llama(2, 2);
        let d = decision(Outcome::Scheduled, &[("eu-1", 2)]);
        let fresh = reported(&md, &d, |_| {}, &healthy_fleet());
        assert_eq!(brief(find(&fresh, "Synced")), ("False", "SyncPending"));
        assert_eq!(
            find(&fresh, "Synced").message,
            "waiting for the syncer of eu-1"
        );
        assert_eq!(
            brief(find(&fresh, "Available")),
            ("False", "MinimumReplicasUnavailable")
        );
        assert_eq!(brief(find(&fresh, "Ready")), ("False", "ReplicasNotReady"));

        let stuck = reported(
            &md,
            &d,
            |p| {
                p.status = Some(PlacementStatus {
                    observed_generation: Some(1),
                    replicas: 2,
                    conditions: vec![Condition {
                        type_: "Progressing".into(),
                        status: "False".into(),
                        reason: "ImagePullBackOff".into(),
                        message: "vllm/vllm-openai:v0.9.1: not found".into(),
                        last_transition_time: time_at(NOW),
                        observed_generation: None,
                    }],
                    ..PlacementStatus::default()
                })
            },
            &healthy_fleet(),
        );
        let degraded = find(&stuck, "Degraded");
        assert_eq!(brief(degraded), ("True", "ReplicasFailing"));
        assert_eq!(
            degraded.message,
            "eu-1: ImagePullBackOff: vllm/vllm-openai:v0.9.1: not found"
        );
    }

    #[test]
    fn refusals_and_lost_targets_carry_their_reasons() {
        let md = llama(2, 8);
        let mut over = decision(Outcome::QuotaExceeded, &[]);
        over.message = "tenant root:acme needs 16 more GPUs but only 8 are available".into();
        let status = reported(&md, &over, |_| {}, &healthy_fleet());
        assert_eq!(
            brief(find(&status, "QuotaReserved")),
            ("False", "QuotaExceeded")
        );
        assert_eq!(find(&status, "QuotaReserved").message, over.message);
        assert_eq!(
            brief(find(&status, "Scheduled")),
            ("False", "QuotaExceeded")
        );
        assert!(status.placements.is_empty());

        let mut lost = h200_target("eu-1", &[(8, 4)]);
        if let Some(s) = lost.status.as_mut() {
            s.last_heartbeat_time = Some(time_at(NOW - 41));
        }
        let fleet = fleet_of(&[lost]);
        let status = reported(
            &md,
            &decision(Outcome::Scheduled, &[("eu-1", 2)]),
            |_| {},
            &fleet,
        );
        let degraded = find(&status, "Degraded");
        assert_eq!(brief(degraded), ("True", "TargetLost"));
        assert!(
            degraded
                .message
                .starts_with("stopped reporting: eu-1 (last heartbeat 2025-06-15T15:05:59Z);"),
            "{}",
            degraded.message
        );

        let mut stuck = decision(Outcome::NoAlternativeCapacity, &[("eu-1", 2)]);
        stuck.message = "2 of 2 replica(s) that must leave root:platform/eu-1 stay there".into();
        let status = reported(&md, &stuck, |_| {}, &fleet);
        assert_eq!(
            brief(find(&status, "Degraded")),
            ("True", "NoAlternativeCapacity")
        );
        assert_eq!(
            brief(find(&status, "QuotaReserved")),
            ("True", "QuotaReserved")
        );
    }

    #[test]
    fn transition_times_stay_while_statuses_do() {
        let mut md = llama(2, 8);
        let earlier = NOW - 300;
        md.status = Some(ModelDeploymentStatus {
            conditions: vec![
                condition(
                    &[],
                    Wanted::new(types::SCHEDULED, false, "NoTargetFits", "0/2 targets"),
                    Some(1),
                    earlier,
                ),
                condition(
                    &[],
                    Wanted::new(types::QUOTA_RESERVED, false, "QuotaExceeded", ""),
                    Some(1),
                    earlier,
                ),
            ],
            ..ModelDeploymentStatus::default()
        });
        let d = decision(Outcome::InsufficientContiguousGpus, &[]);
        let status = reported(&md, &d, |_| {}, &healthy_fleet());
        let scheduled = find(&status, "Scheduled");
        assert_eq!(brief(scheduled), ("False", "InsufficientContiguousGPUs"));
        assert_eq!(seconds(&scheduled.last_transition_time), earlier);
        let quota = find(&status, "QuotaReserved");
        assert_eq!(brief(quota), ("True", "QuotaReserved"));
        assert_eq!(seconds(&quota.last_transition_time), NOW);
    }
}
