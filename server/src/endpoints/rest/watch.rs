//! watch: a chunked stream of `{"type": …, "object": …}` lines.
//!
//! Without a resourceVersion (or with `0`) the stream opens with the current state as ADDED
//! events; `sendInitialEvents=true` does the same and marks the end with a BOOKMARK annotated
//! `k8s.io/initial-events-end`. A revision too old to watch from is a 200 with one ERROR event
//! carrying a 410 Status, as kube-apiserver answers.
//!
//! When the server closes (graceful shutdown) every watch ends cleanly: the chunked response
//! is finished, so a client sees the end of a watch and re-watches (on another replica),
//! never a reset connection. Events sent are counted in `apiserver_watch_events_total`, by
//! built-in resource (custom ones as `other`).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use serde_json::{json, Value};
use tokio::time::{Interval, Sleep};
use trellis_storage::{Event, EventType, ListRequest, ReadRevision, StorageError, WatchStream};

use super::filter::Filter;
use super::list::{read_revision, scope};
use super::table::{self, Rendering};
use super::{wildcard, Target};
use crate::machinery::object_meta;
use crate::machinery::status::Status;
use crate::serving::query::Query;
use crate::serving::response;

/// How often a watch that asked for bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);
/// Longest watch when the client names no timeout (kube-apiserver picks 30–60 minutes).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// Most bytes of events a watch task hands to the response at once. Events that are already
/// waiting go out together (one write, one TLS record run) instead of one by one; the bound keeps
/// a watcher that fell far behind from building one huge chunk.
const BATCH_BYTES: usize = 64 * 1024;

/// Shortest time between two writes to one watcher while changes keep coming. A change that
/// follows a quiet spell goes out at once; the ones after it wait for the rest of this time and
/// go out together. What a write costs (waking the connection, HTTP framing, a TLS record, a
/// system call, and the same again at the client) is per watcher, so with many watchers of a
/// busy resource that cost, not the bytes, decided how many writes per second the hub kept up
/// with (see BENCHMARKS.md, API server, watch).
const WRITE_EVERY: Duration = Duration::from_millis(10);

/// `line(kind, object)` for an object already encoded: the same bytes, without a `Value`.
fn encoded_line(kind: &str, object: &[u8]) -> Vec<u8> {
    // serde_json's map sorts keys, so `object` comes before `type`, as in `line`.
    let mut bytes = Vec::with_capacity(object.len() + kind.len() + 24);
    bytes.extend_from_slice(b"{\"object\":");
    bytes.extend_from_slice(object);
    bytes.extend_from_slice(b",\"type\":\"");
    bytes.extend_from_slice(kind.as_bytes());
    bytes.extend_from_slice(b"\"}\n");
    bytes
}

fn event_type(kind: EventType) -> &'static str {
    match kind {
        EventType::Added => "ADDED",
        EventType::Modified => "MODIFIED",
        EventType::Deleted => "DELETED",
    }
}

fn line(kind: &str, object: &Value) -> Bytes {
    // Encoded in place: `json!` would first copy the object through the serializer.
    let encoded = serde_json::to_vec(object).unwrap_or_default();
    Bytes::from(encoded_line(kind, &encoded))
}

/// The ERROR event that ends a watch: a too-old revision is a 410 `Expired` Status.
fn error_line(err: &StorageError) -> Bytes {
    let status = Status::from_storage(err, &Default::default());
    line("ERROR", &serde_json::to_value(&status).unwrap_or_default())
}

fn bookmark(target: &Target, revision: &str, initial_events_end: bool) -> Bytes {
    let mut metadata = json!({"resourceVersion": revision});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        &json!({"apiVersion": target.rt.api_version(), "kind": target.rt.kind, "metadata": metadata}),
    )
}

