//! Discovery: what a workspace serves, in both of kube-apiserver's forms.
//!
//! Legacy discovery is `/api`, `/apis` and one `APIResourceList` per group version.
//! Aggregated discovery (`apidiscovery.k8s.io/v2`, asked for through `Accept`) answers `/api`
//! and `/apis` with every group, version and resource at once, which saves kubectl a request
//! per group version. `/version` is here too.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::endpoints::rest::subresource::Subresource;
use crate::registry::{self, ResourceType};

/// The Kubernetes version whose API this server speaks.
pub const KUBE_MAJOR: &str = "1";
pub const KUBE_MINOR: &str = "37";

/// The media type of aggregated discovery responses.
pub const AGGREGATED_MEDIA_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

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
        "platform": format!("{}/{}", std::env::consts::OS, go_arch(std::env::consts::ARCH)),
    })
}

/// An architecture as Go (and so every Kubernetes `version.platform`) names it.
fn go_arch(rust: &str) -> &str {
    match rust {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        other => other,
    }
}

/// Whether an `Accept` header asks for aggregated discovery (v2; v2beta1 is no longer
/// served, so clients fall back to the next type they list).
pub fn wants_aggregated(accept: Option<&str>) -> bool {
    accept.is_some_and(|accept| {
        accept.split(',').any(|media| {
            let params: Vec<&str> = media.split(';').map(str::trim).collect();
            params.contains(&"g=apidiscovery.k8s.io")
                && params.contains(&"v=v2")
                && params.contains(&"as=APIGroupDiscoveryList")
        })
    })
}

pub fn api_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    })
}

fn group_entry(name: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({
        "name": name,
        "versions": versions,
        "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
    })
}

pub fn api_group_list(resources: &[Arc<ResourceType>]) -> Value {
    let groups: Vec<Value> = registry::groups(resources)
        .iter()
        .map(|(group, versions)| group_entry(group, versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_entry(r: &ResourceType) -> Value {
    let mut entry = json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": r.verbs(),
    });
    if !r.short_names.is_empty() {
        entry["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        entry["categories"] = json!(r.categories);
    }
    entry
}

/// The subresources of `r`: name, response group/version/kind, verbs.
fn subresources(r: &ResourceType) -> Vec<(&'static str, Value, &'static [&'static str])> {
    let mut out = Vec::new();
    if r.subresources.status {
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        out.push(("status", gvk, Subresource::Status.verbs()));
    }
    if r.subresources.finalize {
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        out.push(("finalize", gvk, Subresource::Finalize.verbs()));
    }
    if r.subresources.scale.is_some() {
        let gvk = json!({"group": "autoscaling", "version": "v1", "kind": "Scale"});
        out.push(("scale", gvk, Subresource::Scale.verbs()));
    }
    // Subresources answered by code (TokenRequest).
    for (name, takes, _) in r.kind_rules.iter().flat_map(|k| k.endpoint_subresources()) {
        let gvk = json!({"group": takes.group, "version": takes.version, "kind": takes.kind});
        out.push((name, gvk, &["create"][..]));
    }
    out
}

/// `/api/v1` or `/apis/<group>/<version>`; `None` for anything not served. A group without a
/// version (`/apis/<group>`) gets its APIGroup.
pub fn resource_list(resources: &[Arc<ResourceType>], path: &str) -> Option<Value> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version) = match parts.as_slice() {
        ["api", version] => ("", *version),
        ["apis", group, version] => (*group, *version),
        ["apis", group] => {
            let groups = registry::groups(resources);
            let (name, versions) = groups.iter().find(|(g, _)| g == group)?;
            let mut entry = group_entry(name, versions);
            entry["kind"] = json!("APIGroup");
            entry["apiVersion"] = json!("v1");
            return Some(entry);
        }
        _ => return None,
    };
    let of_version = registry::resources_of(resources, group, version);
    if of_version.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let mut entries = Vec::new();
    for r in &of_version {
        entries.push(resource_entry(r));
        for (name, gvk, verbs) in subresources(r) {
            let mut sub = json!({
                "name": format!("{}/{name}", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": gvk["kind"],
                "verbs": verbs,
            });
            if gvk["group"] != r.group.as_str() {
                sub["group"] = gvk["group"].clone();
                sub["version"] = gvk["version"].clone();
            }
            entries.push(sub);
        }
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": entries,
    }))
}

