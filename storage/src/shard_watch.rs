//! One watch over several shards: the changes of every shard merged into one stream, and the
//! [`CompositeRevision`] it has reached.
//!
//! Each shard keeps its own revision sequence, so no single number says how far a read across
//! shards got: the position of a cross-shard read is one revision per shard. A [`ShardsWatch`]
//! yields each shard's changes in that shard's order (shards interleave freely) and keeps the
//! composite revision every yielded change is covered by, so a reader resuming from it misses
//! nothing and repeats nothing. Used by the API server's wildcard watch (`/clusters/*/…`) and by
//! the controllers' caches, which follow one resource on every shard.
//!
//! A shard whose watch fails ends its part of the stream with the error, tagged with the
//! shard's name; the other shards go on. The reader decides: end everything (an HTTP watch), or
//! relist that shard and [`ShardsWatch::add`] it again (a cache).

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use futures::stream::{BoxStream, SelectAll};
use futures::StreamExt;

use crate::error::Result;
use crate::key::ListScope;
use crate::store::Store;
use crate::watch::{WatchItem, WatchStream};

/// One revision per shard: the position of a read across shards. Opaque to API clients, as
/// base64url of `shard=revision,…`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompositeRevision(pub BTreeMap<String, u64>);

impl CompositeRevision {
    pub fn encode(&self) -> String {
        let text = self
            .0
            .iter()
            .map(|(shard, revision)| format!("{shard}={revision}"))
            .collect::<Vec<_>>()
            .join(",");
        URL_SAFE_NO_PAD.encode(text)
    }

    /// `None` for anything [`CompositeRevision::encode`] cannot have written (a plain revision
    /// included).
    pub fn decode(encoded: &str) -> Option<CompositeRevision> {
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()?;
        let mut revisions = BTreeMap::new();
        for part in text.split(',') {
            let (shard, revision) = part.split_once('=')?;
            if shard.is_empty() {
                return None;
            }
            revisions.insert(shard.to_string(), revision.parse().ok()?);
        }
        (!revisions.is_empty()).then_some(CompositeRevision(revisions))
    }
}

/// One shard's items, each with the shard's name.
type ShardItems = BoxStream<'static, (Arc<str>, Result<WatchItem>)>;

/// The changes of several shards, merged: each shard's in its order.
///
/// Cancel-safe: [`ShardsWatch::next`] may be dropped unfinished (in a `select!`) without losing
/// a change.
pub struct ShardsWatch {
    streams: SelectAll<ShardItems>,
    reached: CompositeRevision,
    progress: bool,
}

impl ShardsWatch {
    /// A watch of no shard yet. With `progress`, [`WatchItem::Progress`] items say how far a
    /// shard has been read when none of its resource's changes matched (other namespaces or
    /// workspaces); without, only events come. Changes of other resources never reach it:
    /// [`Store::watch_reached`] covers them.
    pub fn new(progress: bool) -> ShardsWatch {
        ShardsWatch {
            streams: SelectAll::new(),
            reached: CompositeRevision::default(),
            progress,
        }
    }

    /// Watches `scope` on `store` (the shard `shard`) after revision `from`, replacing what
    /// [`ShardsWatch::reached`] says of that shard. The caller adds a shard only while its
    /// previous watch (if any) has ended.
    pub async fn add(
        &mut self,
        shard: &str,
        store: &Store,
        scope: ListScope,
        from: u64,
    ) -> Result<()> {
        let stream = store.watch(scope, Some(from)).await?;
        self.reached.0.insert(shard.to_string(), from);
        self.streams
            .push(shard_items(Arc::from(shard), stream, self.progress));
        Ok(())
    }

    /// The next item of any shard, with the shard's name; `None` once no shard is watched.
    /// After an error, that shard's part has ended.
    pub async fn next(&mut self) -> Option<(Arc<str>, Result<WatchItem>)> {
        let (shard, item) = self.streams.next().await?;
        let revision = match &item {
            Ok(WatchItem::Event(event)) => Some(event.revision()),
            Ok(WatchItem::Progress(revision)) => Some(*revision),
            Err(_) => None,
        };
        if let (Some(revision), Some(reached)) = (revision, self.reached.0.get_mut(&*shard)) {
            *reached = (*reached).max(revision);
        }
        Some((shard, item))
    }

    /// The composite revision every change up to which was yielded (or, with progress, did not
    /// match).
    pub fn reached(&self) -> &CompositeRevision {
        &self.reached
    }

    /// Whether no shard is watched (every part ended, or none was added).
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }
}

