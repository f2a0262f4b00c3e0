//! On a DRA cluster, what one replica claims: `count` devices of DeviceClass
//! `gpu.nvidia.com` whose `productName` is exactly the Placement's product (a CEL selector),
//! all for one pod, so all on its node. A template's spec cannot change, so its name carries
//! a hash of what it asks; a changed Placement gets a new template and the old one is
//! removed with the rest of what no Placement renders.

use k8s_openapi::api::resource::v1::{
    CELDeviceSelector, DeviceClaim, DeviceRequest, DeviceSelector, ExactDeviceRequest,
    ResourceClaimSpec, ResourceClaimTemplate, ResourceClaimTemplateSpec,
};
use trellis_apis::compute::Placement;

use crate::naming::{fnv1a64, name_of};

/// NVIDIA's DRA driver and the DeviceClass it installs for whole GPUs.
pub const DEVICE_CLASS: &str = "gpu.nvidia.com";
/// The request's name in the claim, and the claim's name in the pod.
pub const REQUEST: &str = "gpus";

/// `s` as a CEL string literal.
pub fn cel_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The CEL expression selecting devices of `product`.
pub fn product_selector(product: &str) -> String {
    format!(
        "device.attributes['{DEVICE_CLASS}'].productName == {}",
        cel_string(product)
    )
}

pub fn render(placement: &Placement, namespace: &str, target: &str) -> ResourceClaimTemplate {
    let gpu = &placement.spec.resources.gpu;
    let hash = fnv1a64(&[&gpu.product_name, &gpu.count.to_string()]);
    let name = format!("{}-{:06x}", name_of(placement), hash >> 40);
    ResourceClaimTemplate {
        metadata: super::metadata(placement, name, namespace, target),
        spec: Some(ResourceClaimTemplateSpec {
            metadata: None,
            spec: Some(ResourceClaimSpec {
                devices: Some(DeviceClaim {
                    requests: Some(vec![DeviceRequest {
                        name: REQUEST.into(),
                        exactly: Some(ExactDeviceRequest {
                            device_class_name: DEVICE_CLASS.into(),
                            allocation_mode: Some("ExactCount".into()),
                            count: Some(i64::from(gpu.count.max(1))),
                            selectors: Some(vec![DeviceSelector {
                                cel: Some(CELDeviceSelector {
                                    expression: product_selector(&gpu.product_name),
                                }),
                            }]),
                            ..ExactDeviceRequest::default()
                        }),
                        first_available: None,
                    }]),
                    ..DeviceClaim::default()
                }),
            }),
        }),
    }
}
