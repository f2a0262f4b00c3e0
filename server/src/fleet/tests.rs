//! The fleet glue end to end, without I/O: a tiny in-memory hub whose placement controller is
//! exactly the call order of this module (health, snapshot, ledger, place, render, status),
//! whose "server" applies plans the way server-side apply would (generation bumps on spec
//! changes, status kept), and whose syncers report Placements ready and their GPUs accounted.
//! Each test is a scenario a user would notice: placed replicas stay put, quota and
//! fragmentation refuse with their reasons, a lost target hands over gracefully.

use std::collections::BTreeSet;

use trellis_apis::compute::placement::target_namespace;
use trellis_apis::compute::{
    AccountedPlacement, FreeDevicesOnNodes, GPUPool, Placement, PlacementStatus, SyncTarget,
};
use trellis_apis::serving::{ModelDeployment, ModelDeploymentStatus};
use trellis_placement::{place, Decision, Ledger, Outcome};

use super::fixtures::*;
use super::health::{assess, failover_due};
use super::keys::split_key;
use super::ledger::prune_ledger;
use super::render::{render, Origin, PlacementRef, Plan};
use super::snapshot::{build_snapshot, is_retiring, FleetObjects, FleetSnapshot};
use super::status::deployment_status;
use super::time::time_at;

struct Hub {
    now: i64,
    targets: Vec<SyncTarget>,
    /// Targets whose syncer stopped heartbeating.
    silent: BTreeSet<String>,
    pools: Vec<GPUPool>,
    deployments: Vec<ModelDeployment>,
    placements: Vec<Placement>,
    ledger: Ledger,
}

/// What one placement pass decided and wrote.
struct Pass {
    #[allow(dead_code)]
    fleet: FleetSnapshot,
    decisions: Vec<Decision>,
    plans: Vec<Plan>,
}

impl Pass {
    /// The first deployment's replicas per target name.
    fn replicas(&self) -> Vec<(String, u32)> {
        self.decisions[0]
            .assignments
            .iter()
            .map(|(key, share)| {
                let name = split_key(key).map_or(key.as_str(), |(_, n)| n);
                (name.to_string(), share.replicas)
            })
            .collect()
    }
}

impl Hub {
    fn new(targets: Vec<SyncTarget>, pool: GPUPool, deployments: Vec<ModelDeployment>) -> Self {
        Self {
            now: NOW,
            targets,
            silent: BTreeSet::new(),
            pools: vec![pool],
            deployments,
            placements: Vec::new(),
            ledger: Ledger::new(),
        }
    }

    fn target(&self, name: &str) -> &SyncTarget {
        match self
            .targets
            .iter()
            .find(|t| t.metadata.name.as_deref() == Some(name))
        {
            Some(t) => t,
            None => panic!("no target {name}"),
        }
    }

    fn status(&self) -> ModelDeploymentStatus {
        self.deployments[0].status.clone().unwrap_or_default()
    }

    fn condition(&self, type_: &str) -> (String, String) {
        let status = self.status();
        match status.conditions.iter().find(|c| c.type_ == type_) {
            Some(c) => (c.status.clone(), c.reason.clone()),
            None => panic!("no {type_} condition"),
        }
    }

    /// Time passes; every syncer still running heartbeats 5 s before `now`.
    fn at(&mut self, now: i64) {
        self.now = now;
        for t in &mut self.targets {
            let name = t.metadata.name.clone().unwrap_or_default();
            if let Some(status) = t.status.as_mut().filter(|_| !self.silent.contains(&name)) {
                status.last_heartbeat_time = Some(time_at(now - 5));
            }
        }
    }

    /// The health controller's turn.
    fn check_health(&mut self) {
        for t in &mut self.targets {
            let health = assess(t, self.now);
            t.spec.taints = health.taints;
            if let Some(status) = t.status.as_mut() {
                status.conditions = health.conditions;
            }
        }
    }

