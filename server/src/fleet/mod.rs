//! The pure glue between the GPU fleet's API objects (`compute.trellis.dev`,
//! `serving.trellis.dev`) and the placement engine ([`trellis_placement`]): what the hub's
//! placement and target-health controllers decide, without their I/O. Every function takes the objects as read
//! plus `now` (seconds since the Unix epoch) and returns what to write.
//!
//! | module | owns |
//! |---|---|
//! | `keys` | engine names of targets and pools (`<provider workspace>/<name>`) |
//! | `time` | API times ↔ epoch seconds |
//! | `conditions` | conditions whose transition time moves only with their status |
//! | [`health`] | heartbeat health, the unreachable taint, when failover is due |
//! | [`snapshot`] | API objects → the engine's `Snapshot` (and refused deployments) |
//! | [`ledger`] | the engine's ledger rebuilt by a new leader, pruned of the gone |
//! | [`render`] | a `Decision` → Placements to write and to delete (the failover rule) |
//! | [`status`] | a ModelDeployment's status |
//! | [`pool_status`] | a GPUPool's status |

mod conditions;
pub mod health;
mod keys;
pub mod ledger;
pub mod pool_status;
pub mod render;
pub mod snapshot;
pub mod status;
mod time;

pub use keys::{pool_key, split_key, target_key, WORKSPACE_LABEL};
pub use time::{parse_rfc3339, rfc3339, seconds, time_at};

#[cfg(test)]
mod fixtures;
