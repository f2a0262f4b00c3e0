//! `examples/ha/`: `run.sh --check` (a throwaway Postgres and two `trellis start` replicas on
//! 127.0.0.1, a write through each read through the other) runs green, and the Kubernetes
//! manifests hold together: they parse as the Kubernetes types they claim to be, the selectors
//! pick the Deployment's pods, the Secret keys the pods read exist, and `trellis start` accepts
//! every flag the pods pass.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Deserialize;
use trellis_integration_tests::{plugin_dir, trellis_binary};

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ha")
}

/// Every document of a manifest file as `T`.
fn documents<T: for<'de> Deserialize<'de>>(file: &str) -> Vec<T> {
    let path = example_dir().join("kubernetes").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| T::deserialize(doc).unwrap_or_else(|e| panic!("{file}: {e}")))
        .collect()
}

fn one<T: for<'de> Deserialize<'de>>(file: &str) -> T {
    let mut docs = documents(file);
    assert_eq!(docs.len(), 1, "{file} holds one object");
    docs.remove(0)
}

#[test]
fn run_sh_check_passes() {
    let output = Command::new("bash")
        .arg(example_dir().join("run.sh"))
        .arg("--check")
        .env("BIN", plugin_dir())
        .env_remove("DATABASE_URL")
        .output()
        .expect("run examples/ha/run.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "run.sh --check failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("ha check passed"), "{stdout}");
    assert!(stdout.contains("replica b: https://127.0.0.1:"), "{stdout}");
}

#[test]
fn the_manifests_hold_together() {
    let deployment: Deployment = one("deployment.yaml");
    let service: Service = one("service.yaml");
    let pdb: PodDisruptionBudget = one("pdb.yaml");
    let secrets: Vec<Secret> = documents("secret.yaml");

    let spec = &deployment.spec;
    assert_eq!(spec.replicas, Some(2));
    let pod_labels: BTreeMap<String, String> = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .expect("pod labels");
    let selects_pods = |selector: &BTreeMap<String, String>| {
        !selector.is_empty() && selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v))
    };
    assert!(selects_pods(
        spec.selector
            .match_labels
            .as_ref()
            .expect("Deployment selector")
    ));
    assert!(selects_pods(
        service
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .expect("Service selector")
    ));
    let pdb_spec = pdb.spec.as_ref().expect("PDB spec");
    assert!(selects_pods(
        pdb_spec
            .selector
            .as_ref()
            .and_then(|s| s.match_labels.as_ref())
            .expect("PDB selector")
    ));
    assert_eq!(pdb_spec.min_available, Some(IntOrString::Int(1)));

    // Every namespaced object is in one namespace.
    let namespace = deployment.metadata.namespace.clone().expect("namespace");
    assert_eq!(service.metadata.namespace.as_ref(), Some(&namespace));
    assert_eq!(pdb.metadata.namespace.as_ref(), Some(&namespace));
    for s in &secrets {
        assert_eq!(s.metadata.namespace.as_ref(), Some(&namespace));
    }
    let secret_keys = |name: &str| -> Vec<String> {
        let secret = secrets
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no Secret {name} in secret.yaml"));
        secret
            .string_data
            .iter()
            .flat_map(|d| d.keys().cloned())
            .chain(secret.data.iter().flat_map(|d| d.keys().cloned()))
            .collect()
    };

    let pod = spec.template.spec.as_ref().expect("pod spec");
    let hub = pod
        .containers
        .iter()
        .find(|c| c.name == "trellis")
        .expect("the trellis container");
    // The database URL comes from a Secret key that exists, as the variable --store reads.
    let store = hub
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "TRELLIS_STORE")
        .and_then(|e| e.value_from.as_ref()?.secret_key_ref.clone())
        .expect("TRELLIS_STORE from a Secret");
    assert!(secret_keys(&store.name).contains(&store.key));
    // The CA Secret mounted for the init container has the files it copies.
    let ca_volume = pod
        .volumes
        .iter()
        .flatten()
        .find_map(|v| v.secret.as_ref()?.secret_name.clone())
        .expect("a Secret volume");
    let copied = pod
        .init_containers
        .iter()
        .flatten()
        .flat_map(|c| c.command.iter().flatten())
        .filter_map(|arg| arg.strip_prefix("/etc/trellis-ca/"))
        .map(str::to_string)
        .collect::<Vec<_>>();
    let mut ca_keys = secret_keys(&ca_volume);
    ca_keys.sort();
    assert_eq!(copied, ca_keys);
    assert_eq!(copied, ["ca.crt", "ca.key"]);

    // The probes hit the health endpoints on the container's port, and the Service forwards
    // to it.
    let port = hub
        .ports
        .iter()
        .flatten()
        .find(|p| p.container_port == 6443)
        .and_then(|p| p.name.clone())
        .expect("a named port 6443");
    for (probe, path) in [
        (hub.readiness_probe.as_ref(), "/readyz"),
        (hub.liveness_probe.as_ref(), "/livez"),
    ] {
        let get = probe
            .and_then(|p| p.http_get.as_ref())
            .expect("an HTTP probe");
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(get.port, IntOrString::String(port.clone()));
        assert_eq!(get.scheme.as_deref(), Some("HTTPS"));
    }
    let service_port = &service
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .expect("ports")[0];
    assert_eq!(service_port.target_port, Some(IntOrString::String(port)));

    // `trellis start` accepts every flag the pod passes.
    let args = hub.args.clone().expect("args");
    assert_eq!(args[0], "start");
    let help = Command::new(trellis_binary())
        .args(["start", "--help"])
        .output()
        .expect("trellis start --help");
    let help = String::from_utf8_lossy(&help.stdout);
    for arg in &args[1..] {
        let flag = arg.split('=').next().unwrap_or_default();
        assert!(
            flag.starts_with("--") && help.contains(&format!("{flag} ")),
            "trellis start does not take {flag}"
        );
    }
}
