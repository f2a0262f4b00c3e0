//! The state every request shares.

use std::sync::Arc;

use crate::registry::Registry;
use crate::tenancy::shards::ShardMap;
use crate::tenancy::workspaces::WorkspaceIndex;

pub struct AppState {
    /// The databases, and which one holds each logical cluster.
    pub shards: Arc<ShardMap>,
    pub registry: Arc<Registry>,
    pub workspaces: Arc<WorkspaceIndex>,
    /// RBAC of every workspace, for the authorization step of dispatch.
    pub authorizer: Arc<crate::security::authz::Authorizer>,
    /// Who a credential is (the authentication layer, and TokenReviews).
    pub authenticator: Arc<crate::security::authn::Authenticator>,
    /// The default ClusterRoles and ClusterRoleBindings every workspace reads.
    pub default_roles: Arc<crate::security::authz::defaults::DefaultRoles>,
    /// The OpenAPI documents of the built-in kinds.
    pub openapi: crate::endpoints::openapi::Documents,
    /// The server's metrics (`/metrics`).
    pub metrics: Arc<crate::machinery::metrics::Metrics>,
    /// Serving, draining or closing: `/readyz` and watches follow it.
    pub lifecycle: Arc<crate::serving::lifecycle::Lifecycle>,
}

impl AppState {
    /// The state behind a kind's hook or endpoint ([`crate::kinds::ServerState`]).
    pub fn of(
        server: &crate::kinds::ServerState,
    ) -> Result<&AppState, crate::machinery::status::Status> {
        server.downcast_ref::<AppState>().ok_or_else(|| {
            crate::machinery::status::Status::internal("a hook ran outside a Trellis server")
        })
    }
}
