//! trellis-edge: a single-cluster Kubernetes API for laptops and CI, assembled from the
//! Trellis server crate with the kinds the hub never serves ([`kinds`]: Pods, Nodes,
//! Deployments, ReplicaSets, Services, DRA) and controllers that play the cluster's other
//! components ([`simulation`]: kubelets on GPU nodes, the scheduler, the deployment and
//! replica set controllers, NVIDIA's DRA driver). Clients (kubectl, the syncer) see an
//! ordinary cluster through the Kubernetes API only.
//!
//! [`builder`] is the assembly: the `trellis-edge` binary starts it, and a test can start one
//! next to a hub in one process.

pub mod gpu;
pub mod kinds;
pub mod simulation;

use std::sync::Arc;

use trellis_server::controller;
use trellis_server::{ServerBuilder, StartOptions};

pub use simulation::{GpuMode, SimulationOptions};

/// An edge server: the edge's kinds, the server's generic controllers (CRDs, namespaces,
/// service accounts, garbage collection, RBAC aggregation) and the simulation.
pub fn builder(start: StartOptions, simulation: SimulationOptions) -> ServerBuilder {
    let builder = kinds::EDGE
        .iter()
        .fold(ServerBuilder::new(start), |b, group| b.install(*group));
    let simulation = Arc::new(simulation);
    builder
        .controller(controller::rbac_aggregation)
        .controller(controller::crd_establishing)
        .controller(controller::namespace_finalization)
        .controller(controller::service_accounts)
        .controller(controller::garbage_collection)
        .controller_with(move |running, ctx| simulation::wire(running, ctx, simulation.clone()))
}
