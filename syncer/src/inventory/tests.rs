//! The inventory from the real H200 reading (`/work/shared/fixtures/gpu/nvidia-h200`): as GPU
//! feature discovery labels it (`NVIDIA-H200`, 143771 MiB, hopper, 9.0) on nodes of eight,
//! and as NVIDIA's DRA driver publishes it (`fixtures/h200-resourceslice.yaml`, a copy).

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::resource::v1::{ResourceClaim, ResourceSlice};
use serde_json::{json, Value};
use trellis_apis::compute::FreeDevicesOnNodes;

use super::accounted::{accounted, Applied};
use super::*;

const FIXTURE: &str = include_str!("fixtures/h200-resourceslice.yaml");

fn h200_node(name: &str, allocatable: Value, ready: bool, cordoned: bool) -> NodeGpus {
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {
            "nvidia.com/gpu.product": "NVIDIA-H200",
            "nvidia.com/gpu.memory": "143771",
            "nvidia.com/gpu.count": "8",
            "nvidia.com/gpu.family": "hopper",
            "nvidia.com/gpu.compute.major": "9",
            "nvidia.com/gpu.compute.minor": "0",
            "kubernetes.io/hostname": name,
        }},
        "spec": {"unschedulable": cordoned},
        "status": {
            "allocatable": allocatable,
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
        },
    }))
    .expect("node");
    NodeGpus::from_node(&node)
}

fn pod(node: Option<&str>, phase: &str, gpus: i64) -> PodGpus {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": gpus.to_string()}}}],
        },
        "status": {"phase": phase},
    }))
    .expect("pod");
    PodGpus::from_pod(&pod)
}

fn h200(inventory: &Inventory, product: &str) -> GPUInventory {
    inventory
        .gpus
        .iter()
        .find(|g| g.product_name == product)
        .cloned()
        .unwrap_or_else(|| panic!("no {product} in {inventory:?}"))
}

fn buckets(pairs: &[(i32, i32)]) -> Vec<FreeDevicesOnNodes> {
    pairs
        .iter()
        .map(|(free_devices, nodes)| FreeDevicesOnNodes {
            free_devices: *free_devices,
            nodes: *nodes,
        })
        .collect()
}

#[test]
fn device_plugin_free_gpus_per_node_subtract_bound_running_and_pending_pods() {
    let eight = json!({"nvidia.com/gpu": "8", "cpu": "192"});
    let nodes = [
        h200_node("gpu-node-1", eight.clone(), true, false),
        h200_node("gpu-node-2", eight.clone(), true, false),
        h200_node("gpu-node-3", eight.clone(), true, false),
        h200_node("cordoned", eight.clone(), true, true),
        h200_node("not-ready", eight.clone(), false, false),
    ];
    let pods = [
        pod(Some("gpu-node-1"), "Running", 8),
        // Bound but still starting: it holds its GPUs.
        pod(Some("gpu-node-2"), "Pending", 2),
        // Not bound yet: holds nothing anywhere.
        pod(None, "Pending", 4),
        // Finished: gave its GPUs back.
        pod(Some("gpu-node-3"), "Succeeded", 8),
        pod(Some("gpu-node-3"), "Failed", 8),
    ];
    let inventory = build(&nodes, &pods, &DraGpus::default());
    let gpu = h200(&inventory, "NVIDIA-H200");
    assert_eq!(gpu.memory_mib, Some(143_771));
    assert_eq!(gpu.architecture.as_deref(), Some("hopper"));
    assert_eq!(gpu.cuda_compute_capability.as_deref(), Some("9.0"));
    assert_eq!(
        (
            gpu.total_devices,
            gpu.allocated_devices,
            gpu.available_devices
        ),
        (24, 10, 14)
    );
    assert_eq!(gpu.free_by_node, buckets(&[(8, 1), (6, 1)]));
    assert!(inventory.incomplete_pools.is_empty());
    // A node without GPUs, or without the product label, adds nothing.
    let cpu_only = h200_node("cpu", json!({"cpu": "64"}), true, false);
    let mut unlabelled = h200_node("x", eight, true, false);
    unlabelled.product = None;
    assert_eq!(
        build(&[cpu_only, unlabelled], &[], &DraGpus::default()),
        Inventory::default()
    );
}

