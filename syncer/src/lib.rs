//! The Trellis syncer: the agent that runs on (or beside) one edge cluster, dials the hub
//! (pull mode: the hub never dials an edge), runs the Placements of its SyncTarget there as
//! Deployments and Services, and reports back: Placement status, and on its SyncTarget the
//! heartbeat, features and the GPU inventory the hub's placement controller sizes replicas
//! against.
//!
//! Pure decisions, each a function of what was read, with unit tests beside them:
//! - [`target`]: which SyncTarget (`WORKSPACE:NAME`) and the hub URL of its workspace.
//! - [`naming`]: edge namespace and object names, the labels and annotations the syncer owns.
//! - [`inventory`]: GPUs per product and the `freeByNode` histogram from nodes and pods
//!   (device plugin) or ResourceSlices and ResourceClaims (DRA); which Placements it accounts.
//! - [`render`]: a Placement as the Deployment, Service and ResourceClaimTemplate to apply.
//! - [`placement_status`]: a Placement's status from its Deployment and pods.
//! - [`target_status`]: the SyncTarget status a heartbeat applies.
//!
//! The I/O shell is in [`shell`]: the hub and edge clients, reflectors of trimmed objects,
//! the heartbeat loop and the work loop.

pub mod inventory;
pub mod naming;
pub mod placement_status;
pub mod render;
pub mod shell;
pub mod target;
pub mod target_status;
pub mod time;

/// The field manager of every server-side apply the syncer sends, on hub and edge.
pub const FIELD_MANAGER: &str = "trellis-syncer";