    /// The placement controller's turn, in the order the module documents.
    fn place(&mut self) -> Pass {
        let targets: Vec<(&str, &SyncTarget)> =
            self.targets.iter().map(|t| (PROVIDER, t)).collect();
        let pools: Vec<(&str, &GPUPool)> = self.pools.iter().map(|p| (PROVIDER, p)).collect();
        let deployments: Vec<(&str, &ModelDeployment)> =
            self.deployments.iter().map(|d| (TENANT, d)).collect();
        let placements: Vec<(&str, &Placement)> =
            self.placements.iter().map(|p| (PROVIDER, p)).collect();
        let fleet = build_snapshot(
            &FleetObjects {
                targets: &targets,
                pools: &pools,
                deployments: &deployments,
                placements: &placements,
            },
            self.now,
        );
        assert!(fleet.warnings.is_empty(), "{:?}", fleet.warnings);
        prune_ledger(&mut self.ledger, &fleet);
        let mut decisions = place(&fleet.snapshot, &mut self.ledger);
        decisions.extend(fleet.refused.iter().cloned());

        let mut plans = Vec::new();
        let mut statuses = Vec::new();
        for md in &self.deployments {
            let uid = md.metadata.uid.as_deref().unwrap_or_default();
            let Some(decision) = decisions.iter().find(|d| d.uid == uid) else {
                continue;
            };
            let previous: Vec<(&str, &Placement)> = placements
                .iter()
                .filter(|(_, p)| p.spec.origin.uid == uid)
                .copied()
                .collect();
            let origin = Origin {
                workspace: TENANT,
                cluster: CLUSTER,
                deployment: md,
            };
            let plan = render(&origin, decision, &previous, self.now);
            statuses.push(deployment_status(
                md, decision, &plan, &previous, &fleet, self.now,
            ));
            plans.push(plan);
        }
        for plan in &plans {
            self.apply(plan);
        }
        for (md, status) in self.deployments.iter_mut().zip(statuses) {
            md.status = Some(status);
        }
        Pass {
            fleet,
            decisions,
            plans,
        }
    }

    /// The server applies a plan as server-side apply would.
    fn apply(&mut self, plan: &Plan) {
        for desired in plan.writes() {
            let at = desired.reference();
            let wanted = &desired.placement;
            match self
                .placements
                .iter_mut()
                .find(|p| PlacementRef::of(PROVIDER, p) == at)
            {
                Some(p) => {
                    if p.spec != wanted.spec {
                        p.metadata.generation = Some(p.metadata.generation.unwrap_or(0) + 1);
                    }
                    p.spec = wanted.spec.clone();
                    p.metadata.labels = wanted.metadata.labels.clone();
                    p.metadata.annotations = wanted.metadata.annotations.clone();
                }
                None => {
                    let mut p = wanted.clone();
                    p.metadata.generation = Some(1);
                    self.placements.push(p);
                }
            }
        }
        self.placements
            .retain(|p| !plan.delete.contains(&PlacementRef::of(PROVIDER, p)));
    }

    /// A target's syncer runs what it was given: all ready, its GPUs bound and accounted,
    /// leaving `free` (free GPUs, nodes) in its inventory.
    fn syncer_runs(&mut self, target: &str, free: &[(i32, i32)]) {
        let namespace = target_namespace(target);
        let mut accounted = Vec::new();
        for p in &mut self.placements {
            if p.metadata.namespace.as_deref() != Some(namespace.as_str()) || is_retiring(p) {
                continue;
            }
            p.status = Some(PlacementStatus {
                observed_generation: p.metadata.generation,
                endpoint: Some(format!("http://{target}.gpu.example:8000")),
                ..available(p.spec.replicas)
            });
            accounted.push(AccountedPlacement {
                placement: p.metadata.name.clone().unwrap_or_default(),
                booking: p.spec.booking,
            });
        }
        let Some(t) = self
            .targets
            .iter_mut()
            .find(|t| t.metadata.name.as_deref() == Some(target))
        else {
            return;
        };
        if let Some(status) = t.status.as_mut() {
            status.accounted = accounted;
            status.gpus[0].free_by_node = free
                .iter()
                .filter(|(f, _)| *f > 0)
                .map(|(f, n)| FreeDevicesOnNodes {
                    free_devices: *f,
                    nodes: *n,
                })
                .collect();
        }
    }
}

