//! The embedded H200 readings: `nvidia-smi --query-gpu` CSV (name, memory, compute capability,
//! driver, MIG mode, PCI bus, UUID) and the ResourceSlice and DeviceClass NVIDIA's DRA driver
//! publishes for that GPU. Parsed once; nothing here is made up, and what the simulator derives
//! per device (a UUID and PCI bus per GPU of a node) is derived from these values.

use k8s_openapi::api::resource::v1::{DeviceClass, ResourceSlice};

const GPU_CSV: &str = include_str!("../../fixtures/nvidia-h200/gpu.csv");
const RESOURCE_SLICE_YAML: &str = include_str!("../../fixtures/nvidia-h200/resourceslice.yaml");

/// One GPU as `nvidia-smi` reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuReading {
    /// `NVIDIA H200`.
    pub name: String,
    pub memory_mib: u64,
    /// `9.0`.
    pub compute_capability: String,
    /// The driver's own string, `580.159.04`.
    pub driver_version: String,
    pub pci_bus_id: String,
    pub uuid: String,
}

/// The readings of the embedded fixture.
#[derive(Clone, Debug)]
pub struct Fixture {
    pub gpu: GpuReading,
    /// The driver's ResourceSlice for a node with this GPU (its device `gpu-0`).
    pub slice: ResourceSlice,
    pub device_class: DeviceClass,
}

impl Fixture {
    /// The H200 fixture. The files are compiled in, so a failure here is a bug of the crate
    /// (its unit test parses them).
    pub fn h200() -> Result<Fixture, String> {
        let gpu = parse_csv(GPU_CSV)?;
        let mut slice = None;
        let mut device_class = None;
        for document in serde_yaml_ng::Deserializer::from_str(RESOURCE_SLICE_YAML) {
            let value: serde_json::Value = serde::Deserialize::deserialize(document)
                .map_err(|e| format!("resourceslice.yaml: {e}"))?;
            match value.get("kind").and_then(serde_json::Value::as_str) {
                Some("ResourceSlice") => {
                    slice = Some(serde_json::from_value(value).map_err(|e| e.to_string())?)
                }
                Some("DeviceClass") => {
                    device_class = Some(serde_json::from_value(value).map_err(|e| e.to_string())?)
                }
                _ => {}
            }
        }
        Ok(Fixture {
            gpu,
            slice: slice.ok_or("resourceslice.yaml has no ResourceSlice")?,
            device_class: device_class.ok_or("resourceslice.yaml has no DeviceClass")?,
        })
    }

    /// The GPU family GPU Feature Discovery labels (`hopper`): the architecture the driver
    /// reports, lowercased.
    pub fn family(&self) -> String {
        self.slice
            .spec
            .devices
            .iter()
            .flatten()
            .find_map(|d| d.attributes.as_ref()?.get("architecture")?.string.clone())
            .unwrap_or_default()
            .to_lowercase()
    }
}

/// The first GPU line of `nvidia-smi --query-gpu=name,memory.total,compute_cap,
/// driver_version,mig.mode.current,pci.bus_id,uuid --format=csv`.
fn parse_csv(csv: &str) -> Result<GpuReading, String> {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .ok_or("gpu.csv is empty")?
        .split(',')
        .map(str::trim)
        .collect();
    let row: Vec<&str> = lines
        .next()
        .ok_or("gpu.csv has no GPU")?
        .split(',')
        .map(str::trim)
        .collect();
    let field = |name: &str| {
        header
            .iter()
            .position(|h| h.starts_with(name))
            .and_then(|i| row.get(i))
            .map(|v| v.to_string())
            .ok_or_else(|| format!("gpu.csv has no {name}"))
    };
    let memory = field("memory.total")?;
    Ok(GpuReading {
        name: field("name")?,
        memory_mib: memory
            .trim_end_matches("MiB")
            .trim()
            .parse()
            .map_err(|e| format!("gpu.csv memory {memory:?}: {e}"))?,
        compute_capability: field("compute_cap")?,
        driver_version: field("driver_version")?,
        pci_bus_id: field("pci.bus_id")?,
        uuid: field("uuid")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_h200_readings_parse() {
        let fixture = Fixture::h200().unwrap();
        assert_eq!(fixture.gpu.name, "NVIDIA H200");
        assert_eq!(fixture.gpu.memory_mib, 143771);
        assert_eq!(fixture.gpu.compute_capability, "9.0");
        assert_eq!(fixture.gpu.driver_version, "580.159.04");
        assert_eq!(fixture.family(), "hopper");
        assert_eq!(fixture.slice.spec.driver, "gpu.nvidia.com");
        assert_eq!(
            fixture.device_class.metadata.name.as_deref(),
            Some("gpu.nvidia.com")
        );
    }
}
