//! Device allocation as DRA's structured parameters describe it, as pure functions: how many
//! devices a claim asks for, which devices an allocated claim holds (and on which node), and
//! the `status.allocation` the scheduler writes when it picks devices of a node.
//!
//! Every request counts devices of the GPU driver's pool; CEL selectors, `All` allocation and
//! capacity requests are not evaluated (a request with `allocationMode: All` counts as one).

use k8s_openapi::api::core::v1::{NodeSelector, NodeSelectorRequirement, NodeSelectorTerm};
use k8s_openapi::api::resource::v1::{
    AllocationResult, DeviceAllocationResult, DeviceRequestAllocationResult, ResourceClaim,
};

use crate::gpu::labels::DRA_DRIVER;

/// The requests of `claim` and how many devices each asks for.
pub fn requested(claim: &ResourceClaim) -> Vec<(String, i64)> {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.devices.as_ref())
        .and_then(|d| d.requests.as_ref())
        .into_iter()
        .flatten()
        .map(|request| {
            let count = match (&request.exactly, &request.first_available) {
                (Some(exact), _) => match exact.allocation_mode.as_deref() {
                    Some("All") => 1,
                    _ => exact.count.unwrap_or(1),
                },
                (None, Some(subrequests)) => subrequests
                    .first()
                    .map(|s| s.count.unwrap_or(1))
                    .unwrap_or(1),
                (None, None) => 1,
            };
            (request.name.clone(), count.max(0))
        })
        .collect()
}

/// The node and devices an allocated claim holds (of the GPU driver).
pub fn held(claim: &ResourceClaim) -> Option<(String, Vec<String>)> {
    let results = claim
        .status
        .as_ref()?
        .allocation
        .as_ref()?
        .devices
        .as_ref()?
        .results
        .as_ref()?;
    let mine: Vec<&DeviceRequestAllocationResult> =
        results.iter().filter(|r| r.driver == DRA_DRIVER).collect();
    let node = mine.first()?.pool.clone();
    Some((node, mine.iter().map(|r| r.device.clone()).collect()))
}

/// The allocation of `devices` of `node` to the requests of a claim, in request order: the
/// devices and a node selector naming the node, as kube-scheduler writes it.
pub fn allocation(node: &str, requests: &[(String, i64)], devices: &[String]) -> AllocationResult {
    let mut free = devices.iter();
    let results = requests
        .iter()
        .flat_map(|(request, count)| (0..*count).map(move |_| request.clone()))
        .zip(free.by_ref())
        .map(|(request, device)| DeviceRequestAllocationResult {
            request,
            driver: DRA_DRIVER.to_string(),
            pool: node.to_string(),
            device: device.clone(),
            ..DeviceRequestAllocationResult::default()
        })
        .collect();
    AllocationResult {
        devices: Some(DeviceAllocationResult {
            results: Some(results),
            config: None,
        }),
        node_selector: Some(NodeSelector {
            node_selector_terms: vec![NodeSelectorTerm {
                match_fields: Some(vec![NodeSelectorRequirement {
                    key: "metadata.name".into(),
                    operator: "In".into(),
                    values: Some(vec![node.to_string()]),
                }]),
                match_expressions: None,
            }],
        }),
        allocation_timestamp: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_allocation_names_the_node_and_one_device_per_requested_gpu() {
        let claim: ResourceClaim = serde_json::from_value(json!({
            "metadata": {"name": "c"},
            "spec": {"devices": {"requests": [
                {"name": "gpus", "exactly": {"deviceClassName": "gpu.nvidia.com", "count": 2}}]}}
        }))
        .unwrap();
        let requests = requested(&claim);
        assert_eq!(requests, [("gpus".to_string(), 2)]);
        let devices = ["gpu-1".to_string(), "gpu-3".to_string()];
        let allocation = allocation("node-a", &requests, &devices);
        let mut allocated = claim.clone();
        allocated.status = Some(k8s_openapi::api::resource::v1::ResourceClaimStatus {
            allocation: Some(allocation.clone()),
            ..Default::default()
        });
        assert_eq!(held(&allocated), Some(("node-a".into(), devices.to_vec())));
        let selector = serde_json::to_value(&allocation.node_selector).unwrap();
        assert_eq!(
            selector,
            json!({"nodeSelectorTerms": [{"matchFields": [
                {"key": "metadata.name", "operator": "In", "values": ["node-a"]}]}]})
        );
    }
}
