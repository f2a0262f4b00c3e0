//! `trellis synctarget create NAME --workspace PATH -o syncer.kubeconfig`: registers an edge
//! cluster with a running hub, as its admin (the `--kubeconfig` given, by default the hub's
//! `admin.kubeconfig`), and writes the kubeconfig its trellis-syncer dials the hub with.
//!
//! In the provider workspace it applies (server-side, field manager `trellis`, so running it
//! again changes nothing but the token):
//! - the SyncTarget `NAME` and its namespace `target-NAME`;
//! - the ServiceAccount `target-NAME/syncer`;
//! - Role and RoleBinding `trellis-syncer` in `target-NAME`: read Placements (`get`, `list`,
//!   `watch`) and write their status (`get`, `patch`, `update` of `placements/status`);
//! - ClusterRole and ClusterRoleBinding `trellis-syncer-NAME`: `get`, `list`, `watch` the
//!   SyncTarget `NAME` and `get`, `patch`, `update` its status, by `resourceNames`.
//!
//! Nothing else: the token reads no other namespace, no other SyncTarget, and works in no
//! other workspace (a ServiceAccount token is valid only in the workspace that minted it;
//! the workspace's own accounts may enter it without a workspace-access binding). The token
//! is a TokenRequest of the longest lifetime the hub grants (48 hours; `--duration-seconds`);
//! running the command again mints a fresh one. With `--token-file F` the token goes to `F`
//! and the kubeconfig names the file (`tokenFile`): a syncer reads it again every minute, so
//! running the command again (e.g. daily) renews a running syncer's credentials in place.

use std::path::Path;

use anyhow::Context;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::Api;
use serde_json::{json, Value};

/// The syncer's ServiceAccount, in the target's namespace.
pub const SERVICE_ACCOUNT: &str = "syncer";
/// The Role and RoleBinding in the target's namespace.
pub const ROLE: &str = "trellis-syncer";
const FIELD_MANAGER: &str = "trellis";

/// The namespace holding the Placements of `target`.
pub fn target_namespace(target: &str) -> String {
    trellis_apis::compute::placement::target_namespace(target)
}

/// The ClusterRole and ClusterRoleBinding of `target`'s syncer.
pub fn cluster_role(target: &str) -> String {
    format!("trellis-syncer-{target}")
}

/// Every object `create` applies, in order.
pub fn objects(target: &str) -> Vec<Value> {
    let namespace = target_namespace(target);
    let subject =
        json!([{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": namespace}]);
    let group = "compute.trellis.dev";
    vec![
        json!({"apiVersion": "compute.trellis.dev/v1alpha1", "kind": "SyncTarget",
            "metadata": {"name": target}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": SERVICE_ACCOUNT, "namespace": namespace}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": ROLE, "namespace": namespace},
        "rules": [
            {"apiGroups": [group], "resources": ["placements"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [group], "resources": ["placements/status"], "verbs": ["get", "patch", "update"]},
        ]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": ROLE, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROLE},
            "subjects": subject}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": cluster_role(target)},
        "rules": [
            {"apiGroups": [group], "resources": ["synctargets"], "resourceNames": [target],
                "verbs": ["get", "list", "watch"]},
            {"apiGroups": [group], "resources": ["synctargets/status"], "resourceNames": [target],
                "verbs": ["get", "patch", "update"]},
        ]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": cluster_role(target)},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                "name": cluster_role(target)},
            "subjects": subject}),
    ]
}

/// How the syncer's kubeconfig holds its token.
#[derive(Clone, Copy, Debug)]
pub enum Credential<'a> {
    /// The token itself.
    Token(&'a str),
    /// A file holding the token, read again by clients every minute.
    TokenFile(&'a Path),
}

/// The syncer's kubeconfig: `server` (the workspace URL), the hub's CA, the credential.
pub fn syncer_kubeconfig(
    server: &str,
    ca_data: &str,
    credential: Credential,
    target: &str,
) -> String {
    let user = format!("syncer-{target}");
    let credential = match credential {
        Credential::Token(token) => json!({"token": token}),
        Credential::TokenFile(path) => json!({"tokenFile": path.display().to_string()}),
    };
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "trellis", "cluster": {
            "server": server, "certificate-authority-data": ca_data}}],
        "users": [{"name": user, "user": credential}],
        "contexts": [{"name": user, "context": {"cluster": "trellis", "user": user}}],
        "current-context": user,
        "preferences": {},
    });
    serde_json::to_string_pretty(&config).unwrap_or_default() + "\n"
}

/// `server` with its workspace replaced by `workspace`.
fn workspace_url(server: &str, workspace: &str) -> String {
    let base = match server.find("/clusters/") {
        Some(at) => &server[..at],
        None => server.trim_end_matches('/'),
    };
    format!("{base}/clusters/{workspace}")
}

