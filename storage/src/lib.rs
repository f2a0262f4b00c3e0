//! Trellis storage: a revisioned, watchable object store with Kubernetes semantics on Postgres
//! shards and on embedded SQLite.
//!
//! This crate owns keys, revisions, consistent paged lists, ordered watch, compaction and shards.
//! It knows nothing of HTTP and no Kubernetes semantics beyond keys: values are opaque JSON
//! objects, and the server maps [`StorageError`] to API status codes.
//!
//! - A shard ([`Store`]) has one revision sequence: a decimal `u64`, strictly increasing in commit
//!   order, with no gaps a watcher could fall into. Writes are group-committed
//!   ([`group_commit`]), decided in memory ([`write_plan`]) under the shard's write lock.
//! - Every change is logged in the same transaction as the object, and the log is where each
//!   value is stored, once: an object row points at the revision holding its current state. The
//!   log serves watches ([`watch`]) and snapshot reads of paged lists ([`continue_token`]), and is
//!   compacted to a retention window ([`CompactionPolicy`]), keeping each key's newest state.
//! - [`Shards`] opens several independent shards by name; [`ShardsWatch`] follows several at
//!   once, at a [`CompositeRevision`].
//! - The schema carries a version ([`SCHEMA_VERSION`]): a newer binary migrates a store forward,
//!   an older one refuses it ([`StorageError::SchemaTooNew`]). A shard restored from a backup
//!   jumps its revision and expires every earlier one ([`restore`]).

mod backend;
pub mod continue_token;
mod error;
pub mod group_commit;
mod key;
mod object;
mod postgres;
pub mod restore;
mod restored;
mod shard_watch;
mod shards;
mod sql;
mod sqlite;
mod store;
mod versioning;
pub mod watch;
pub mod write_plan;

pub use backend::Revisions;
pub use continue_token::ContinueToken;
pub use error::{Result, StorageError};
pub use group_commit::CommitStats;
pub use key::{ListPosition, ListScope, ObjectKey};
pub use object::{Event, EventType, SharedEncoding, StoredObject};
pub use restore::Restored;
pub use shard_watch::{CompositeRevision, ShardsWatch};
pub use shards::{ShardSpec, Shards};
pub use store::{CompactionPolicy, ListRequest, ListResult, ReadRevision, Store, StoreOptions};
pub use versioning::{migrate_location_to, SCHEMA_VERSION};
pub use watch::{WatchItem, WatchStream};
pub use write_plan::{Preconditions, WriteOp};
