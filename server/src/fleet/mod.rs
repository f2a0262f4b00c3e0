//! The pure glue between the GPU fleet's API objects (`compute.trellis.dev`,
//! `serving.trellis.dev`) and the placement engine ([`trellis_placement`]): what the hub's
//! placement controller decides, without its I/O. Every function takes the objects as read
//! plus `now` (seconds since the Unix epoch) and returns what to write.
//!
//! | module | owns |
//! |---|---|
//! | `keys` | engine names of targets and pools (`<provider workspace>/<name>`) |
//! | `time` | API times ↔ epoch seconds |
//! | [`snapshot`] | API objects → the engine's `Snapshot` (and refused deployments) |
//! | [`render`] | a `Decision` → Placements to write and to delete (the failover rule) |

mod keys;
pub mod render;
pub mod snapshot;
mod time;

pub use keys::{pool_key, split_key, target_key, WORKSPACE_LABEL};
pub use time::{parse_rfc3339, rfc3339, seconds, time_at};

#[cfg(test)]
mod fixtures;
