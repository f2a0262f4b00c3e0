//! `compute.trellis.dev/v1alpha1`: the GPU fleet as a platform team publishes it in a
//! provider workspace. One module per kind: [`sync_target`] (a physical cluster and its GPU
//! inventory), [`gpu_pool`] (GPU classes and tenant quotas over a set of targets) and
//! [`placement`] (the work one target runs for one ModelDeployment), each with the labels,
//! condition types and reasons it owns. The kinds and their parts are re-exported here.

pub mod gpu_pool;
pub mod placement;
pub mod sync_target;

pub use gpu_pool::{
    GPUClass, GPUClassMatch, GPUClassStatus, GPUClassTargetStatus, GPUPool, GPUPoolSpec,
    GPUPoolStatus, GPUPoolTenant, GPUPoolTenantStatus, GPUQuota, GPUTenantClassUsage,
};
pub use placement::{
    Placement, PlacementGPU, PlacementOrigin, PlacementResources, PlacementSpec, PlacementStatus,
};
pub use sync_target::{
    AccountedPlacement, FreeDevicesOnNodes, GPUInventory, GPUPartition, SyncTarget,
    SyncTargetFeatures, SyncTargetSpec, SyncTargetStatus,
};

pub const GROUP: &str = "compute.trellis.dev";
pub const VERSION: &str = "v1alpha1";