fn shard_items(shard: Arc<str>, stream: WatchStream, progress: bool) -> ShardItems {
    futures::stream::unfold(stream, move |mut stream| {
        let shard = shard.clone();
        async move {
            let item = if progress {
                stream.next_item().await?
            } else {
                stream.next_shared().await?.map(WatchItem::Event)
            };
            Some(((shard, item), stream))
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::ObjectKey;
    use crate::store::StoreOptions;
    use bytes::Bytes;

    #[test]
    fn composite_revisions_round_trip_and_reject_junk() {
        let c = CompositeRevision(BTreeMap::from([
            ("root".to_string(), 12),
            ("s1".to_string(), 3),
        ]));
        assert_eq!(CompositeRevision::decode(&c.encode()), Some(c));
        assert_eq!(CompositeRevision::decode("12"), None);
        assert_eq!(CompositeRevision::decode("!!"), None);
        assert_eq!(
            CompositeRevision::decode(&URL_SAFE_NO_PAD.encode("root=x")),
            None
        );
        assert_eq!(
            CompositeRevision::decode(&URL_SAFE_NO_PAD.encode("=1")),
            None
        );
    }

    async fn open(dir: &tempfile::TempDir, name: &str) -> Store {
        Store::open_sqlite(dir.path().join(name), StoreOptions::default())
            .await
            .unwrap()
    }

    fn value() -> Bytes {
        Bytes::from_static(br#"{"metadata":{}}"#)
    }

    /// Changes of both shards come through, each shard's in order, and the composite revision
    /// follows each shard separately.
    #[tokio::test]
    async fn both_shards_changes_come_with_their_shard() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (open(&dir, "a.db").await, open(&dir, "b.db").await);
        let key = |cluster: &str, name: &str| ObjectKey::new(cluster, "core/configmaps", "", name);
        let x = a.create(key("c1", "x"), "u1", value()).await.unwrap();
        let mut watch = ShardsWatch::new(false);
        let scope = ListScope::all_clusters("core/configmaps");
        let b0 = b.current_revision().await.unwrap();
        watch.add("a", &a, scope.clone(), x.revision).await.unwrap();
        watch.add("b", &b, scope, b0).await.unwrap();
        b.create(key("c2", "y"), "u2", value()).await.unwrap();
        let z = b.create(key("c2", "z"), "u3", value()).await.unwrap();
        let w = a.create(key("c1", "w"), "u4", value()).await.unwrap();
        let mut seen: Vec<(String, String)> = Vec::new();
        while seen.len() < 3 {
            let (shard, item) = watch.next().await.unwrap();
            let WatchItem::Event(event) = item.unwrap() else {
                panic!("no progress items were asked for");
            };
            seen.push((shard.to_string(), event.object.key.name.clone()));
        }
        let of = |shard: &str| -> Vec<String> {
            seen.iter()
                .filter(|(s, _)| s == shard)
                .map(|(_, n)| n.clone())
                .collect()
        };
        assert_eq!(of("a"), ["w"]);
        assert_eq!(of("b"), ["y", "z"]);
        assert_eq!(
            watch.reached(),
            &CompositeRevision(BTreeMap::from([
                ("a".into(), w.revision),
                ("b".into(), z.revision)
            ]))
        );
    }

    /// A change of another resource wakes no watcher of this one; what the watch has reached
    /// still covers it, as the store derives it.
    #[tokio::test]
    async fn changes_of_other_resources_are_reached_without_waking_the_watch() {
        let dir = tempfile::tempdir().unwrap();
        let a = open(&dir, "a.db").await;
        let mut watch = ShardsWatch::new(true);
        let from = a.current_revision().await.unwrap();
        watch
            .add("a", &a, ListScope::all_clusters("core/configmaps"), from)
            .await
            .unwrap();
        let secret = a
            .create(ObjectKey::new("c1", "core/secrets", "", "s"), "u1", value())
            .await
            .unwrap();
        let quiet = tokio::time::timeout(std::time::Duration::from_millis(200), watch.next());
        assert!(quiet.await.is_err(), "a secret woke a watch of configmaps");
        assert_eq!(a.watch_reached("core/configmaps", from), secret.revision);
        let configmap = a
            .create(
                ObjectKey::new("c1", "core/configmaps", "", "c"),
                "u2",
                value(),
            )
            .await
            .unwrap();
        // Published but not yet taken: the watch has not reached past its own change.
        assert_eq!(a.watch_reached("core/configmaps", from), from);
        let (shard, item) = watch.next().await.unwrap();
        assert_eq!(&*shard, "a");
        assert!(matches!(item.unwrap(), WatchItem::Event(e) if e.revision() == configmap.revision));
        assert_eq!(watch.reached().0["a"], configmap.revision);
        assert_eq!(
            a.watch_reached("core/configmaps", configmap.revision),
            configmap.revision
        );
    }
}
