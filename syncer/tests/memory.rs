//! How much the syncer's stores hold for a large cluster: 5,000 GPU nodes, 40,000 pods
//! (8 per node, as a real cluster's pods look before trimming: images, environment, volumes,
//! managed fields, many conditions) and 1,000 Placements, kept as the reflectors keep them
//! (trimmed as they arrive), with the inventory computed over them. Prints
//! `bench: <name> <value> <unit>`; the target for the whole syncer is 64 MiB RSS.
//!
//! `cargo test -p trellis-syncer --test memory -- --ignored --nocapture`

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::json;
use trellis_syncer::inventory::dra::DraGpus;
use trellis_syncer::inventory::nodes::NodeGpus;
use trellis_syncer::inventory::pods::PodGpus;
use trellis_syncer::shell::summaries::PodSummary;

const NODES: usize = 5_000;
const PODS_PER_NODE: usize = 8;

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4
}

fn node(i: usize) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": format!("gpu-node-{i}"), "uid": format!("uid-{i}"),
            "resourceVersion": "12345",
            "labels": {"nvidia.com/gpu.product": "NVIDIA-H200", "nvidia.com/gpu.memory": "143771",
                "nvidia.com/gpu.count": "8", "nvidia.com/gpu.family": "hopper",
                "kubernetes.io/hostname": format!("gpu-node-{i}"), "kubernetes.io/os": "linux",
                "topology.kubernetes.io/zone": "eu-west-1a", "node.kubernetes.io/instance-type": "p5e.48xlarge"},
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "csi.volume.kubernetes.io/nodeid": "{\"ebs.csi.aws.com\":\"i-0123456789abcdef0\"}"},
            "managedFields": (0..6).map(|m| json!({"manager": format!("m{m}"), "operation": "Update",
                "fieldsV1": {"f:status": {"f:conditions": {}, "f:allocatable": {}, "f:capacity": {}}}})).collect::<Vec<_>>()},
        "spec": {"providerID": format!("aws:///eu-west-1a/i-{i:017x}"), "podCIDR": "10.0.0.0/24"},
        "status": {
            "allocatable": {"nvidia.com/gpu": "8", "cpu": "191", "memory": "2000Gi", "pods": "110", "ephemeral-storage": "3500Gi"},
            "capacity": {"nvidia.com/gpu": "8", "cpu": "192", "memory": "2048Gi", "pods": "110"},
            "conditions": (["Ready", "MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable"]).iter().map(|t| json!({
                "type": t, "status": if *t == "Ready" { "True" } else { "False" },
                "reason": "KubeletReady", "message": "kubelet is posting ready status",
                "lastHeartbeatTime": "2025-06-15T15:00:00Z", "lastTransitionTime": "2025-06-01T00:00:00Z"})).collect::<Vec<_>>(),
            "images": (0..20).map(|n| json!({"names": [format!("registry.example.com/team/image-{n}@sha256:{:064x}", n)], "sizeBytes": 1_000_000_000u64})).collect::<Vec<_>>(),
            "nodeInfo": {"machineID": "m", "systemUUID": "s", "bootID": "b", "kernelVersion": "6.8.0",
                "osImage": "Ubuntu 24.04", "containerRuntimeVersion": "containerd://2.0.0",
                "kubeletVersion": "v1.37.1", "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"},
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "gpu-node"}],
        },
    }))
    .expect("node")
}

