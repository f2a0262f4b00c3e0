//! The nodes: created at start (`--nodes N`, named `<prefix>-<i>`, GPUs from the fixture:
//! GPU Feature Discovery labels, and `nvidia.com/gpu` allocatable or, in DRA mode, a
//! ResourceSlice each and the driver's DeviceClass), then kept by their simulated kubelets:
//! each node's Ready condition is heartbeated every `--heartbeat-interval` (spread over the
//! nodes by name, so 10,000 nodes at 60 s cost ~170 small writes a second) and follows the
//! fault annotation at once. Every Node object gets a kubelet, also ones a user creates.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use trellis_server::controller::committer::Committed;
use trellis_server::controller::{Action, Controller, Error, Reconciler, Running};
use trellis_storage::ObjectKey;

use super::faults::{node_fault, NodeFault};
use super::world::{self, World, DEVICE_CLASSES, NODES, RESOURCE_SLICES};
use super::{GpuMode, SimulationOptions};
use crate::gpu::labels::{self, NodeGpus, GPU_RESOURCE};

/// The kubelet version nodes report.
pub const KUBELET_VERSION: &str = "v1.37.0";
/// Nodes created at once at start.
const CREATE_CONCURRENCY: usize = 64;

/// Node `index` (from 1) as the simulator creates it.
pub fn node(options: &SimulationOptions, index: usize, now: Timestamp) -> Node {
    let name = format!("{}-{index}", options.node_prefix);
    let fixture = &options.fixture;
    let gpus = NodeGpus {
        product: options
            .gpu_product
            .clone()
            .unwrap_or_else(|| labels::product_label(&fixture.gpu.name)),
        count: options.gpus_per_node,
    };
    let mut node_labels: BTreeMap<String, String> = [
        ("kubernetes.io/hostname", name.clone()),
        ("kubernetes.io/os", "linux".into()),
        ("kubernetes.io/arch", "amd64".into()),
        ("node-role.kubernetes.io/gpu", String::new()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    node_labels.extend(labels::feature_labels(fixture, &gpus));
    let mut resources: BTreeMap<String, Quantity> = [
        ("cpu", "96".to_string()),
        ("memory", "2113959Mi".to_string()),
        ("pods", "110".to_string()),
        ("ephemeral-storage", "3750Gi".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Quantity(v)))
    .collect();
    if options.gpu_mode == GpuMode::DevicePlugin {
        resources.insert(
            GPU_RESOURCE.into(),
            Quantity(options.gpus_per_node.to_string()),
        );
    }
    Node {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(node_labels),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            capacity: Some(resources.clone()),
            allocatable: Some(resources),
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: node_ip(index),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: name,
                },
            ]),
            conditions: Some(conditions(NodeFault::None, None, now)),
            node_info: Some(NodeSystemInfo {
                architecture: "amd64".into(),
                operating_system: "linux".into(),
                os_image: "Ubuntu 24.04.2 LTS".into(),
                kernel_version: "6.8.0-60-generic".into(),
                container_runtime_version: "containerd://2.1.1".into(),
                kubelet_version: KUBELET_VERSION.into(),
                ..NodeSystemInfo::default()
            }),
            ..NodeStatus::default()
        }),
    }
}

/// Node `index`'s address, in 10.0.0.0/16 … (10.0.0.1 for node 1).
fn node_ip(index: usize) -> String {
    format!(
        "10.{}.{}.{}",
        (index >> 16) & 0xff,
        (index >> 8) & 0xff,
        index & 0xff
    )
}

