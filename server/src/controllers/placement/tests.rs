//! The placement pass without storage: a tiny fleet applies each [`Pass`] the way the
//! controller's writes would land (generations bumped on spec changes, statuses replaced) and
//! reports as the syncers would, and each test is a scenario a user would notice: a new
//! deployment placed and a pass over its own writes writing nothing, deleted deployments
//! losing their Placements (and undecided ones keeping them), a silent target tainted and
//! its replicas handed over once the new copy is available, a target that never reported
//! marked once. An ignored test measures a pass over 1,000 deployments against the engine
//! alone.

use std::collections::BTreeSet;

use serde_json::json;
use trellis_apis::compute::placement::RETIRING_SINCE_ANNOTATION;
use trellis_apis::compute::sync_target::UNREACHABLE_TAINT;
use trellis_apis::compute::{GPUPool, Placement, PlacementStatus, SyncTarget};
use trellis_apis::serving::ModelDeployment;
use trellis_placement::Ledger;

use super::pass::{fast, pass, At, FleetRead, Pass, PlacementWrite};
use super::until;
use crate::fleet::time::time_at;

/// 2025-06-15T15:06:40Z.
const NOW: i64 = 1_750_000_000;
const PROVIDER: &str = "root:platform";
const PROVIDER_ID: &str = "3k9pxq2m7b1vz0aa";
const TENANT: &str = "root:acme";
const TENANT_ID: &str = "2cynbfy2m0wtjqcs";

fn rfc3339(seconds: i64) -> String {
    crate::fleet::time::rfc3339(seconds)
}

/// A target of 8-GPU H200 nodes (the real reading: `NVIDIA H200`, 143771 MiB, Hopper) as its
/// syncer reports it, with `free` (free GPUs, nodes) and a heartbeat at `heartbeat`.
fn target(name: &str, free: &[(i32, i32)], heartbeat: i64) -> SyncTarget {
    let nodes: i32 = free.iter().map(|(_, n)| n).sum();
    let available: i32 = free.iter().map(|(f, n)| f * n).sum();
    serde_json::from_value(json!({
        "apiVersion": "compute.trellis.dev/v1alpha1", "kind": "SyncTarget",
        "metadata": {"name": name, "uid": format!("uid-{name}"), "generation": 1,
            "labels": {"topology.kubernetes.io/region": "eu-west-1"}},
        "spec": {},
        "status": {
            "lastHeartbeatTime": rfc3339(heartbeat),
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "SyncerReady", "message": "",
                    "lastTransitionTime": rfc3339(NOW - 3600)},
            ],
            "gpus": [{
                "productName": "NVIDIA H200", "memoryMiB": 143771, "architecture": "Hopper",
                "cudaComputeCapability": "9.0",
                "totalDevices": nodes * 8, "allocatedDevices": nodes * 8 - available,
                "availableDevices": available,
                "freeByNode": free.iter().map(|(f, n)| json!({"freeDevices": f, "nodes": n}))
                    .collect::<Vec<_>>(),
            }],
        },
    }))
    .expect("a SyncTarget")
}

fn pool() -> GPUPool {
    serde_json::from_value(json!({
        "apiVersion": "compute.trellis.dev/v1alpha1", "kind": "GPUPool",
        "metadata": {"name": "h200", "uid": "uid-pool", "generation": 1},
        "spec": {
            "classes": [{"name": "h200", "match": {"productName": "NVIDIA H200"}}],
            "tenants": [{"workspace": TENANT, "quotas": [{"class": "h200", "nominalQuota": 64}]}],
        },
    }))
    .expect("a GPUPool")
}

/// `replicas` of `gpus` H200s each, tolerating a lost target for 30 s.
fn deployment(name: &str, replicas: i32, gpus: i32) -> ModelDeployment {
    serde_json::from_value(json!({
        "apiVersion": "serving.trellis.dev/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
            "generation": 1, "creationTimestamp": rfc3339(NOW - 600)},
        "spec": {
            "model": {"uri": "hf://meta-llama/Llama-3.1-8B-Instruct"},
            "runtime": {"image": "vllm/vllm-openai:v0.9.1"},
            "resources": {"gpu": {"class": "h200", "count": gpus}},
            "replicas": replicas,
            "placement": {"pool": format!("{PROVIDER}/h200")},
            "failover": {"tolerationSeconds": 30},
        },
    }))
    .expect("a ModelDeployment")
}

