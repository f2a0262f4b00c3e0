//! Leader election: the controllers run on exactly one replica at a time, the holder of a
//! Lease (`kube-system/trellis-controllers` in root), as kube-controller-manager does it.
//!
//! The holder renews the lease every [`RENEW_EVERY`]; another replica takes it over once it
//! has not been renewed for [`LEASE_DURATION`]. Every write is preconditioned on the lease's
//! resourceVersion, so two replicas can never both win a round. A leader that cannot renew
//! for a whole lease duration stops its controllers before anyone else may start them.
//!
//! A leader that is told to stop (graceful shutdown) stops its controllers and then releases
//! the lease at once (holder emptied, as client-go's `ReleaseOnCancel` does), and followers
//! watch the lease: the next leader starts within moments, not a lease duration later.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use trellis_storage::{ObjectKey, Preconditions, StorageError, Store};

use crate::controllers::runtime::Running;
use crate::tenancy::workspaces::ROOT_CLUSTER;

pub const LEASE_DURATION: Duration = Duration::from_secs(10);
pub const RENEW_EVERY: Duration = Duration::from_secs(2);
const LEASE_NAMESPACE: &str = "kube-system";
const LEASE_NAME: &str = "trellis-controllers";

/// What one round decides.
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// No lease yet: create it, held by us.
    Create(Value),
    /// Renew ours, or take over an expired one.
    Update(Value),
    /// Someone else holds a live lease.
    Follow,
}

fn micro_time(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string()
}

/// The pure step: given the current lease (if any), who we are and the time, what to write.
pub fn decide(lease: Option<&Value>, me: &str, now: SystemTime) -> Decision {
    let duration = LEASE_DURATION.as_secs();
    let Some(lease) = lease else {
        return Decision::Create(json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": LEASE_NAME, "namespace": LEASE_NAMESPACE},
            "spec": {
                "holderIdentity": me,
                "leaseDurationSeconds": duration,
                "acquireTime": micro_time(now),
                "renewTime": micro_time(now),
                "leaseTransitions": 0,
            },
        }));
    };
    let holder = lease
        .pointer("/spec/holderIdentity")
        .and_then(Value::as_str);
    let renewed = lease
        .pointer("/spec/renewTime")
        .and_then(Value::as_str)
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok());
    let held_for = lease
        .pointer("/spec/leaseDurationSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(duration);
    let expired = renewed.is_none_or(|r| r + Duration::from_secs(held_for) < now);
    let mut next = lease.clone();
    if holder == Some(me) {
        next["spec"]["renewTime"] = json!(micro_time(now));
        next["spec"]["leaseDurationSeconds"] = json!(duration);
        return Decision::Update(next);
    }
    if !expired && holder.is_some_and(|h| !h.is_empty()) {
        return Decision::Follow;
    }
    let transitions = lease
        .pointer("/spec/leaseTransitions")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    next["spec"] = json!({
        "holderIdentity": me,
        "leaseDurationSeconds": duration,
        "acquireTime": micro_time(now),
        "renewTime": micro_time(now),
        "leaseTransitions": transitions + 1,
    });
    Decision::Update(next)
}

/// The lease `me` holds, given up: no holder, so that any candidate takes it at once; `None`
/// when `me` does not hold it (nothing to release).
pub fn released(lease: &Value, me: &str, now: SystemTime) -> Option<Value> {
    let holder = lease
        .pointer("/spec/holderIdentity")
        .and_then(Value::as_str);
    if holder != Some(me) {
        return None;
    }
    let mut next = lease.clone();
    next["spec"]["holderIdentity"] = json!("");
    next["spec"]["leaseDurationSeconds"] = json!(1);
    next["spec"]["renewTime"] = json!(micro_time(now));
    Some(next)
}

