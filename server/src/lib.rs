//! The Trellis hub: a Kubernetes API server over [`trellis_storage`].
//!
//! A request flows through [`http::serve`] (TLS), the layers of [`audit`], [`authn`] (who is
//! asking) and [`http::limits`], then [`http::dispatch`] (what is it about: [`request_info`];
//! which workspace; may this user do it there: [`authz`]), then [`discovery`] or the generic
//! REST layer ([`rest`]),
//! which applies the per-kind rules of [`registry`] and [`object_meta`] and talks to storage.
//! Every error a client sees is a [`status::Status`]. [`start`] wires it together for
//! `trellis start`.

pub mod admission;
pub mod apply;
pub mod audit;
pub mod authn;
pub mod authz;
pub mod bootstrap;
pub mod controllers;
pub mod deletion;
pub mod discovery;
pub mod fleet;
pub mod http;
pub mod kinds;
pub mod kubeconfig;
pub mod leader_election;
pub mod namespace_cache;
pub mod object_meta;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod registry;
pub mod request_info;
pub mod rest;
pub mod revision_splice;
pub mod schema;
pub mod selectors;
pub mod shards;
pub mod start;
pub mod state;
pub mod status;
pub mod tls;
pub mod workspaces;
pub mod ws_plugin;