/// The fleet as stored, and the controller's ledger.
#[derive(Clone)]
struct Fleet {
    now: i64,
    targets: Vec<SyncTarget>,
    pools: Vec<GPUPool>,
    deployments: Vec<ModelDeployment>,
    placements: Vec<Placement>,
    undecided: Vec<String>,
    ledger: Option<Ledger>,
    created: u32,
}

impl Fleet {
    fn new(targets: Vec<SyncTarget>, deployments: Vec<ModelDeployment>) -> Fleet {
        Fleet {
            now: NOW,
            targets,
            pools: vec![pool()],
            deployments,
            placements: Vec::new(),
            undecided: Vec::new(),
            ledger: None,
            created: 0,
        }
    }

    fn read(&self) -> FleetRead<'_> {
        let provider = |object| At {
            workspace: PROVIDER,
            cluster: PROVIDER_ID,
            object,
        };
        FleetRead {
            targets: self.targets.iter().map(provider).collect(),
            pools: self
                .pools
                .iter()
                .map(|object| At {
                    workspace: PROVIDER,
                    cluster: PROVIDER_ID,
                    object,
                })
                .collect(),
            deployments: self
                .deployments
                .iter()
                .map(|object| At {
                    workspace: TENANT,
                    cluster: TENANT_ID,
                    object,
                })
                .collect(),
            placements: self
                .placements
                .iter()
                .map(|object| At {
                    workspace: PROVIDER,
                    cluster: PROVIDER_ID,
                    object,
                })
                .collect(),
            undecided: self.undecided.iter().map(String::as_str).collect(),
        }
    }

    /// One pass, its writes landed.
    fn pass(&mut self) -> Pass {
        let mut ledger = self.ledger.take();
        let out = pass(&self.read(), &mut ledger, self.now);
        self.ledger = ledger;
        self.apply(&out);
        out
    }

    /// A pass over the last `new` deployments alone, the others' quota charged as the
    /// controller charges it; its writes landed. `None`: it stood down (nothing changed).
    fn fast(&mut self, new: usize) -> Option<Pass> {
        let split = self.deployments.len() - new;
        let running = crate::fleet::snapshot::running_replicas(&self.placements);
        let charged = self.deployments[..split]
            .iter()
            .filter_map(|md| {
                let uid = md.metadata.uid.as_deref().unwrap_or_default();
                let running = running.get(uid).copied().unwrap_or(0);
                crate::fleet::snapshot::quota_charge(TENANT, md, running)
            })
            .collect();
        let mut read = self.read();
        read.deployments.drain(..split);
        read.placements.clear();
        let mut ledger = self.ledger.clone().expect("a whole pass ran first");
        let mut out = fast(&read, charged, &mut ledger, self.now)?;
        self.ledger = Some(ledger);
        for (index, _) in &mut out.deployments {
            *index += split;
        }
        self.apply(&out);
        Some(out)
    }

    fn apply(&mut self, out: &Pass) {
        for write in &out.targets {
            let t = &mut self.targets[write.target];
            t.spec.taints.clone_from(&write.taints);
            t.status.get_or_insert_with(Default::default).conditions = write.conditions.clone();
        }
        for (index, status) in &out.deployments {
            self.deployments[*index].status = Some(status.clone());
        }
        for (index, status) in &out.pools {
            self.pools[*index].status = Some(status.clone());
        }
        for write in &out.placements {
            match write {
                PlacementWrite::Create {
                    target, placement, ..
                } => {
                    let name = self.targets[*target].metadata.name.clone();
                    assert_eq!(
                        placement.metadata.namespace,
                        name.map(|n| format!("target-{n}"))
                    );
                    self.created += 1;
                    let mut p = placement.clone();
                    p.metadata.uid = Some(format!("uid-placement-{}", self.created));
                    p.metadata.generation = Some(1);
                    self.placements.push(p);
                }
                PlacementWrite::Update { index, placement } => {
                    let p = &mut self.placements[*index];
                    if p.spec != placement.spec {
                        p.metadata.generation = Some(p.metadata.generation.unwrap_or(0) + 1);
                    }
                    p.spec = placement.spec.clone();
                    p.metadata.labels.clone_from(&placement.metadata.labels);
                    p.metadata
                        .annotations
                        .clone_from(&placement.metadata.annotations);
                }
            }
        }
        let mut index = 0;
        self.placements.retain(|_| {
            index += 1;
            !out.deletes.contains(&(index - 1))
        });
    }

    /// Time passes; the syncers of `beating` heartbeat just before.
    fn at(&mut self, now: i64, beating: &[&str]) {
        self.now = now;
        for t in &mut self.targets {
            if beating.contains(&t.metadata.name.as_deref().unwrap_or_default()) {
                if let Some(status) = t.status.as_mut() {
                    status.last_heartbeat_time = Some(time_at(now - 1));
                }
            }
        }
    }

    /// The syncer of the target of `namespace` reports its Placements running.
    fn available(&mut self, namespace: &str) {
        for p in &mut self.placements {
            if p.metadata.namespace.as_deref() == Some(namespace) {
                p.status = Some(PlacementStatus {
                    observed_generation: p.metadata.generation,
                    replicas: p.spec.replicas,
                    ready_replicas: p.spec.replicas,
                    endpoint: None,
                    conditions: vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
                        type_: "Available".into(),
                        status: "True".into(),
                        reason: "MinimumReplicasAvailable".into(),
                        message: String::new(),
                        observed_generation: None,
                        last_transition_time: time_at(self.now),
                    }],
                });
            }
        }
    }

    fn where_placed(&self) -> Vec<(String, i32, bool)> {
        self.placements
            .iter()
            .map(|p| {
                let retiring = p
                    .metadata
                    .annotations
                    .as_ref()
                    .is_some_and(|a| a.contains_key(RETIRING_SINCE_ANNOTATION));
                (
                    p.metadata.namespace.clone().unwrap_or_default(),
                    p.spec.replicas,
                    retiring,
                )
            })
            .collect()
    }

    fn condition(&self, deployment: usize, type_: &str) -> (String, String) {
        let status = self.deployments[deployment]
            .status
            .clone()
            .unwrap_or_default();
        match status.conditions.iter().find(|c| c.type_ == type_) {
            Some(c) => (c.status.clone(), c.reason.clone()),
            None => panic!("no {type_} condition"),
        }
    }
}

