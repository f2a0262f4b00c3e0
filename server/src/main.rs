//! `trellis`: the hub's command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// jemalloc, with its background threads purging freed memory (dirty pages return to the
/// system within about ten seconds of being freed): with the system allocator, memory one
/// large request took stays resident long after it was answered.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "trellis",
    version,
    about = "A multi-tenant Kubernetes control plane"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines are written (to standard error): text, or one JSON object per line.
    #[arg(long, global = true, default_value_t = trellis_telemetry::LogFormat::Text)]
    log_format: trellis_telemetry::LogFormat,
    /// Export traces over OTLP/HTTP to this base URL (e.g. http://127.0.0.1:4318); otherwise
    /// the standard OTEL_EXPORTER_OTLP_ENDPOINT variables decide (unset: no traces).
    #[arg(long, global = true)]
    otlp_endpoint: Option<String>,
}

// Parsed once: the size of the start flags does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the hub. With no flags: embedded store in ./.trellis, HTTPS on 127.0.0.1:6443.
    Start {
        /// Where the store (unless --store), certificates and admin.kubeconfig live.
        #[arg(long, default_value = ".trellis", env = "TRELLIS_DATA_DIR")]
        data_dir: PathBuf,
        /// Address to serve HTTPS on.
        #[arg(long, default_value = "127.0.0.1:6443")]
        listen: std::net::SocketAddr,
        /// A postgres:// URL to keep objects in Postgres instead of the embedded store.
        #[arg(long, env = "TRELLIS_STORE")]
        store: Option<String>,
        /// Extra DNS names or IP addresses for the serving certificate (repeatable).
        #[arg(long = "tls-san")]
        tls_sans: Vec<String>,
        /// Another database to place workspaces on, NAME=postgres://… (repeatable). The
        /// --store database is the shard `root`, which also holds the workspace tree.
        #[arg(long = "shard", value_parser = trellis_server::parse_shard_flag)]
        shards: Vec<(String, String)>,
        /// On SIGTERM, keep serving this long with /readyz failing before closing the
        /// listeners (so load balancers move away first), e.g. `5s`.
        #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
        shutdown_delay_duration: std::time::Duration,
        #[command(flatten)]
        security: SecurityFlags,
    },
    /// Copy the embedded store of a hub (running or not) into a new file, consistently.
    /// A Postgres shard is backed up with `pg_dump -Fc` instead.
    Backup {
        /// The backup file to write (must not exist).
        #[arg(long)]
        to: PathBuf,
        #[arg(long, default_value = ".trellis", env = "TRELLIS_DATA_DIR")]
        data_dir: PathBuf,
        /// A postgres:// URL: refused, with the pg_dump command to use.
        #[arg(long, env = "TRELLIS_STORE")]
        store: Option<String>,
    },
    /// Restore the embedded store from a backup (`--from FILE`), or mark a Postgres shard loaded
    /// with pg_restore restored (`--store URL`): earlier resourceVersions expire (410) and are
    /// never issued again. Stop the hub first.
    Restore {
        /// The backup made by `trellis backup` (embedded store only).
        #[arg(long)]
        from: Option<PathBuf>,
        #[arg(long, default_value = ".trellis", env = "TRELLIS_DATA_DIR")]
        data_dir: PathBuf,
        /// The postgres:// URL of a shard just loaded with pg_restore.
        #[arg(long, env = "TRELLIS_STORE")]
        store: Option<String>,
    },
    /// Register edge clusters: `trellis synctarget create NAME --workspace PATH -o FILE`.
    Synctarget {
        #[command(subcommand)]
        command: SynctargetCommand,
    },
    /// Move between workspaces in the current kubeconfig (also the kubectl plugin `kubectl ws`).
    Ws {
        /// `<path>`, `..`, `-`, `.`, `tree`, or `create <name> [--type T] [--enter]`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand)]
enum SynctargetCommand {
    /// Create (or update) a SyncTarget, its namespace and its syncer's ServiceAccount and
    /// RBAC in a provider workspace, and write the syncer's kubeconfig.
    Create {
        /// The SyncTarget's name.
        name: String,
        /// The provider workspace, e.g. root:platform.
        #[arg(long)]
        workspace: String,
        /// Where to write the syncer's kubeconfig.
        #[arg(short = 'o', long = "output", default_value = "syncer.kubeconfig")]
        output: PathBuf,
        /// An admin kubeconfig of the running hub.
        #[arg(
            long,
            default_value = ".trellis/admin.kubeconfig",
            env = "TRELLIS_ADMIN_KUBECONFIG"
        )]
        kubeconfig: PathBuf,
        /// The token's lifetime in seconds (the hub grants at most 48 hours).
        #[arg(long, default_value_t = 48 * 3600)]
        duration_seconds: i64,
        /// Write the token to this file and have the kubeconfig name it (`tokenFile`): running
        /// the command again renews a running syncer's token in place.
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
}

