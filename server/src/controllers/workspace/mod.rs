//! The workspace lifecycle, as kcp's workspace controllers:
//! - a new Workspace (phase Scheduling) gets a shard if it has none, then its logical cluster:
//!   the `LogicalCluster` object inside it and its type's initial namespaces; then it is
//!   Ready, with its URL;
//! - a deleted Workspace (held by the content finalizer) is Terminating while its child
//!   workspaces go (each the same way), then everything inside it; then the finalizer goes.
//!   Progress shows in the `ContentDeleted` condition.
//!
//! This module is the wiring and the I/O ([`wire`]: the Workspace reflector of the root
//! shard, shared with the shard controller; 32 workers, creations and deletions come in
//! bursts); the decisions are in [`decisions`]. Workspaces that wait (children or content still
//! going, no shard matching) are looked at again every second.

pub mod decisions;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use trellis_storage::{
    ListRequest, ListScope, ObjectKey, Preconditions, StorageError, Store, StoredObject,
};

use super::runtime::committer::{self, parse, Committed};
use super::runtime::{Action, Controller, Error, Reconciler, Reflector, Running};
use crate::machinery::deletion;
use crate::machinery::object_meta::now_rfc3339;
use crate::registry::{Registry, ResourceType};
use crate::tenancy::shards::ShardMap;
use crate::tenancy::workspaces::index::LOGICAL_CLUSTERS;
use crate::tenancy::workspaces::{types, WorkspaceIndex};
use decisions::Step;

/// How soon a workspace that waits is looked at again.
const RETRY: Duration = Duration::from_secs(1);
/// Every workspace again now and then, whatever the triggers said.
const RESYNC: Duration = Duration::from_secs(60);
/// Workspaces reconciled at once (creations and deletions come in bursts).
const WORKERS: usize = 32;

/// What the controller needs.
#[derive(Clone)]
pub struct Context {
    /// The shards; Workspaces are in the root shard, their content on theirs.
    pub shards: Arc<ShardMap>,
    pub registry: Arc<Registry>,
    pub index: Arc<WorkspaceIndex>,
    /// `https://host:port`, for workspace URLs.
    pub external_url: String,
}

/// Starts the controller on `workspaces` (every Workspace, in the root shard).
pub fn wire(running: &mut Running, ctx: Context, workspaces: &Reflector<StoredObject>) {
    let controller = Controller::new("workspace")
        .for_objects(workspaces, RESYNC)
        .workers(WORKERS);
    let reconciler = WorkspaceReconciler {
        ctx,
        workspaces: workspaces.clone(),
    };
    running.spawn(controller.run(Arc::new(reconciler), running.token()));
}

struct WorkspaceReconciler {
    ctx: Context,
    workspaces: Reflector<StoredObject>,
}

fn workspaces_type(registry: &Registry) -> Result<&ResourceType, Error> {
    committer::builtin(
        registry.scheme(),
        trellis_apis::tenancy::GROUP,
        "v1alpha1",
        "workspaces",
    )
}

impl Reconciler for WorkspaceReconciler {
    type Key = ObjectKey;

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, Error> {
        let Some(stored) = self.workspaces.get(key) else {
            return Ok(Action::await_change());
        };
        let workspace = parse(&stored)?;
        match decisions::decide(&workspace) {
            Step::Nothing => Ok(Action::await_change()),
            Step::Schedule => self.schedule(&stored, &workspace).await,
            Step::Initialize { shard } => self.initialize(&stored, &workspace, &shard).await,
            Step::Terminate => self.terminate(&stored, &workspace).await,
        }
    }
}

impl WorkspaceReconciler {
    fn root(&self) -> &Store {
        &self.ctx.shards.root().store
    }

    /// Places a workspace created without a shard (none matched its `spec.location` then):
    /// records the shard, or says why there is none and tries again later.
    async fn schedule(&self, stored: &StoredObject, workspace: &Value) -> Result<Action, Error> {
        let selector = workspace.pointer("/spec/location/selector");
        let cluster = decisions::cluster_of(workspace).unwrap_or_default();
        let placed = self.ctx.shards.place(cluster, selector).await?;
        if let Some(status) =
            decisions::scheduled_status(workspace, placed.as_deref(), &now_rfc3339())
        {
            committer::update_status(
                self.root(),
                workspaces_type(&self.ctx.registry)?,
                stored,
                status,
            )
            .await?;
        }
        Ok(match placed {
            // The write brings it back, to be initialized.
            Some(_) => Action::await_change(),
            None => Action::requeue(RETRY),
        })
    }

