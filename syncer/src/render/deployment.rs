//! The Deployment of a Placement: `spec.replicas` replicas of the runtime container, its GPUs
//! requested the cluster's way, the model mounted (see [`super::model`]), the pod template
//! hashed into [`super::TEMPLATE_HASH_ANNOTATION`]. The Placement's booking and generation
//! are annotations on the Deployment only (a new booking must not roll the pods).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, PodResourceClaim, PodSpec, PodTemplateSpec, ResourceClaim,
    ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use trellis_apis::compute::Placement;

use super::claim_template::REQUEST;
use super::{EdgeOptions, GpuMode, RenderError, TEMPLATE_HASH_ANNOTATION};
use crate::inventory::nodes::{GPU_RESOURCE, PRODUCT_LABEL};
use crate::naming::{
    fnv1a64, name_of, owned_labels, BOOKING_ANNOTATION, PLACEMENT_GENERATION_ANNOTATION,
    PLACEMENT_LABEL,
};

/// The runtime container's name.
pub const RUNTIME: &str = "runtime";

pub fn render(
    placement: &Placement,
    namespace: &str,
    options: &EdgeOptions,
    claim_template: Option<&str>,
) -> Result<Deployment, RenderError> {
    let name = name_of(placement);
    let spec = &placement.spec;
    let served = spec
        .model
        .served_name
        .clone()
        .unwrap_or_else(|| spec.origin.name.clone());
    let model = super::model::mount(&spec.model, &served, options.image_volume)?;
    let mut limits = BTreeMap::new();
    let mut requests = BTreeMap::new();
    if let Some(cpu) = &spec.resources.cpu {
        requests.insert("cpu".to_string(), cpu.clone());
    }
    if let Some(memory) = &spec.resources.memory {
        requests.insert("memory".to_string(), memory.clone());
        limits.insert("memory".to_string(), memory.clone());
    }
    let mut node_selector = None;
    let mut claims = None;
    let mut pod_claims = None;
    match (options.gpu_mode, claim_template) {
        (GpuMode::Dra, Some(template)) => {
            claims = Some(vec![ResourceClaim {
                name: REQUEST.into(),
                request: None,
            }]);
            pod_claims = Some(vec![PodResourceClaim {
                name: REQUEST.into(),
                resource_claim_template_name: Some(template.into()),
                resource_claim_name: None,
            }]);
        }
        _ => {
            limits.insert(
                GPU_RESOURCE.to_string(),
                Quantity(spec.resources.gpu.count.max(1).to_string()),
            );
            node_selector = Some(BTreeMap::from([(
                PRODUCT_LABEL.to_string(),
                spec.resources.gpu.product_name.clone(),
            )]));
        }
    }
    let runtime = Container {
        name: RUNTIME.into(),
        image: Some(spec.runtime.image.clone()),
        args: (!spec.runtime.args.is_empty()).then(|| spec.runtime.args.clone()),
        ports: Some(vec![ContainerPort {
            name: Some(super::service::PORT_NAME.into()),
            container_port: spec.runtime.port,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        env: Some(model.env),
        resources: Some(ResourceRequirements {
            limits: (!limits.is_empty()).then_some(limits),
            requests: (!requests.is_empty()).then_some(requests),
            claims,
        }),
        volume_mounts: Some(vec![model.mount]),
        ..Container::default()
    };
    let labels = owned_labels(placement, &options.target);
    let mut template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![runtime],
            init_containers: model.fetch.map(|c| vec![c]),
            volumes: Some(vec![model.volume]),
            node_selector,
            resource_claims: pod_claims,
            ..PodSpec::default()
        }),
    };
    let hash = template_hash(&template);
    if let Some(meta) = template.metadata.as_mut() {
        meta.annotations = Some(BTreeMap::from([(
            TEMPLATE_HASH_ANNOTATION.to_string(),
            hash.clone(),
        )]));
    }
    let mut metadata = super::metadata(placement, name.clone(), namespace, &options.target);
    if let Some(annotations) = metadata.annotations.as_mut() {
        annotations.insert(TEMPLATE_HASH_ANNOTATION.into(), hash);
        annotations.insert(BOOKING_ANNOTATION.into(), spec.booking.to_string());
        annotations.insert(
            PLACEMENT_GENERATION_ANNOTATION.into(),
            placement.metadata.generation.unwrap_or(0).to_string(),
        );
    }
    Ok(Deployment {
        metadata,
        spec: DeploymentSpec {
            replicas: Some(spec.replicas.max(0)),
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([(PLACEMENT_LABEL.to_string(), name)])),
                match_expressions: None,
            },
            template,
            ..DeploymentSpec::default()
        },
        status: None,
    })
}

/// A stable hash of a pod template (its JSON, whose maps are ordered).
fn template_hash(template: &PodTemplateSpec) -> String {
    let json = serde_json::to_string(template).unwrap_or_default();
    format!("{:016x}", fnv1a64(&[&json]))
}