/// Aggregated discovery: `/api` (`legacy`) holds the core group, `/apis` every other group.
pub fn aggregated(resources: &[Arc<ResourceType>], legacy: bool) -> Value {
    let groups: Vec<(String, Vec<String>)> = if legacy {
        vec![(String::new(), vec!["v1".to_string()])]
    } else {
        registry::groups(resources)
    };
    let items: Vec<Value> = groups
        .iter()
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|version| {
                    let entries: Vec<Value> = registry::resources_of(resources, group, version)
                        .iter()
                        .map(|r| aggregated_resource(r))
                        .collect();
                    json!({"version": version, "resources": entries, "freshness": "Current"})
                })
                .collect();
            let mut metadata = json!({"creationTimestamp": null});
            if !group.is_empty() {
                metadata["name"] = json!(group);
            }
            json!({"metadata": metadata, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

fn aggregated_resource(r: &ResourceType) -> Value {
    let mut entry = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs(),
    });
    if !r.short_names.is_empty() {
        entry["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        entry["categories"] = json!(r.categories);
    }
    let subs: Vec<Value> = subresources(r)
        .into_iter()
        .map(|(name, gvk, verbs)| json!({"subresource": name, "responseKind": gvk, "verbs": verbs}))
        .collect();
    if !subs.is_empty() {
        entry["subresources"] = json!(subs);
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_platform_is_named_as_go_names_it() {
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
        assert_eq!(go_arch("s390x"), "s390x");
        let platform = version()["platform"].as_str().unwrap().to_string();
        assert!(platform.starts_with("linux/"), "{platform}");
        assert!(
            !platform.contains("x86_64") && !platform.contains("aarch64"),
            "{platform}"
        );
    }

    #[test]
    fn core_resources_are_listed_with_short_names() {
        let builtin = crate::serving::hub::test_hub().resources();
        let list = resource_list(builtin, "/api/v1").unwrap();
        assert_eq!(list["groupVersion"], "v1");
        let entries = list["resources"].as_array().unwrap();
        let cm = entries.iter().find(|r| r["name"] == "configmaps").unwrap();
        assert_eq!(cm["shortNames"], json!(["cm"]));
        assert_eq!(cm["namespaced"], true);
        assert!(entries.iter().any(|r| r["name"] == "namespaces/status"));
        assert!(resource_list(builtin, "/apis/nope/v1").is_none());
        assert_eq!(
            resource_list(builtin, "/apis/coordination.k8s.io").unwrap()["kind"],
            "APIGroup"
        );
    }

    #[test]
    fn groups_have_preferred_versions() {
        let list = api_group_list(crate::serving::hub::test_hub().resources());
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

    #[test]
    fn aggregated_discovery_lists_every_group() {
        let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert!(wants_aggregated(Some(accept)));
        assert!(!wants_aggregated(Some("application/json")));
        let core = aggregated(crate::serving::hub::test_hub().resources(), true);
        let v1 = &core["items"][0]["versions"][0];
        assert_eq!(v1["version"], "v1");
        let ns = v1["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "namespaces")
            .unwrap();
        assert_eq!(ns["scope"], "Cluster");
        assert_eq!(ns["subresources"][0]["subresource"], "status");
        let sa = v1["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "serviceaccounts")
            .unwrap();
        assert_eq!(sa["subresources"][0]["subresource"], "token");
        assert_eq!(
            sa["subresources"][0]["responseKind"]["kind"],
            "TokenRequest"
        );
        assert_eq!(sa["subresources"][0]["verbs"], json!(["create"]));
        let apis = aggregated(crate::serving::hub::test_hub().resources(), false);
        let crd_group = apis["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metadata"]["name"] == "apiextensions.k8s.io")
            .unwrap();
        assert_eq!(
            crd_group["versions"][0]["resources"][0]["shortNames"],
            json!(["crd", "crds"])
        );
    }
}