/// What a watcher with `filter` sees of a change: objects that start matching are ADDED, ones
/// that stop matching are DELETED, as kube-apiserver's watch cache reports them.
fn visible_change(filter: &Filter, event: &Event, object: &Value) -> Option<&'static str> {
    if filter.is_empty() {
        return Some(event_type(event.kind));
    }
    let before = event
        .prev
        .as_ref()
        .and_then(|p| serde_json::from_slice::<Value>(&p.value).ok())
        .is_some_and(|p| filter.matches(&p));
    let now = filter.matches(object);
    match (event.kind, before, now) {
        (EventType::Deleted, true, _) => Some("DELETED"),
        (EventType::Deleted, false, _) => None,
        (_, false, true) => Some("ADDED"),
        (_, true, true) => Some("MODIFIED"),
        (_, true, false) => Some("DELETED"),
        (_, false, false) => None,
    }
}

pub async fn watch(target: &Target<'_>, query: &Query) -> Response {
    match open(target, query).await {
        Ok(response) => response,
        Err(status) => response::status(status),
    }
}

async fn open(target: &Target<'_>, query: &Query) -> Result<Response, Status> {
    super::list::check_options(query, true)?;
    let bookmarks = query.flag("allowWatchBookmarks");
    // `false` (with resourceVersionMatch=NotOlderThan) asks for changes only, even without a
    // resourceVersion: no initial state.
    let mut no_initial = false;
    let send_initial = match query.get("sendInitialEvents") {
        Some("true") => true,
        Some("false") => {
            no_initial = true;
            false
        }
        None => false,
        Some(other) => {
            return Err(Status::bad_request(format!(
                "invalid sendInitialEvents {other:?}"
            )))
        }
    };
    if send_initial && !bookmarks {
        return Err(Status::bad_request(
            "sendInitialEvents requires allowWatchBookmarks=true",
        ));
    }
    let timeout = match query.get("timeoutSeconds") {
        Some(t) => Duration::from_secs(
            t.parse()
                .map_err(|_| Status::bad_request(format!("invalid timeoutSeconds {t:?}")))?,
        ),
        None => DEFAULT_TIMEOUT,
    };
    let store = target.shard.store.clone();
    let scope = scope(target);
    let filter = Filter::from_query(query, target.rt)?;
    let across_shards = wildcard::across_shards(target);
    // Across shards the resourceVersion is a composite one, read by `wildcard`.
    let revision = if across_shards {
        ReadRevision::Latest
    } else {
        read_revision(query)?
    };

    let render = {
        let (rt, rendering) = (target.rt.clone(), target.rendering);
        let include = query.get("includeObject").map(str::to_string);
        move |object: Value| -> Value {
            table::render_one(&rt, rendering, object, include.as_deref())
        }
    };

    // Initial state, when asked for (explicitly, or by giving no revision / "0").
    let mut initial = Vec::new();
    let mut shard_streams = None;
    let from = if across_shards {
        let list_first = !no_initial
            && (send_initial || matches!(query.get("resourceVersion"), None | Some("" | "0")));
        let opened = wildcard::open(target, query, list_first).await?;
        for object in opened.initial {
            if filter.matches(&object) {
                initial.push(line("ADDED", &render(object)));
            }
        }
        if send_initial {
            initial.push(bookmark(target, &opened.start, true));
        }
        shard_streams = Some(opened.streams);
        None
    } else {
        match (send_initial, revision, query.get("resourceVersion")) {
            (false, ReadRevision::Latest, _) if no_initial => Some(
                store
                    .current_revision()
                    .await
                    .map_err(|e| target.storage_error(&e))?,
            ),
            (true, _, _) | (false, ReadRevision::Latest, _) => {
                let listed = store
                    .list(ListRequest {
                        scope: scope.clone(),
                        revision: if send_initial {
                            revision
                        } else {
                            ReadRevision::Latest
                        },
                        limit: None,
                        continue_token: None,
                    })
                    .await
                    .map_err(|e| target.storage_error(&e))?;
                // The initial state is filtered and rendered as every later event is.
                for o in &listed.items {
                    if filter.is_empty()
                        && target.rendering == Rendering::Object
                        && !target.wildcard()
                    {
                        let object =
                            object_meta::encode_with_revision(&o.value, o.revision, target.rt)?;
                        initial.push(Bytes::from(encoded_line("ADDED", &object)));
                        continue;
                    }
                    let mut object = object_meta::decode(&o.value, o.revision, target.rt)?;
                    if target.wildcard() {
                        super::mark_cluster(&target.state.workspaces, &mut object, &o.key.cluster);
                    }
                    if filter.matches(&object) {
                        initial.push(line("ADDED", &render(object)));
                    }
                }
                if send_initial {
                    initial.push(bookmark(target, &listed.revision.to_string(), true));
                }
                Some(listed.revision)
            }
            (false, ReadRevision::NotOlderThan(n) | ReadRevision::Exact(n), _) => Some(n),
        }
    };

    // Without selectors or another rendering, a watcher sends the stored object as it is (plus
    // its resourceVersion): no parse, no filter, no re-encoding. For a built-in resource those
    // bytes are the same for every such watcher of the event, so the first one to get there
    // encodes them into the event's shared slot and the others reuse them. (Custom resources
    // are read through their watchers' own versions, so they encode for themselves.)
    // Wildcard watches mark each object with its workspace, so they always decode.
    let wildcard = target.wildcard().then(|| target.state.workspaces.clone());
    let plain = filter.is_empty() && target.rendering == Rendering::Object && wildcard.is_none();
    // Only a kind that is the sole reader of its storage may share encodings: core and
    // events.k8s.io events see the same stored events in different shapes.
    let shared = plain && target.rt.custom.is_none() && target.rt.stored_as.is_none();
    let rt_for_events = target.rt.clone();
    // `revision` replaces the object's own (a composite one, across shards).
    let encode_event = move |event: &Event, revision: Option<&str>| -> Option<Bytes> {
        if plain {
            let encode = || {
                object_meta::encode_with_revision(
                    &event.object.value,
                    event.object.revision,
                    &rt_for_events,
                )
                .map(|object| Bytes::from(encoded_line(event_type(event.kind), &object)))
            };
            if !shared {
                return encode().ok();
            }
            // An empty slot value records that the event could not be encoded (skipped, as by
            // every other watcher).
            let line = event.encoding.get_or_init(|| encode().unwrap_or_default());
            return (!line.is_empty()).then_some(line);
        }
        let mut object =
            object_meta::decode(&event.object.value, event.object.revision, &rt_for_events).ok()?;
        if let Some(index) = &wildcard {
            super::mark_cluster(index, &mut object, &event.object.key.cluster);
        }
        if let Some(revision) = revision {
            object["metadata"]["resourceVersion"] = Value::String(revision.to_string());
        }
        let kind = visible_change(&filter, event, &object)?;
        Some(line(kind, &render(object)))
    };
    let source = match shard_streams {
        Some(streams) => Ok(Source::Shards(streams)),
        None => store.watch(scope, from).await.map(Source::One),
    };
    let events_sent = if target.rt.custom.is_some() {
        target.state.metrics.watch_events(
            crate::machinery::metrics::OTHER,
            crate::machinery::metrics::OTHER,
            crate::machinery::metrics::OTHER,
        )
    } else {
        target
            .state
            .metrics
            .watch_events(&target.rt.group, &target.rt.version, &target.rt.plural)
    };
    let closing = target.state.lifecycle.closing();
    let feed = match source {
        Ok(source) => Some(Feed {
            source,
            closing: Box::pin(closing.cancelled_owned()),
            timeout,
            deadline: None,
            bookmarks: bookmarks.then(|| {
                let start = tokio::time::Instant::now() + BOOKMARK_EVERY;
                tokio::time::interval_at(start, BOOKMARK_EVERY)
            }),
            api_version: target.rt.api_version(),
            kind: target.rt.kind.clone(),
            encode_event: Box::new(encode_event),
            pace: Pace::new(WRITE_EVERY, events_sent),
        }),
        Err(e) => {
            initial.push(error_line(&e));
            None
        }
    };
    // The response body pulls events straight from the storage watch: no task and channel in
    // between, and when the client hangs up, hyper drops the body and with it the watch.
    let events = futures::stream::unfold(feed, |feed| async move {
        let mut feed = feed?;
        let (chunk, more) = feed.next_chunk().await?;
        Some((chunk, more.then_some(feed)))
    });
    let body = Body::from_stream(
        futures::stream::iter(initial)
            .chain(events)
            .map(Ok::<_, Infallible>),
    );
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

type EncodeEvent = Box<dyn Fn(&Event, Option<&str>) -> Option<Bytes> + Send + Sync>;

/// Where a watch's changes come from.
enum Source {
    /// One store (and plain revisions).
    One(WatchStream),
    /// Every shard, for a wildcard watch (and composite revisions).
    Shards(wildcard::ShardStreams),
}

impl Source {
    /// The next change, with the revision to show for it when not the object's own.
    async fn next(&mut self) -> Option<Result<(Arc<Event>, Option<String>), StorageError>> {
        match self {
            Source::One(stream) => Some(stream.next_shared().await?.map(|e| (e, None))),
            Source::Shards(streams) => Some(
                streams
                    .next()
                    .await?
                    .map(|(e, revision)| (e, Some(revision))),
            ),
        }
    }

    /// The revision every change up to which was delivered, for bookmarks.
    fn revision(&self) -> String {
        match self {
            Source::One(stream) => stream.revision().to_string(),
            Source::Shards(streams) => streams.revision(),
        }
    }
}

/// What feeds a watch response after its initial events.
struct Feed {
    source: Source,
    /// Done when the server closes: the watch ends then. Made once, so that it does not sign
    /// up with the server's token again for every write.
    closing: Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
    timeout: Duration,
    /// Starts when the first change is awaited, after the initial events.
    deadline: Option<Pin<Box<Sleep>>>,
    bookmarks: Option<Interval>,
    api_version: String,
    kind: String,
    encode_event: EncodeEvent,
    pace: Pace,
}

/// When a feed writes.
struct Pace {
    /// `apiserver_watch_events_total` of the resource (none with metrics off).
    events_sent: Option<prometheus::IntCounter>,
    /// Shortest time between two writes while changes keep coming ([`WRITE_EVERY`]).
    write_every: Duration,
    /// When the last batch of changes was handed to the response.
    last_write: Option<tokio::time::Instant>,
    /// While changes keep coming: when the next write is due. The feed sleeps until then and
    /// takes what came meanwhile, instead of waking for the first change and again when the
    /// hold ends (with a thousand watchers of a busy resource, those wake-ups are a large
    /// share of the CPU).
    next_write: Option<tokio::time::Instant>,
}

impl Pace {
    fn new(write_every: Duration, events_sent: Option<prometheus::IntCounter>) -> Pace {
        Pace {
            events_sent,
            write_every,
            last_write: None,
            next_write: None,
        }
    }

    /// The chunk to send for `batch`, if it holds anything. `held` says its changes came while
    /// writes were frequent, so the next write is held too.
    fn write(&mut self, batch: Batch, held: bool) -> Option<(Bytes, bool)> {
        let now = tokio::time::Instant::now();
        self.last_write = Some(now);
        // A full batch means more are waiting already: they go out without a hold.
        self.next_write = (held && !batch.full()).then(|| now + self.write_every);
        let Batch {
            mut lines, more, ..
        } = batch;
        if let Some(sent) = &self.events_sent {
            sent.inc_by(lines.len() as u64);
        }
        match lines.len() {
            0 => None,
            1 => Some((lines.swap_remove(0), more)),
            _ => Some((Bytes::from(lines.concat()), more)),
        }
    }
}

/// Changes gathered for one write.
struct Batch {
    lines: Vec<Bytes>,
    bytes: usize,
    /// False once the source has ended (or failed): nothing may follow this batch.
    more: bool,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            lines: Vec::new(),
            bytes: 0,
            more: true,
        }
    }

    fn push(&mut self, line: Bytes) {
        self.bytes += line.len();
        self.lines.push(line);
    }

    fn full(&self) -> bool {
        !self.more || self.bytes >= BATCH_BYTES
    }
}

