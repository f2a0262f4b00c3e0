//! What the edge cluster is: its version, whether its GPUs are DRA devices (it serves
//! `resource.k8s.io/v1` and has the DeviceClass `gpu.nvidia.com` of NVIDIA's DRA driver: then
//! Placements claim them; a cluster serving the API with GPUs from the device plugin, as every
//! cluster from Kubernetes 1.34 does, gets `nvidia.com/gpu` limits), and whether pods may mount
//! OCI images as volumes (asked by flag, or assumed from Kubernetes 1.35, where `ImageVolume` is on by
//! default). Until the cluster answers, the syncer heartbeats with `Ready` False so the hub
//! knows it is alive but cannot take work.

use std::time::Duration;

use trellis_apis::compute::SyncTargetFeatures;

use k8s_openapi::api::resource::v1::DeviceClass;
use kube::Api;

use crate::render::claim_template::DEVICE_CLASS;
use crate::render::GpuMode;
use crate::target::TargetRef;
use crate::target_status::Report;

/// The cluster as probed at start.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cluster {
    pub version: Option<String>,
    pub features: SyncTargetFeatures,
}

impl Cluster {
    pub fn gpu_mode(&self) -> GpuMode {
        if self.features.dra {
            GpuMode::Dra
        } else {
            GpuMode::DevicePlugin
        }
    }
}

/// Whether `major.minor` is at least 1.35.
pub fn image_volume_by_default(major: &str, minor: &str) -> bool {
    let minor: u32 = minor
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap_or(0);
    major == "1" && minor >= 35
}

/// Probes the cluster once.
pub async fn probe(edge: &kube::Client, image_volume: Option<bool>) -> kube::Result<Cluster> {
    let version = edge.apiserver_version().await?;
    let serves_dra = match edge.list_api_group_resources("resource.k8s.io/v1").await {
        Ok(list) => list.resources.iter().any(|r| r.name == "resourceslices"),
        Err(kube::Error::Api(e)) if e.code == 404 => false,
        Err(e) => return Err(e),
    };
    let dra = serves_dra
        && Api::<DeviceClass>::all(edge.clone())
            .get_opt(DEVICE_CLASS)
            .await?
            .is_some();
    Ok(Cluster {
        features: SyncTargetFeatures {
            dra,
            image_volume: image_volume
                .unwrap_or_else(|| image_volume_by_default(&version.major, &version.minor)),
        },
        version: Some(version.git_version),
    })
}

/// Probes until the cluster answers, heartbeating `Ready` False to the hub meanwhile.
pub async fn wait_for(
    edge: &kube::Client,
    image_volume: Option<bool>,
    target: &TargetRef,
    hub: &kube::Client,
    metrics: &super::metrics::Metrics,
) -> Cluster {
    let mut delay = Duration::from_secs(1);
    loop {
        match probe(edge, image_volume).await {
            Ok(cluster) => return cluster,
            Err(e) => {
                tracing::warn!(error = %e, "the cluster does not answer; trying again");
                let report = Report {
                    cluster_error: Some(e.to_string()),
                    ..Report::default()
                };
                let sent = super::hub::report(hub, &target.name, &report).await;
                metrics.heartbeat(&sent);
                if let Err(e) = sent {
                    tracing::warn!(error = %e, "heartbeat to the hub failed");
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_volumes_from_1_35() {
        assert!(image_volume_by_default("1", "37"));
        assert!(image_volume_by_default("1", "35+"));
        assert!(!image_volume_by_default("1", "32"));
        assert!(!image_volume_by_default("", ""));
    }
}
