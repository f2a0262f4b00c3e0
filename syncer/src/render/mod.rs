//! A Placement rendered as the objects its edge cluster runs, pure: the namespace of its
//! origin, a Deployment, a Service and, on a DRA cluster, a ResourceClaimTemplate.
//!
//! - [`deployment`]: the runtime container with the GPUs (`nvidia.com/gpu` limits and a node
//!   selector on `nvidia.com/gpu.product` with the device plugin; a claim from the template
//!   with DRA), CPU and memory, the model volume ([`model`]).
//! - [`service`]: a ClusterIP Service on the runtime's port; the Placement's endpoint.
//! - [`claim_template`]: `count` devices of DeviceClass `gpu.nvidia.com` whose `productName`
//!   is exactly the Placement's product.
//!
//! Every object is named after the Placement (the claim template also after what it asks
//! for, as a template cannot change), carries the labels of [`crate::naming::owned_labels`]
//! and the origin annotations, and is applied server-side as [`crate::FIELD_MANAGER`]: a
//! restart re-applies the same objects, never duplicates.

pub mod claim_template;
pub mod deployment;
pub mod model;
pub mod service;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::resource::v1::ResourceClaimTemplate;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use trellis_apis::compute::Placement;

use crate::naming::{edge_namespace, MANAGED_BY_LABEL, MANAGER, SYNC_TARGET_LABEL};

/// Annotation on a rendered pod template (so on its pods) and Deployment: a hash of the
/// template, which tells the pods of the current template from older ones.
pub const TEMPLATE_HASH_ANNOTATION: &str = "trellis.dev/template-hash";

/// How GPUs are requested on the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpuMode {
    /// NVIDIA's device plugin: `nvidia.com/gpu` limits, node selector on the product.
    DevicePlugin,
    /// Dynamic Resource Allocation: a ResourceClaimTemplate per Placement.
    Dra,
}

/// What the cluster supports, and who renders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeOptions {
    /// The SyncTarget's name (labels every object, scopes garbage collection).
    pub target: String,
    pub gpu_mode: GpuMode,
    /// Pods may mount OCI images as volumes (`image` volumes).
    pub image_volume: bool,
}

/// Everything one Placement becomes on the edge cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    pub namespace: Namespace,
    pub deployment: Deployment,
    pub service: Service,
    pub claim_template: Option<ResourceClaimTemplate>,
}

/// Why a Placement cannot be rendered (reported on its status).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("placement has no name")]
    NoName,
    #[error("model uri {0:?} has no scheme this syncer can fetch (oci://, hf://, s3://, pvc://)")]
    ModelScheme(String),
    #[error("runtime port {0} is not in 1..=65535")]
    Port(i32),
}

/// The objects of `placement` on a cluster with `options`.
pub fn render(placement: &Placement, options: &EdgeOptions) -> Result<Rendered, RenderError> {
    let name = crate::naming::name_of(placement);
    if name.is_empty() {
        return Err(RenderError::NoName);
    }
    let port = placement.spec.runtime.port;
    if !(1..=65535).contains(&port) {
        return Err(RenderError::Port(port));
    }
    let origin = &placement.spec.origin;
    let namespace = edge_namespace(&origin.workspace, &origin.namespace);
    let claim_template = match options.gpu_mode {
        GpuMode::Dra => Some(claim_template::render(
            placement,
            &namespace,
            &options.target,
        )),
        GpuMode::DevicePlugin => None,
    };
    let deployment = deployment::render(
        placement,
        &namespace,
        options,
        claim_template
            .as_ref()
            .and_then(|t| t.metadata.name.as_deref()),
    )?;
    let service = service::render(placement, &namespace, &options.target);
    Ok(Rendered {
        namespace: Namespace {
            metadata: ObjectMeta {
                name: Some(namespace),
                labels: Some(
                    [
                        (MANAGED_BY_LABEL.to_string(), MANAGER.to_string()),
                        (SYNC_TARGET_LABEL.to_string(), options.target.clone()),
                    ]
                    .into(),
                ),
                annotations: Some(
                    [
                        (
                            crate::naming::ORIGIN_WORKSPACE_ANNOTATION.to_string(),
                            origin.workspace.clone(),
                        ),
                        (
                            crate::naming::ORIGIN_NAMESPACE_ANNOTATION.to_string(),
                            origin.namespace.clone(),
                        ),
                    ]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        },
        deployment,
        service,
        claim_template,
    })
}

/// The metadata every rendered object of `placement` shares.
pub(crate) fn metadata(
    placement: &Placement,
    name: String,
    namespace: &str,
    target: &str,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_string()),
        labels: Some(crate::naming::owned_labels(placement, target)),
        annotations: Some(crate::naming::origin_annotations(placement)),
        ..ObjectMeta::default()
    }
}

#[cfg(test)]
mod tests;