/// Authentication and hardening flags of `trellis start`.
#[derive(clap::Args)]
struct SecurityFlags {
    /// Static bearer tokens, one `token,user,uid,"group1,group2"` line each.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Accept OpenID Connect ID tokens of this issuer (https URL, as in the tokens' `iss`).
    #[arg(long, requires = "oidc_client_id")]
    oidc_issuer_url: Option<String>,
    /// The audience ID tokens must carry.
    #[arg(long, requires = "oidc_issuer_url")]
    oidc_client_id: Option<String>,
    /// The issuer's keys from this JWKS file instead of its discovery document (offline use).
    #[arg(long, requires = "oidc_issuer_url")]
    oidc_jwks_file: Option<PathBuf>,
    /// CA certificates (PEM) to trust when fetching the issuer's keys, instead of the system's.
    #[arg(long, requires = "oidc_issuer_url")]
    oidc_ca_file: Option<PathBuf>,
    /// The ID token claim that names the user.
    #[arg(long, default_value = "sub")]
    oidc_username_claim: String,
    /// Prefix for OIDC user names; default `<issuer>#` unless the claim is `email`; `-` for none.
    #[arg(long)]
    oidc_username_prefix: Option<String>,
    /// The ID token claim that lists the user's groups.
    #[arg(long, default_value = "groups")]
    oidc_groups_claim: String,
    /// Prefix for OIDC group names.
    #[arg(long, default_value = "")]
    oidc_groups_prefix: String,
    /// Append one JSON line per request to this file.
    #[arg(long)]
    audit_log: Option<PathBuf>,
    /// Also serve plain HTTP on this loopback address (authentication still required).
    #[arg(long)]
    insecure_listen: Option<std::net::SocketAddr>,
    /// Requests per second each user may make on average (0: unlimited; system:masters exempt).
    #[arg(long, default_value_t = trellis_server::DEFAULT_RATE)]
    max_requests_per_second_per_user: f64,
    /// Requests each user may make in a burst.
    #[arg(long, default_value_t = trellis_server::DEFAULT_BURST)]
    max_request_burst_per_user: f64,
    /// Connections one client address may hold open at once (0: unlimited).
    #[arg(long, default_value_t = trellis_server::DEFAULT_MAX_CONNECTIONS_PER_CLIENT)]
    max_connections_per_client: usize,
}

impl SecurityFlags {
    fn options(self) -> trellis_server::SecurityOptions {
        use trellis_server::OidcOptions;
        let oidc = match (self.oidc_issuer_url, self.oidc_client_id) {
            (Some(issuer), Some(client)) => Some(OidcOptions {
                jwks_file: self.oidc_jwks_file,
                ca_file: self.oidc_ca_file,
                username_claim: self.oidc_username_claim,
                username_prefix: self.oidc_username_prefix,
                groups_claim: self.oidc_groups_claim,
                groups_prefix: self.oidc_groups_prefix,
                ..OidcOptions::new(&issuer, &client)
            }),
            _ => None,
        };
        trellis_server::SecurityOptions {
            token_file: self.token_file,
            oidc,
            audit_log: self.audit_log,
            insecure_listen: self.insecure_listen,
            max_requests_per_second_per_user: self.max_requests_per_second_per_user,
            max_request_burst_per_user: self.max_request_burst_per_user,
            connections: trellis_server::ConnectionLimits {
                max_per_client: self.max_connections_per_client,
                ..Default::default()
            },
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let telemetry = trellis_telemetry::init(&trellis_telemetry::TelemetryOptions {
        service: "trellis".into(),
        log_format: cli.log_format,
        otlp_endpoint: cli.otlp_endpoint.clone(),
    })
    .map_err(anyhow::Error::msg)?;
    let outcome = run(cli.command).await;
    telemetry.shutdown();
    outcome
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Ws { args } => trellis_server::run_ws_plugin(&args).await,
        Command::Backup {
            to,
            data_dir,
            store,
        } => {
            let revision = trellis_server::backup_store(&data_dir, store.as_deref(), &to).await?;
            println!(
                "backed up to {} at resourceVersion {revision}",
                to.display()
            );
            Ok(())
        }
        Command::Restore {
            from,
            data_dir,
            store,
        } => {
            let restored =
                trellis_server::restore_store(&data_dir, store.as_deref(), from.as_deref()).await?;
            println!(
                "restored at resourceVersion {}; the store continues from {} \
                 (watches from earlier resourceVersions get 410 Gone and relist)",
                restored.backup_revision, restored.revision
            );
            Ok(())
        }
        Command::Synctarget {
            command:
                SynctargetCommand::Create {
                    name,
                    workspace,
                    output,
                    kubeconfig,
                    duration_seconds,
                    token_file,
                },
        } => {
            trellis_server::create_sync_target(
                &kubeconfig,
                &workspace,
                &name,
                duration_seconds,
                &output,
                token_file.as_deref(),
            )
            .await?;
            println!(
                "SyncTarget {name} registered in {workspace}; syncer kubeconfig: {}",
                output.display()
            );
            println!(
                "  trellis-syncer --hub-kubeconfig {} --target {workspace}:{name}",
                output.display()
            );
            Ok(())
        }
        Command::Start {
            data_dir,
            listen,
            store,
            tls_sans,
            shards,
            shutdown_delay_duration,
            security,
        } => {
            let started = trellis_server::start(trellis_server::StartOptions {
                data_dir,
                listen,
                store,
                tls_sans,
                shards,
                security: security.options(),
            })
            .await?;
            println!(
                "trellis is ready on https://{}; kubeconfig: {}",
                started.addr,
                started.kubeconfig.display()
            );
            println!(
                "  export KUBECONFIG={}",
                std::fs::canonicalize(&started.kubeconfig)
                    .unwrap_or(started.kubeconfig.clone())
                    .display()
            );
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            tracing::info!(
                delay = ?shutdown_delay_duration,
                "shutting down: /readyz fails, the leader lease is released"
            );
            started.shutdown_after(shutdown_delay_duration).await;
            tracing::info!("shut down");
            Ok(())
        }
    }
}
