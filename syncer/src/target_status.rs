//! The SyncTarget status a heartbeat applies, pure: the heartbeat time, the syncer's
//! conditions, the cluster's version and features, the GPU inventory and the Placements it
//! accounts.
//!
//! The syncer owns `Ready` and `SyncerReady`; the hub owns `HeartbeatHealthy` (and sets
//! `Ready` False itself when heartbeats stop). Conditions are a list keyed by `type`, so the
//! syncer's server-side apply touches its own entries only, and the next heartbeat puts
//! `Ready` back once it is true again. When the cluster does not answer, `Ready` and
//! `SyncerReady` are False (`ClusterUnreachable`) and the last inventory read is reported
//! again rather than none, so the hub's books do not swing while the cluster is away (it
//! places nothing on a target that is not Ready anyway).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde_json::{json, Value};
use trellis_apis::compute::sync_target::conditions;
use trellis_apis::compute::{AccountedPlacement, SyncTarget, SyncTargetFeatures};
use trellis_apis::ApiObject;

use crate::inventory::Inventory;
use crate::time::time_at;

/// `Ready` and `SyncerReady` True: the syncer reaches the hub and its cluster.
pub const SYNCER_READY: &str = "SyncerReady";
/// `Ready` and `SyncerReady` False: the cluster's API does not answer.
pub const CLUSTER_UNREACHABLE: &str = "ClusterUnreachable";

/// What one heartbeat reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// Why the cluster could not be read, if it could not.
    pub cluster_error: Option<String>,
    pub kubernetes_version: Option<String>,
    pub features: SyncTargetFeatures,
    pub inventory: Inventory,
    pub accounted: Vec<AccountedPlacement>,
}

/// The apply body of the SyncTarget named `name` for `report` at `now` (seconds), keeping the
/// transition times of `previous` conditions whose status stays.
pub fn apply_body(name: &str, report: &Report, previous: &[Condition], now: i64) -> Value {
    let (status, reason, message) = match &report.cluster_error {
        None => (
            "True",
            SYNCER_READY,
            "the syncer reaches the hub and its cluster".to_string(),
        ),
        Some(why) => (
            "False",
            CLUSTER_UNREACHABLE,
            format!("the cluster does not answer: {why}"),
        ),
    };
    let condition = |type_: &str| {
        let since = previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| time_at(now));
        Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message: message.clone(),
            last_transition_time: since,
            observed_generation: None,
        }
    };
    let mut status = json!({
        "lastHeartbeatTime": time_at(now),
        "conditions": [condition(conditions::READY), condition(conditions::SYNCER_READY)],
        "features": report.features,
        "gpus": report.inventory.gpus,
        "incompletePools": report.inventory.incomplete_pools,
        "accounted": report.accounted,
    });
    if let Some(version) = &report.kubernetes_version {
        status["kubernetesVersion"] = json!(version);
    }
    json!({
        "apiVersion": format!("{}/{}", SyncTarget::GROUP, SyncTarget::VERSION),
        "kind": SyncTarget::KIND,
        "metadata": {"name": name},
        "status": status,
    })
}

/// The part of an apply body that changes only when the reading does (not the heartbeat
/// time): compared to decide whether a reading is worth an early write.
pub fn reading(body: &Value) -> Value {
    let mut status = body["status"].clone();
    if let Some(s) = status.as_object_mut() {
        s.remove("lastHeartbeatTime");
    }
    status
}

#[cfg(test)]
mod tests {
    use trellis_apis::compute::GPUInventory;

    use super::*;

    #[test]
    fn a_heartbeat_reports_ready_with_the_reading() {
        let report = Report {
            kubernetes_version: Some("v1.37.1".into()),
            features: SyncTargetFeatures {
                dra: true,
                image_volume: false,
            },
            inventory: Inventory {
                gpus: vec![GPUInventory {
                    product_name: "NVIDIA H200".into(),
                    total_devices: 8,
                    ..GPUInventory::default()
                }],
                incomplete_pools: vec!["gpu-node-9".into()],
            },
            accounted: vec![AccountedPlacement {
                placement: "p".into(),
                booking: 3,
            }],
            ..Report::default()
        };
        let body = apply_body("eu-1", &report, &[], 1_750_000_000);
        assert_eq!(body["apiVersion"], "compute.trellis.dev/v1alpha1");
        assert_eq!(body["kind"], "SyncTarget");
        let status = &body["status"];
        assert_eq!(status["lastHeartbeatTime"], "2025-06-15T15:06:40Z");
        assert_eq!(status["conditions"][0]["type"], "Ready");
        assert_eq!(status["conditions"][0]["status"], "True");
        assert_eq!(status["conditions"][1]["type"], "SyncerReady");
        assert_eq!(status["features"], json!({"dra": true}));
        assert_eq!(status["gpus"][0]["totalDevices"], 8);
        assert_eq!(status["incompletePools"], json!(["gpu-node-9"]));
        assert_eq!(
            status["accounted"],
            json!([{"placement": "p", "booking": 3}])
        );
        assert_eq!(status["kubernetesVersion"], "v1.37.1");
    }

    #[test]
    fn an_unreachable_cluster_is_not_ready_and_transition_times_stay() {
        let first = apply_body("eu-1", &Report::default(), &[], 100);
        let previous: Vec<Condition> =
            serde_json::from_value(first["status"]["conditions"].clone()).unwrap();
        let same = apply_body("eu-1", &Report::default(), &previous, 200);
        assert_eq!(
            same["status"]["conditions"][0]["lastTransitionTime"],
            first["status"]["conditions"][0]["lastTransitionTime"]
        );
        assert_eq!(reading(&same), reading(&first));
        let down = Report {
            cluster_error: Some("connection refused".into()),
            ..Report::default()
        };
        let body = apply_body("eu-1", &down, &previous, 300);
        let ready = &body["status"]["conditions"][0];
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["reason"], CLUSTER_UNREACHABLE);
        assert_eq!(ready["lastTransitionTime"], "1970-01-01T00:05:00Z");
        assert_ne!(reading(&body), reading(&first));
    }
}
