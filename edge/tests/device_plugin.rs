//! The simulator in device-plugin mode, end to end with the real kubectl against a
//! `trellis-edge` process: GPU nodes from the H200 readings, a Deployment with GPU limits that
//! becomes Available on nodes where its GPUs fit, a replica that fits nowhere staying Pending
//! with kube-scheduler's message, kubectl's tables, a rolling update, and faults on demand
//! (a node going NotReady, a cordon, an image that never pulls).

mod support;

use support::{header, wait_until, Edge};

fn deployment(name: &str, replicas: u32, gpus: u32, image: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: default}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      nodeSelector: {{nvidia.com/gpu.product: NVIDIA-H200}}
      containers:
      - name: server
        image: {image}
        resources: {{limits: {{nvidia.com/gpu: "{gpus}"}}}}
"#
    )
}

fn start() -> Edge {
    Edge::start(&[
        "--nodes",
        "3",
        "--gpus-per-node",
        "4",
        "--pod-start-delay",
        "0s",
        "--pod-ready-delay",
        "0s",
    ])
}

#[test]
fn gpu_nodes_show_the_fixture_readings() {
    let edge = start();
    // The simulation registers its nodes once the edge serves, as kubelets join a cluster.
    wait_until("3 nodes Ready", || {
        edge.kubectl(&["get", "nodes"])
            .1
            .lines()
            .filter(|l| l.contains(" Ready "))
            .count()
            == 3
    });
    let nodes = edge.ok(&["get", "nodes"]);
    assert_eq!(
        header(&nodes),
        ["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        "{nodes}"
    );
    assert_eq!(
        nodes.lines().filter(|l| l.contains(" Ready ")).count(),
        3,
        "{nodes}"
    );
    let labels = edge.jsonpath(&["node", "gpu-node-2"], "{.metadata.labels}");
    for label in [
        r#""nvidia.com/gpu.product":"NVIDIA-H200""#,
        r#""nvidia.com/gpu.memory":"143771""#,
        r#""nvidia.com/gpu.count":"4""#,
        r#""nvidia.com/gpu.family":"hopper""#,
        r#""nvidia.com/gpu.replicas":"1""#,
    ] {
        assert!(labels.contains(label), "{label} in {labels}");
    }
    let gpus = edge.jsonpath(
        &["node", "gpu-node-2"],
        r"{.status.allocatable.nvidia\.com/gpu}",
    );
    assert_eq!(gpus, "4");
    // Services get an address and kubectl's columns.
    edge.apply(
        "svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: llm, namespace: default}\n\
         spec: {selector: {app: llm}, ports: [{port: 80, targetPort: 8000}]}\n",
    );
    let services = edge.ok(&["get", "services"]);
    assert_eq!(
        header(&services),
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ],
        "{services}"
    );
    assert!(
        services.contains("ClusterIP") && services.contains("80/TCP"),
        "{services}"
    );
    // The hub's kinds are not here.
    let (ok, _, err) = edge.kubectl(&["get", "workspaces"]);
    assert!(
        !ok && err.contains("the server doesn't have a resource type"),
        "{err}"
    );
}

