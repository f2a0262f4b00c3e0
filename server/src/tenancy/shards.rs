//! Shards: the databases logical clusters are spread over, and which one holds each.
//!
//! `trellis start --store <root> --shard s1=<url> --shard s2=<url>` serves three shards: `root`
//! (the `--store` database) and `s1`, `s2`. Each is an independent [`Store`] with its own
//! revision sequence. A logical cluster's content (namespaces, CRDs, objects) lives on the
//! shard its Workspace was placed on (`status.shard`). The tenancy objects themselves
//! (Workspaces, WorkspaceTypes, LogicalClusters, Shards) live in the root shard whichever
//! workspace they belong to, so the root shard holds the whole workspace tree: the workspace
//! index, routing and placement read one database only.
//!
//! A new Workspace is placed when it is created: on a shard whose labels match its
//! `spec.location.selector`, or else on the shard holding the fewest workspaces.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use trellis_storage::{ListRequest, ListScope, ObjectKey, StorageError, Store};

use crate::machinery::selectors::LabelSelector;
use crate::tenancy::namespace_cache::NamespaceCache;
use crate::tenancy::workspaces::ROOT_CLUSTER;
use crate::tenancy::workspaces::{Unroutable, WorkspaceIndex};

/// The shard `--store` names; it holds the root workspace and the workspace tree.
pub const ROOT_SHARD: &str = "root";

/// Where Shard objects are stored (in the root workspace).
pub const SHARDS: &str = "core.trellis.dev/shards";

/// One shard: its store and what this replica follows of it.
pub struct Shard {
    pub name: String,
    pub store: Store,
    /// Which of its namespaces accept new objects (the create path's lifecycle check).
    pub namespaces: Arc<NamespaceCache>,
}

impl Shard {
    /// Wraps an open store; starts following its namespaces.
    pub fn new(name: &str, store: Store) -> Arc<Shard> {
        Arc::new(Shard {
            name: name.to_string(),
            namespaces: NamespaceCache::spawn(store.clone()),
            store,
        })
    }
}

/// Every shard this hub serves, and the index saying which one holds a logical cluster.
pub struct ShardMap {
    shards: BTreeMap<String, Arc<Shard>>,
    root: Arc<Shard>,
    index: Arc<WorkspaceIndex>,
    /// Placements made here that the index may not show yet (cluster id → shard, when), so
    /// a burst of creations spreads instead of all landing on the same least-loaded shard.
    pending: Mutex<HashMap<String, (String, Instant)>>,
}

/// How long a placement counts as pending at most (the index shows it much sooner).
const PENDING_FOR: Duration = Duration::from_secs(10);

impl ShardMap {
    /// `shards` must contain [`ROOT_SHARD`].
    pub fn new(shards: Vec<Arc<Shard>>, index: Arc<WorkspaceIndex>) -> Arc<ShardMap> {
        let shards: BTreeMap<_, _> = shards.into_iter().map(|s| (s.name.clone(), s)).collect();
        let root = shards
            .get(ROOT_SHARD)
            .cloned()
            .expect("the shard map has a root shard");
        Arc::new(ShardMap {
            shards,
            root,
            index,
            pending: Mutex::new(HashMap::new()),
        })
    }

    /// `store` as the only shard, as `trellis start` without `--shard` (for tools and tests;
    /// needs a Tokio runtime).
    pub fn single(store: Store) -> Arc<ShardMap> {
        let index = WorkspaceIndex::new(store.clone());
        ShardMap::new(vec![Shard::new(ROOT_SHARD, store)], index)
    }