/// A name for this process: host, pid and a random suffix.
pub fn identity() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "trellis".into());
    format!(
        "{host}_{}_{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

fn lease_key() -> ObjectKey {
    ObjectKey::new(ROOT_CLUSTER, LEASES, LEASE_NAMESPACE, LEASE_NAME)
}

const LEASES: &str = "coordination.k8s.io/leases";

/// Gives the lease up if we hold it (preconditioned on what was read: if someone else took it
/// meanwhile, there is nothing to give).
async fn release(store: &Store, me: &str) -> Result<bool, StorageError> {
    let key = lease_key();
    let stored = match store.get(&key).await {
        Ok(stored) => stored,
        Err(StorageError::NotFound(_)) => return Ok(false),
        Err(e) => return Err(e),
    };
    let Ok(lease) = serde_json::from_slice::<Value>(&stored.value) else {
        return Ok(false);
    };
    let Some(next) = released(&lease, me, SystemTime::now()) else {
        return Ok(false);
    };
    match store
        .update(
            key,
            Bytes::from(next.to_string()),
            Preconditions::revision(stored.revision),
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(StorageError::Conflict { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// One round against storage: whether we hold the lease now.
async fn round(store: &Store, me: &str) -> Result<bool, StorageError> {
    let key = lease_key();
    let current = match store.get(&key).await {
        Ok(stored) => Some(stored),
        Err(StorageError::NotFound(_)) => None,
        Err(e) => return Err(e),
    };
    let lease: Option<Value> = current
        .as_ref()
        .and_then(|s| serde_json::from_slice(&s.value).ok());
    let encode = |v: &Value| Bytes::from(v.to_string());
    let outcome = match (decide(lease.as_ref(), me, SystemTime::now()), &current) {
        (Decision::Follow, _) => return Ok(false),
        (Decision::Create(mut lease), _) => {
            let uid = uuid::Uuid::new_v4().to_string();
            lease["metadata"]["uid"] = json!(uid);
            lease["metadata"]["creationTimestamp"] =
                json!(crate::machinery::object_meta::now_rfc3339());
            store.create(key, uid, encode(&lease)).await.map(drop)
        }
        (Decision::Update(lease), Some(stored)) => store
            .update(
                key,
                encode(&lease),
                Preconditions::revision(stored.revision),
            )
            .await
            .map(drop),
        (Decision::Update(_), None) => return Ok(false),
    };
    match outcome {
        Ok(()) => Ok(true),
        // Another replica wrote first this round.
        Err(StorageError::AlreadyExists(_) | StorageError::Conflict { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// How long stopping the controllers may take when leadership is lost, before the tasks left
/// are aborted: well within the lease, so they are gone before another replica may start its
/// own.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Runs `start` (which starts the controllers) while this process leads, and stops what it
/// started when leadership is lost, until `stop` is cancelled; then the controllers are
/// stopped and the lease, if held, is released. `leading` hears every change of leadership.
pub async fn run_until(
    store: Store,
    start: impl Fn() -> Running,
    stop: CancellationToken,
    leading: impl Fn(bool),
) {
    let me = identity();
    let mut running: Option<Running> = None;
    let mut last_renewed: Option<std::time::Instant> = None;
    // Followers wake on any change of the lease (a release above all), not only every round.
    let mut lease_changes: Option<trellis_storage::WatchStream> = None;
    loop {
        let is_leader = match round(&store, &me).await {
            Ok(true) => {
                last_renewed = Some(std::time::Instant::now());
                true
            }
            Ok(false) => false,
            Err(e) => {
                tracing::warn!(error = %e, "leader election: cannot reach the lease");
                // Keep leading only while the lease we last renewed is surely still ours.
                last_renewed.is_some_and(|t| t.elapsed() < LEASE_DURATION - RENEW_EVERY)
            }
        };
        if !is_leader {
            last_renewed = None;
        }
        match (is_leader, running.take()) {
            (true, None) => {
                tracing::info!(identity = %me, "leading: starting the controllers");
                running = Some(start());
                leading(true);
            }
            (false, Some(controllers)) => {
                tracing::warn!(identity = %me, "lost the lease: stopping the controllers");
                leading(false);
                controllers.shutdown(STOP_GRACE).await;
            }
            (_, still) => running = still,
        }
        if !is_leader && lease_changes.is_none() {
            let scope =
                trellis_storage::ListScope::namespace(ROOT_CLUSTER, LEASES, LEASE_NAMESPACE);
            lease_changes = store.watch(scope, None).await.ok();
        }
        if is_leader {
            lease_changes = None;
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(RENEW_EVERY) => {}
            changed = async { lease_changes.as_mut()?.next().await }, if lease_changes.is_some() => {
                // A broken watch is opened again next round.
                if !matches!(changed, Some(Ok(_))) {
                    lease_changes = None;
                }
            }
        }
    }
    if let Some(controllers) = running {
        leading(false);
        controllers.shutdown(STOP_GRACE).await;
        match release(&store, &me).await {
            Ok(true) => tracing::info!(identity = %me, "released the lease"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "could not release the lease; it will expire"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_goes_to_one_holder_and_moves_when_it_expires() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let Decision::Create(lease) = decide(None, "a", t0) else {
            panic!("expected a create")
        };
        assert_eq!(lease["spec"]["holderIdentity"], "a");
        // b follows while a's lease is live, a renews.
        assert_eq!(
            decide(Some(&lease), "b", t0 + Duration::from_secs(5)),
            Decision::Follow
        );
        let Decision::Update(renewed) = decide(Some(&lease), "a", t0 + Duration::from_secs(5))
        else {
            panic!("expected a renewal")
        };
        assert_eq!(renewed["spec"]["leaseTransitions"], 0);
        // Not renewed for longer than its duration: b takes it over.
        let Decision::Update(taken) = decide(Some(&renewed), "b", t0 + Duration::from_secs(16))
        else {
            panic!("expected a takeover")
        };
        assert_eq!(taken["spec"]["holderIdentity"], "b");
        assert_eq!(taken["spec"]["leaseTransitions"], 1);
    }

    #[test]
    fn a_released_lease_goes_to_the_next_candidate_at_once() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let Decision::Create(lease) = decide(None, "a", t0) else {
            panic!("expected a create")
        };
        assert_eq!(released(&lease, "b", t0), None, "only the holder releases");
        let given_up = released(&lease, "a", t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(given_up["spec"]["holderIdentity"], "");
        // b takes it right away, long before the lease would have expired.
        let Decision::Update(taken) = decide(Some(&given_up), "b", t0 + Duration::from_secs(1))
        else {
            panic!("expected a takeover")
        };
        assert_eq!(taken["spec"]["holderIdentity"], "b");
        assert_eq!(taken["spec"]["leaseTransitions"], 1);
    }
}