#[test]
fn a_new_deployment_is_placed_and_a_pass_over_its_own_writes_writes_nothing() {
    let mut fleet = Fleet::new(
        vec![
            target("eu-1", &[(8, 2)], NOW - 5),
            target("eu-2", &[(8, 2)], NOW - 5),
        ],
        vec![deployment("llama", 2, 4)],
    );

    // Step 1: the first pass of a term restores the ledger, places, and says so.
    let first = fleet.pass();
    assert!(first.restored_ledger);
    let [PlacementWrite::Create { placement, .. }] = &first.placements[..] else {
        panic!("one Placement created: {:?}", first.placements)
    };
    assert_eq!(placement.spec.replicas, 2);
    assert_eq!(placement.spec.origin.cluster, TENANT_ID);
    assert_eq!(placement.spec.origin.workspace, TENANT);
    assert!(placement.spec.booking > 0, "booked in the ledger");
    assert_eq!(
        fleet.condition(0, "Scheduled"),
        ("True".into(), "Scheduled".into())
    );
    let pool_status = fleet.pools[0].status.clone().unwrap_or_default();
    assert_eq!(pool_status.classes[0].allocated, 8);
    // Both targets get the hub's HeartbeatHealthy condition; both are looked at again
    // when their heartbeat would go stale.
    assert_eq!(first.targets.len(), 2);
    assert_eq!(first.wake_at, Some(NOW - 5 + 41));

    // Step 2: fed its own writes, the next pass writes nothing.
    fleet.at(NOW + 10, &[]);
    let second = fleet.pass();
    assert!(second.is_empty(), "{second:?}");
    assert!(!second.restored_ledger);
    assert_eq!(fleet.where_placed().len(), 1);

    // Step 3: a new leader (no ledger) decides the same.
    fleet.ledger = None;
    let third = fleet.pass();
    assert!(third.restored_ledger && third.is_empty(), "{third:?}");
}