#[test]
fn a_gpu_deployment_becomes_available_and_what_does_not_fit_stays_pending() {
    let edge = start();

    // Step: three replicas of 4 GPUs: one per node, all Running and Ready.
    edge.apply(
        "llm.yaml",
        &deployment("llm", 3, 4, "nvcr.io/nvidia/tritonserver:25.01-py3"),
    );
    edge.ok(&["rollout", "status", "deployment/llm", "--timeout=30s"]);
    let available = edge.jsonpath(
        &["deployment", "llm"],
        r#"{.status.conditions[?(@.type=="Available")].status}"#,
    );
    assert_eq!(available, "True");
    let nodes = edge.jsonpath(&["pods", "-l", "app=llm"], "{.items[*].spec.nodeName}");
    let mut nodes: Vec<&str> = nodes.split_whitespace().collect();
    nodes.sort();
    assert_eq!(nodes, ["gpu-node-1", "gpu-node-2", "gpu-node-3"]);

    // Step: kubectl's tables.
    let deployments = edge.ok(&["get", "deployments"]);
    assert_eq!(
        header(&deployments),
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    );
    assert!(
        deployments.contains("llm    3/3     3            3"),
        "{deployments}"
    );
    let pods = edge.ok(&["get", "pods", "-o", "wide"]);
    assert_eq!(
        header(&pods)[..6],
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP"],
        "{pods}"
    );
    assert_eq!(
        pods.lines()
            .filter(|l| l.contains("1/1     Running"))
            .count(),
        3,
        "{pods}"
    );
    let replica_sets = edge.ok(&["get", "rs"]);
    assert_eq!(
        header(&replica_sets),
        ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    );
    let on_node = edge.ok(&[
        "get",
        "pods",
        "--field-selector",
        "spec.nodeName=gpu-node-1",
        "-o",
        "name",
    ]);
    assert_eq!(on_node.lines().count(), 1, "{on_node}");

    // Step: a fourth replica fits nowhere: Pending, with kube-scheduler's reason.
    edge.ok(&["scale", "deployment/llm", "--replicas=4"]);
    let pending = || {
        edge.ok(&[
            "get",
            "pods",
            "--field-selector",
            "status.phase=Pending",
            "-o",
            "name",
        ])
    };
    wait_until("a pending replica", || pending().lines().count() == 1);
    let pod = pending().trim().to_string();
    wait_until("the pod is marked unschedulable", || {
        edge.jsonpath(
            &[&pod],
            r#"{.status.conditions[?(@.type=="PodScheduled")].reason}"#,
        ) == "Unschedulable"
    });
    let message = edge.jsonpath(
        &[&pod],
        r#"{.status.conditions[?(@.type=="PodScheduled")].message}"#,
    );
    assert_eq!(
        message,
        "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    );
    let name = pod.trim_start_matches("pod/");
    let selector = format!("involvedObject.name={name}");
    let events = edge.ok(&["get", "events", "--field-selector", &selector]);
    assert!(
        events.contains("FailedScheduling") && events.contains("3 Insufficient nvidia.com/gpu"),
        "{events}"
    );
    let available = edge.jsonpath(&["deployment", "llm"], "{.status.availableReplicas}");
    assert_eq!(available, "3");

    // Step: scaled back, the pending replica goes and the deployment is complete again.
    edge.ok(&["scale", "deployment/llm", "--replicas=3"]);
    edge.ok(&["rollout", "status", "deployment/llm", "--timeout=30s"]);
    wait_until("no pending pod", || pending().trim().is_empty());
}

#[test]
fn a_rolling_update_moves_the_gpus_to_the_new_template() {
    let edge = start();
    edge.apply(
        "web.yaml",
        &deployment("web", 3, 4, "nvcr.io/nvidia/tritonserver:25.01-py3"),
    );
    edge.ok(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    // Every GPU is taken: the update must retire old pods to make room, which the default
    // `maxUnavailable` (25% of 3, rounded down: 0) forbids, as in Kubernetes; allow one.
    edge.ok(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"strategy":{"rollingUpdate":{"maxUnavailable":1}}}}"#,
    ]);
    edge.ok(&[
        "set",
        "image",
        "deployment/web",
        "server=nvcr.io/nvidia/tritonserver:25.02-py3",
    ]);
    edge.ok(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    let images = edge.jsonpath(
        &["pods", "-l", "app=web"],
        "{.items[*].spec.containers[0].image}",
    );
    assert_eq!(
        images.split_whitespace().collect::<Vec<_>>(),
        ["nvcr.io/nvidia/tritonserver:25.02-py3"; 3],
    );
    let replica_sets = edge.ok(&["get", "rs", "-l", "app=web", "-o", "name"]);
    assert_eq!(replica_sets.lines().count(), 2, "{replica_sets}");
    // Deleting the deployment deletes its replica sets and pods (garbage collection).
    edge.ok(&["delete", "deployment", "web"]);
    wait_until("the pods are collected", || {
        edge.ok(&["get", "pods", "-o", "name"]).trim().is_empty()
    });
}

#[test]
fn faults_on_demand() {
    let edge = start();
    edge.apply(
        "one.yaml",
        &deployment("one", 1, 1, "nvcr.io/nvidia/tritonserver:25.01-py3"),
    );
    edge.ok(&["rollout", "status", "deployment/one", "--timeout=30s"]);
    let node = edge.jsonpath(&["pods", "-l", "app=one"], "{.items[0].spec.nodeName}");

    // Step: the node goes NotReady: so do its pods, and the deployment loses availability.
    edge.ok(&["annotate", "node", &node, "trellis.dev/fault=NotReady"]);
    wait_until("the node is NotReady", || {
        edge.ok(&["get", "node", &node]).contains("NotReady")
    });
    wait_until("the pod is not ready", || {
        edge.jsonpath(
            &["pods", "-l", "app=one"],
            r#"{.items[0].status.conditions[?(@.type=="Ready")].status}"#,
        ) == "False"
    });
    wait_until("the deployment is unavailable", || {
        edge.jsonpath(
            &["deployment", "one"],
            r#"{.status.conditions[?(@.type=="Available")].status}"#,
        ) == "False"
    });

    // Step: healed, all is ready again.
    edge.ok(&["annotate", "node", &node, "trellis.dev/fault-"]);
    edge.ok(&["rollout", "status", "deployment/one", "--timeout=30s"]);

    // Step: cordoned nodes take no new pods.
    for n in ["gpu-node-1", "gpu-node-2"] {
        edge.ok(&["cordon", n]);
    }
    let nodes = edge.ok(&["get", "nodes"]);
    assert!(nodes.contains("Ready,SchedulingDisabled"), "{nodes}");
    edge.apply(
        "two.yaml",
        &deployment("two", 2, 1, "nvcr.io/nvidia/tritonserver:25.01-py3"),
    );
    edge.ok(&["rollout", "status", "deployment/two", "--timeout=30s"]);
    let placed = edge.jsonpath(&["pods", "-l", "app=two"], "{.items[*].spec.nodeName}");
    assert_eq!(
        placed.split_whitespace().collect::<Vec<_>>(),
        ["gpu-node-3", "gpu-node-3"]
    );

    // Step: an image that never pulls.
    edge.apply(
        "bad.yaml",
        &deployment("bad", 1, 0, "registry.invalid/model:1"),
    );
    wait_until("ImagePullBackOff", || {
        edge.ok(&["get", "pods", "-l", "app=bad"])
            .contains("ImagePullBackOff")
    });
}
