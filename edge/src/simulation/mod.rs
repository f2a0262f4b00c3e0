//! The simulated cluster components, as controllers of the server's runtime inside the edge
//! process (shared reflectors, work queues, the committer), each a file:
//!
//! - [`nodes`]: creates the GPU nodes (and in DRA mode their ResourceSlices and the
//!   DeviceClass) and heartbeats their Ready condition, honouring [`faults`];
//! - [`scheduler`]: binds pending pods where their GPUs or DRA claims fit;
//! - [`kubelet`]: runs bound pods (Running, then Ready, after the configured delays);
//! - [`replica_set`] and [`deployment`]: kube-controller-manager's workload controllers;
//! - [`dra`]: ResourceClaims made from templates for pods, released when pods are gone.
//!
//! They read and write only what the API serves, through [`world::World`]: what the
//! simulator does, a client can see and do too.

pub mod deployment;
pub mod dra;
pub mod faults;
pub mod hash;
pub mod kubelet;
pub mod nodes;
pub mod replica_set;
pub mod rollout;
pub mod scheduler;
pub mod selectors;
pub mod world;

use std::sync::Arc;
use std::time::Duration;

use trellis_server::controller::ControllerContext;
use trellis_server::controller::Running;

use crate::gpu::fixture::Fixture;

/// How nodes offer their GPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpuMode {
    /// NVIDIA's device plugin: `nvidia.com/gpu` in the nodes' allocatable.
    DevicePlugin,
    /// NVIDIA's DRA driver: ResourceSlices and a DeviceClass; nothing in allocatable.
    Dra,
}

/// What the simulated cluster is like.
#[derive(Clone, Debug)]
pub struct SimulationOptions {
    /// Nodes created at start (named `<prefix>-1` … `<prefix>-N`); existing ones are kept.
    pub nodes: usize,
    pub node_prefix: String,
    pub gpus_per_node: u32,
    /// The `nvidia.com/gpu.product` label; the fixture's product (`NVIDIA-H200`) by default.
    pub gpu_product: Option<String>,
    pub gpu_mode: GpuMode,
    /// From binding to the containers running.
    pub pod_start_delay: Duration,
    /// From running to ready.
    pub pod_ready_delay: Duration,
    /// Images matching this never pull: their containers stay `ImagePullBackOff`.
    pub never_pull_image: Option<regex::Regex>,
    /// How often a node's Ready condition is heartbeated (spread over the nodes).
    pub heartbeat_interval: Duration,
    /// The GPU readings nodes are made of.
    pub fixture: Arc<Fixture>,
}

impl SimulationOptions {
    /// Four H200 nodes with 8 GPUs each, device-plugin mode, pods running and ready at once.
    pub fn new(fixture: Fixture) -> SimulationOptions {
        SimulationOptions {
            nodes: 4,
            node_prefix: "gpu-node".into(),
            gpus_per_node: 8,
            gpu_product: None,
            gpu_mode: GpuMode::DevicePlugin,
            pod_start_delay: Duration::from_secs(1),
            pod_ready_delay: Duration::from_secs(1),
            never_pull_image: None,
            heartbeat_interval: Duration::from_secs(60),
            fixture: Arc::new(fixture),
        }
    }
}

/// Starts the simulation into `running` (on the leader, like every controller).
pub fn wire(running: &mut Running, ctx: &ControllerContext, options: Arc<SimulationOptions>) {
    let world = match world::World::start(running, ctx, options) {
        Ok(world) => world,
        Err(e) => {
            tracing::error!(error = %e, "the simulation cannot start: the edge's kinds are not served");
            return;
        }
    };
    nodes::wire(running, &world);
    scheduler::wire(running, &world);
    kubelet::wire(running, &world);
    replica_set::wire(running, &world);
    deployment::wire(running, &world);
    dra::wire(running, &world);
}
