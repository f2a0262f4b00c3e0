//! Rendering a Placement for the real H200 (`NVIDIA-H200` as GPU feature discovery labels it,
//! `NVIDIA H200` as the DRA driver names it) in both GPU modes.

use serde_json::{json, Value};
use trellis_apis::compute::Placement;

use super::*;

fn placement(uri: &str, product: &str, booking: i64) -> Placement {
    serde_json::from_value(json!({
        "apiVersion": "compute.trellis.dev/v1alpha1",
        "kind": "Placement",
        "metadata": {"name": "2cynbfy2m0wtjqcs-default-llama-5c1f0a9e3d", "namespace": "target-eu-1",
            "generation": 3},
        "spec": {
            "origin": {"workspace": "root:acme", "cluster": "2cynbfy2m0wtjqcs", "namespace": "default",
                "name": "llama", "uid": "0b7f3c1e-58a4-4a4e-9d55-2f7c6a1e9b10", "generation": 1},
            "model": {"uri": uri, "servedName": "llama-8b"},
            "runtime": {"image": "vllm/vllm-openai:v0.9.1", "args": ["--max-model-len", "8192"], "port": 8000},
            "resources": {"gpu": {"productName": product, "count": 2}, "cpu": "8", "memory": "64Gi"},
            "replicas": 3,
            "booking": booking,
        },
    }))
    .expect("placement")
}

fn options(gpu_mode: GpuMode, image_volume: bool) -> EdgeOptions {
    EdgeOptions {
        target: "eu-1".into(),
        gpu_mode,
        image_volume,
    }
}

fn json_of<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).expect("json")
}

#[test]
fn device_plugin_mode_limits_gpus_and_selects_the_product() {
    let p = placement("oci://ghcr.io/acme/llama-3.1-8b:v1", "NVIDIA-H200", 17);
    let r = render(&p, &options(GpuMode::DevicePlugin, true)).expect("renders");
    let ns = r.namespace.metadata.name.clone().unwrap_or_default();
    assert!(ns.starts_with("root-acme-default-"), "{ns}");
    let d = json_of(&r.deployment);
    assert_eq!(
        d["metadata"]["name"],
        "2cynbfy2m0wtjqcs-default-llama-5c1f0a9e3d"
    );
    assert_eq!(d["metadata"]["namespace"], ns.as_str());
    let labels = &d["metadata"]["labels"];
    assert_eq!(labels["app.kubernetes.io/managed-by"], "trellis-syncer");
    assert_eq!(labels["trellis.dev/sync-target"], "eu-1");
    assert_eq!(
        labels["trellis.dev/placement"],
        "2cynbfy2m0wtjqcs-default-llama-5c1f0a9e3d"
    );
    assert_eq!(
        labels["trellis.dev/origin-uid"],
        "0b7f3c1e-58a4-4a4e-9d55-2f7c6a1e9b10"
    );
    assert_eq!(labels["trellis.dev/origin-cluster"], "2cynbfy2m0wtjqcs");
    let annotations = &d["metadata"]["annotations"];
    assert_eq!(annotations["trellis.dev/origin-workspace"], "root:acme");
    assert_eq!(annotations["trellis.dev/origin-name"], "llama");
    assert_eq!(annotations["trellis.dev/booking"], "17");
    assert_eq!(annotations["trellis.dev/placement-generation"], "3");
    assert_eq!(d["spec"]["replicas"], 3);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(
        pod["nodeSelector"],
        json!({"nvidia.com/gpu.product": "NVIDIA-H200"})
    );
    let runtime = &pod["containers"][0];
    assert_eq!(runtime["image"], "vllm/vllm-openai:v0.9.1");
    assert_eq!(runtime["resources"]["limits"]["nvidia.com/gpu"], "2");
    assert_eq!(runtime["resources"]["requests"]["cpu"], "8");
    assert_eq!(runtime["ports"][0]["containerPort"], 8000);
    // OCI model on a cluster with image volumes: mounted, not copied.
    assert_eq!(
        pod["volumes"][0]["image"]["reference"],
        "ghcr.io/acme/llama-3.1-8b:v1"
    );
    assert!(pod.get("initContainers").is_none());
    assert!(pod.get("resourceClaims").is_none());
    assert!(r.claim_template.is_none());
    let s = json_of(&r.service);
    assert_eq!(s["spec"]["ports"][0]["port"], 8000);
    assert_eq!(
        s["spec"]["selector"],
        json!({"trellis.dev/placement": "2cynbfy2m0wtjqcs-default-llama-5c1f0a9e3d"})
    );
    // The same Placement renders the same objects: applying it again changes nothing.
    assert_eq!(render(&p, &options(GpuMode::DevicePlugin, true)), Ok(r));
}

