//! Keeps each `Shard` object's `status.workspaces` at the number of workspaces placed on it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use trellis_storage::{Preconditions, StorageError};

use crate::shards::ShardMap;
use crate::workspaces::WorkspaceIndex;

const PERIOD: Duration = Duration::from_secs(5);

pub async fn run(shards: Arc<ShardMap>, index: Arc<WorkspaceIndex>) {
    loop {
        if let Err(err) = pass(&shards, &index).await {
            tracing::debug!(error = %err, "shard controller: will retry");
        }
        tokio::time::sleep(PERIOD).await;
    }
}

/// Brings every Shard's count up to date.
pub async fn pass(shards: &ShardMap, index: &WorkspaceIndex) -> Result<(), StorageError> {
    let counts = index.workspaces_per_shard();
    let store = &shards.root().store;
    for name in shards.names() {
        let key = ShardMap::object_key(name);
        let stored = match store.get(&key).await {
            Ok(stored) => stored,
            Err(StorageError::NotFound(_)) => continue,
            Err(e) => return Err(e),
        };
        let mut object: Value = serde_json::from_slice(&stored.value)
            .map_err(|e| StorageError::Internal(e.to_string()))?;
        let count = counts.get(name).copied().unwrap_or(0) as u64;
        if object.pointer("/status/workspaces").and_then(Value::as_u64) == Some(count) {
            continue;
        }
        object["status"] = json!({"workspaces": count});
        let value = Bytes::from(object.to_string());
        match store
            .update(key, value, Preconditions::revision(stored.revision))
            .await
        {
            Ok(_) | Err(StorageError::Conflict { .. } | StorageError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