fn pod(node: usize, i: usize) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("llama-{node}-{i}"), "namespace": "root-acme-default-0123456789",
            "uid": format!("uid-{node}-{i}"), "resourceVersion": "12345",
            "labels": {"trellis.dev/placement": format!("p-{}", (node * PODS_PER_NODE + i) % 1000),
                "app.kubernetes.io/managed-by": "trellis-syncer", "pod-template-hash": "5c1f0a9e3d"},
            "annotations": {"trellis.dev/template-hash": "0123456789abcdef", "kubectl.kubernetes.io/restartedAt": "2025-06-15T15:00:00Z"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u", "controller": true}],
            "managedFields": (0..4).map(|m| json!({"manager": format!("m{m}"), "operation": "Update",
                "fieldsV1": {"f:spec": {"f:containers": {}}, "f:status": {}}})).collect::<Vec<_>>()},
        "spec": {"nodeName": format!("gpu-node-{node}"),
            "containers": [{"name": "runtime", "image": "vllm/vllm-openai:v0.9.1",
                "args": ["--max-model-len", "8192", "--served-model-name", "llama-8b"],
                "env": (0..10).map(|e| json!({"name": format!("ENV_{e}"), "value": "some value of a variable"})).collect::<Vec<_>>(),
                "ports": [{"name": "http", "containerPort": 8000}],
                "resources": {"limits": {"nvidia.com/gpu": "1", "memory": "64Gi"}, "requests": {"cpu": "8", "memory": "64Gi"}},
                "volumeMounts": [{"name": "model", "mountPath": "/models"}, {"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]}],
            "volumes": [{"name": "model", "image": {"reference": "ghcr.io/acme/llama:v1"}},
                {"name": "kube-api-access", "projected": {"sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}]}}],
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]},
        "status": {"phase": "Running", "podIP": "10.0.0.2", "hostIP": "10.0.0.1", "startTime": "2025-06-15T15:00:00Z",
            "conditions": (["PodScheduled", "Initialized", "ContainersReady", "Ready"]).iter().map(|t| json!({
                "type": t, "status": "True", "lastTransitionTime": "2025-06-15T15:00:00Z"})).collect::<Vec<_>>(),
            "containerStatuses": [{"name": "runtime", "ready": true, "restartCount": 0, "started": true,
                "image": "docker.io/vllm/vllm-openai:v0.9.1", "imageID": format!("docker.io/vllm/vllm-openai@sha256:{:064x}", 7),
                "containerID": "containerd://0123456789abcdef", "state": {"running": {"startedAt": "2025-06-15T15:00:00Z"}}}]},
    }))
    .expect("pod")
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn stores_of_a_5000_node_cluster() {
    let before = rss_kib();
    let mut nodes: Vec<Arc<NodeGpus>> = Vec::with_capacity(NODES);
    let mut pods: Vec<Arc<PodSummary>> = Vec::with_capacity(NODES * PODS_PER_NODE);
    for n in 0..NODES {
        nodes.push(Arc::new(NodeGpus::from_node(&node(n))));
        for i in 0..PODS_PER_NODE {
            pods.push(Arc::new(PodSummary::from_pod(&pod(n, i))));
        }
    }
    let stored = rss_kib();
    let untrimmed: usize = serde_json::to_vec(&node(0)).map_or(0, |v| v.len()) * NODES
        + serde_json::to_vec(&pod(0, 0)).map_or(0, |v| v.len()) * NODES * PODS_PER_NODE;
    let node_gpus: Vec<NodeGpus> = nodes.iter().map(|n| (**n).clone()).collect();
    let pod_gpus: Vec<PodGpus> = pods.iter().map(|p| p.gpus.clone()).collect();
    let inventory = trellis_syncer::inventory::build(&node_gpus, &pod_gpus, &DraGpus::default());
    assert_eq!(inventory.gpus[0].total_devices, 40_000);
    assert_eq!(inventory.gpus[0].available_devices, 0);
    let computed = rss_kib();
    println!("bench: syncer_objects_as_json {} KiB", untrimmed / 1024);
    // RSS growth also counts what parsing the objects freed but the allocator kept.
    println!(
        "bench: syncer_summaries_5000_nodes_40000_pods {} KiB",
        stored.saturating_sub(before)
    );
    println!(
        "bench: syncer_inventory_pass_peak {} KiB",
        computed.saturating_sub(before)
    );
    println!("bench: syncer_test_process_rss {computed} KiB");
}
