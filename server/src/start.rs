//! `trellis start`: open the store, make sure the PKI and kubeconfig exist, bootstrap the
//! system namespaces, and serve.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use trellis_storage::{ShardSpec, Store, StoreOptions};

use crate::registry::Registry;
use crate::shards::{Shard, ShardMap, ROOT_SHARD};
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
    /// More shards besides the `--store` one (`root`): name and database (a `postgres://`
    /// URL, or a SQLite file path).
    pub shards: Vec<(String, String)>,
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
    let mut names = std::collections::BTreeSet::new();
    for (name, _) in &options.shards {
        anyhow::ensure!(names.insert(name), "shard {name:?} is given twice");
    }
    let others = trellis_storage::Shards::open(
        options
            .shards
            .iter()
            .map(|(name, location)| (name.clone(), ShardSpec::parse(location))),
        StoreOptions::default(),
    )
    .await
    .context("opening the shards")?;
    bootstrap::ensure_namespaces(&store, ROOT_CLUSTER)
        .await
        .context("creating the system namespaces")?;
    bootstrap::ensure_root(&store)
        .await
        .context("creating the root workspace's objects")?;
    let root_location = options
        .store
        .clone()
        .unwrap_or_else(|| data_dir.join("store.db").display().to_string());
    let mut locations = vec![(ROOT_SHARD.to_string(), root_location)];
    locations.extend(options.shards.iter().cloned());
    bootstrap::ensure_shards(&store, &locations)
        .await
        .context("recording the shards")?;

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

    let workspaces = WorkspaceIndex::new(store.clone());
    {
        let workspaces = workspaces.clone();
        tokio::spawn(async move { workspaces.watch().await });
    }
    let mut shards = vec![Shard::new(ROOT_SHARD, store.clone())];
    shards.extend(
        others
            .iter()
            .map(|(name, store)| Shard::new(name, store.clone())),
    );
    let shards = ShardMap::new(shards, workspaces.clone());
    let registry = Registry::new(shards.clone());
    registry.spawn_watch();
    {
        let (shards, registry, workspaces) = (shards.clone(), registry.clone(), workspaces.clone());
        tokio::spawn(crate::leader_election::run(store.clone(), move || {
            crate::controllers::spawn_all(
                shards.clone(),
                registry.clone(),
                workspaces.clone(),
                external_url.clone(),
            )
        }));
    }
    let state = Arc::new(AppState {
        shards,
        registry,
        workspaces,
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
