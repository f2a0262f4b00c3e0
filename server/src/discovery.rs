//! Legacy discovery (`/api`, `/api/v1`, `/apis`, `/apis/<group>/<version>`) and `/version`.
//!
//! Clients that ask for aggregated discovery (`as=APIGroupDiscoveryList`) get these plain
//! documents with `application/json`, which client-go and kubectl accept as "not aggregated"
//! and read the legacy way.

use serde_json::{json, Value};

use crate::registry::{self, ResourceType, VERBS};

/// The Kubernetes version whose API this server speaks.
pub const KUBE_MAJOR: &str = "1";
pub const KUBE_MINOR: &str = "37";

pub fn version() -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0+trellis-{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    })
}

pub fn api_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    })
}

pub fn api_group_list() -> Value {
    let groups: Vec<Value> = registry::groups()
        .into_iter()
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
                .collect();
            json!({
                "name": group,
                "versions": versions,
                "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_entry(r: &ResourceType) -> Value {
    let mut entry = json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": VERBS,
    });
    if !r.short_names.is_empty() {
        entry["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        entry["categories"] = json!(r.categories);
    }
    entry
}

/// `/api/v1` or `/apis/<group>/<version>`; `None` for anything not served. A group without a
/// version (`/apis/<group>`) gets its APIGroup.
pub fn resource_list(path: &str) -> Option<Value> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version) = match parts.as_slice() {
        ["api", version] => ("", *version),
        ["apis", group, version] => (*group, *version),
        ["apis", group] => {
            let (name, versions) = registry::groups().into_iter().find(|(g, _)| g == group)?;
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
                .collect();
            return Some(json!({
                "kind": "APIGroup",
                "apiVersion": "v1",
                "name": name,
                "versions": versions,
                "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
            }));
        }
        _ => return None,
    };
    let resources = registry::resources_of(group, version);
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources.iter().map(|r| resource_entry(r)).collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_resources_are_listed_with_short_names() {
        let list = resource_list("/api/v1").unwrap();
        assert_eq!(list["groupVersion"], "v1");
        let cm = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "configmaps")
            .unwrap();
        assert_eq!(cm["shortNames"], json!(["cm"]));
        assert_eq!(cm["namespaced"], true);
        assert!(resource_list("/apis/nope/v1").is_none());
        assert_eq!(
            resource_list("/apis/coordination.k8s.io").unwrap()["kind"],
            "APIGroup"
        );
    }

    #[test]
    fn groups_have_preferred_versions() {
        let list = api_group_list();
        let rbac = list["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == "rbac.authorization.k8s.io")
            .unwrap();
        assert_eq!(
            rbac["preferredVersion"]["groupVersion"],
            "rbac.authorization.k8s.io/v1"
        );
    }
}