#[test]
fn rendered_placements_fed_back_stay_put() {
    let mut hub = Hub::new(
        vec![
            h200_target("eu-1", &[(8, 4)]),
            h200_target("eu-2", &[(8, 2)]),
        ],
        h200_pool(64),
        vec![llama(3, 8)],
    );
    // Step 1: placed, three Placements' worth of replicas written, each with its booking.
    let first = hub.place();
    assert_eq!(first.decisions[0].outcome, Outcome::Scheduled);
    let placed = first.replicas();
    assert_eq!(placed.iter().map(|(_, r)| r).sum::<u32>(), 3);
    assert_eq!(hub.placements.len(), placed.len());
    assert!(hub.placements.iter().all(|p| p.spec.booking > 0));
    assert_eq!(
        hub.condition("Synced"),
        ("False".into(), "SyncPending".into())
    );

    // Step 2: fed back before any syncer reports: nothing moves, nothing is written.
    hub.at(NOW + 10);
    let second = hub.place();
    assert_eq!(
        second.decisions[0].assignments,
        first.decisions[0].assignments
    );
    assert!(second.decisions[0].bookings.is_empty());
    assert_eq!(second.plans[0].writes().count(), 0);
    assert!(second.plans[0].delete.is_empty());

    // Step 3: the syncers run them and account their GPUs: the holds go, still nothing moves.
    for (target, replicas) in &placed {
        let used = i32::try_from(*replicas).unwrap_or(0);
        let free = if target == "eu-1" { 4 - used } else { 2 - used };
        hub.syncer_runs(target, &[(8, free), (0, used)]);
    }
    hub.at(NOW + 30);
    let third = hub.place();
    assert_eq!(hub.ledger.holds().count(), 0);
    assert_eq!(
        third.decisions[0].assignments,
        first.decisions[0].assignments
    );
    assert_eq!(third.plans[0].writes().count(), 0);
    assert_eq!(
        hub.condition("Ready"),
        ("True".into(), "AllReplicasReady".into())
    );
    assert_eq!(hub.condition("Synced"), ("True".into(), "Synced".into()));
    let status = hub.status();
    assert_eq!((status.replicas, status.ready_replicas), (3, 3));
    assert_eq!(
        status
            .placements
            .iter()
            .map(|p| (p.target.clone(), p.replicas))
            .collect::<Vec<_>>(),
        placed
            .iter()
            .map(|(t, r)| (t.clone(), i32::try_from(*r).unwrap_or(0)))
            .collect::<Vec<_>>()
    );
}

#[test]
fn exceeding_quota_places_nothing_and_says_so() {
    let mut hub = Hub::new(
        vec![h200_target("eu-1", &[(8, 4)])],
        h200_pool(8),
        vec![llama(2, 8)],
    );
    let pass = hub.place();
    assert_eq!(pass.decisions[0].outcome, Outcome::QuotaExceeded);
    assert!(pass.plans[0].apply.is_empty() && hub.placements.is_empty());
    assert_eq!(
        hub.condition("QuotaReserved"),
        ("False".into(), "QuotaExceeded".into())
    );
    let status = hub.status();
    let quota = &status.conditions[0];
    assert!(
        quota.message.contains("needs 16 more GPUs"),
        "{}",
        quota.message
    );
    assert_eq!(status.replicas, 0);
    assert!(status.placements.is_empty());
}

#[test]
fn scattered_free_gpus_are_insufficient_contiguous_gpus() {
    // Sixteen H200s free, but two per node: no node takes a 4-GPU replica.
    let mut hub = Hub::new(
        vec![h200_target("eu-1", &[(2, 8)])],
        h200_pool(64),
        vec![llama(1, 4)],
    );
    let pass = hub.place();
    assert_eq!(
        pass.decisions[0].outcome,
        Outcome::InsufficientContiguousGpus
    );
    assert!(hub.placements.is_empty());
    assert_eq!(
        hub.condition("Scheduled"),
        ("False".into(), "InsufficientContiguousGPUs".into())
    );
    assert_eq!(
        hub.condition("QuotaReserved"),
        ("True".into(), "QuotaReserved".into())
    );
}

