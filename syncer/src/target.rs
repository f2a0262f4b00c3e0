//! Which SyncTarget a syncer serves, as the `--target WORKSPACE:NAME` flag names it
//! (`root:platform:eu-1`: the workspace `root:platform`, the target `eu-1`), and the hub URL
//! of that workspace, derived from whatever workspace URL a kubeconfig holds.

use std::fmt;

/// One SyncTarget in one provider workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetRef {
    /// The provider workspace's path, e.g. `root:platform`.
    pub workspace: String,
    /// The SyncTarget's name, e.g. `eu-1`.
    pub name: String,
}

impl TargetRef {
    /// Parses `WORKSPACE:NAME`: a workspace path has `:` between its parts and a SyncTarget
    /// name never has one, so the last `:` separates them.
    pub fn parse(s: &str) -> Result<TargetRef, String> {
        let (workspace, name) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?}: expected WORKSPACE:NAME, e.g. root:platform:eu-1"))?;
        if workspace.is_empty() || name.is_empty() {
            return Err(format!(
                "{s:?}: expected WORKSPACE:NAME, e.g. root:platform:eu-1"
            ));
        }
        if !crate::naming::is_dns_subdomain(name) {
            return Err(format!("{name:?} is not a valid SyncTarget name"));
        }
        Ok(TargetRef {
            workspace: workspace.to_string(),
            name: name.to_string(),
        })
    }

    /// The namespace of the provider workspace holding this target's Placements.
    pub fn namespace(&self) -> String {
        trellis_apis::compute::placement::target_namespace(&self.name)
    }
}

impl fmt::Display for TargetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.workspace, self.name)
    }
}

/// `server` (a hub URL, with or without a `/clusters/<workspace>` suffix) pointed at
/// `workspace`.
pub fn workspace_url(server: &str, workspace: &str) -> String {
    let base = match server.find("/clusters/") {
        Some(at) => &server[..at],
        None => server.trim_end_matches('/'),
    };
    format!("{base}/clusters/{workspace}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_colon_separates_workspace_and_name() {
        let t = TargetRef::parse("root:platform:eu-1").unwrap();
        assert_eq!(
            (t.workspace.as_str(), t.name.as_str()),
            ("root:platform", "eu-1")
        );
        assert_eq!(t.namespace(), "target-eu-1");
        assert_eq!(t.to_string(), "root:platform:eu-1");
        assert!(TargetRef::parse("eu-1").is_err());
        assert!(TargetRef::parse("root:").is_err());
        assert!(TargetRef::parse(":eu-1").is_err());
        assert!(TargetRef::parse("root:Eu_1").is_err());
    }

    #[test]
    fn workspace_urls_replace_the_workspace() {
        assert_eq!(
            workspace_url("https://127.0.0.1:6443/clusters/root", "root:platform"),
            "https://127.0.0.1:6443/clusters/root:platform"
        );
        assert_eq!(
            workspace_url("https://hub:6443/", "root:a"),
            "https://hub:6443/clusters/root:a"
        );
    }
}
