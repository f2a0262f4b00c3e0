//! The command line's own pieces: writing kubeconfigs and the `kubectl ws` plugin.

pub mod kubeconfig;
pub mod ws_plugin;
