//! Assembling and starting a server. A [`ServerBuilder`] takes the API groups a server serves
//! and the controllers it runs (the hub installs all of Trellis'; a test or the edge simulator
//! installs others), opens the stores, makes sure the PKI and kubeconfig exist, bootstraps the
//! system namespaces and serves. The [`Server`] it returns owns every task it started and
//! stops them all on [`Server::shutdown`], gracefully: `/readyz` fails first, the controllers
//! stop and the leader Lease is released at once, then (after the shutdown delay, if any) the
//! listeners stop accepting, watches end cleanly and requests in flight are answered.
//! `trellis start` is [`start`], the hub.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use trellis_storage::{ShardSpec, Store, StoreOptions};

use crate::controllers::runtime::Running;
use crate::controllers::{ControllerContext, Wire};
use crate::kinds::scheme::Install;
use crate::machinery::metrics::Metrics;
use crate::registry::{Registry, Scheme};
use crate::security::authz::defaults::DefaultRoles;
use crate::serving::lifecycle::Lifecycle;
use crate::serving::state::AppState;
use crate::tenancy::shards::{Shard, ShardMap, ROOT_SHARD};
use crate::tenancy::workspaces::WorkspaceIndex;
use crate::{cli::kubeconfig, security::tls, tenancy::bootstrap};

use crate::tenancy::workspaces::ROOT_CLUSTER;

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
    /// Authentication, audit, rate limits and the plain-HTTP listener.
    pub security: SecurityOptions,
}

/// The `trellis start` flags of [`crate::security::authn`], [`crate::security::audit`] and [`crate::serving::limits`].
#[derive(Clone, Debug)]
pub struct SecurityOptions {
    /// Static bearer tokens (kube-apiserver's CSV format).
    pub token_file: Option<PathBuf>,
    pub oidc: Option<crate::security::authn::oidc::OidcOptions>,
    /// JSON lines, one per request.
    pub audit_log: Option<PathBuf>,
    /// Plain HTTP on this address as well; it must be a loopback address.
    pub insecure_listen: Option<SocketAddr>,
    /// Per-user rate limit (0: none) and burst.
    pub max_requests_per_second_per_user: f64,
    pub max_request_burst_per_user: f64,
    /// Handshake and idle timeouts of connections, and how many one client may hold.
    pub connections: crate::serving::serve::ConnectionLimits,
}

impl Default for SecurityOptions {
    fn default() -> SecurityOptions {
        SecurityOptions {
            token_file: None,
            oidc: None,
            audit_log: None,
            insecure_listen: None,
            max_requests_per_second_per_user: crate::serving::limits::DEFAULT_RATE,
            max_request_burst_per_user: crate::serving::limits::DEFAULT_BURST,
            connections: crate::serving::serve::ConnectionLimits::default(),
        }
    }
}

/// A running server: where it listens and where its kubeconfig is. It owns every task it
/// started (listeners and connections, caches, watches, leader election and controllers).
pub struct Server {
    pub addr: SocketAddr,
    /// The plain-HTTP listener's address, with `--insecure-listen`.
    pub insecure_addr: Option<SocketAddr>,
    pub kubeconfig: PathBuf,
    running: Running,
    lifecycle: Arc<Lifecycle>,
    /// Stops leader election: the controllers stop and the lease is released.
    leader_stop: CancellationToken,
    /// Closed when leader election has ended (every sender is held by its task).
    leader_done: tokio::sync::mpsc::Receiver<()>,
    /// Closed when every listener has drained.
    listeners_done: tokio::sync::mpsc::Receiver<()>,
}

/// How long tasks may take to stop on shutdown before they are aborted.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl Server {
    /// Stops everything the server started and waits for it: no listener, connection, watch,
    /// cache or controller of it is left running. Graceful, with no delay: see
    /// [`Server::shutdown_after`].
    pub async fn shutdown(self) {
        self.shutdown_after(Duration::ZERO).await;
    }

    /// Graceful shutdown (SIGTERM): `/readyz` fails and the leader Lease is released at once;
    /// requests are still served for `delay` (so that load balancers see the replica go
    /// unready first); then the listeners stop accepting, watches end cleanly, requests in
    /// flight are answered, and everything else stops.
    pub async fn shutdown_after(self, delay: Duration) {
        let Server {
            running,
            lifecycle,
            leader_stop,
            mut leader_done,
            mut listeners_done,
            ..
        } = self;
        lifecycle.start_draining();
        leader_stop.cancel();
        tokio::time::sleep(delay).await;
        lifecycle.close();
        let drained = tokio::time::timeout(
            crate::serving::serve::DRAIN_GRACE + SHUTDOWN_GRACE,
            listeners_done.recv(),
        )
        .await;
        if drained.is_err() {
            tracing::warn!("connections did not drain in time; closing them");
        }
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, leader_done.recv()).await;
        running.shutdown(SHUTDOWN_GRACE).await;
    }

    /// Whether the server has begun shutting down.
    pub fn is_draining(&self) -> bool {
        self.lifecycle.is_draining()
    }
}

