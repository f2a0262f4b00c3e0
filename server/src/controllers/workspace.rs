//! The workspace lifecycle, as kcp's workspace controllers:
//! - a new Workspace (phase Scheduling) gets its logical cluster: the `LogicalCluster` object
//!   inside it and its type's initial namespaces; then it is Ready, with its URL;
//! - a deleted Workspace (held by the content finalizer) is Terminating while its child
//!   workspaces go (each the same way), then everything inside it; then the finalizer goes.
//!   Progress shows in the `ContentDeleted` condition.
//!
//! Every Workspace change queues it ([`WorkQueue`]); workers reconcile queued workspaces
//! concurrently, one worker per workspace at a time. Workspaces that wait (children still
//! going) are looked at again every second, and everything every 30 s.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use trellis_storage::{
    EventType, ListRequest, ListScope, ObjectKey, Preconditions, StorageError, Store, StoredObject,
};

use super::work_queue::WorkQueue;
use crate::bootstrap;
use crate::deletion;
use crate::object_meta::now_rfc3339;
use crate::registry::Registry;
use crate::shards::ShardMap;
use crate::workspaces::index::{LOGICAL_CLUSTERS, WORKSPACES};
use crate::workspaces::{types, Phase, WorkspaceIndex, CONTENT_FINALIZER};

const RETRY: Duration = Duration::from_secs(1);
const RESYNC: Duration = Duration::from_secs(30);

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

/// Workspaces reconciled at once (creations and deletions come in bursts).
const WORKERS: usize = 32;

