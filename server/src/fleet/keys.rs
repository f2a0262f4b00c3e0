//! How fleet objects are named inside the placement engine, whose targets and pools live in
//! one flat namespace while the hub's live in many provider workspaces. A SyncTarget is
//! keyed `<provider workspace path>/<target name>` and a GPUPool
//! `<provider workspace path>/<pool name>`, the very form a ModelDeployment's
//! `spec.placement.pool` takes. Workspace paths never hold `/` and object names never do
//! either, so a key splits back at its only `/` unambiguously; two providers may both have a
//! target `eu-1` without meeting in the engine.
//!
//! A GPUPool selects only SyncTargets of its own workspace. The engine's pools select
//! targets by labels alone, so every engine target carries [`WORKSPACE_LABEL`] with its
//! workspace path and every engine pool requires it. The key has a `:`, which a Kubernetes
//! label key cannot, so it never meets a real label or a selector the server accepted.

/// The engine-only label holding a target's provider workspace path.
pub const WORKSPACE_LABEL: &str = "fleet:workspace";

/// The engine's name of SyncTarget `name` in provider workspace `workspace`.
pub fn target_key(workspace: &str, name: &str) -> String {
    format!("{workspace}/{name}")
}

/// The engine's name of GPUPool `name` in provider workspace `workspace`; equal to a
/// ModelDeployment's `spec.placement.pool` that names it.
pub fn pool_key(workspace: &str, name: &str) -> String {
    format!("{workspace}/{name}")
}

/// A target or pool key split into its workspace path and object name.
pub fn split_key(key: &str) -> Option<(&str, &str)> {
    key.split_once('/')
        .filter(|(workspace, name)| !workspace.is_empty() && !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_back_into_workspace_and_name() {
        let key = target_key("root:platform", "eu-1");
        assert_eq!(key, "root:platform/eu-1");
        assert_eq!(split_key(&key), Some(("root:platform", "eu-1")));
        // Same target name in two providers: two keys.
        assert_ne!(key, target_key("root:other", "eu-1"));
        assert_eq!(
            pool_key("root:platform", "h200-eu"),
            "root:platform/h200-eu"
        );
        assert_eq!(split_key("eu-1"), None);
        assert_eq!(split_key("/eu-1"), None);
        assert_eq!(split_key("root:platform/"), None);
    }
}