#[test]
fn new_deployments_alone_are_placed_as_a_whole_pass_places_them() {
    let mut fleet = Fleet::new(
        vec![
            target("eu-1", &[(8, 2), (4, 1)], NOW - 5),
            target("eu-2", &[(8, 2)], NOW - 5),
        ],
        vec![deployment("llama", 2, 4), deployment("mistral", 1, 8)],
    );
    fleet.pass();
    fleet.at(NOW + 1, &[]);
    for name in ["qwen", "phi", "gemma"] {
        let mut md = deployment(name, 1, 4);
        md.metadata.creation_timestamp = Some(time_at(NOW));
        fleet.deployments.push(md);
    }
    let mut whole = fleet.clone();
    let by_whole = whole.pass();
    let by_new = fleet.fast(3).expect("nothing but new deployments changed");

    // The same Placements, bookings, statuses and ledger.
    assert_eq!(by_new.decided, 3);
    assert_eq!(by_new.placements, by_whole.placements);
    assert_eq!(by_new.deployments, by_whole.deployments);
    assert_eq!(fleet.ledger, whole.ledger);
    assert_eq!(fleet.where_placed(), whole.where_placed());
    assert_eq!(fleet.condition(4, "Scheduled").0, "True");
    // What it leaves to the next whole pass: the pool's status, nothing else.
    assert!(by_new.pools.is_empty() && !by_whole.pools.is_empty());
    let settle = fleet.pass();
    assert_eq!(settle.pools, by_whole.pools);
    assert!(
        settle.placements.is_empty() && settle.deployments.is_empty() && settle.deletes.is_empty()
    );
}

#[test]
fn a_pass_over_new_deployments_stands_down_for_a_whole_one() {
    let mut fleet = Fleet::new(
        vec![target("eu-1", &[(8, 8)], NOW - 5)],
        vec![deployment("llama", 6, 8)],
    );
    fleet.pass();
    let ledger = fleet.ledger.clone();

    // Over quota only with what the others use (48 of 64): refused, so a whole pass says why.
    fleet.deployments.push(deployment("mistral", 3, 8));
    assert_eq!(fleet.fast(1), None);
    assert_eq!(fleet.ledger, ledger, "the ledger is untouched");
    assert!(fleet.where_placed().len() == 1);
    fleet.deployments.pop();

    // A fitting one, but a target's heartbeat went stale: its health is a whole pass's.
    fleet.deployments.push(deployment("qwen", 1, 8));
    fleet.at(NOW + 60, &[]);
    assert_eq!(fleet.fast(1), None);
    fleet.at(NOW + 60, &["eu-1"]);
    assert!(fleet.fast(1).is_some());
    assert_eq!(fleet.where_placed().len(), 2);
}

#[test]
fn deleted_deployments_lose_their_placements_and_undecided_ones_keep_them() {
    let mut fleet = Fleet::new(
        vec![target("eu-1", &[(8, 4)], NOW - 5)],
        vec![deployment("llama", 1, 8), deployment("mistral", 1, 8)],
    );
    fleet.pass();
    assert_eq!(fleet.where_placed().len(), 2);

    // Being deleted (a finalizer holds it): its Placement goes.
    fleet.deployments[0].metadata.deletion_timestamp = Some(time_at(NOW));
    let out = fleet.pass();
    assert_eq!(out.deletes.len(), 1);
    assert!(fleet
        .placements
        .iter()
        .all(|p| p.spec.origin.uid == "uid-mistral"));

    // Its workspace path unknown for now: not decided on, and nothing of it is deleted.
    let mistral = fleet.deployments.remove(1);
    fleet.deployments.remove(0);
    fleet.undecided = vec!["uid-mistral".into()];
    let out = fleet.pass();
    assert!(out.deletes.is_empty(), "{out:?}");
    assert_eq!(fleet.placements.len(), 1);

    // Gone from everywhere: its Placement is an orphan.
    fleet.undecided.clear();
    let out = fleet.pass();
    assert_eq!(out.deletes, BTreeSet::from([0]));
    assert!(fleet.placements.is_empty());
    drop(mistral);
}

