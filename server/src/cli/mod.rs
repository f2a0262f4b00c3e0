//! The command line's own pieces: writing kubeconfigs, the `kubectl ws` plugin and
//! `trellis synctarget create` (registering an edge cluster and its syncer's credentials),
//! `trellis backup` and `trellis restore`.

pub mod backup;
pub mod kubeconfig;
pub mod synctarget;
pub mod ws_plugin;