fn api_for(client: &kube::Client, object: &Value) -> anyhow::Result<(Api<DynamicObject>, String)> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let plural = match kind {
        "SyncTarget" => "synctargets",
        "Namespace" => "namespaces",
        "ServiceAccount" => "serviceaccounts",
        "Role" => "roles",
        "RoleBinding" => "rolebindings",
        "ClusterRole" => "clusterroles",
        "ClusterRoleBinding" => "clusterrolebindings",
        other => anyhow::bail!("no plural known for {other}"),
    };
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let api = match object["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    Ok((api, name))
}

/// Registers `target` in `workspace` through the hub `admin_kubeconfig` names; writes the
/// syncer's kubeconfig to `out`.
pub async fn create(
    admin_kubeconfig: &Path,
    workspace: &str,
    target: &str,
    duration_seconds: i64,
    out: &Path,
    token_file: Option<&Path>,
) -> anyhow::Result<()> {
    let file = Kubeconfig::read_from(admin_kubeconfig)
        .with_context(|| format!("reading {}", admin_kubeconfig.display()))?;
    let ca_data = file
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.certificate_authority_data.clone())
        .unwrap_or_default();
    let mut config = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .context("the admin kubeconfig")?;
    let server = workspace_url(&config.cluster_url.to_string(), workspace);
    config.cluster_url = server
        .parse()
        .with_context(|| format!("workspace URL {server}"))?;
    let client = kube::Client::try_from(config)?;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for object in objects(target) {
        let (api, name) = api_for(&client, &object)?;
        // The hub's placement controller creates the target's namespace as soon as the
        // SyncTarget exists: an apply racing it gets 409 AlreadyExists, and the next one
        // updates.
        let mut attempts = 0;
        loop {
            match api.patch(&name, &params, &Patch::Apply(&object)).await {
                Err(kube::Error::Api(e)) if e.code == 409 && attempts < 5 => attempts += 1,
                done => {
                    done.with_context(|| {
                        format!("applying {} {name} in {workspace}", object["kind"])
                    })?;
                    break;
                }
            }
        }
    }
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), &target_namespace(target));
    let request = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"expirationSeconds": duration_seconds}});
    let answer: Value = accounts
        .create_subresource("token", SERVICE_ACCOUNT, &PostParams::default(), &request)
        .await
        .context("minting the syncer's token")?;
    let token = answer["status"]["token"]
        .as_str()
        .context("the TokenRequest answer has no token")?;
    let absolute;
    let credential = match token_file {
        Some(path) => {
            // Written whole under another name, then renamed: a syncer never reads half a token.
            let partial = path.with_extension("partial");
            std::fs::write(&partial, token)
                .and_then(|()| std::fs::rename(&partial, path))
                .with_context(|| format!("writing {}", path.display()))?;
            absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
            Credential::TokenFile(&absolute)
        }
        None => Credential::Token(token),
    };
    std::fs::write(
        out,
        syncer_kubeconfig(&server, &ca_data, credential, target),
    )
    .with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_syncer_may_touch_its_own_target_only() {
        let objects = objects("eu-1");
        let role = objects
            .iter()
            .find(|o| o["kind"] == "Role")
            .cloned()
            .unwrap_or_default();
        assert_eq!(role["metadata"]["namespace"], "target-eu-1");
        let cluster_role = objects
            .iter()
            .find(|o| o["kind"] == "ClusterRole")
            .cloned()
            .unwrap_or_default();
        for rule in cluster_role["rules"].as_array().into_iter().flatten() {
            assert_eq!(rule["resourceNames"], json!(["eu-1"]));
            assert!(!rule["verbs"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|v| v == "delete" || v == "create"));
        }
        assert_eq!(objects.len(), 7);
    }

    #[test]
    fn kubeconfigs_point_at_the_workspace() {
        assert_eq!(
            workspace_url("https://127.0.0.1:6443/clusters/root", "root:platform"),
            "https://127.0.0.1:6443/clusters/root:platform"
        );
        let config: Value = serde_json::from_str(&syncer_kubeconfig(
            "https://h/clusters/root:p",
            "Q0E=",
            Credential::Token("t"),
            "eu-1",
        ))
        .unwrap_or_default();
        assert_eq!(config["users"][0]["user"]["token"], "t");
        assert_eq!(
            config["clusters"][0]["cluster"]["server"],
            "https://h/clusters/root:p"
        );
        let file = Path::new("/etc/trellis/token");
        let config: Value = serde_json::from_str(&syncer_kubeconfig(
            "https://h/clusters/root:p",
            "Q0E=",
            Credential::TokenFile(file),
            "eu-1",
        ))
        .unwrap_or_default();
        assert_eq!(
            config["users"][0]["user"],
            json!({"tokenFile": "/etc/trellis/token"})
        );
    }
}