#[test]
fn a_silent_target_is_tainted_and_its_replicas_move_once_the_new_copy_is_available() {
    let mut fleet = Fleet::new(
        vec![
            target("eu-1", &[(8, 1)], NOW - 5),
            target("eu-2", &[(8, 1)], NOW - 5),
        ],
        vec![deployment("llama", 1, 8)],
    );
    fleet.pass();
    let [(home, 1, false)] = &fleet.where_placed()[..] else {
        panic!("one replica placed: {:?}", fleet.where_placed())
    };
    let home = home.clone();
    let (lost, other) = if home == "target-eu-1" {
        ("eu-1", "eu-2")
    } else {
        ("eu-2", "eu-1")
    };
    fleet.available(&home);
    fleet.at(NOW + 10, &["eu-1", "eu-2"]);
    fleet.pass();
    assert_eq!(fleet.condition(0, "Ready").0, "True");

    // Step 1: the lost target's heartbeat goes stale: tainted, the replica stays, and the
    // pass asks to look again when the toleration (30 s) runs out.
    fleet.at(NOW + 60, &[other]);
    let tainted = fleet.pass();
    let lost_index = usize::from(lost == "eu-2");
    let write = tainted
        .targets
        .iter()
        .find(|w| w.target == lost_index)
        .expect("the lost target is written");
    assert_eq!(write.taints[0].key, UNREACHABLE_TAINT);
    assert_eq!(write.taints[0].effect, "NoExecute");
    assert!(tainted.placements.is_empty() && tainted.deletes.is_empty());
    assert_eq!(tainted.wake_at, Some(NOW + 60 + 30));
    assert_eq!(
        fleet.condition(0, "Degraded"),
        ("True".into(), "TargetLost".into())
    );

    // Step 2: the toleration runs out: a new copy elsewhere, the old one retiring.
    fleet.at(NOW + 90, &[other]);
    let moved = fleet.pass();
    assert!(moved.deletes.is_empty());
    let mut placed = fleet.where_placed();
    placed.sort();
    assert_eq!(
        placed,
        vec![
            (format!("target-{}", "eu-1"), 1, lost == "eu-1"),
            (format!("target-{}", "eu-2"), 1, lost == "eu-2"),
        ]
    );

    // Step 3: the new copy is available: the old one goes.
    fleet.available(&format!("target-{other}"));
    fleet.at(NOW + 95, &[other]);
    let handed_over = fleet.pass();
    assert_eq!(handed_over.deletes.len(), 1);
    assert_eq!(
        fleet.where_placed(),
        vec![(format!("target-{other}"), 1, false)]
    );
    assert_eq!(fleet.condition(0, "Ready").0, "True");
}

#[test]
fn an_exceeded_quota_places_nothing() {
    let mut fleet = Fleet::new(
        vec![target("eu-1", &[(8, 16)], NOW - 5)],
        vec![deployment("huge", 9, 8)],
    );
    let out = fleet.pass();
    assert!(out.placements.is_empty());
    assert_eq!(
        fleet.condition(0, "QuotaReserved"),
        ("False".into(), "QuotaExceeded".into())
    );
}

#[test]
fn a_wake_is_just_after_its_second_begins() {
    let now_ms = NOW * 1000 + 500;
    assert_eq!(until(NOW + 2, now_ms).as_millis(), 1550);
    assert_eq!(until(NOW - 2, now_ms).as_millis(), 50, "never in the past");
}

