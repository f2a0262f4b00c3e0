//! `resource.k8s.io/v1`, Dynamic Resource Allocation: the ResourceSlices a DRA driver
//! publishes per node, the DeviceClasses it installs, and the ResourceClaims (and their
//! templates) pods ask devices with. In `--gpu-mode dra` the simulator plays NVIDIA's driver
//! and kube-scheduler's allocator (`simulation::dra`).

mod device_class;
mod resource_claim;
mod resource_claim_template;
mod resource_slice;

pub use device_class::DeviceClass;
pub use resource_claim::ResourceClaim;
pub use resource_claim_template::ResourceClaimTemplate;
pub use resource_slice::ResourceSlice;

use trellis_server::kinds::SchemeBuilder;

pub const GROUP: &str = "resource.k8s.io";

pub fn install(scheme: &mut SchemeBuilder) {
    scheme.add(ResourceSlice);
    scheme.add(ResourceClaim);
    scheme.add(ResourceClaimTemplate);
    scheme.add(DeviceClass);
}
