//! How a node shows its GPUs: NVIDIA GPU Feature Discovery's labels and, with the device
//! plugin, the `nvidia.com/gpu` extended resource; with DRA, one device per GPU in the node's
//! ResourceSlice (the fixture's device, given each GPU's own UUID and PCI bus).

use std::collections::BTreeMap;

use k8s_openapi::api::resource::v1::{Device, DeviceAttribute, ResourceSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::fixture::Fixture;

/// The extended resource of the device plugin.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";
/// The DRA driver (and the DeviceClass it installs).
pub const DRA_DRIVER: &str = "gpu.nvidia.com";

/// What GPUs a node has.
#[derive(Clone, Debug)]
pub struct NodeGpus {
    /// The product as GPU Feature Discovery labels it: `NVIDIA-H200` (spaces become dashes).
    pub product: String,
    pub count: u32,
}

/// GPU Feature Discovery's labels for `gpus` of the fixture's kind.
pub fn feature_labels(fixture: &Fixture, gpus: &NodeGpus) -> BTreeMap<String, String> {
    let (major, minor) = fixture
        .gpu
        .compute_capability
        .split_once('.')
        .unwrap_or((fixture.gpu.compute_capability.as_str(), "0"));
    [
        ("nvidia.com/gpu.present", "true".to_string()),
        ("nvidia.com/gpu.product", gpus.product.clone()),
        ("nvidia.com/gpu.memory", fixture.gpu.memory_mib.to_string()),
        ("nvidia.com/gpu.count", gpus.count.to_string()),
        ("nvidia.com/gpu.family", fixture.family()),
        ("nvidia.com/gpu.replicas", "1".to_string()),
        ("nvidia.com/gpu.compute.major", major.to_string()),
        ("nvidia.com/gpu.compute.minor", minor.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The product label value of a product name (`NVIDIA H200` → `NVIDIA-H200`).
pub fn product_label(name: &str) -> String {
    name.split_whitespace().collect::<Vec<_>>().join("-")
}

/// The ResourceSlice of `node` with `count` GPUs: the fixture's slice, its pool named after
/// the node, one device `gpu-<i>` per GPU.
pub fn resource_slice(fixture: &Fixture, node: &str, count: u32) -> ResourceSlice {
    let mut slice = fixture.slice.clone();
    slice.metadata = ObjectMeta {
        name: Some(format!("{node}-{DRA_DRIVER}")),
        ..ObjectMeta::default()
    };
    slice.spec.node_name = Some(node.to_string());
    slice.spec.pool.name = node.to_string();
    slice.spec.pool.generation = 1;
    slice.spec.pool.resource_slice_count = 1;
    let template = fixture
        .slice
        .spec
        .devices
        .iter()
        .flatten()
        .next()
        .cloned()
        .unwrap_or_default();
    slice.spec.devices = Some(
        (0..count)
            .map(|i| device(&template, fixture, node, i))
            .collect(),
    );
    slice
}

/// GPU `index` of `node`: the fixture's device with the GPU's own UUID and PCI bus (the
/// fixture's, with the node and index folded into the last digits).
fn device(template: &Device, fixture: &Fixture, node: &str, index: u32) -> Device {
    let mut device = template.clone();
    device.name = format!("gpu-{index}");
    let attributes = device.attributes.get_or_insert_with(Default::default);
    attributes.insert(
        "uuid".into(),
        DeviceAttribute {
            string: Some(gpu_uuid(&fixture.gpu.uuid, node, index)),
            ..DeviceAttribute::default()
        },
    );
    if let Some(DeviceAttribute {
        string: Some(bus), ..
    }) = attributes.get_mut("resource.kubernetes.io/pciBusID")
    {
        *bus = pci_bus(bus, index);
    }
    device
}

/// A UUID for GPU `index` of `node`: the fixture GPU's, its last 8 hex digits replaced by a
/// hash of the node and index.
pub fn gpu_uuid(base: &str, node: &str, index: u32) -> String {
    let hash = crate::simulation::hash::fnv32a(format!("{node}/{index}").as_bytes());
    match base.len().checked_sub(8) {
        Some(cut) if base.is_char_boundary(cut) => format!("{}{hash:08x}", &base[..cut]),
        _ => format!("{base}-{hash:08x}"),
    }
}

/// The PCI bus of GPU `index`: the fixture's device number plus the index
/// (`0000:00:06.0` → `0000:00:07.0` for the second GPU).
fn pci_bus(base: &str, index: u32) -> String {
    let parts: Vec<&str> = base.split(':').collect();
    match parts.as_slice() {
        [domain, bus, device_function] => {
            let (device, function) = device_function
                .split_once('.')
                .unwrap_or((device_function, "0"));
            let device = u32::from_str_radix(device, 16).unwrap_or(0) + index;
            format!("{domain}:{bus}:{device:02x}.{function}")
        }
        _ => base.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_gpu_feature_discoverys() {
        let fixture = Fixture::h200().unwrap();
        let labels = feature_labels(
            &fixture,
            &NodeGpus {
                product: product_label(&fixture.gpu.name),
                count: 8,
            },
        );
        assert_eq!(labels["nvidia.com/gpu.product"], "NVIDIA-H200");
        assert_eq!(labels["nvidia.com/gpu.memory"], "143771");
        assert_eq!(labels["nvidia.com/gpu.count"], "8");
        assert_eq!(labels["nvidia.com/gpu.family"], "hopper");
        assert_eq!(labels["nvidia.com/gpu.compute.major"], "9");
    }

    #[test]
    fn a_slice_has_one_device_per_gpu_in_the_nodes_pool() {
        let fixture = Fixture::h200().unwrap();
        let slice = resource_slice(&fixture, "gpu-node-3", 2);
        assert_eq!(slice.spec.pool.name, "gpu-node-3");
        assert_eq!(slice.spec.node_name.as_deref(), Some("gpu-node-3"));
        let devices = slice.spec.devices.unwrap();
        assert_eq!(devices.len(), 2);
        let attribute =
            |d: &Device, name: &str| d.attributes.as_ref().unwrap()[name].string.clone().unwrap();
        assert_eq!(attribute(&devices[1], "productName"), "NVIDIA H200");
        assert_eq!(
            attribute(&devices[1], "resource.kubernetes.io/pciBusID"),
            "0000:00:07.0"
        );
        assert_ne!(
            attribute(&devices[0], "uuid"),
            attribute(&devices[1], "uuid")
        );
        assert_eq!(
            devices[0].capacity.as_ref().unwrap()["memory"].value.0,
            "143771Mi"
        );
    }
}