/// The conditions of a node with `fault`, heartbeated at `now`; transitions keep their time
/// from `old` when the status is unchanged.
pub fn conditions(
    fault: NodeFault,
    old: Option<&[NodeCondition]>,
    now: Timestamp,
) -> Vec<NodeCondition> {
    let (ready, reason, message) = match fault {
        NodeFault::None => ("True", "KubeletReady", "kubelet is posting ready status"),
        NodeFault::NotReady => (
            "False",
            "KubeletNotReady",
            "simulated fault: annotation trellis.dev/fault=NotReady",
        ),
        NodeFault::Unknown => (
            "Unknown",
            "NodeStatusUnknown",
            "Kubelet stopped posting node status.",
        ),
    };
    let make = |type_: &str, status: &str, reason: &str, message: &str| {
        let transition = old
            .and_then(|o| o.iter().find(|c| c.type_ == type_))
            .filter(|c| c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or(Time(now));
        NodeCondition {
            type_: type_.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_heartbeat_time: Some(Time(now)),
            last_transition_time: Some(transition),
        }
    };
    vec![
        make(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        make(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ),
        make(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        make("Ready", ready, reason, message),
    ]
}

/// Whether `old` conditions say the same as `new` (heartbeat times aside).
fn same_conditions(old: &[NodeCondition], new: &[NodeCondition]) -> bool {
    let strip = |c: &[NodeCondition]| {
        c.iter()
            .map(|c| {
                (
                    c.type_.clone(),
                    c.status.clone(),
                    c.reason.clone(),
                    c.message.clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    strip(old) == strip(new)
}

/// When the node's kubelet last heartbeated.
fn last_heartbeat(node: &Node) -> Option<Timestamp> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?
        .last_heartbeat_time
        .as_ref()
        .map(|t| t.0)
}

pub fn wire(running: &mut Running, world: &World) {
    running.spawn(create_nodes(world.clone()));
    let controller = Controller::new("node-heartbeat")
        .watches(
            &world.nodes,
            |change: &trellis_server::controller::Change<'_, world::Typed<Node>>| {
                change.new.as_ref().map(|_| change.key.clone())
            },
        )
        .workers(2);
    running.spawn(controller.run(
        Arc::new(Heartbeat {
            world: world.clone(),
        }),
        running.token(),
    ));
}

/// Creates the configured nodes (and DRA objects) that do not exist yet.
async fn create_nodes(world: World) {
    let options = world.options.clone();
    if options.gpu_mode == GpuMode::Dra {
        let mut class = options.fixture.device_class.clone();
        class.metadata = ObjectMeta {
            name: class.metadata.name.clone(),
            ..ObjectMeta::default()
        };
        if let Err(e) = create(&world, DEVICE_CLASSES, serde_json::to_value(&class)).await {
            tracing::warn!(error = %e, "creating the DeviceClass");
        }
    }
    let now = world::now();
    let created = futures::stream::iter(1..=options.nodes)
        .map(|index| {
            let world = world.clone();
            let options = options.clone();
            async move {
                let node = node(&options, index, now);
                let name = node.metadata.name.clone().unwrap_or_default();
                create(&world, NODES, serde_json::to_value(&node)).await?;
                if options.gpu_mode == GpuMode::Dra {
                    let slice =
                        labels::resource_slice(&options.fixture, &name, options.gpus_per_node);
                    create(&world, RESOURCE_SLICES, serde_json::to_value(&slice)).await?;
                }
                Ok::<_, Error>(())
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .filter_map(|r| async move { r.err() })
        .collect::<Vec<_>>()
        .await;
    match created.first() {
        None => tracing::info!(nodes = options.nodes, "nodes ready"),
        Some(e) => tracing::error!(error = %e, failed = created.len(), "creating nodes"),
    }
}

async fn create(
    world: &World,
    resource: world::Resource,
    object: Result<serde_json::Value, serde_json::Error>,
) -> Result<(), Error> {
    let object = object.map_err(|e| Error::Invalid(e.to_string()))?;
    match world.create(resource, None, object).await? {
        Committed::Created(_) | Committed::Exists => Ok(()),
        _ => Ok(()),
    }
}

struct Heartbeat {
    world: World,
}

impl Heartbeat {
    /// This node's heartbeat interval, shifted by up to a tenth by its name, so heartbeats of
    /// nodes created together spread out.
    fn interval(&self, name: &str) -> Duration {
        let base = self.world.options.heartbeat_interval;
        let spread = base / 10;
        let shift = if spread.is_zero() {
            Duration::ZERO
        } else {
            let h = super::hash::fnv32a(name.as_bytes()) as u128;
            Duration::from_nanos((h * spread.as_nanos() / u128::from(u32::MAX)) as u64)
        };
        base + shift
    }
}

impl Reconciler for Heartbeat {
    type Key = ObjectKey;

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, Error> {
        let Some(node) = self.world.nodes.get(key) else {
            return Ok(Action::await_change());
        };
        let interval = self.interval(&key.name);
        let now = world::now();
        let old = node
            .object
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_deref());
        let desired = conditions(node_fault(&node.object.metadata), old, now);
        let changed = old.is_none_or(|old| !same_conditions(old, &desired));
        let due = last_heartbeat(&node.object)
            .is_none_or(|last| now.duration_since(last).unsigned_abs() >= interval);
        if !changed && !due {
            let since = last_heartbeat(&node.object)
                .map(|last| now.duration_since(last).unsigned_abs())
                .unwrap_or_default();
            return Ok(Action::requeue(
                interval.saturating_sub(since).max(Duration::from_secs(1)),
            ));
        }
        let mut status = node.object.status.clone().unwrap_or_default();
        status.conditions = Some(desired);
        self.world
            .update_status(NODES, &node.stored, world::to_value(&status)?)
            .await?;
        Ok(Action::requeue(interval))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::fixture::Fixture;

    #[test]
    fn a_device_plugin_node_offers_its_gpus_as_allocatable() {
        let options = SimulationOptions::new(Fixture::h200().unwrap());
        let node = node(&options, 1, world::now());
        assert_eq!(node.metadata.name.as_deref(), Some("gpu-node-1"));
        let status = node.status.unwrap();
        assert_eq!(status.allocatable.unwrap()[GPU_RESOURCE].0, "8");
        let labels = node.metadata.labels.unwrap();
        assert_eq!(labels["nvidia.com/gpu.product"], "NVIDIA-H200");
        assert_eq!(labels["nvidia.com/gpu.count"], "8");
    }

    #[test]
    fn a_dra_node_has_no_gpu_allocatable() {
        let mut options = SimulationOptions::new(Fixture::h200().unwrap());
        options.gpu_mode = GpuMode::Dra;
        let node = node(&options, 2, world::now());
        assert!(!node
            .status
            .unwrap()
            .allocatable
            .unwrap()
            .contains_key(GPU_RESOURCE));
    }

    #[test]
    fn a_fault_flips_ready_and_keeps_other_transitions() {
        let t0 = world::now();
        let up = conditions(NodeFault::None, None, t0);
        let later = t0 + k8s_openapi::jiff::SignedDuration::from_secs(30);
        let down = conditions(NodeFault::NotReady, Some(&up), later);
        let ready = down.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "False");
        assert_eq!(ready.last_transition_time, Some(Time(later)));
        let memory = down.iter().find(|c| c.type_ == "MemoryPressure").unwrap();
        assert_eq!(memory.last_transition_time, Some(Time(t0)));
        assert!(!same_conditions(&up, &down));
        assert!(same_conditions(
            &up,
            &conditions(NodeFault::None, Some(&up), later)
        ));
    }
}