impl Feed {
    /// The next bytes to send, and whether more may follow; `None` ends the response.
    ///
    /// A change that follows a quiet spell goes out at once. One that comes less than
    /// `write_every` after the last write waits for the rest of that time, and whatever else
    /// comes meanwhile goes out with it; while changes keep coming, each write is followed by
    /// such a hold, slept through without waking for the changes.
    async fn next_chunk(&mut self) -> Option<(Bytes, bool)> {
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(self.timeout)));
        loop {
            let due = self.pace.next_write;
            return Some(tokio::select! {
                _ = deadline.as_mut() => return None,
                () = self.closing.as_mut() => return None,
                _ = async { self.bookmarks.as_mut()?.tick().await; Some(()) }, if self.bookmarks.is_some() => {
                    let meta = json!({"resourceVersion": self.source.revision()});
                    let bookmark = json!({"apiVersion": self.api_version, "kind": self.kind, "metadata": meta});
                    (line("BOOKMARK", &bookmark), true)
                }
                // The hold after a busy write is over: what came meanwhile goes out.
                () = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => {
                    self.pace.next_write = None;
                    let mut batch = Batch::new();
                    take_waiting(&mut self.source, &self.encode_event, &mut batch);
                    if batch.lines.is_empty() && batch.more {
                        // Quiet again: the next change goes out as soon as it comes.
                        continue;
                    }
                    let more = batch.more;
                    match self.pace.write(batch, true) {
                        Some(chunk) => chunk,
                        None if more => continue,
                        None => return None,
                    }
                }
                event = self.source.next(), if due.is_none() => match event {
                    None => return None,
                    Some(Err(e)) => (error_line(&e), false),
                    Some(Ok((event, revision))) => {
                        let mut batch = Batch::new();
                        if let Some(line) = (self.encode_event)(&event, revision.as_deref()) {
                            batch.push(line);
                        }
                        take_waiting(&mut self.source, &self.encode_event, &mut batch);
                        // Written to less than `write_every` ago: what else comes meanwhile
                        // goes out with this.
                        let hold_until = self
                            .pace
                            .last_write
                            .map(|at| at + self.pace.write_every)
                            .filter(|until| !batch.full() && *until > tokio::time::Instant::now());
                        if let Some(until) = hold_until {
                            tokio::time::sleep_until(until).await;
                            take_waiting(&mut self.source, &self.encode_event, &mut batch);
                        }
                        let more = batch.more;
                        match self.pace.write(batch, hold_until.is_some()) {
                            Some(chunk) => chunk,
                            None if more => continue,
                            None => return None,
                        }
                    }
                },
            });
        }
    }
}

