//! One request's resolved context: where it goes (a workspace on its shard, or every
//! workspace) and who asks. Dispatch resolves it once, after authentication and before
//! authorization, and passes it down; nothing below looks the workspace or the user up again.

use std::sync::Arc;

use axum::http::Extensions;

use crate::security::authn::user::UserInfo;
use crate::serving::state::AppState;
use crate::tenancy::shards::Shard;

/// Where a request goes.
pub enum Scope {
    /// One workspace.
    Workspace(Workspace),
    /// Every workspace (`/clusters/*`): cluster-wide lists and watches of built-in kinds.
    AllWorkspaces,
}

/// A resolved workspace.
pub struct Workspace {
    /// As the request addressed it: a path (`root:acme`) or a logical cluster id.
    pub addressed: String,
    /// Its logical cluster id, the cluster part of storage keys.
    pub cluster: String,
    /// The shard holding its content.
    pub shard: Arc<Shard>,
}

pub struct RequestContext<'a> {
    pub state: &'a AppState,
    pub scope: Scope,
    pub user: &'a UserInfo,
    /// Admin of the workspace from above (or `system:masters`): RBAC inside it does not limit.
    pub admin: bool,
    /// The request's extensions (what authentication attached).
    pub extensions: &'a Extensions,
}

impl RequestContext<'_> {
    /// The logical cluster id of a single-workspace request; empty across all workspaces.
    pub fn cluster(&self) -> &str {
        match &self.scope {
            Scope::Workspace(w) => &w.cluster,
            Scope::AllWorkspaces => "",
        }
    }

    pub fn all_workspaces(&self) -> bool {
        matches!(self.scope, Scope::AllWorkspaces)
    }
}
