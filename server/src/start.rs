//! `trellis start`: open the store, make sure the PKI and kubeconfig exist, bootstrap the
//! system namespaces, and serve.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use trellis_storage::{Store, StoreOptions};

use crate::registry::Registry;
use crate::state::{AppState, ROOT_CLUSTER};
use crate::workspaces::WorkspaceIndex;
use crate::{bootstrap, kubeconfig, tls};

#[derive(Clone, Debug)]
pub struct StartOptions {
    /// Everything the hub writes goes here: the SQLite store, the PKI, the kubeconfig.
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// `postgres://…` to use Postgres; the embedded SQLite store otherwise.
    pub store: Option<String>,
    /// Extra names (DNS or IP) for the serving certificate.
    pub tls_sans: Vec<String>,
}

/// A started hub: where it listens and where its kubeconfig is.
pub struct Started {
    pub addr: SocketAddr,
    pub kubeconfig: PathBuf,
    pub server: tokio::task::JoinHandle<()>,
}

pub async fn start(options: StartOptions) -> anyhow::Result<Started> {
    let data_dir = &options.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    let store = match &options.store {
        Some(url) => Store::open_postgres(url, StoreOptions::default())
            .await
            .context("opening the Postgres store")?,
        None => Store::open_sqlite(data_dir.join("store.db"), StoreOptions::default())
            .await
            .context("opening the embedded store")?,
    };
    bootstrap::ensure_namespaces(&store, ROOT_CLUSTER)
        .await
        .context("creating the system namespaces")?;
    bootstrap::ensure_root(&store)
        .await
        .context("creating the root workspace's objects")?;

    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("listening on {}", options.listen))?;
    let addr = listener.local_addr()?;
    let names = tls::default_names(&addr, &options.tls_sans);
    let pki = tls::load_or_create(data_dir, &names).context("preparing certificates")?;
    let tls_config = tls::server_config(&pki).context("configuring TLS")?;

    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else if addr.is_ipv6() {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    };
    let external_url = format!("https://{host}:{}", addr.port());
    let server_url = format!("{external_url}/clusters/root");
    let kubeconfig = data_dir.join("admin.kubeconfig");
    std::fs::write(
        &kubeconfig,
        kubeconfig::render(&server_url, &pki.ca_cert_pem, &pki.admin),
    )
    .with_context(|| format!("writing {}", kubeconfig.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&kubeconfig, std::fs::Permissions::from_mode(0o600))?;
    }

    let registry = Registry::new(store.clone());
    registry.spawn_watch();
    let workspaces = WorkspaceIndex::new(store.clone());
    {
        let workspaces = workspaces.clone();
        tokio::spawn(async move { workspaces.watch().await });
    }
    {
        let (store, registry, workspaces) = (store.clone(), registry.clone(), workspaces.clone());
        tokio::spawn(crate::leader_election::run(store.clone(), move || {
            crate::controllers::spawn_all(
                store.clone(),
                registry.clone(),
                workspaces.clone(),
                external_url.clone(),
            )
        }));
    }
    let namespaces = crate::namespace_cache::NamespaceCache::spawn(store.clone());
    let authorizer = crate::authz::Authorizer::spawn(store.clone());
    let state = Arc::new(AppState {
        store,
        registry,
        workspaces,
        namespaces,
        authorizer,
    });
    let router = axum::Router::new()
        .fallback(crate::http::dispatch::dispatch)
        .with_state(state);
    let server = tokio::spawn(crate::http::serve::serve(listener, tls_config, router));
    Ok(Started {
        addr,
        kubeconfig,
        server,
    })
}