    pub fn root(&self) -> &Arc<Shard> {
        &self.root
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Shard>> {
        self.shards.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Shard>> {
        self.shards.values()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.shards.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.shards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    /// The shard holding `cluster`'s content.
    pub async fn shard_for(&self, cluster: &str) -> Result<Arc<Shard>, Unroutable> {
        if cluster == ROOT_CLUSTER {
            return Ok(self.root.clone());
        }
        let name = self.index.shard_of(cluster).await?;
        self.named(&name)
    }

    /// The shard called `name`, or why it cannot be used.
    pub fn named(&self, name: &str) -> Result<Arc<Shard>, Unroutable> {
        self.shards.get(name).cloned().ok_or_else(|| {
            Unroutable::Unavailable(format!(
                "shard {name:?} is not configured on this server (start it with --shard {name}=…)"
            ))
        })
    }

    /// Where the new workspace `cluster` goes: among the shards matching `selector` (every
    /// shard without one), the one holding the fewest workspaces. `None` when no shard matches.
    pub async fn place(
        &self,
        cluster: &str,
        selector: Option<&Value>,
    ) -> Result<Option<String>, StorageError> {
        let selector = match selector {
            Some(s) => LabelSelector::from_structured(s)
                .map_err(|e| StorageError::Internal(format!("spec.location.selector: {e}")))?,
            None => LabelSelector::default(),
        };
        let candidates: Vec<String> = if selector.is_empty() {
            self.shards.keys().cloned().collect()
        } else {
            let labels = self.shard_labels().await?;
            self.shards
                .keys()
                .filter(|name| {
                    labels
                        .get(name.as_str())
                        .is_some_and(|labels| selector.matches(labels))
                })
                .cloned()
                .collect()
        };
        let mut loads = self.index.workspaces_per_shard();
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|id, (_, at)| at.elapsed() < PENDING_FOR && !self.index.knows(id));
        for (shard, _) in pending.values() {
            *loads.entry(shard.clone()).or_default() += 1;
        }
        let chosen = candidates
            .into_iter()
            .min_by_key(|name| (loads.get(name).copied().unwrap_or(0), name.clone()));
        if let Some(shard) = &chosen {
            pending.insert(cluster.to_string(), (shard.clone(), Instant::now()));
        }
        Ok(chosen)
    }

    /// Each Shard object's labels, by name.
    async fn shard_labels(
        &self,
    ) -> Result<BTreeMap<String, BTreeMap<String, String>>, StorageError> {
        let listed = self
            .root
            .store
            .list(ListRequest::new(ListScope::cluster(ROOT_CLUSTER, SHARDS)))
            .await?;
        Ok(listed
            .items
            .iter()
            .filter_map(|item| {
                let object: Value = serde_json::from_slice(&item.value).ok()?;
                Some((
                    item.key.name.clone(),
                    crate::machinery::selectors::labels_of(&object),
                ))
            })
            .collect())
    }

    /// The Shard object's key for `name`.
    pub fn object_key(name: &str) -> ObjectKey {
        ObjectKey::new(ROOT_CLUSTER, SHARDS, "", name)
    }
}

/// A shard's database location as shown in its Shard object: a Postgres URL without its
/// password, a SQLite path as given.
pub fn redacted_location(location: &str) -> String {
    match url_password_range(location) {
        Some((start, end)) => format!("{}***{}", &location[..start], &location[end..]),
        None => location.to_string(),
    }
}

/// The byte range of the password in `scheme://user:password@host…`.
fn url_password_range(location: &str) -> Option<(usize, usize)> {
    let authority_start = location.find("://")? + 3;
    let rest = &location[authority_start..];
    let at = rest.find('@')?;
    let userinfo = &rest[..at];
    let colon = userinfo.find(':')?;
    Some((authority_start + colon + 1, authority_start + at))
}

/// Parses `name=location` from `--shard`.
pub fn parse_shard_flag(flag: &str) -> Result<(String, String), String> {
    let (name, location) = flag
        .split_once('=')
        .ok_or_else(|| format!("--shard {flag:?}: expected NAME=URL"))?;
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !valid {
        return Err(format!(
            "--shard {flag:?}: the name must be a DNS label (lowercase letters, digits, '-')"
        ));
    }
    if name == ROOT_SHARD {
        return Err(format!(
            "--shard {flag:?}: {ROOT_SHARD:?} is the --store database's shard"
        ));
    }
    if location.is_empty() {
        return Err(format!("--shard {flag:?}: no database given"));
    }
    Ok((name.to_string(), location.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redacted_location("postgres://trellis:s3cret@127.0.0.1:5432/db"),
            "postgres://trellis:***@127.0.0.1:5432/db"
        );
        assert_eq!(
            redacted_location("postgres://trellis@127.0.0.1/db"),
            "postgres://trellis@127.0.0.1/db"
        );
        assert_eq!(redacted_location("./s1.db"), "./s1.db");
    }

    #[test]
    fn shard_flags() {
        assert_eq!(
            parse_shard_flag("s1=postgres://u@h/db").unwrap(),
            ("s1".to_string(), "postgres://u@h/db".to_string())
        );
        assert!(parse_shard_flag("s1").is_err());
        assert!(parse_shard_flag("root=postgres://u@h/db").is_err());
        assert!(parse_shard_flag("S_1=x").is_err());
        assert!(parse_shard_flag("s1=").is_err());
    }
}
