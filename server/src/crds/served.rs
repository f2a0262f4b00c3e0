//! The resources CustomResourceDefinitions define, per workspace: read from the CRDs in
//! storage and cached, the cache kept fresh by one watch over every workspace's CRDs.
//!
//! A workspace's CRDs are read when first needed and whenever one of them changes, so a
//! workspace without CRDs costs one empty entry, and no replica serves a CRD's resources
//! longer than its watch lags behind.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use trellis_storage::{ListRequest, ListScope, Store};

use crate::kinds::{ScalePaths, Subresources};
use crate::machinery::schema::Structural;
use crate::registry::resource_type::ResourceType;
use crate::registry::resource_type::{CustomVersion, PrinterColumn};
use crate::tenancy::shards::ShardMap;

/// Where CustomResourceDefinitions are stored.
pub const CRD_RESOURCE: &str = "apiextensions.k8s.io/customresourcedefinitions";

/// Whether `crd` has condition `kind` with status True.
pub fn condition_true(crd: &Value, kind: &str) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c["type"] == kind && c["status"] == "True")
        })
}

fn text(value: &Value, pointer: &str) -> String {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn strings(value: &Value, pointer: &str) -> Vec<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The resources a stored CRD makes a workspace serve: one per served version, once its names
/// are accepted (as kube-apiserver, which serves a CRD from `NamesAccepted` on, and lists it
/// in discovery from `Established`).
pub fn resource_types(crd: &Value) -> Vec<ResourceType> {
    if !condition_true(crd, "NamesAccepted") && !condition_true(crd, "Established") {
        return Vec::new();
    }
    let group = text(crd, "/spec/group");
    let names = crd.pointer("/spec/names").cloned().unwrap_or_default();
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let storage_version = versions
        .iter()
        .find(|v| v["storage"] == true)
        .and_then(|v| v["name"].as_str())
        .unwrap_or_default()
        .to_string();
    let terminating = crd.pointer("/metadata/deletionTimestamp").is_some();
    let crd_name = text(crd, "/metadata/name");
    let kind = text(&names, "/kind");
    versions
        .iter()
        .filter(|v| v["served"] == true)
        .map(|v| {
            let schema = v.pointer("/schema/openAPIV3Schema").cloned();
            let structural = schema
                .as_ref()
                .and_then(|s| Structural::parse(s).ok())
                .map(Arc::new);
            let columns = v
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .map(|columns| {
                    columns
                        .iter()
                        .map(|c| PrinterColumn {
                            name: text(c, "/name"),
                            type_: text(c, "/type"),
                            format: text(c, "/format"),
                            description: text(c, "/description"),
                            priority: c["priority"].as_i64().unwrap_or(0),
                            json_path: text(c, "/jsonPath"),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let selectable_fields = v
                .get("selectableFields")
                .and_then(Value::as_array)
                .map(|fields| {
                    fields
                        .iter()
                        .filter_map(|f| f["jsonPath"].as_str())
                        .map(|p| p.trim_start_matches('.').to_string())
                        .collect()
                })
                .unwrap_or_default();
            let scale = v.pointer("/subresources/scale").map(|s| ScalePaths {
                spec_replicas: text(s, "/specReplicasPath"),
                status_replicas: text(s, "/statusReplicasPath"),
                label_selector: s["labelSelectorPath"].as_str().map(str::to_string),
            });
            let deprecation_warning = (v["deprecated"] == true).then(|| {
                v["deprecationWarning"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| {
                        format!(
                            "{group}/{} {kind} is deprecated",
                            v["name"].as_str().unwrap_or_default()
                        )
                    })
            });
            ResourceType {
                kind_rules: None,
                schema_name: None,
                own_schema: None,
                group: group.clone(),
                version: text(v, "/name"),
                kind: kind.clone(),
                plural: text(&names, "/plural"),
                singular: match text(&names, "/singular") {
                    s if s.is_empty() => kind.to_lowercase(),
                    s => s,
                },
                namespaced: crd.pointer("/spec/scope").and_then(Value::as_str)
                    == Some("Namespaced"),
                short_names: strings(&names, "/shortNames"),
                categories: strings(&names, "/categories"),
                subresources: Subresources {
                    status: v.pointer("/subresources/status").is_some(),
                    scale,
                    ..Subresources::default()
                },
                stored_as: None,
                custom: Some(Arc::new(CustomVersion {
                    crd_name: crd_name.clone(),
                    storage_version: storage_version.clone(),
                    schema,
                    structural,
                    columns,
                    selectable_fields,
                    terminating,
                    deprecation_warning,
                })),
            }
        })
        .collect()
}

/// The per-workspace cache of custom resources.
pub struct CustomResources {
    shards: Arc<ShardMap>,
    clusters: RwLock<HashMap<String, Arc<Vec<Arc<ResourceType>>>>>,
    /// Bumped by every invalidation, so a read that raced one is not cached.
    epoch: AtomicU64,
}

impl CustomResources {
    pub fn new(shards: Arc<ShardMap>) -> CustomResources {
        CustomResources {
            shards,
            clusters: RwLock::new(HashMap::new()),
            epoch: AtomicU64::new(0),
        }
    }

    pub fn shards(&self) -> &ShardMap {
        &self.shards
    }

    fn cached(&self, cluster: &str) -> Option<Arc<Vec<Arc<ResourceType>>>> {
        self.clusters
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(cluster)
            .cloned()
    }

    /// Reads `cluster`'s CRDs from storage. A storage error serves no custom resources this
    /// time and caches nothing.
    async fn load(&self, cluster: &str) -> Arc<Vec<Arc<ResourceType>>> {
        let epoch = self.epoch.load(Ordering::Acquire);
        let store = match self.shards.shard_for(cluster).await {
            Ok(shard) => shard.store.clone(),
            Err(e) => {
                tracing::debug!(cluster, error = ?e, "no shard for custom resources");
                return Arc::new(Vec::new());
            }
        };
        let listed = match store
            .list(ListRequest::new(ListScope::cluster(cluster, CRD_RESOURCE)))
            .await
        {
            Ok(listed) => listed,
            Err(e) => {
                tracing::warn!(cluster, error = %e, "reading custom resource definitions");
                return Arc::new(Vec::new());
            }
        };
        let types: Vec<Arc<ResourceType>> = listed
            .items
            .iter()
            .filter_map(|item| serde_json::from_slice::<Value>(&item.value).ok())
            .flat_map(|crd| resource_types(&crd))
            .map(Arc::new)
            .collect();
        let types = Arc::new(types);
        let mut clusters = self.clusters.write().unwrap_or_else(|e| e.into_inner());
        if self.epoch.load(Ordering::Acquire) == epoch {
            clusters.insert(cluster.to_string(), types.clone());
        }
        types
    }

    pub async fn resources(&self, cluster: &str) -> Vec<Arc<ResourceType>> {
        match self.cached(cluster) {
            Some(types) => types.as_ref().clone(),
            None => self.load(cluster).await.as_ref().clone(),
        }
    }

    /// A resource missing from the cache is looked for again in storage: its CRD may have
    /// been written on another replica a moment ago.
    pub async fn lookup(
        &self,
        cluster: &str,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<Arc<ResourceType>> {
        let find = |types: &[Arc<ResourceType>]| {
            types
                .iter()
                .find(|r| r.group == group && r.version == version && r.plural == plural)
                .cloned()
        };
        if let Some(found) = self.cached(cluster).and_then(|types| find(&types)) {
            return Some(found);
        }
        find(&self.load(cluster).await)
    }

    pub fn invalidate(&self, cluster: &str) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.clusters
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(cluster);
    }

    fn invalidate_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.clusters
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Invalidates a workspace's entry on every change to its CRDs. Runs for the life of the
    /// process; a broken watch drops the whole cache and starts again.
    pub async fn watch(&self, store: Store) {
        loop {
            match store
                .watch(ListScope::all_clusters(CRD_RESOURCE), None)
                .await
            {
                Ok(mut watch) => {
                    // Whatever changed before the watch started is read fresh.
                    self.invalidate_all();
                    while let Some(event) = watch.next().await {
                        match event {
                            Ok(event) => self.invalidate(&event.object.key.cluster),
                            Err(e) => {
                                tracing::warn!(error = %e, "custom resource definition watch ended");
                                break;
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "watching custom resource definitions"),
            }
            self.invalidate_all();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd(conditions: Value) -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1", "served": true, "storage": true,
                     "schema": {"openAPIV3Schema": {"type": "object"}},
                     "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
                     "additionalPrinterColumns": [{"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"}]},
                    {"name": "v1beta1", "served": true, "storage": false, "deprecated": true},
                    {"name": "v1alpha1", "served": false, "storage": false},
                ],
            },
            "status": {"conditions": conditions},
        })
    }

    #[test]
    fn served_versions_of_an_accepted_crd() {
        assert!(resource_types(&crd(json!([]))).is_empty());
        let types = resource_types(&crd(json!([{"type": "NamesAccepted", "status": "True"}])));
        let versions: Vec<&str> = types.iter().map(|t| t.version.as_str()).collect();
        assert_eq!(versions, ["v1", "v1beta1"]);
        let v1 = &types[0];
        assert_eq!(v1.storage_resource(), "example.com/widgets");
        assert!(v1.namespaced && v1.subresources.status);
        assert_eq!(
            v1.subresources.scale.as_ref().unwrap().spec_replicas,
            ".spec.replicas"
        );
        let custom = v1.custom.as_ref().unwrap();
        assert_eq!(custom.storage_version, "v1");
        assert_eq!(custom.columns[0].json_path, ".spec.replicas");
        assert_eq!(
            types[1]
                .custom
                .as_ref()
                .unwrap()
                .deprecation_warning
                .as_deref(),
            Some("example.com/v1beta1 Widget is deprecated")
        );
        assert!(!types[1].subresources.status);
    }
}