    /// Creates what a new workspace starts with on its shard, then marks it Ready.
    async fn initialize(
        &self,
        stored: &StoredObject,
        workspace: &Value,
        shard: &str,
    ) -> Result<Action, Error> {
        let ctx = &self.ctx;
        // On a shard this replica was not started with: another leader may have it.
        let shard = ctx
            .shards
            .named(shard)
            .map_err(|e| Error::Unavailable(format!("{e:?}")))?;
        let cluster = decisions::cluster_of(workspace).unwrap_or_default();
        let (parent, name) = (&stored.key.cluster, &stored.key.name);
        let parent_path =
            ctx.index.path_of(parent).await.ok_or_else(|| {
                Error::Unavailable(format!("no path for logical cluster {parent}"))
            })?;
        let path = format!("{parent_path}:{name}");
        let logical_clusters = committer::builtin(
            ctx.registry.scheme(),
            trellis_apis::core::GROUP,
            "v1alpha1",
            "logicalclusters",
        )?;
        let logical_cluster = decisions::logical_cluster(&path, name, parent, &stored.uid);
        committer::create(
            self.root(),
            logical_clusters,
            cluster,
            None,
            logical_cluster,
        )
        .await?;
        let type_name = workspace
            .pointer("/spec/type/name")
            .and_then(Value::as_str)
            .unwrap_or("universal");
        let namespaces = committer::builtin(self.ctx.registry.scheme(), "", "v1", "namespaces")?;
        for namespace in types::builtin(type_name).map_or(&[][..], |t| t.initial_namespaces) {
            let object =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
            committer::create(&shard.store, namespaces, cluster, None, object).await?;
        }
        crate::security::authz::owner::initialize_workspace(&shard.store, cluster, workspace)
            .await?;
        let url = format!("{}/clusters/{path}", ctx.external_url);
        let status = decisions::ready_status(workspace, &url, &now_rfc3339());
        if let Committed::Written(written) = committer::update_status(
            self.root(),
            workspaces_type(&self.ctx.registry)?,
            stored,
            status,
        )
        .await?
        {
            // Routable here at once; other replicas learn it from the watch, or from
            // storage on their first request.
            ctx.index.observe(parent, &parse(&written)?);
        }
        Ok(Action::await_change())
    }

    /// Deletes a workspace's children, then its content, then lets it go.
    async fn terminate(&self, stored: &StoredObject, workspace: &Value) -> Result<Action, Error> {
        let root = self.root();
        let cluster = decisions::cluster_of(workspace).unwrap_or_default();
        let rt = workspaces_type(&self.ctx.registry)?;
        // Children first: each is deleted the same way, content and all.
        let children = self.workspaces.list_cluster(cluster);
        let deletions = children.iter().map(|(key, child)| {
            deletion::delete(
                root,
                rt,
                key.clone(),
                child,
                Preconditions::none(),
                deletion::Propagation::Background,
            )
        });
        for outcome in futures::future::join_all(deletions).await {
            match outcome {
                Ok(_) | Err(StorageError::NotFound(_) | StorageError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let remaining_objects = if children.is_empty() {
            match workspace.pointer("/status/shard").and_then(Value::as_str) {
                Some(name) => {
                    let shard = self
                        .ctx
                        .shards
                        .named(name)
                        .map_err(|e| Error::Unavailable(format!("{e:?}")))?;
                    self.delete_content(cluster, &shard.store).await?
                }
                // Never placed: nothing was created but (maybe) its LogicalCluster.
                None => delete_all(root, cluster, &[LOGICAL_CLUSTERS.to_string()]).await?,
            }
        } else {
            0
        };
        if children.is_empty() && remaining_objects == 0 {
            let desired = decisions::without_content_finalizer(workspace);
            committer::update(root, rt, stored, desired).await?;
            return Ok(Action::await_change());
        }
        if let Some(status) = decisions::terminating_status(
            workspace,
            children.len(),
            remaining_objects,
            &now_rfc3339(),
        ) {
            committer::update_status(root, rt, stored, status).await?;
        }
        Ok(Action::requeue(RETRY))
    }

    /// Deletes every object of a logical cluster, finalizers or not (the workspace is going
    /// as a whole, as in kcp); how many could not be deleted this time.
    async fn delete_content(&self, cluster: &str, shard: &Store) -> Result<usize, Error> {
        let registry = &self.ctx.registry;
        registry.invalidate(cluster);
        let resources = registry.resources(cluster).await;
        // Every resource once (versions share storage); the LogicalCluster separately.
        let mut storage: Vec<String> = Vec::new();
        for rt in resources.iter().rev() {
            let s = rt.storage_resource();
            if !storage.contains(&s) && s != LOGICAL_CLUSTERS && rt.is_stored() {
                storage.push(s);
            }
        }
        // Everything at once (the lists in parallel, the deletes sharing commits), then the
        // LogicalCluster, which routes the cluster's id, last.
        let mut failed = delete_all(shard, cluster, &storage).await?;
        if failed == 0 {
            failed += delete_all(self.root(), cluster, &[LOGICAL_CLUSTERS.to_string()]).await?;
        }
        registry.invalidate(cluster);
        Ok(failed)
    }
}

/// Deletes every object of `resources` in `cluster`; how many could not be deleted.
async fn delete_all(store: &Store, cluster: &str, resources: &[String]) -> Result<usize, Error> {
    let lists = resources.iter().map(|resource| {
        store.list(ListRequest::new(ListScope::cluster(
            cluster,
            resource.clone(),
        )))
    });
    let listed = futures::future::try_join_all(lists).await?;
    let deletes = listed
        .into_iter()
        .flat_map(|l| l.items)
        .map(|item| store.delete(item.key, Preconditions::none()));
    let mut failed = 0;
    for outcome in futures::future::join_all(deletes).await {
        match outcome {
            Ok(_) | Err(StorageError::NotFound(_)) => {}
            Err(StorageError::Conflict { .. }) => failed += 1,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(failed)
}