#[test]
fn dra_mode_claims_count_devices_of_the_exact_product() {
    let p = placement("hf://meta-llama/Llama-3.1-8B-Instruct", "NVIDIA H200", 17);
    let r = render(&p, &options(GpuMode::Dra, false)).expect("renders");
    let t = json_of(&r.claim_template.clone().expect("a claim template"));
    let request = &t["spec"]["spec"]["devices"]["requests"][0];
    assert_eq!(request["exactly"]["deviceClassName"], "gpu.nvidia.com");
    assert_eq!(request["exactly"]["count"], 2);
    assert_eq!(
        request["exactly"]["selectors"][0]["cel"]["expression"],
        "device.attributes['gpu.nvidia.com'].productName == 'NVIDIA H200'"
    );
    let pod = json_of(&r.deployment)["spec"]["template"]["spec"].clone();
    assert_eq!(
        pod["resourceClaims"][0]["resourceClaimTemplateName"],
        t["metadata"]["name"]
    );
    assert_eq!(
        pod["containers"][0]["resources"]["claims"][0]["name"],
        "gpus"
    );
    assert!(pod["containers"][0]["resources"]["limits"]
        .get("nvidia.com/gpu")
        .is_none());
    assert!(pod.get("nodeSelector").is_none());
    // An hf:// model is fetched by an init container into the shared volume.
    assert_eq!(pod["initContainers"][0]["name"], "fetch-model");
    assert_eq!(pod["volumes"][0]["emptyDir"], json!({}));
    // Another count is another template (a template cannot change).
    let mut more = p.clone();
    more.spec.resources.gpu.count = 4;
    let other = render(&more, &options(GpuMode::Dra, false)).expect("renders");
    assert_ne!(
        other.claim_template.and_then(|t| t.metadata.name),
        t["metadata"]["name"].as_str().map(String::from)
    );
}

#[test]
fn a_new_booking_does_not_touch_the_pod_template() {
    let a = render(
        &placement("oci://r/m:v1", "NVIDIA-H200", 1),
        &options(GpuMode::DevicePlugin, false),
    )
    .expect("a");
    let b = render(
        &placement("oci://r/m:v1", "NVIDIA-H200", 2),
        &options(GpuMode::DevicePlugin, false),
    )
    .expect("b");
    assert_eq!(a.deployment.spec.template, b.deployment.spec.template);
    assert_ne!(
        a.deployment.metadata.annotations,
        b.deployment.metadata.annotations
    );
    // Without image volumes an OCI model is pulled by ORAS.
    let pod = json_of(&a.deployment)["spec"]["template"]["spec"].clone();
    assert_eq!(pod["initContainers"][0]["image"], model::ORAS_IMAGE);
}

#[test]
fn cel_strings_are_quoted_and_bad_placements_are_refused() {
    assert_eq!(claim_template::cel_string("a'b\\c"), "'a\\'b\\\\c'");
    let mut p = placement("ftp://x", "NVIDIA-H200", 0);
    assert!(matches!(
        render(&p, &options(GpuMode::DevicePlugin, false)),
        Err(RenderError::ModelScheme(_))
    ));
    p.spec.model.uri = "pvc://models/llama/8b".into();
    p.spec.runtime.port = 0;
    assert_eq!(
        render(&p, &options(GpuMode::DevicePlugin, false)),
        Err(RenderError::Port(0))
    );
    p.spec.runtime.port = 8000;
    let pod = json_of(
        &render(&p, &options(GpuMode::DevicePlugin, false))
            .expect("pvc")
            .deployment,
    )["spec"]["template"]["spec"]
        .clone();
    assert_eq!(
        pod["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "models"
    );
    assert_eq!(
        pod["containers"][0]["volumeMounts"][0]["subPath"],
        "llama/8b"
    );
    p.metadata.name = None;
    assert_eq!(
        render(&p, &options(GpuMode::DevicePlugin, false)),
        Err(RenderError::NoName)
    );
}