#[test]
fn a_lost_target_hands_over_after_its_toleration_and_keeps_the_old_copy_until_the_new_serves() {
    let mut hub = Hub::new(
        vec![
            h200_target("eu-1", &[(8, 2)]),
            h200_target("eu-2", &[(8, 2)]),
        ],
        h200_pool(64),
        vec![llama(2, 8)],
    );
    let first = hub.place();
    let [(home, 2)] = &first.replicas()[..] else {
        panic!(
            "BinPack puts both replicas on one target: {:?}",
            first.replicas()
        );
    };
    let home = home.clone();
    let other = if home == "eu-1" { "eu-2" } else { "eu-1" }.to_string();
    hub.syncer_runs(&home, &[(0, 2)]);
    hub.at(NOW + 30);
    hub.place();
    assert_eq!(
        hub.condition("Ready"),
        ("True".into(), "AllReplicasReady".into())
    );

    // Step 1: the home target goes silent; after 40 s it is tainted, the replicas stay.
    hub.silent.insert(home.clone());
    hub.at(NOW + 100);
    hub.check_health();
    let tainted_at = NOW + 100;
    let failover = hub.deployments[0].spec.failover.clone();
    assert!(!failover_due(&hub.target(&home).spec, &failover, hub.now));
    let waiting = hub.place();
    assert_eq!(waiting.replicas(), vec![(home.clone(), 2)]);
    assert_eq!(
        hub.condition("Degraded"),
        ("True".into(), "TargetLost".into())
    );

    hub.at(tainted_at + 299);
    hub.check_health();
    assert_eq!(hub.place().replicas(), vec![(home.clone(), 2)]);

    // Step 2: the toleration runs out: new replicas elsewhere, the old copy retires.
    hub.at(tainted_at + 300);
    hub.check_health();
    assert!(failover_due(&hub.target(&home).spec, &failover, hub.now));
    let moved = hub.place();
    assert_eq!(moved.decisions[0].outcome, Outcome::Scheduled);
    assert_eq!(moved.replicas(), vec![(other.clone(), 2)]);
    assert!(moved.decisions[0]
        .bookings
        .contains_key(&format!("{PROVIDER}/{other}")));
    assert!(moved.plans[0].delete.is_empty());
    let retiring: Vec<String> = hub
        .placements
        .iter()
        .filter(|p| is_retiring(p))
        .map(|p| p.metadata.namespace.clone().unwrap_or_default())
        .collect();
    assert_eq!(retiring, vec![target_namespace(&home)]);
    assert_eq!(hub.placements.len(), 2);
    assert_eq!(
        hub.condition("Degraded"),
        ("False".into(), "AsExpected".into())
    );
    assert_eq!(
        hub.condition("Ready"),
        ("False".into(), "ReplicasNotReady".into())
    );
    // The old copy still serves meanwhile.
    assert_eq!(hub.condition("Available").0, "True");

    // Step 3: a pass while the new copy starts: nothing moves again, nothing is deleted.
    hub.at(tainted_at + 310);
    let starting = hub.place();
    assert_eq!(starting.replicas(), vec![(other.clone(), 2)]);
    assert!(starting.decisions[0].bookings.is_empty());
    assert!(starting.plans[0].delete.is_empty() && starting.plans[0].writes().count() == 0);

    // Step 4: the new copy is available: the old one is deleted.
    hub.syncer_runs(&other, &[(0, 2)]);
    hub.at(tainted_at + 320);
    let handed_over = hub.place();
    assert_eq!(handed_over.plans[0].delete.len(), 1);
    assert_eq!(
        handed_over.plans[0].delete[0].namespace,
        target_namespace(&home)
    );
    assert_eq!(hub.placements.len(), 1);
    assert_eq!(
        hub.condition("Ready"),
        ("True".into(), "AllReplicasReady".into())
    );

    // Step 5: the old target comes back: its taint goes, and nothing lands on it twice.
    hub.silent.remove(&home);
    hub.at(tainted_at + 400);
    hub.check_health();
    assert!(hub.target(&home).spec.taints.is_empty());
    let back = hub.place();
    assert_eq!(back.replicas(), vec![(other.clone(), 2)]);
    assert!(back.decisions[0].bookings.is_empty());
    assert_eq!(back.plans[0].writes().count(), 0);
    assert_eq!(hub.placements.len(), 1);
}

#[test]
fn with_nowhere_to_go_nothing_is_deleted_and_the_deployment_is_degraded() {
    let mut hub = Hub::new(
        vec![
            h200_target("eu-1", &[(8, 2)]),
            h200_target("eu-2", &[(0, 2)]),
        ],
        h200_pool(64),
        vec![llama(2, 8)],
    );
    let first = hub.place();
    assert_eq!(first.replicas(), vec![("eu-1".to_string(), 2)]);
    hub.syncer_runs("eu-1", &[(0, 2)]);
    hub.silent.insert("eu-1".into());
    hub.at(NOW + 60);
    hub.check_health();
    let tainted_at = NOW + 60;
    hub.at(tainted_at + 300);
    hub.check_health();
    let stuck = hub.place();
    assert_eq!(stuck.decisions[0].outcome, Outcome::NoAlternativeCapacity);
    assert_eq!(stuck.replicas(), vec![("eu-1".to_string(), 2)]);
    assert!(stuck.plans[0].delete.is_empty());
    assert_eq!(hub.placements.len(), 1);
    assert!(!is_retiring(&hub.placements[0]));
    assert_eq!(
        hub.condition("Degraded"),
        ("True".into(), "NoAlternativeCapacity".into())
    );
}
