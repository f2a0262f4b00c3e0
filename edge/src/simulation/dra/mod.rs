//! Dynamic Resource Allocation in the simulator: [`allocation`] (what claims ask and hold,
//! what the scheduler writes) and [`claims`] (kube-controller-manager's resource claim
//! controller: a claim per pod from its template, reservations released when pods are gone).
//! The driver's side (ResourceSlices, the DeviceClass) is published with the nodes.

pub mod allocation;
pub mod claims;

pub use claims::wire;