#[test]
fn time_sliced_gpus_count_as_whole_devices_and_mig_as_partitions() {
    let mut sliced = h200_node("sliced", json!({"nvidia.com/gpu": "32"}), true, false);
    sliced.replicas = 4;
    let mig = h200_node(
        "mig",
        json!({"nvidia.com/mig-1g.18gb": "7", "nvidia.com/mig-3g.71gb": "2"}),
        true,
        false,
    );
    let mig_pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "m"},
        "spec": {"nodeName": "mig", "containers": [{"name": "c",
            "resources": {"limits": {"nvidia.com/mig-1g.18gb": "2"}}}]},
        "status": {"phase": "Running"},
    }))
    .expect("pod");
    let pods = [
        pod(Some("sliced"), "Running", 3),
        PodGpus::from_pod(&mig_pod),
    ];
    let inventory = build(&[sliced, mig], &pods, &DraGpus::default());
    let gpu = h200(&inventory, "NVIDIA-H200");
    // 32 slices of 8 GPUs, 3 slices taken: 29 / 4 = 7 whole GPUs free.
    assert_eq!((gpu.total_devices, gpu.available_devices), (8, 7));
    assert_eq!(gpu.free_by_node, buckets(&[(7, 1)]));
    let partitions: Vec<(String, i32, i32)> = gpu
        .partitions
        .iter()
        .map(|p| (p.r#type.clone(), p.total, p.available))
        .collect();
    assert_eq!(
        partitions,
        vec![("1g.18gb".into(), 7, 5), ("3g.71gb".into(), 2, 2)]
    );
}

/// The fixture's slice, as if its node had `devices` H200s (`gpu-0`…), at `generation` of a
/// pool of `slices` slices.
fn slice(node: &str, devices: usize, generation: i64, slices: i64) -> ResourceSlice {
    let first = FIXTURE.split("\n---").next().unwrap_or_default();
    let mut slice: ResourceSlice =
        serde_yaml_ng::from_str(first).expect("the fixture slice parses");
    let template = slice.spec.devices.clone().unwrap_or_default()[0].clone();
    slice.metadata.name = Some(format!("{node}-gpu.nvidia.com-{generation}"));
    slice.spec.node_name = Some(node.into());
    slice.spec.pool.name = node.into();
    slice.spec.pool.generation = generation;
    slice.spec.pool.resource_slice_count = slices;
    slice.spec.devices = Some(
        (0..devices)
            .map(|i| {
                let mut d = template.clone();
                d.name = format!("gpu-{i}");
                d
            })
            .collect(),
    );
    slice
}

fn claim(pool: &str, devices: &[&str]) -> ResourceClaim {
    serde_json::from_value(json!({
        "metadata": {"name": "c", "namespace": "default"},
        "spec": {},
        "status": {"allocation": {"devices": {"results": devices.iter().map(|d| json!({
            "request": "gpus", "driver": "gpu.nvidia.com", "pool": pool, "device": d,
        })).collect::<Vec<_>>()}}},
    }))
    .expect("claim")
}

#[test]
fn the_fixture_slice_reads_as_the_real_h200() {
    let dra = DraGpus::from_objects([&slice("gpu-node-1", 1, 1, 1)], []);
    let device = &dra.slices[0].devices[0];
    assert_eq!(device.product, "NVIDIA H200");
    assert_eq!(device.info.memory_mib, Some(143_771));
    assert_eq!(device.info.architecture.as_deref(), Some("hopper"));
    assert_eq!(device.info.cuda_compute_capability.as_deref(), Some("9.0"));
    assert_eq!(dra::mebibytes("80Gi"), Some(81_920));
    assert_eq!(dra::mebibytes("bogus"), None);
}

#[test]
fn dra_devices_are_free_unless_a_claim_holds_them_and_node_allocatable_is_not_counted_again() {
    // The DRA nodes also advertise nvidia.com/gpu (extendedResourceName): not counted twice.
    let nodes = [
        h200_node("gpu-node-1", json!({"nvidia.com/gpu": "8"}), true, false),
        h200_node("gpu-node-2", json!({"nvidia.com/gpu": "8"}), true, false),
        h200_node("gpu-node-3", json!({}), false, false),
    ];
    let slices = [
        slice("gpu-node-1", 8, 1, 1),
        slice("gpu-node-2", 8, 1, 1),
        slice("gpu-node-3", 8, 1, 1),
    ];
    let claims = [
        claim("gpu-node-1", &["gpu-0", "gpu-1"]),
        claim("gpu-node-1", &["gpu-5"]),
    ];
    let dra = DraGpus::from_objects(&slices, &claims);
    let pods = [pod(Some("gpu-node-2"), "Running", 8)];
    let inventory = build(&nodes, &pods, &dra);
    assert_eq!(inventory.gpus.len(), 1, "{inventory:?}");
    let gpu = h200(&inventory, "NVIDIA H200");
    assert_eq!(
        (
            gpu.total_devices,
            gpu.allocated_devices,
            gpu.available_devices
        ),
        (16, 3, 13)
    );
    assert_eq!(gpu.free_by_node, buckets(&[(8, 1), (5, 1)]));
    assert_eq!(gpu.memory_mib, Some(143_771));
}

#[test]
fn only_the_newest_generation_of_complete_pools_counts() {
    let nodes = [
        h200_node("gpu-node-1", json!({}), true, false),
        h200_node("gpu-node-2", json!({}), true, false),
    ];
    let slices = [
        // An old generation with more devices is ignored.
        slice("gpu-node-1", 8, 1, 1),
        slice("gpu-node-1", 4, 2, 1),
        // One of two slices published: incomplete, never guessed.
        slice("gpu-node-2", 8, 1, 2),
    ];
    let inventory = build(&nodes, &[], &DraGpus::from_objects(&slices, []));
    let gpu = h200(&inventory, "NVIDIA H200");
    assert_eq!((gpu.total_devices, gpu.available_devices), (4, 4));
    assert_eq!(inventory.incomplete_pools, vec!["gpu-node-2".to_string()]);
}

fn placement_pod(placement: &str, template: &str, node: Option<&str>, deleting: bool) -> PodGpus {
    PodGpus {
        node: node.map(String::from),
        active: node.is_some(),
        deleting,
        gpus: 2,
        placement: Some(placement.into()),
        template: Some(template.into()),
        ..PodGpus::default()
    }
}

#[test]
fn a_placement_is_accounted_once_all_replicas_of_its_template_are_bound() {
    let applied = [
        Applied {
            placement: "bound".into(),
            booking: 7,
            replicas: 2,
            template: "t1".into(),
        },
        Applied {
            placement: "half".into(),
            booking: 8,
            replicas: 2,
            template: "t1".into(),
        },
        Applied {
            placement: "rolling".into(),
            booking: 9,
            replicas: 1,
            template: "t2".into(),
        },
        Applied {
            placement: "unbooked".into(),
            booking: 0,
            replicas: 0,
            template: "t".into(),
        },
    ];
    let pods = [
        placement_pod("bound", "t1", Some("n1"), false),
        placement_pod("bound", "t1", Some("n2"), false),
        placement_pod("half", "t1", Some("n1"), false),
        placement_pod("half", "t1", None, false),
        placement_pod("half", "t1", Some("n3"), true),
        // The old template's pod still runs; the new one is pending.
        placement_pod("rolling", "t1", Some("n1"), false),
        placement_pod("rolling", "t2", None, false),
    ];
    let got: Vec<(String, i64)> = accounted(&applied, &pods)
        .into_iter()
        .map(|a| (a.placement, a.booking))
        .collect();
    assert_eq!(got, vec![("bound".to_string(), 7)]);
}