pub async fn run(ctx: Context) {
    let queue: Arc<WorkQueue<ObjectKey>> = WorkQueue::new();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        workers.spawn(work(ctx.clone(), queue.clone()));
    }
    loop {
        if let Err(err) = feed(&ctx, &queue).await {
            tracing::warn!(error = %err, "workspace controller: watch failed; resyncing");
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Queues every Workspace, then each one that changes; everything again every RESYNC.
async fn feed(ctx: &Context, queue: &WorkQueue<ObjectKey>) -> Result<(), StorageError> {
    let root = &ctx.shards.root().store;
    let listed = root
        .list(ListRequest::new(ListScope::all_clusters(WORKSPACES)))
        .await?;
    for item in listed.items {
        queue.add(item.key);
    }
    let mut watch = root
        .watch(ListScope::all_clusters(WORKSPACES), Some(listed.revision))
        .await?;
    loop {
        match tokio::time::timeout(RESYNC, watch.next()).await {
            Ok(Some(event)) => {
                let event = event?;
                if event.kind != EventType::Deleted {
                    queue.add(event.object.key);
                }
            }
            Ok(None) => return Ok(()),
            Err(_) => return Ok(()),
        }
    }
}

async fn work(ctx: Context, queue: Arc<WorkQueue<ObjectKey>>) {
    loop {
        let key = queue.next().await;
        let again = match reconcile(&ctx, &key).await {
            Ok(again) => again,
            Err(err) => {
                tracing::warn!(workspace = %key.name, cluster = %key.cluster, error = %err, "workspace controller: will retry");
                true
            }
        };
        queue.done(&key);
        if again {
            // Waiting on children or content: look again in a moment.
            let (queue, key) = (queue.clone(), key.clone());
            tokio::spawn(async move {
                tokio::time::sleep(RETRY).await;
                queue.add(key);
            });
        }
    }
}

fn parse(stored: &StoredObject) -> Result<Value, StorageError> {
    serde_json::from_slice(&stored.value)
        .map_err(|e| StorageError::Internal(format!("stored workspace is not JSON: {e}")))
}

fn encode(object: &Value) -> Result<Bytes, StorageError> {
    serde_json::to_vec(object)
        .map(Bytes::from)
        .map_err(|e| StorageError::Internal(e.to_string()))
}

/// One step for one Workspace; whether to look again soon.
pub async fn reconcile(ctx: &Context, key: &ObjectKey) -> Result<bool, StorageError> {
    let stored = match ctx.shards.root().store.get(key).await {
        Ok(stored) => stored,
        Err(StorageError::NotFound(_)) => return Ok(false),
        Err(e) => return Err(e),
    };
    let workspace = parse(&stored)?;
    let Some(cluster) = workspace
        .pointer("/spec/cluster")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return Ok(false);
    };
    if deletion::is_deleting(&workspace) {
        return terminate(ctx, &stored, workspace, &cluster).await;
    }
    match Phase::parse(&workspace) {
        Phase::Scheduling | Phase::Initializing => {
            let placed = workspace.pointer("/status/shard").and_then(Value::as_str);
            match placed.map(|name| ctx.shards.named(name)) {
                Some(Ok(shard)) => {
                    initialize(ctx, &stored, workspace, &cluster, &shard.store).await?;
                    Ok(false)
                }
                // On a shard this replica was not started with: another leader may have it.
                Some(Err(e)) => Err(StorageError::Unavailable(format!("{e:?}"))),
                None => schedule(ctx, &stored, workspace).await,
            }
        }
        Phase::Ready | Phase::Terminating => Ok(false),
    }
}

/// Places a workspace created without a shard (none matched its `spec.location` then):
/// records the shard, or says why there is none and tries again later.
async fn schedule(
    ctx: &Context,
    stored: &StoredObject,
    mut workspace: Value,
) -> Result<bool, StorageError> {
    let selector = workspace.pointer("/spec/location/selector").cloned();
    let cluster = workspace
        .pointer("/spec/cluster")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let placed = ctx.shards.place(&cluster, selector.as_ref()).await?;
    if !workspace.get("status").is_some_and(Value::is_object) {
        workspace["status"] = json!({});
    }
    let again = match &placed {
        Some(shard) => {
            workspace["status"]["shard"] = json!(shard);
            workspace["status"]["conditions"] = json!([]);
            false
        }
        None => {
            let condition = json!({
                "type": "Scheduled", "status": "False", "reason": "Unschedulable",
                "message": "no shard matches spec.location.selector",
                "lastTransitionTime": now_rfc3339(),
            });
            if workspace.pointer("/status/conditions/0/reason") == condition.get("reason") {
                return Ok(true);
            }
            workspace["status"]["conditions"] = json!([condition]);
            true
        }
    };
    match ctx
        .shards
        .root()
        .store
        .update(
            stored.key.clone(),
            encode(&workspace)?,
            Preconditions::revision(stored.revision),
        )
        .await
    {
        Ok(_) | Err(StorageError::Conflict { .. } | StorageError::NotFound(_)) => Ok(again),
        Err(e) => Err(e),
    }
}

/// Creates what a new workspace starts with on its shard, then marks it Ready.
async fn initialize(
    ctx: &Context,
    stored: &StoredObject,
    mut workspace: Value,
    cluster: &str,
    shard: &Store,
) -> Result<(), StorageError> {
    let root = &ctx.shards.root().store;
    let parent = &stored.key.cluster;
    let name = &stored.key.name;
    let parent_path =
        ctx.index.path_of(parent).await.ok_or_else(|| {
            StorageError::Internal(format!("no path for logical cluster {parent}"))
        })?;
    let path = format!("{parent_path}:{name}");
    let logical_cluster = json!({
        "apiVersion": "core.trellis.dev/v1alpha1",
        "kind": "LogicalCluster",
        "metadata": {
            "name": "cluster",
            "uid": uuid::Uuid::new_v4().to_string(),
            "creationTimestamp": now_rfc3339(),
            "annotations": {trellis_apis::PATH_ANNOTATION: path},
        },
        "spec": {"owner": {"name": name, "cluster": parent, "uid": stored.uid}},
        "status": {"phase": "Ready"},
    });
    let key = ObjectKey::new(cluster, LOGICAL_CLUSTERS, "", "cluster");
    let uid = logical_cluster["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    match root.create(key, uid, encode(&logical_cluster)?).await {
        Ok(_) | Err(StorageError::AlreadyExists(_)) => {}
        Err(e) => return Err(e),
    }
    let type_name = workspace
        .pointer("/spec/type/name")
        .and_then(Value::as_str)
        .unwrap_or("universal");
    let namespaces = types::builtin(type_name).map_or(&[][..], |t| t.initial_namespaces);
    bootstrap::create_namespaces(shard, cluster, namespaces).await?;
    crate::authz::owner::initialize_workspace(shard, cluster, &workspace).await?;
    let shard_name = workspace.pointer("/status/shard").cloned();
    workspace["status"] = json!({
        "phase": "Ready",
        "url": format!("{}/clusters/{path}", ctx.external_url),
        "shard": shard_name,
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "Initialized",
            "message": "the workspace is ready", "lastTransitionTime": now_rfc3339(),
        }],
    });
    match root
        .update(
            stored.key.clone(),
            encode(&workspace)?,
            Preconditions::revision(stored.revision),
        )
        .await
    {
        Ok(_) => {
            // Routable here at once; other replicas learn it from the watch, or from
            // storage on their first request.
            ctx.index.observe(parent, &workspace);
            Ok(())
        }
        Err(StorageError::Conflict { .. } | StorageError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Deletes a workspace's children, then its content, then lets it go.
async fn terminate(
    ctx: &Context,
    stored: &StoredObject,
    mut workspace: Value,
    cluster: &str,
) -> Result<bool, StorageError> {
    if !workspace
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|x| x.as_str() == Some(CONTENT_FINALIZER)))
    {
        return Ok(false);
    }
    let root = &ctx.shards.root().store;
    // Children first: each is deleted the same way, content and all.
    let children = root
        .list(ListRequest::new(ListScope::cluster(cluster, WORKSPACES)))
        .await?;
    let workspaces_rt = ctx
        .registry
        .scheme()
        .lookup("tenancy.trellis.dev", "v1alpha1", "workspaces")
        .cloned()
        .ok_or_else(|| StorageError::Internal("workspaces are not served".into()))?;
    let deletions = children.items.iter().map(|child| {
        deletion::delete(
            root,
            &workspaces_rt,
            child.key.clone(),
            child,
            Preconditions::none(),
            deletion::Propagation::Background,
        )
    });
    for outcome in futures::future::join_all(deletions).await {
        match outcome {
            Ok(_) | Err(StorageError::NotFound(_) | StorageError::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let remaining_children = children.items.len();
    let remaining_objects = if remaining_children == 0 {
        match workspace.pointer("/status/shard").and_then(Value::as_str) {
            Some(name) => {
                let shard = ctx
                    .shards
                    .named(name)
                    .map_err(|e| StorageError::Unavailable(format!("{e:?}")))?;
                delete_content(ctx, cluster, &shard.store).await?
            }
            // Never placed: nothing was created but (maybe) its LogicalCluster.
            None => delete_all(root, cluster, &[LOGICAL_CLUSTERS.to_string()]).await?,
        }
    } else {
        0
    };
    if remaining_children > 0 || remaining_objects > 0 {
        let message = format!(
            "waiting for {remaining_children} child workspaces and {remaining_objects} objects to be deleted"
        );
        let condition = json!({
            "type": "ContentDeleted", "status": "False", "reason": "DeletionInProgress",
            "message": message, "lastTransitionTime": now_rfc3339(),
        });
        let phase_known =
            workspace.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating");
        let same = workspace
            .pointer("/status/conditions/0/message")
            .and_then(Value::as_str)
            == Some(message.as_str());
        if !phase_known || !same {
            if !workspace.get("status").is_some_and(Value::is_object) {
                workspace["status"] = json!({});
            }
            workspace["status"]["phase"] = json!("Terminating");
            workspace["status"]["conditions"] = json!([condition]);
            match root
                .update(
                    stored.key.clone(),
                    encode(&workspace)?,
                    Preconditions::revision(stored.revision),
                )
                .await
            {
                Ok(_) | Err(StorageError::Conflict { .. } | StorageError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        return Ok(true);
    }
    match deletion::remove_finalizer(root, stored, CONTENT_FINALIZER).await {
        Ok(()) | Err(StorageError::NotFound(_)) => Ok(false),
        Err(StorageError::Conflict { .. }) => Ok(true),
        Err(e) => Err(e),
    }
}

/// Deletes every object of `resources` in `cluster`; how many could not be deleted.
async fn delete_all(
    store: &Store,
    cluster: &str,
    resources: &[String],
) -> Result<usize, StorageError> {
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
            Err(e) => return Err(e),
        }
    }
    Ok(failed)
}

/// Deletes every object of a logical cluster, finalizers or not (the workspace is going
/// as a whole, as in kcp); how many could not be deleted this time.
async fn delete_content(
    ctx: &Context,
    cluster: &str,
    shard: &Store,
) -> Result<usize, StorageError> {
    ctx.registry.invalidate(cluster);
    let resources = ctx.registry.resources(cluster).await;
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
        let root = &ctx.shards.root().store;
        failed += delete_all(root, cluster, &[LOGICAL_CLUSTERS.to_string()]).await?;
    }
    ctx.registry.invalidate(cluster);
    Ok(failed)
}
