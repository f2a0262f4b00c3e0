//! `trellis`: the hub's command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "trellis",
    version,
    about = "A multi-tenant Kubernetes control plane"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

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
        #[arg(long = "shard", value_parser = trellis_server::shards::parse_shard_flag)]
        shards: Vec<(String, String)>,
    },
    /// Move between workspaces in the current kubeconfig (also the kubectl plugin `kubectl ws`).
    Ws {
        /// `<path>`, `..`, `-`, `.`, `tree`, or `create <name> [--type T] [--enter]`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Ws { args } => trellis_server::ws_plugin::run(&args).await,
        Command::Start {
            data_dir,
            listen,
            store,
            tls_sans,
            shards,
        } => {
            let started = trellis_server::start::start(trellis_server::start::StartOptions {
                data_dir,
                listen,
                store,
                tls_sans,
                shards,
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
            tokio::select! {
                _ = started.server => {}
                _ = tokio::signal::ctrl_c() => tracing::info!("shutting down"),
            }
            Ok(())
        }
    }
}
