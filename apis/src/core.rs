//! `core.trellis.dev/v1alpha1`: LogicalCluster and Shard.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube_core::ClusterResourceScope;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::object::api_object;

pub const GROUP: &str = "core.trellis.dev";
pub const VERSION: &str = "v1alpha1";
/// Every logical cluster has one LogicalCluster object, with this name.
pub const LOGICAL_CLUSTER_NAME: &str = "cluster";

api_object! {
    /// The logical cluster behind a workspace, as seen from inside it.
    pub struct LogicalCluster {
        group: GROUP,
        version: VERSION,
        plural: "logicalclusters",
        scope: ClusterResourceScope,
        schema: "dev.trellis.core.v1alpha1.LogicalCluster",
        #[serde(default)]
        spec: LogicalClusterSpec,
        status: LogicalClusterStatus,
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.core.v1alpha1.LogicalClusterSpec")]
pub struct LogicalClusterSpec {
    /// The Workspace this logical cluster belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<LogicalClusterOwner>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.core.v1alpha1.LogicalClusterOwner")]
pub struct LogicalClusterOwner {
    /// The Workspace's name in its parent.
    pub name: String,
    /// The parent's logical cluster id.
    pub cluster: String,
    /// The Workspace's uid.
    pub uid: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.core.v1alpha1.LogicalClusterStatus")]
pub struct LogicalClusterStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

api_object! {
    /// A Postgres database holding workspaces, listed in the root workspace.
    pub struct Shard {
        group: GROUP,
        version: VERSION,
        plural: "shards",
        scope: ClusterResourceScope,
        schema: "dev.trellis.core.v1alpha1.Shard",
        #[serde(default)]
        spec: ShardSpec,
        status: ShardStatus,
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.core.v1alpha1.ShardSpec")]
pub struct ShardSpec {
    /// The database, without credentials (`postgres://host:port/db`, or `sqlite` for the
    /// embedded store).
    #[serde(default)]
    pub database: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.trellis.core.v1alpha1.ShardStatus")]
pub struct ShardStatus {
    /// Workspaces placed on the shard.
    #[serde(default)]
    pub workspaces: u64,
}
