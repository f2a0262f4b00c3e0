//! `compute.trellis.dev/v1alpha1`: the GPU fleet of a provider workspace. SyncTargets (one per
//! physical cluster, reported by its syncer), GPUPools (classes and tenant quotas) and
//! Placements (the work one target runs for one ModelDeployment, written by the hub).

mod gpu_pool;
mod placement;
mod sync_target;

pub use gpu_pool::GPUPool;
pub use placement::Placement;
pub use sync_target::SyncTarget;

use super::SchemeBuilder;

pub const GROUP: &str = trellis_apis::compute::GROUP;

pub fn install(scheme: &mut SchemeBuilder) {
    scheme.add(SyncTarget);
    scheme.add(GPUPool);
    scheme.add(Placement);
}
