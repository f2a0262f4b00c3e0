//! The workspace index: which logical cluster a `/clusters/<path>` or `/clusters/<id>` URL
//! names, and whether it is ready to serve.
//!
//! Built from the Workspace objects themselves (each lives in its parent's logical cluster
//! and carries its own cluster id and phase), cached in every replica and kept fresh by a
//! [`Reflector`] of all Workspaces (one list and watch, relisting when it must), which keeps
//! each workspace's [`Entry`] and tells the index of every change. A path or id the cache
//! does not know is looked up in storage before the answer is 404, so a workspace that just
//! became Ready on another replica is routable here at once: there is no index-lag window.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use trellis_storage::{ListScope, ObjectKey, StorageError, Store, StoredObject};

use crate::controllers::runtime::{Change, Reflector, Subscription};
use crate::tenancy::shards::ROOT_SHARD;
use crate::tenancy::workspaces::ROOT_CLUSTER;

/// Where Workspace objects are stored.
pub const WORKSPACES: &str = "tenancy.trellis.dev/workspaces";
/// Where LogicalCluster objects are stored.
pub const LOGICAL_CLUSTERS: &str = "core.trellis.dev/logicalclusters";

/// What the index knows of one workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The logical cluster id.
    pub cluster: String,
    /// The parent's logical cluster id.
    pub parent: String,
    /// The name in the parent.
    pub name: String,
    /// Its WorkspaceType's name.
    pub type_name: String,
    pub phase: Phase,
    /// The shard holding its content (`status.shard`); `None` until it is placed.
    pub shard: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Scheduling,
    Initializing,
    Ready,
    Terminating,
}

impl Phase {
    pub fn parse(workspace: &Value) -> Phase {
        if workspace
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|t| !t.is_null())
        {
            return Phase::Terminating;
        }
        match workspace.pointer("/status/phase").and_then(Value::as_str) {
            Some("Ready") => Phase::Ready,
            Some("Initializing") => Phase::Initializing,
            Some("Terminating") => Phase::Terminating,
            _ => Phase::Scheduling,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Scheduling => "Scheduling",
            Phase::Initializing => "Initializing",
            Phase::Ready => "Ready",
            Phase::Terminating => "Terminating",
        }
    }
}