/// Adds whatever changes of `source` are already waiting to `batch`, without waiting for more.
fn take_waiting(source: &mut Source, encode_event: &EncodeEvent, batch: &mut Batch) {
    while !batch.full() {
        match source.next().now_or_never() {
            Some(Some(Ok((event, revision)))) => {
                if let Some(line) = encode_event(&event, revision.as_deref()) {
                    batch.push(line);
                }
            }
            Some(Some(Err(e))) => {
                batch.push(error_line(&e));
                batch.more = false;
            }
            Some(None) => batch.more = false,
            None => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::scheme::test_lookup as lookup_builtin;
    use crate::serving::query::Query;
    use trellis_storage::{ObjectKey, StoredObject};

    fn stored(labels: Value, revision: u64) -> StoredObject {
        StoredObject {
            key: ObjectKey::new("root", "core/configmaps", "default", "x"),
            uid: "u".into(),
            create_revision: 1,
            revision,
            value: bytes::Bytes::from(
                json!({"metadata": {"name": "x", "labels": labels}}).to_string(),
            ),
        }
    }

    fn event(kind: EventType, before: Option<Value>, after: Value) -> (Event, Value) {
        let object = stored(after, 3);
        let value = serde_json::from_slice(&object.value).unwrap();
        (
            Event {
                kind,
                object,
                prev: before.map(|b| stored(b, 2)),
                encoding: Default::default(),
            },
            value,
        )
    }

    /// A feed of a real store's changes to the ConfigMaps of `default`, each line the
    /// object's name, writing at most every `write_every` while changes keep coming.
    async fn feed(store: &trellis_storage::Store, write_every: Duration) -> Feed {
        let scope = trellis_storage::ListScope::namespace("root", "core/configmaps", "default");
        let stream = store.watch(scope, None).await.unwrap();
        Feed {
            source: Source::One(stream),
            closing: Box::pin(tokio_util::sync::CancellationToken::new().cancelled_owned()),
            timeout: Duration::from_secs(60),
            deadline: None,
            bookmarks: None,
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            encode_event: Box::new(|event: &Event, _: Option<&str>| {
                Some(Bytes::from(format!("{}\n", event.object.key.name)))
            }),
            pace: Pace::new(write_every, None),
        }
    }

    async fn create(store: &trellis_storage::Store, name: &str) {
        let key = ObjectKey::new("root", "core/configmaps", "default", name);
        store
            .create(key, name, Bytes::from_static(b"{}"))
            .await
            .unwrap();
    }

    /// A change after a quiet spell goes out at once; the changes that follow soon after it
    /// wait for the rest of the hold and go out together, in order, and so do the ones after
    /// that; after another quiet spell a change goes out at once again.
    #[tokio::test]
    async fn changes_close_together_go_out_in_one_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = trellis_storage::Store::open_sqlite(
            dir.path().join("store.db"),
            trellis_storage::StoreOptions::default(),
        )
        .await
        .unwrap();
        let hold = Duration::from_secs(2);
        let mut feed = feed(&store, hold).await;

        create(&store, "a").await;
        let started = tokio::time::Instant::now();
        let (first, more) = feed.next_chunk().await.unwrap();
        assert!(more);
        assert_eq!(&first[..], b"a\n");
        assert!(started.elapsed() < hold, "the first change is not held");

        let writes = async {
            for name in ["b", "c", "d"] {
                create(&store, name).await;
            }
        };
        let ((second, _), ()) = tokio::join!(async { feed.next_chunk().await.unwrap() }, writes);
        assert_eq!(&second[..], b"b\nc\nd\n", "one write, in order");
        assert!(started.elapsed() >= hold, "held until the hold ended");

        // Still busy: the changes that come next wait for a whole hold after that write.
        let second_at = tokio::time::Instant::now();
        create(&store, "f").await;
        create(&store, "g").await;
        let (busy, _) = feed.next_chunk().await.unwrap();
        assert_eq!(&busy[..], b"f\ng\n");
        assert!(second_at.elapsed() >= hold, "held after a busy write");

        tokio::time::sleep(hold).await;
        create(&store, "e").await;
        let quiet = tokio::time::Instant::now();
        let (third, _) = feed.next_chunk().await.unwrap();
        assert_eq!(&third[..], b"e\n");
        assert!(
            quiet.elapsed() < hold,
            "a change after a quiet spell is not held"
        );
    }

    #[test]
    fn pre_encoded_lines_are_the_lines_of_the_values() {
        let object = json!({"metadata": {"name": "x", "resourceVersion": "3"}, "data": {"k": "v"}});
        let encoded = serde_json::to_vec(&object).unwrap();
        assert_eq!(
            encoded_line("MODIFIED", &encoded),
            line("MODIFIED", &object).to_vec()
        );
    }

    #[test]
    fn objects_entering_and_leaving_a_selector() {
        let cm = lookup_builtin("", "v1", "configmaps").unwrap();
        let filter =
            Filter::from_query(&Query::parse(Some("labelSelector=app%3Dweb")), cm).unwrap();
        let see = |kind, before: Option<Value>, after: Value| {
            let (e, v) = event(kind, before, after);
            visible_change(&filter, &e, &v)
        };
        let web = json!({"app": "web"});
        let db = json!({"app": "db"});
        assert_eq!(see(EventType::Added, None, web.clone()), Some("ADDED"));
        assert_eq!(see(EventType::Added, None, db.clone()), None);
        assert_eq!(
            see(EventType::Modified, Some(db.clone()), web.clone()),
            Some("ADDED")
        );
        assert_eq!(
            see(EventType::Modified, Some(web.clone()), web.clone()),
            Some("MODIFIED")
        );
        assert_eq!(
            see(EventType::Modified, Some(web.clone()), db.clone()),
            Some("DELETED")
        );
        assert_eq!(see(EventType::Modified, Some(db.clone()), db.clone()), None);
        assert_eq!(
            see(EventType::Deleted, Some(web.clone()), web),
            Some("DELETED")
        );
        assert_eq!(see(EventType::Deleted, Some(db.clone()), db), None);
    }
}