/// A controller the builder runs: a [`Wire`], or a closure over options given at assembly
/// (the edge simulator's node count, delays, GPU mode).
type AnyWire = Arc<dyn Fn(&mut Running, &ControllerContext) + Send + Sync>;

/// Assembles a server from API groups and controllers.
pub struct ServerBuilder {
    options: StartOptions,
    groups: Vec<Install>,
    controllers: Vec<AnyWire>,
    metrics: bool,
}

impl ServerBuilder {
    /// A server serving nothing and running no controller yet.
    pub fn new(options: StartOptions) -> ServerBuilder {
        ServerBuilder {
            options,
            groups: Vec::new(),
            controllers: Vec::new(),
            metrics: true,
        }
    }

    /// Whether the server keeps metrics and serves `/metrics` (on by default; off only to
    /// measure what they cost).
    pub fn metrics(mut self, enabled: bool) -> ServerBuilder {
        self.metrics = enabled;
        self
    }

    /// The hub: every group and controller of Trellis.
    pub fn hub(options: StartOptions) -> ServerBuilder {
        let builder = crate::serving::hub::GROUPS
            .iter()
            .fold(ServerBuilder::new(options), |b, group| b.install(*group));
        crate::serving::hub::CONTROLLERS
            .iter()
            .fold(builder, |b, controller| b.controller(*controller))
    }

    /// Serves a group's kinds (its `install` list).
    pub fn install(mut self, group: Install) -> ServerBuilder {
        self.groups.push(group);
        self
    }

    /// Runs a controller (on the leader replica).
    pub fn controller(mut self, controller: Wire) -> ServerBuilder {
        self.controllers.push(Arc::new(controller));
        self
    }

    /// Runs a controller configured when the server is assembled: a closure that starts it
    /// into `Running`, as a [`Wire`] does, with what it captured (on the leader replica, and
    /// again each time this replica becomes the leader).
    pub fn controller_with(
        mut self,
        controller: impl Fn(&mut Running, &ControllerContext) + Send + Sync + 'static,
    ) -> ServerBuilder {
        self.controllers.push(Arc::new(controller));
        self
    }

    pub async fn start(self) -> anyhow::Result<Server> {
        let scheme = Scheme::of(&self.groups).map_err(|e| anyhow::anyhow!("the scheme: {e}"))?;
        start_server(
            self.options,
            Arc::new(scheme),
            self.controllers,
            Metrics::new(self.metrics),
        )
        .await
    }
}

/// The embedded store's file in the data directory (when no `--store` is given).
pub(crate) const EMBEDDED_STORE_FILE: &str = "store.db";

/// `trellis start`: the hub.
pub async fn start(options: StartOptions) -> anyhow::Result<Server> {
    ServerBuilder::hub(options).start().await
}

/// How often `apiserver_storage_objects` is counted anew (kube-apiserver: every minute).
const COUNT_OBJECTS_EVERY: Duration = Duration::from_secs(30);

