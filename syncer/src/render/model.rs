//! How the model's weights reach the runtime container, at [`MODEL_PATH`]:
//! - `oci://ref` on a cluster with image volumes: the artifact mounted read-only as an
//!   `image` volume, nothing copied.
//! - `oci://ref` elsewhere, `hf://org/model`, `s3://bucket/prefix`: an init container fetches
//!   them into an `emptyDir` (ORAS, the Hugging Face CLI, the AWS CLI).
//! - `pvc://claim/path`: the claim mounted read-only, `path` as the sub-path.
//!
//! The runtime learns where from `TRELLIS_MODEL_PATH` and the served name from
//! `TRELLIS_MODEL_NAME`.

use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, ImageVolumeSource, PersistentVolumeClaimVolumeSource,
    Volume, VolumeMount,
};
use trellis_apis::serving::{ModelScheme, ModelSource};

use super::RenderError;

/// Where the runtime finds the model.
pub const MODEL_PATH: &str = "/models";
const VOLUME: &str = "model";
/// Fetchers for the schemes that need copying.
pub const ORAS_IMAGE: &str = "ghcr.io/oras-project/oras:v1.2.3";
pub const HF_IMAGE: &str = "python:3.12-slim";
pub const S3_IMAGE: &str = "amazon/aws-cli:2.27.0";

/// The volume, the runtime's mount and, if copying, the init container that fetches.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelMount {
    pub volume: Volume,
    pub mount: VolumeMount,
    pub fetch: Option<Container>,
    pub env: Vec<EnvVar>,
}

fn fetcher(image: &str, command: Vec<String>) -> Container {
    Container {
        name: "fetch-model".into(),
        image: Some(image.into()),
        command: Some(command),
        volume_mounts: Some(vec![VolumeMount {
            name: VOLUME.into(),
            mount_path: MODEL_PATH.into(),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    }
}

/// How `model` (served as `served_name`) reaches the runtime on a cluster that does or does
/// not support image volumes.
pub fn mount(
    model: &ModelSource,
    served_name: &str,
    image_volume: bool,
) -> Result<ModelMount, RenderError> {
    let scheme = model
        .scheme()
        .ok_or_else(|| RenderError::ModelScheme(model.uri.clone()))?;
    let rest = &model.uri[scheme.prefix().len()..];
    let empty_dir = || Volume {
        name: VOLUME.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    };
    let mut sub_path = None;
    let (volume, fetch) = match scheme {
        ModelScheme::Oci if image_volume => (
            Volume {
                name: VOLUME.into(),
                image: Some(ImageVolumeSource {
                    reference: Some(rest.into()),
                    pull_policy: Some("IfNotPresent".into()),
                }),
                ..Volume::default()
            },
            None,
        ),
        ModelScheme::Oci => (
            empty_dir(),
            Some(fetcher(
                ORAS_IMAGE,
                vec![
                    "oras".into(),
                    "pull".into(),
                    rest.into(),
                    "-o".into(),
                    MODEL_PATH.into(),
                ],
            )),
        ),
        ModelScheme::HuggingFace => (
            empty_dir(),
            Some(fetcher(
                HF_IMAGE,
                vec![
                    "sh".into(),
                    "-c".into(),
                    "pip install -q huggingface_hub && hf download \"$0\" --local-dir \"$1\""
                        .into(),
                    rest.into(),
                    MODEL_PATH.into(),
                ],
            )),
        ),
        ModelScheme::S3 => (
            empty_dir(),
            Some(fetcher(
                S3_IMAGE,
                vec![
                    "aws".into(),
                    "s3".into(),
                    "sync".into(),
                    model.uri.clone(),
                    MODEL_PATH.into(),
                ],
            )),
        ),
        ModelScheme::Pvc => {
            let (claim, path) = rest.split_once('/').unwrap_or((rest, ""));
            if !path.is_empty() {
                sub_path = Some(path.to_string());
            }
            (
                Volume {
                    name: VOLUME.into(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: claim.into(),
                        read_only: Some(true),
                    }),
                    ..Volume::default()
                },
                None,
            )
        }
    };
    Ok(ModelMount {
        volume,
        mount: VolumeMount {
            name: VOLUME.into(),
            mount_path: MODEL_PATH.into(),
            read_only: Some(true),
            sub_path,
            ..VolumeMount::default()
        },
        fetch,
        env: vec![
            EnvVar {
                name: "TRELLIS_MODEL_PATH".into(),
                value: Some(MODEL_PATH.into()),
                ..EnvVar::default()
            },
            EnvVar {
                name: "TRELLIS_MODEL_NAME".into(),
                value: Some(served_name.into()),
                ..EnvVar::default()
            },
        ],
    })
}
