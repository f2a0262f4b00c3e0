//! `serving.trellis.dev/v1alpha1`: ModelDeployments, what tenants ask the GPU fleet for.

mod model_deployment;

pub use model_deployment::ModelDeployment;

use super::SchemeBuilder;

pub const GROUP: &str = trellis_apis::serving::GROUP;

pub fn install(scheme: &mut SchemeBuilder) {
    scheme.add(ModelDeployment);
}
