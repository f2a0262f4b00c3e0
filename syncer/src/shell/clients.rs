//! The syncer's two clients. The hub's comes from the kubeconfig `trellis synctarget create`
//! wrote (a ServiceAccount token of the provider workspace) with its server pointed at that
//! workspace whatever the file says; the edge's from `--kubeconfig`, or inferred (in-cluster
//! service account, else `$KUBECONFIG`).

use std::path::Path;

use anyhow::Context;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::target::workspace_url;

/// A client for the hub workspace `workspace`.
pub async fn hub(kubeconfig: &Path, workspace: &str) -> anyhow::Result<kube::Client> {
    let file = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading the hub kubeconfig {}", kubeconfig.display()))?;
    let mut config = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .context("the hub kubeconfig")?;
    let url = workspace_url(&config.cluster_url.to_string(), workspace);
    config.cluster_url = url
        .parse()
        .with_context(|| format!("hub workspace URL {url}"))?;
    traced(config).context("the hub client")
}

/// A client for the edge cluster.
pub async fn edge(kubeconfig: Option<&Path>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)
                .with_context(|| format!("reading the cluster kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .context("the cluster kubeconfig")?
        }
        None => kube::Config::infer()
            .await
            .context("no --kubeconfig, and neither in-cluster nor $KUBECONFIG configuration")?,
    };
    traced(config).context("the cluster client")
}

/// A client whose requests carry the current span's trace context (W3C `traceparent`), so
/// the API server continues the trace of what the syncer is doing: the edge's create of a
/// Deployment shows in the trace of the ModelDeployment it runs.
fn traced(config: kube::Config) -> kube::Result<kube::Client> {
    let inject =
        tower::util::MapRequestLayer::new(|mut request: http::Request<kube::client::Body>| {
            trellis_telemetry::inject(&tracing::Span::current(), request.headers_mut());
            request
        });
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&inject)
        .build())
}