#[test]
fn a_target_that_never_reported_is_marked_once() {
    let mut silent = target("eu-9", &[], NOW);
    silent.status = None;
    let mut fleet = Fleet::new(vec![silent], vec![]);
    let first = fleet.pass();
    assert_eq!(first.targets.len(), 1);
    assert_eq!(first.targets[0].conditions[0].reason, "HeartbeatMissed");
    assert!(
        first.targets[0].taints.is_empty(),
        "never reported: not tainted"
    );
    assert_eq!(first.wake_at, None);
    // Read back as stored (through JSON): nothing more to write.
    let stored = serde_json::to_value(&fleet.targets[0]).expect("JSON");
    fleet.targets[0] = serde_json::from_value(stored).expect("a SyncTarget");
    let second = fleet.pass();
    assert!(second.is_empty(), "{second:?}");
}

/// A pass over 1,000 deployments on 50 targets, first placing them all, then over its own
/// writes; prints `bench:` lines beside the engine's own placement of the same snapshot.
/// Run with `cargo test --release -p trellis-server --lib pass_over_a_thousand -- --ignored
/// --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn pass_over_a_thousand_deployments() {
    let targets = (0..50)
        .map(|i| target(&format!("t-{i}"), &[(8, 16)], NOW - 5))
        .collect();
    let deployments = (0..1000)
        .map(|i| deployment(&format!("d-{i}"), 2, 2))
        .collect();
    let mut fleet = Fleet::new(targets, deployments);
    if let Some(pool) = fleet.pools.first_mut() {
        pool.spec.tenants[0].quotas[0].nominal_quota = 100_000;
    }
    let started = std::time::Instant::now();
    let first = fleet.pass();
    let placing = started.elapsed();
    assert_eq!(first.placements.len(), 1000, "every deployment placed");
    let started = std::time::Instant::now();
    let again = fleet.pass();
    let settled = started.elapsed();
    assert!(again.is_empty());
    // The baseline: the engine alone on the same (settled) fleet.
    let read = fleet.read();
    let targets: Vec<(&str, &SyncTarget)> = read
        .targets
        .iter()
        .map(|a| (a.workspace, a.object))
        .collect();
    let pools: Vec<(&str, &GPUPool)> = read.pools.iter().map(|a| (a.workspace, a.object)).collect();
    let deployments: Vec<(&str, &ModelDeployment)> = read
        .deployments
        .iter()
        .map(|a| (a.workspace, a.object))
        .collect();
    let placements: Vec<(&str, &Placement)> = read
        .placements
        .iter()
        .map(|a| (a.workspace, a.object))
        .collect();
    let snapshot = crate::fleet::snapshot::build_snapshot(
        &crate::fleet::snapshot::FleetObjects {
            targets: &targets,
            pools: &pools,
            deployments: &deployments,
            placements: &placements,
        },
        fleet.now,
    );
    let started = std::time::Instant::now();
    trellis_placement::place(&snapshot.snapshot, &mut Ledger::new());
    let engine = started.elapsed();
    println!("bench: placement_engine_1000 {} ms", engine.as_millis());
    println!(
        "bench: placement_pass_first_1000 {} ms",
        placing.as_millis()
    );
    println!(
        "bench: placement_pass_settled_1000 {} ms",
        settled.as_millis()
    );
}

/// What the metrics hear of the fleet: targets by `Ready`, the stalest heartbeat, and each
/// pool class's allocated and total GPUs from the pool's status.
#[test]
fn fleet_health_for_the_metrics() {
    let fresh = target("eu-1", &[(8, 2)], NOW - 5);
    let mut stale = target("eu-2", &[(8, 1)], NOW - 90);
    if let Some(status) = stale.status.as_mut() {
        status.conditions[0].status = "False".into();
    }
    let mut h200 = pool();
    h200.status = Some(
        serde_json::from_value(json!({
            "classes": [{"name": "h200", "capacity": 24, "allocated": 10}],
        }))
        .expect("a GPUPool status"),
    );
    let health = super::fleet_health(
        [&fresh, &stale].into_iter(),
        [&h200].into_iter(),
        NOW * 1000,
    );
    assert_eq!((health.ready_targets, health.unready_targets), (1, 1));
    assert_eq!(health.oldest_heartbeat_seconds, 90.0);
    assert_eq!(
        health.pools.get(&("h200".to_string(), "h200".to_string())),
        Some(&(10, 24))
    );
}
