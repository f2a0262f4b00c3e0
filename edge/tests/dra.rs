//! The simulator in DRA mode, end to end with the real kubectl: nodes publish ResourceSlices
//! of NVIDIA's driver (one pool per node, the H200's attributes) and no `nvidia.com/gpu`; a pod
//! with a claim template gets a ResourceClaim allocated on its node and runs; a claim that
//! fits nowhere leaves its pod Pending; a pod's deletion frees its devices.

mod support;

use support::{header, wait_until, Edge};

const TEMPLATE_AND_POD: &str = r#"apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {name: two-gpus, namespace: default}
spec:
  spec:
    devices:
      requests:
      - name: gpu
        exactly: {deviceClassName: gpu.nvidia.com, count: 2}
"#;

fn pod(name: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: default}}
spec:
  resourceClaims:
  - {{name: gpu, resourceClaimTemplateName: two-gpus}}
  containers:
  - name: main
    image: nvcr.io/nvidia/pytorch:25.01-py3
    resources: {{claims: [{{name: gpu}}]}}
"#
    )
}

#[test]
fn claims_are_allocated_devices_of_the_published_slices() {
    let edge = Edge::start(&[
        "--gpu-mode",
        "dra",
        "--nodes",
        "2",
        "--gpus-per-node",
        "2",
        "--pod-start-delay",
        "0s",
        "--pod-ready-delay",
        "0s",
    ]);

    // Step: the driver's objects are published; the nodes have no nvidia.com/gpu.
    wait_until("two slices", || {
        edge.ok(&["get", "resourceslices", "-o", "name"])
            .lines()
            .count()
            == 2
    });
    let slices = edge.ok(&["get", "resourceslices"]);
    assert_eq!(
        header(&slices),
        ["NAME", "NODE", "DRIVER", "POOL", "AGE"],
        "{slices}"
    );
    let product = edge.jsonpath(
        &["resourceslice", "gpu-node-1-gpu.nvidia.com"],
        "{.spec.devices[1].attributes.productName.string}",
    );
    assert_eq!(product, "NVIDIA H200");
    let pool = edge.jsonpath(
        &["resourceslice", "gpu-node-1-gpu.nvidia.com"],
        "{.spec.pool.name}",
    );
    assert_eq!(pool, "gpu-node-1");
    edge.ok(&["get", "deviceclass", "gpu.nvidia.com"]);
    let allocatable = edge.jsonpath(&["node", "gpu-node-1"], "{.status.allocatable}");
    assert!(!allocatable.contains("nvidia.com/gpu"), "{allocatable}");

    // Step: two pods each get a claim of two devices, on different nodes, and run.
    edge.apply("template.yaml", TEMPLATE_AND_POD);
    edge.apply("a.yaml", &pod("a"));
    edge.apply("b.yaml", &pod("b"));
    for name in ["a", "b"] {
        wait_until("the pod runs", || {
            edge.jsonpath(&["pod", name], "{.status.phase}") == "Running"
        });
    }
    let claims = edge.ok(&["get", "resourceclaims"]);
    assert_eq!(
        claims
            .lines()
            .filter(|l| l.contains("allocated,reserved"))
            .count(),
        2,
        "{claims}"
    );
    let claim = edge.jsonpath(
        &["pod", "a"],
        "{.status.resourceClaimStatuses[0].resourceClaimName}",
    );
    let node = edge.jsonpath(&["pod", "a"], "{.spec.nodeName}");
    let allocated_on = edge.jsonpath(
        &["resourceclaim", &claim],
        "{.status.allocation.nodeSelector.nodeSelectorTerms[0].matchFields[0].values[0]}",
    );
    assert_eq!(allocated_on, node);
    let devices = edge.jsonpath(
        &["resourceclaim", &claim],
        "{.status.allocation.devices.results[*].device}",
    );
    assert_eq!(devices, "gpu-0 gpu-1");
    let reserved = edge.jsonpath(&["resourceclaim", &claim], "{.status.reservedFor[0].name}");
    assert_eq!(reserved, "a");

    // Step: a third fits nowhere.
    edge.apply("c.yaml", &pod("c"));
    wait_until("c is unschedulable", || {
        edge.jsonpath(
            &["pod", "c"],
            r#"{.status.conditions[?(@.type=="PodScheduled")].message}"#,
        ) == "0/2 nodes are available: 2 cannot allocate all claims."
    });

    // Step: deleting a frees its devices (its claim goes with it): c runs.
    edge.ok(&["delete", "pod", "a"]);
    wait_until("c runs", || {
        edge.jsonpath(&["pod", "c"], "{.status.phase}") == "Running"
    });
    let claims = edge.ok(&["get", "resourceclaims", "-o", "name"]);
    assert_eq!(claims.lines().count(), 2, "{claims}");
}
