//! `/clusters/*/…` on a hub with several shards: one list or watch over every shard.
//!
//! Each shard keeps its own revision sequence, so no single number says how far a read across
//! them got. The resourceVersion of such a read is a [`CompositeRevision`] — one revision per
//! shard, opaque to clients (base64url) — and a watch resumes from it on every shard at once
//! (the merged watch itself is storage's [`ShardsWatch`], shared with the controllers' caches).
//! Watch events carry the composite revision reached with them, so a client resuming from the
//! last event it saw (as client-go's reflector does) misses nothing and repeats nothing.
//! Paged lists read every shard at the revision fixed by the first page, shard after shard.
//!
//! With one shard, wildcard requests are ordinary reads of it, with plain revisions.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use trellis_storage::{
    CompositeRevision, Event, ListRequest, ReadRevision, ShardsWatch, StorageError, WatchItem,
};

use super::filter::Filter;
use super::list::{
    keep_matching, limit, list_error, read_pages, read_revision, rendered_list, scope,
};
use super::Target;
use crate::machinery::object_meta;
use crate::machinery::status::Status;
use crate::serving::query::Query;

/// Whether `target` is a wildcard request the shards must answer together.
pub(super) fn across_shards(target: &Target) -> bool {
    target.wildcard() && target.state.shards.len() > 1
}

/// What the client's `resourceVersion` asks of each shard; `None` for the latest state.
fn requested(query: &Query) -> Result<Option<CompositeRevision>, Status> {
    match query.get("resourceVersion").filter(|v| !v.is_empty()) {
        None | Some("0") => Ok(None),
        Some(rv) => match CompositeRevision::decode(rv) {
            Some(composite) => Ok(Some(composite)),
            // A plain revision is from before this hub had several shards: too old to use.
            None if rv.parse::<u64>().is_ok() => Err(Status::gone(format!(
                "too old resource version: {rv} (the hub now serves several shards; list again)"
            ))),
            None => Err(Status::bad_request(format!(
                "invalid resourceVersion {rv:?}"
            ))),
        },
    }
}

/// How one shard is read for a request that named `composite` (or nothing).
fn shard_revision(
    composite: Option<&CompositeRevision>,
    shard: &str,
    query: &Query,
) -> Result<ReadRevision, Status> {
    let Some(revision) = composite.and_then(|c| c.0.get(shard)) else {
        // A shard the revision does not name was added since: all of it is new.
        return Ok(ReadRevision::Latest);
    };
    // The same rules as a single shard's, applied to this shard's number.
    let mut single = query.clone();
    single.set("resourceVersion", &revision.to_string());
    read_revision(&single)
}

/// The continue token of a paged list across shards.
#[derive(Serialize, Deserialize)]
struct CompositeContinue {
    v: u8,
    /// The revision every shard is read at.
    revs: BTreeMap<String, u64>,
    /// The shard the next page starts in, and where in it.
    shard: String,
    token: Option<String>,
}

impl CompositeContinue {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(token: &str) -> Result<CompositeContinue, Status> {
        let bad = || Status::bad_request("invalid continue token");
        let json = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
        let decoded: CompositeContinue = serde_json::from_slice(&json).map_err(|_| bad())?;
        if decoded.v != 1 {
            return Err(bad());
        }
        Ok(decoded)
    }
}

pub(super) async fn list(target: &Target<'_>, query: &Query) -> Result<Response, Status> {
    let limit = limit(query)?;
    let filter = Filter::from_query(query, target.rt)?;
    let shards: Vec<_> = target.state.shards.iter().cloned().collect();
    let scope = scope(target);
    let (revisions, start, mut token) = match query.get("continue") {
        Some(token) => {
            let token = CompositeContinue::decode(token)?;
            let start = shards
                .iter()
                .position(|s| s.name == token.shard)
                .ok_or_else(|| Status::bad_request("invalid continue token: unknown shard"))?;
            (token.revs, start, token.token)
        }
        None => {
            // Fix every shard's revision now, so that later pages read the same state.
            let composite = requested(query)?;
            let probes = shards.iter().map(|shard| {
                let revision = shard_revision(composite.as_ref(), &shard.name, query);
                let scope = scope.clone();
                async move {
                    let request = ListRequest {
                        scope,
                        revision: revision?,
                        limit: Some(1),
                        continue_token: None,
                    };
                    let page = shard
                        .store
                        .list(request)
                        .await
                        .map_err(|e| list_error(target, query, e))?;
                    Ok::<_, Status>((shard.name.clone(), page.revision))
                }
            });
            let revisions = futures::future::try_join_all(probes).await?;
            (revisions.into_iter().collect(), 0, None)
        }
    };
    let mut items = Vec::new();
    let mut next = None;
    for (i, shard) in shards.iter().enumerate().skip(start) {
        let remaining = limit.map(|l| l.saturating_sub(items.len()));
        if remaining == Some(0) {
            next = Some(CompositeContinue {
                v: 1,
                revs: revisions.clone(),
                shard: shard.name.clone(),
                token: None,
            });
            break;
        }
        let revision = revisions
            .get(&shard.name)
            .copied()
            .map_or(ReadRevision::Latest, ReadRevision::Exact);
        let request = ListRequest {
            scope: scope.clone(),
            revision,
            limit: remaining,
            continue_token: if i == start { token.take() } else { None },
        };
        let read = read_pages(&shard.store, request, remaining, |stored| {
            keep_matching(target, query, &filter, &mut items, stored)
        })
        .await?
        .map_err(|e| list_error(target, query, e))?;
        if let Some(token) = read.continue_token {
            next = Some(CompositeContinue {
                v: 1,
                revs: revisions.clone(),
                shard: shard.name.clone(),
                token: Some(token),
            });
            break;
        }
    }
    let mut metadata = json!({"resourceVersion": CompositeRevision(revisions).encode()});
    if let Some(next) = next {
        metadata["continue"] = Value::String(next.encode());
    }
    Ok(rendered_list(target, query, metadata, items))
}

