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
//! - [`cli`]: kubeconfigs and `kubectl ws`.
//!
//! A request flows through [`serving::serve`] (TLS), the layers of [`security::audit`],
//! [`security::authn`] and [`serving::limits`], then [`serving::dispatch`] (what is it about,
//! which workspace, may this user do it there: [`security::authz`]), then discovery or the REST
//! layer, which applies the kind's rules and talks to storage. Every error a client sees is a
//! [`machinery::status::Status`].

pub mod cli;
pub mod controllers;
pub mod crds;
pub mod endpoints;
pub mod fleet;
pub mod kinds;
pub mod machinery;
pub mod registry;
pub mod security;
pub mod serving;
pub mod tenancy;