/// An index entry from a stored Workspace in `parent`; `None` until it has a cluster id.
pub fn entry_of(parent: &str, workspace: &Value) -> Option<Entry> {
    let cluster = workspace.pointer("/spec/cluster").and_then(Value::as_str)?;
    Some(Entry {
        cluster: cluster.to_string(),
        parent: parent.to_string(),
        name: workspace
            .pointer("/metadata/name")
            .and_then(Value::as_str)?
            .to_string(),
        type_name: workspace
            .pointer("/spec/type/name")
            .and_then(Value::as_str)
            .unwrap_or("universal")
            .to_string(),
        phase: Phase::parse(workspace),
        shard: workspace
            .pointer("/status/shard")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// Why a workspace URL does not lead to a serving workspace.
#[derive(Debug, PartialEq, Eq)]
pub enum Unroutable {
    /// Not a workspace path or id at all (`root::b`, an empty segment): 400, never retried.
    Invalid(String),
    NotFound,
    /// It exists but is not Ready yet.
    NotReady(Phase),
    /// Storage could not be asked.
    Unavailable(String),
}

impl Unroutable {
    /// The Status a client gets for a request to `workspace`: 404, or 503 to retry.
    pub fn into_status(self, workspace: &str) -> crate::machinery::status::Status {
        use crate::machinery::status::Status;
        match self {
            Unroutable::Invalid(why) => Status::bad_request(format!(
                "invalid workspace {workspace:?} in the URL: {why}; a workspace is `root`, a path \
                 such as `root:acme:ml`, or a logical cluster id"
            )),
            Unroutable::NotFound => Status::new(
                404,
                "NotFound",
                format!("workspace {workspace:?} not found"),
            ),
            Unroutable::NotReady(phase) => Status::unavailable(
                format!(
                    "workspace {workspace:?} is not ready yet (phase {})",
                    phase.as_str()
                ),
                1,
            ),
            Unroutable::Unavailable(e) => Status::unavailable(
                format!("workspace {workspace:?} cannot be served right now: {e}"),
                1,
            ),
        }
    }
}

#[derive(Default)]
struct Maps {
    /// (parent id, name) → entry.
    /// Shared with the reflector, which keeps the same entries.
    by_name: HashMap<(String, String), Arc<Entry>>,
    /// id → (parent id, name).
    by_id: HashMap<String, (String, String)>,
    /// shard → how many workspaces it holds, for placement.
    per_shard: HashMap<String, usize>,
}

impl Maps {
    fn insert(&mut self, entry: Arc<Entry>) {
        self.remove(&entry.parent, &entry.name);
        self.by_id.insert(
            entry.cluster.clone(),
            (entry.parent.clone(), entry.name.clone()),
        );
        if let Some(shard) = &entry.shard {
            *self.per_shard.entry(shard.clone()).or_default() += 1;
        }
        self.by_name
            .insert((entry.parent.clone(), entry.name.clone()), entry);
    }

    fn remove(&mut self, parent: &str, name: &str) {
        if let Some(entry) = self.by_name.remove(&(parent.to_string(), name.to_string())) {
            self.by_id.remove(&entry.cluster);
            if let Some(count) = entry.shard.as_ref().and_then(|s| self.per_shard.get_mut(s)) {
                *count = count.saturating_sub(1);
            }
        }
    }
}

/// Where a URL's workspace is served from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// The logical cluster id.
    pub cluster: String,
    /// The shard holding its content.
    pub shard: String,
}

pub struct WorkspaceIndex {
    store: Store,
    maps: RwLock<Maps>,
    /// Every Workspace's entry, from one list and watch of the root shard.
    workspaces: Reflector<Entry>,
    /// Keeps the index told of the reflector's changes (set once the index exists).
    changes: std::sync::OnceLock<Subscription>,
}

impl WorkspaceIndex {
    /// An index of the Workspaces in `store` (the root shard); [`WorkspaceIndex::watch`]
    /// keeps it fresh.
    pub fn new(store: Store) -> Arc<WorkspaceIndex> {
        let workspaces = Reflector::new(
            "workspace-index",
            ListScope::all_clusters(WORKSPACES),
            vec![(ROOT_SHARD.to_string(), store.clone())],
            entry_of_stored,
        );
        let index = Arc::new(WorkspaceIndex {
            store,
            maps: RwLock::new(Maps::default()),
            workspaces,
            changes: std::sync::OnceLock::new(),
        });
        let changes = index
            .workspaces
            .subscribe_into(&index, |index, change| index.apply(change));
        let _ = index.changes.set(changes);
        index
    }

    /// Applies one change the reflector saw.
    fn apply(&self, change: &Change<'_, Entry>) {
        let key = change.key;
        let mut maps = self.write();
        match &change.new {
            Some(entry) => maps.insert(entry.clone()),
            None => maps.remove(&key.cluster, &key.name),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        self.maps.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Maps> {
        self.maps.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Records what a write on this replica just stored, ahead of the watch.
    pub fn observe(&self, parent: &str, workspace: &Value) {
        if let Some(entry) = entry_of(parent, workspace) {
            self.write().insert(Arc::new(entry));
        }
    }

    /// The logical cluster a URL's workspace part names: `root`, a path `root:a:b`, or a
    /// cluster id. Only Ready (or terminating, so their deletion can be watched) workspaces
    /// serve.
    pub async fn resolve(&self, workspace: &str) -> Result<Located, Unroutable> {
        check_workspace_syntax(workspace).map_err(Unroutable::Invalid)?;
        let entry = if workspace == ROOT_CLUSTER {
            return Ok(Located {
                cluster: ROOT_CLUSTER.to_string(),
                shard: ROOT_SHARD.to_string(),
            });
        } else if let Some(rest) = workspace.strip_prefix("root:") {
            let mut parent = ROOT_CLUSTER.to_string();
            let mut found = None;
            for segment in rest.split(':') {
                let entry = self.child(&parent, segment).await?;
                parent = entry.cluster.clone();
                found = Some(entry);
            }
            found.ok_or(Unroutable::NotFound)?
        } else {
            self.by_id(workspace).await?
        };
        match (entry.phase, entry.shard) {
            (Phase::Ready | Phase::Terminating, Some(shard)) => Ok(Located {
                cluster: entry.cluster,
                shard,
            }),
            (Phase::Ready | Phase::Terminating, None) => {
                Err(Unroutable::NotReady(Phase::Scheduling))
            }
            (other, _) => Err(Unroutable::NotReady(other)),
        }
    }

    /// The shard holding a logical cluster's content, whatever its phase.
    pub async fn shard_of(&self, cluster: &str) -> Result<String, Unroutable> {
        if cluster == ROOT_CLUSTER {
            return Ok(ROOT_SHARD.to_string());
        }
        let known = {
            let maps = self.read();
            maps.by_id
                .get(cluster)
                .and_then(|at| maps.by_name.get(at))
                .and_then(|entry| entry.shard.clone())
        };
        if let Some(shard) = known {
            return Ok(shard);
        }
        self.by_id(cluster)
            .await?
            .shard
            .ok_or(Unroutable::NotReady(Phase::Scheduling))
    }

    /// Whether this replica's cache has placed the logical cluster `cluster`.
    pub fn knows(&self, cluster: &str) -> bool {
        let maps = self.read();
        maps.by_id
            .get(cluster)
            .and_then(|at| maps.by_name.get(at))
            .is_some_and(|entry| entry.shard.is_some())
    }

    /// How many workspaces each shard holds, as this replica knows.
    pub fn workspaces_per_shard(&self) -> HashMap<String, usize> {
        self.read().per_shard.clone()
    }

    /// How many workspaces each (shard, phase) holds, as this replica knows (an unplaced
    /// workspace's shard is empty): for metrics.
    pub fn workspaces_per_shard_and_phase(
        &self,
    ) -> std::collections::BTreeMap<(String, &'static str), usize> {
        let mut counts = std::collections::BTreeMap::new();
        for entry in self.read().by_name.values() {
            let shard = entry.shard.clone().unwrap_or_default();
            *counts.entry((shard, entry.phase.as_str())).or_default() += 1;
        }
        counts
    }

    /// The WorkspaceType name of a logical cluster (`root` for the root workspace).
    pub async fn type_of(&self, cluster: &str) -> Result<String, Unroutable> {
        if cluster == ROOT_CLUSTER {
            return Ok("root".to_string());
        }
        Ok(self.by_id(cluster).await?.type_name)
    }

    /// The path of a logical cluster (`root:a:b`), for URLs and annotations.
    pub async fn path_of(&self, cluster: &str) -> Option<String> {
        let mut segments = Vec::new();
        let mut at = cluster.to_string();
        while at != ROOT_CLUSTER {
            let entry = self.by_id(&at).await.ok()?;
            segments.push(entry.name);
            at = entry.parent;
            if segments.len() > 64 {
                return None;
            }
        }
        segments.push(ROOT_CLUSTER.to_string());
        segments.reverse();
        Some(segments.join(":"))
    }

    /// The path of a logical cluster from what this replica has cached, without asking
    /// storage (for marking objects in wildcard lists and watches).
    pub fn cached_path(&self, cluster: &str) -> Option<String> {
        let maps = self.read();
        let mut segments = Vec::new();
        let mut at = cluster.to_string();
        while at != ROOT_CLUSTER {
            let (parent, name) = maps.by_id.get(&at)?.clone();
            segments.push(name);
            at = parent;
            if segments.len() > 64 {
                return None;
            }
        }
        segments.push(ROOT_CLUSTER.to_string());
        segments.reverse();
        Some(segments.join(":"))
    }

    async fn child(&self, parent: &str, name: &str) -> Result<Entry, Unroutable> {
        let cached = self
            .read()
            .by_name
            .get(&(parent.to_string(), name.to_string()))
            .cloned();
        if let Some(entry) = cached.filter(|e| e.phase == Phase::Ready) {
            return Ok((*entry).clone());
        }
        // Unknown or not yet Ready here: ask storage, which may know better.
        let key = ObjectKey::new(parent, WORKSPACES, "", name);
        match self.store.get(&key).await {
            Ok(stored) => {
                let workspace: Value = serde_json::from_slice(&stored.value)
                    .map_err(|e| Unroutable::Unavailable(e.to_string()))?;
                match entry_of(parent, &workspace) {
                    Some(entry) => {
                        self.write().insert(Arc::new(entry.clone()));
                        Ok(entry)
                    }
                    None => Err(Unroutable::NotReady(Phase::Scheduling)),
                }
            }
            Err(StorageError::NotFound(_)) => {
                self.write().remove(parent, name);
                Err(Unroutable::NotFound)
            }
            Err(e) => Err(Unroutable::Unavailable(e.to_string())),
        }
    }

    async fn by_id(&self, cluster: &str) -> Result<Entry, Unroutable> {
        let known = self.read().by_id.get(cluster).cloned();
        if let Some((parent, name)) = known {
            return self.child(&parent, &name).await;
        }
        // The logical cluster's own object names its workspace.
        let key = ObjectKey::new(cluster, LOGICAL_CLUSTERS, "", "cluster");
        let stored = match self.store.get(&key).await {
            Ok(stored) => stored,
            Err(StorageError::NotFound(_)) => return Err(Unroutable::NotFound),
            Err(e) => return Err(Unroutable::Unavailable(e.to_string())),
        };
        let object: Value = serde_json::from_slice(&stored.value)
            .map_err(|e| Unroutable::Unavailable(e.to_string()))?;
        let parent = object
            .pointer("/spec/owner/cluster")
            .and_then(Value::as_str);
        let name = object.pointer("/spec/owner/name").and_then(Value::as_str);
        match (parent, name) {
            (Some(parent), Some(name)) => self.child(parent, name).await,
            _ => Err(Unroutable::NotFound),
        }
    }

    /// Follows every Workspace change for the life of the process.
    pub async fn watch(&self) {
        self.watch_until(CancellationToken::new()).await
    }

    /// Follows every Workspace change until `stop`.
    pub async fn watch_until(&self, stop: CancellationToken) {
        self.workspaces.run(stop).await
    }
}

/// Whether `workspace` (from a URL) can name a workspace at all: `root`, `root:` followed by
/// workspace names separated by `:`, or a logical cluster id, each a DNS-1123 name. Anything
/// else is a client's mistake that no retry fixes (storage would refuse the empty names).
fn check_workspace_syntax(workspace: &str) -> Result<(), String> {
    let segments: Vec<&str> = workspace.split(':').collect();
    if segments.len() > 1 && segments[0] != ROOT_CLUSTER {
        return Err(format!("a path starts with {ROOT_CLUSTER:?}"));
    }
    for (i, segment) in segments.iter().enumerate() {
        if segment.is_empty() {
            return Err(format!("segment {} is empty", i + 1));
        }
        if let Some(problem) = crate::machinery::names::name_problem(segment, false) {
            return Err(format!("segment {segment:?}: {problem}"));
        }
    }
    Ok(())
}

/// The index entry of a stored Workspace.
fn entry_of_stored(stored: &StoredObject) -> Option<Entry> {
    let workspace: Value = serde_json::from_slice(&stored.value).ok()?;
    entry_of(&stored.key.cluster, &workspace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Through a store: the index follows Workspaces as they become Ready, move shards and
    /// go, and counts them per shard.
    #[tokio::test]
    async fn the_index_follows_the_workspaces() {
        use bytes::Bytes;
        use std::time::Duration;
        use trellis_storage::{Preconditions, StoreOptions};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path().join("s.db"), StoreOptions::default())
            .await
            .unwrap();
        let key = ObjectKey::new(ROOT_CLUSTER, WORKSPACES, "", "acme");
        let ready = json!({"metadata": {"name": "acme"}, "spec": {"cluster": "abc"},
            "status": {"phase": "Ready", "shard": "s1"}});
        store
            .create(key.clone(), "u1", Bytes::from(ready.to_string()))
            .await
            .unwrap();
        let index = WorkspaceIndex::new(store.clone());
        let stop = CancellationToken::new();
        tokio::spawn({
            let (index, stop) = (index.clone(), stop.clone());
            async move { index.watch_until(stop).await }
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !index.knows("abc") {
            assert!(tokio::time::Instant::now() < deadline, "the index lists");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(index.workspaces_per_shard().get("s1"), Some(&1));
        assert_eq!(index.cached_path("abc").as_deref(), Some("root:acme"));
        let located = index.resolve("root:acme").await.unwrap();
        assert_eq!(
            (located.cluster.as_str(), located.shard.as_str()),
            ("abc", "s1")
        );
        store.delete(key, Preconditions::none()).await.unwrap();
        while index.knows("abc") {
            assert!(tokio::time::Instant::now() < deadline, "the index forgets");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(index.workspaces_per_shard().get("s1"), Some(&0));
        assert_eq!(index.resolve("root:acme").await, Err(Unroutable::NotFound));
        stop.cancel();
    }

    #[test]
    fn malformed_workspace_paths_are_invalid() {
        for ok in ["root", "root:acme", "root:acme:ml-1", "2cynbfy2m0wtjqcs"] {
            assert_eq!(check_workspace_syntax(ok), Ok(()), "{ok}");
        }
        for bad in [
            "", "root::b", "root:", ":root", "root:a:", "acme:ml", "root:A", "root:a b",
        ] {
            assert!(check_workspace_syntax(bad).is_err(), "{bad}");
        }
        let status = Unroutable::Invalid("segment 2 is empty".into()).into_status("root::b");
        assert_eq!((status.code, status.reason), (400, "BadRequest"));
        assert!(status.details.is_none(), "no Retry-After");
    }

    #[test]
    fn entries_and_phases() {
        let ws = json!({"metadata": {"name": "acme"}, "spec": {"cluster": "abc"}, "status": {"phase": "Ready"}});
        let entry = entry_of("root", &ws).unwrap();
        assert_eq!(entry.cluster, "abc");
        assert_eq!(entry.phase, Phase::Ready);
        let deleting = json!({"metadata": {"name": "acme", "deletionTimestamp": "t"}, "spec": {"cluster": "abc"}, "status": {"phase": "Ready"}});
        assert_eq!(Phase::parse(&deleting), Phase::Terminating);
        assert!(entry_of("root", &json!({"metadata": {"name": "x"}})).is_none());
    }
}