async fn start_server(
    options: StartOptions,
    scheme: Arc<Scheme>,
    controllers: Vec<AnyWire>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Server> {
    let mut running = Running::new();
    if let Some(addr) = options.security.insecure_listen {
        check_loopback(addr)?;
    }
    let data_dir = &options.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    let store = match &options.store {
        Some(url) => Store::open_postgres(url, StoreOptions::default())
            .await
            .context("opening the Postgres store")?,
        None => Store::open_sqlite(data_dir.join(EMBEDDED_STORE_FILE), StoreOptions::default())
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
        .unwrap_or_else(|| data_dir.join(EMBEDDED_STORE_FILE).display().to_string());
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
        running.spawn_until_stopped(async move { workspaces.watch().await });
    }
    let mut shards = vec![Shard::new(ROOT_SHARD, store.clone())];
    shards.extend(
        others
            .iter()
            .map(|(name, store)| Shard::new(name, store.clone())),
    );
    let shards = ShardMap::new(shards, workspaces.clone());
    let registry = Registry::new(scheme.clone(), shards.clone());
    let default_roles = Arc::new(DefaultRoles::new(scheme.resources()));
    let openapi =
        crate::endpoints::openapi::build(scheme.resources(), scheme.definitions().clone());
    for watch in registry.watches() {
        running.spawn_until_stopped(watch);
    }
    if metrics.enabled() {
        running.spawn_until_stopped(crate::serving::instrument::count_storage_objects(
            shards.clone(),
            scheme.clone(),
            metrics.clone(),
            COUNT_OBJECTS_EVERY,
        ));
    }
    let context = ControllerContext {
        shards: shards.clone(),
        registry: registry.clone(),
        index: workspaces.clone(),
        external_url,
        default_roles: default_roles.clone(),
        metrics: metrics.clone(),
    };
    // Its own token, cancelled first on shutdown (and with everything else).
    let leader_stop = running.token().child_token();
    let (leader_running, leader_done) = tokio::sync::mpsc::channel::<()>(1);
    {
        let metrics = metrics.clone();
        let election = crate::controllers::leader_election::run_until(
            store.clone(),
            move || {
                let mut started = Running::new();
                for wire in &controllers {
                    wire(&mut started, &context);
                }
                started
            },
            leader_stop.clone(),
            move |leading| metrics.set_leader(leading),
        );
        running.spawn(async move {
            election.await;
            drop(leader_running);
        });
    }
    let authorizer = crate::security::authz::Authorizer::spawn(
        &shards,
        &workspaces,
        &default_roles,
        &running.token(),
    );
    let authenticator = authenticator(&options.security, &pki, &store, &running.token()).await?;
    let lifecycle = Arc::new(Lifecycle::default());
    let state = Arc::new(AppState {
        shards,
        registry,
        workspaces,
        authorizer,
        authenticator,
        default_roles,
        openapi,
        metrics,
        lifecycle: lifecycle.clone(),
    });
    let gate = Arc::new(gate(&options.security, state).await?);
    let insecure = match options.security.insecure_listen {
        Some(insecure) => Some(insecure_listener(insecure).await?),
        None => None,
    };
    let insecure_addr = insecure.as_ref().and_then(|l| l.local_addr().ok());
    let limits = options.security.connections;
    // Each listener holds a sender until it has drained: shutdown waits for all of them.
    let (listening, listeners_done) = tokio::sync::mpsc::channel::<()>(1);
    if let Some(insecure) = insecure {
        let serving = crate::serving::serve::serve_insecure(
            insecure,
            gate.clone(),
            limits,
            lifecycle.closing(),
        );
        let listening = listening.clone();
        running.spawn_until_stopped(async move {
            serving.await;
            drop(listening);
        });
    }
    let serving =
        crate::serving::serve::serve(listener, tls_config, gate, limits, lifecycle.closing());
    running.spawn_until_stopped(async move {
        serving.await;
        drop(listening);
    });
    Ok(Server {
        addr,
        insecure_addr,
        kubeconfig,
        running,
        lifecycle,
        leader_stop,
        leader_done,
        listeners_done,
    })
}

/// Who may authenticate, and how: hub-CA certificates, the token file, ServiceAccount tokens
/// (signing key shared by every replica through the root store), OIDC.
async fn authenticator(
    options: &SecurityOptions,
    pki: &tls::Pki,
    root: &Store,
    stop: &CancellationToken,
) -> anyhow::Result<Arc<crate::security::authn::Authenticator>> {
    use crate::security::authn::{
        self, oidc::OidcAuthenticator, service_account, token_file, x509,
    };
    let token_file = match &options.token_file {
        Some(path) => Some(token_file::TokenFile::load(path)?),
        None => None,
    };
    let oidc = match &options.oidc {
        Some(oidc) => {
            let oidc = Arc::new(OidcAuthenticator::new(oidc.clone())?);
            oidc.spawn_refresh(stop.clone());
            Some(oidc)
        }
        None => None,
    };
    let service_accounts = service_account::ServiceAccountTokens::load_or_create(root)
        .await
        .context("loading the ServiceAccount signing key")?;
    Ok(Arc::new(authn::Authenticator {
        certificates: Some(x509::CertificateAuthenticator::new(tls::client_verifier(
            pki,
        )?)),
        token_file,
        service_accounts: Arc::new(service_accounts),
        oidc,
    }))
}

/// What every request passes before dispatch: authentication, the per-user rate limit, the
/// body deadline, impersonation and the audit log.
async fn gate(
    options: &SecurityOptions,
    state: Arc<AppState>,
) -> anyhow::Result<crate::serving::gate::Gate> {
    let audit_log = match &options.audit_log {
        Some(path) => Some(
            crate::security::audit::AuditLog::open(path)
                .await
                .with_context(|| format!("opening the audit log {}", path.display()))?,
        ),
        None => None,
    };
    Ok(crate::serving::gate::Gate {
        limiter: crate::serving::limits::RateLimiter::new(
            options.max_requests_per_second_per_user,
            options.max_request_burst_per_user,
        ),
        audit_log,
        state,
    })
}

/// The plain-HTTP listener: loopback only, so that nothing unencrypted leaves the machine.
async fn insecure_listener(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    check_loopback(addr)?;
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))
}

fn check_loopback(addr: SocketAddr) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() {
        anyhow::bail!(
            "--insecure-listen {addr}: plain HTTP is only served on a loopback address (127.0.0.1 or ::1)"
        );
    }
    Ok(())
}
