//! The Trellis server crate: a Kubernetes API server over [`trellis_storage`], assembled from
//! API groups and controllers ([`serving::start::ServerBuilder`]). The hub is one assembly;
//! a test or the edge simulator can be another.
//!
//! Folders by layer, each depending only on those above it in this list:
//!
//! - [`machinery`]: generic API machinery (metadata, selectors, `Status`, patches, apply,
//!   structural schemas, deletion, request parsing);
//! - [`kinds`]: one file per built-in kind, per group; how a server's kinds are assembled ([`kinds::SchemeBuilder`]);
//! - [`registry`] and [`crds`]: what resources a workspace serves: the server's scheme of
//!   built-in kinds, and those of the workspace's CRDs;
//! - [`tenancy`]: workspaces, shards, bootstrap;
//! - [`security`]: authentication, impersonation, RBAC, audit, TLS;
//! - [`endpoints`]: the REST layer, discovery, OpenAPI;
//! - [`controllers`]: the controller runtime, leader election and every controller;
//!   [`fleet`]: the GPU fleet's pure decisions around the placement engine;
//! - [`serving`]: listeners, dispatch with its resolved request context, the builder;
//! - [`cli`]: kubeconfigs, `kubectl ws`, `trellis synctarget create`, `trellis backup` and
//!   `trellis restore`.
//!
//! A request flows through [`serving::serve`] (TLS), the layers of [`security::audit`],
//! [`security::authn`] and [`serving::limits`], then [`serving::dispatch`] (what is it about,
//! which workspace, may this user do it there: [`security::authz`]), then discovery or the REST
//! layer, which applies the kind's rules and talks to storage. Every error a client sees is a
//! [`machinery::status::Status`].

mod cli;
mod controllers;
mod crds;
mod endpoints;
mod fleet;
pub mod kinds;
mod machinery;
mod registry;
mod security;
mod serving;
mod tenancy;

// What a program built on this crate uses: assembling and running a server.
pub use cli::backup::{backup as backup_store, restore as restore_store};
pub use cli::synctarget::create as create_sync_target;
pub use cli::ws_plugin::run as run_ws_plugin;
pub use security::authn::oidc::OidcOptions;
pub use serving::limits::{DEFAULT_BURST, DEFAULT_RATE};
pub use serving::serve::{
    ConnectionLimits, DEFAULT_MAX_CONNECTIONS_PER_CLIENT, MAX_CONCURRENT_STREAMS,
};
pub use serving::start::{start, SecurityOptions, Server, ServerBuilder, StartOptions};
pub use tenancy::shards::parse_shard_flag;
pub use tenancy::workspaces::ROOT_CLUSTER;

/// The hub's assembly: its API groups and controllers.
pub mod hub {
    pub use crate::serving::hub::{scheme, CONTROLLERS, GROUPS};
}

/// Writing a controller a server runs ([`ServerBuilder::controller`]): its context and the
/// runtime (shared reflectors, the work queue, `Action`s, the committer).
pub mod controller {
    pub use crate::controllers::runtime::*;
    pub use crate::controllers::{ControllerContext, Wire};
    // Kubernetes' own controllers, for any server serving their kinds.
    pub use crate::controllers::rbac_aggregation::wire as rbac_aggregation;
    pub use crate::controllers::service_account::wire as service_accounts;
    pub use crate::controllers::{crd_establishing, garbage_collection, namespace_finalization};
    pub use crate::registry::{Registry, ResourceType, Scheme};
    pub use crate::tenancy::shards::{Shard, ShardMap};
}

/// Parts that the benchmarks and end-to-end tests drive directly; not an API.
#[doc(hidden)]
pub mod internals {
    pub use crate::cli::kubeconfig::render as render_kubeconfig;
    pub use crate::controllers::garbage_collector::wire as garbage_collector;
    pub use crate::security::authn::service_account::{
        ServiceAccountRef, ServiceAccountTokens, API_AUDIENCE,
    };
    pub use crate::security::authn::UserInfo;
    pub use crate::security::authz::cache::RbacCache;
    pub use crate::security::authz::defaults::DefaultRoles;
    pub use crate::security::authz::{Attributes, ResourceAttributes};
    pub use crate::security::tls::{client_certificate, issue_client_certificate};
}
