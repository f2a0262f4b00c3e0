//! `coordination.k8s.io/v1`: Leases, for leader election and heartbeats.

mod lease;

pub use lease::Lease;

use super::SchemeBuilder;

pub const GROUP: &str = "coordination.k8s.io";

pub fn install(scheme: &mut SchemeBuilder) {
    scheme.add(Lease);
}