/// The changes of every shard, merged: each shard's in its order.
pub(super) struct ShardStreams(ShardsWatch);

impl ShardStreams {
    /// The next change of any shard, with the composite revision reached by it.
    pub(super) async fn next(&mut self) -> Option<Result<(Arc<Event>, String), StorageError>> {
        loop {
            let (_, item) = self.0.next().await?;
            match item {
                Ok(WatchItem::Event(event)) => return Some(Ok((event, self.0.reached().encode()))),
                // Not asked for (the watch is opened without progress).
                Ok(WatchItem::Progress(_)) => continue,
                Err(err) => return Some(Err(err)),
            }
        }
    }

    /// The composite revision every change up to which was delivered.
    pub(super) fn revision(&self) -> String {
        self.0.reached().encode()
    }
}

/// The initial state (when asked for) and the changes after it, across every shard.
pub(super) struct WildcardWatch {
    /// Initial objects, each already marked with its workspace, with its shard.
    pub initial: Vec<Value>,
    /// The composite revision of the initial state (or the one the client gave).
    pub start: String,
    pub streams: ShardStreams,
}

/// Opens one watch per shard from the client's composite revision, or lists each shard first
/// (`list_first`) and watches from there.
pub(super) async fn open(
    target: &Target<'_>,
    query: &Query,
    list_first: bool,
) -> Result<WildcardWatch, Status> {
    let composite = requested(query)?;
    let scope = scope(target);
    let mut initial = Vec::new();
    let mut from = CompositeRevision::default();
    for shard in target.state.shards.iter() {
        let revision = shard_revision(composite.as_ref(), &shard.name, query)?;
        let start = if list_first {
            let listed = shard
                .store
                .list(ListRequest {
                    scope: scope.clone(),
                    revision,
                    limit: None,
                    continue_token: None,
                })
                .await
                .map_err(|e| target.storage_error(&e))?;
            for o in &listed.items {
                let mut object = object_meta::decode(&o.value, o.revision, target.rt)?;
                super::mark_cluster(&target.state.workspaces, &mut object, &o.key.cluster);
                initial.push(object);
            }
            listed.revision
        } else {
            match revision {
                ReadRevision::NotOlderThan(n) | ReadRevision::Exact(n) => n,
                // A shard added since the client's revision: watch all of it.
                ReadRevision::Latest => 0,
            }
        };
        from.0.insert(shard.name.clone(), start);
    }
    let start = from.encode();
    // Initial objects read as of the whole initial state: resuming from any of them resumes
    // every shard where its list ended.
    for object in &mut initial {
        object["metadata"]["resourceVersion"] = Value::String(start.clone());
    }
    let mut streams = ShardsWatch::new(false);
    for shard in target.state.shards.iter() {
        let revision = from.0.get(&shard.name).copied().unwrap_or(0);
        streams
            .add(&shard.name, &shard.store, scope.clone(), revision)
            .await
            .map_err(|e| target.storage_error(&e))?;
    }
    Ok(WildcardWatch {
        initial,
        start,
        streams: ShardStreams(streams),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_a_client_gives() {
        let q = |s: &str| Query::parse(Some(s));
        assert_eq!(requested(&q("")).unwrap(), None);
        assert_eq!(requested(&q("resourceVersion=0")).unwrap(), None);
        assert_eq!(requested(&q("resourceVersion=17")).unwrap_err().code, 410);
        assert_eq!(requested(&q("resourceVersion=x%21")).unwrap_err().code, 400);
        let c = CompositeRevision(BTreeMap::from([("s1".to_string(), 9)]));
        let query = q(&format!("resourceVersion={}", c.encode()));
        let got = requested(&query).unwrap();
        assert_eq!(got.as_ref(), Some(&c));
        assert_eq!(
            shard_revision(got.as_ref(), "s1", &query).unwrap(),
            ReadRevision::NotOlderThan(9)
        );
        assert_eq!(
            shard_revision(got.as_ref(), "s2", &query).unwrap(),
            ReadRevision::Latest
        );
    }
}
