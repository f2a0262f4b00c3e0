//! Tests every kind must pass, whatever its group: its names agree with each other and with
//! its schema name, kube-rs can use it (`kube::Api<K>`, `ResourceExt`), its JSON round-trips,
//! and its schema is one the server's structural-schema engine can take (keyed lists have
//! required keys; the only `anyOf` is an optional field's). Per-kind rules are tested beside
//! the kind. Also [`openapi_definitions`], the schemas as the server generates them.

use k8s_openapi::NamespaceResourceScope;
use kube::{Resource, ResourceExt};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use crate::compute::{GPUPool, Placement, SyncTarget};
use crate::core::{LogicalCluster, Shard};
use crate::serving::ModelDeployment;
use crate::tenancy::{Workspace, WorkspaceSpec, WorkspaceType};
use crate::ApiObject;

/// The component schemas for `K` and everything it references, generated the way the
/// server's OpenAPI documents are (OpenAPI 3 settings).
pub(crate) fn openapi_definitions<K: JsonSchema>() -> Map<String, Value> {
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    generator.subschema_for::<K>();
    generator.take_definitions(true)
}

/// Follows `$ref` and `allOf: [{$ref}]` (a reference with its own description) to the named
/// definition.
pub(crate) fn resolve<'a>(definitions: &'a Map<String, Value>, schema: &'a Value) -> &'a Value {
    let reference = schema
        .get("$ref")
        .or_else(|| schema.pointer("/allOf/0/$ref"))
        .and_then(Value::as_str);
    match reference.and_then(|r| r.rsplit('/').next()) {
        Some(name) => definitions.get(name).unwrap_or(&Value::Null),
        None => schema,
    }
}

/// Calls `$check::<K>()` for every kind of every group.
macro_rules! for_every_kind {
    ($check:ident) => {
        $check::<Workspace>("tenancy");
        $check::<WorkspaceType>("tenancy");
        $check::<LogicalCluster>("core");
        $check::<Shard>("core");
        $check::<SyncTarget>("compute");
        $check::<GPUPool>("compute");
        $check::<Placement>("compute");
        $check::<ModelDeployment>("serving");
    };
}

#[test]
fn names_agree_with_each_other_and_the_schema_name() {
    fn check<K: ApiObject>(prefix: &str) {
        assert_eq!(K::GROUP, format!("{prefix}.trellis.dev"));
        assert_eq!(K::KIND, K::kind(&()));
        assert_eq!(K::PLURAL, K::plural(&()));
        assert_eq!(K::PLURAL, K::KIND.to_lowercase() + "s");
        assert_eq!(K::api_version(&()), format!("{}/{}", K::GROUP, K::VERSION));
        assert_eq!(
            K::schema_name(),
            format!("dev.trellis.{prefix}.{}.{}", K::VERSION, K::KIND)
        );
    }
    for_every_kind!(check);
}

#[test]
fn url_paths_are_the_ones_the_hub_serves() {
    assert_eq!(
        Workspace::url_path(&(), None),
        "/apis/tenancy.trellis.dev/v1alpha1/workspaces"
    );
    assert_eq!(
        WorkspaceType::url_path(&(), None),
        "/apis/tenancy.trellis.dev/v1alpha1/workspacetypes"
    );
    assert_eq!(
        LogicalCluster::url_path(&(), None),
        "/apis/core.trellis.dev/v1alpha1/logicalclusters"
    );
    assert_eq!(
        Shard::url_path(&(), None),
        "/apis/core.trellis.dev/v1alpha1/shards"
    );
    assert_eq!(
        SyncTarget::url_path(&(), None),
        "/apis/compute.trellis.dev/v1alpha1/synctargets"
    );
    assert_eq!(
        GPUPool::url_path(&(), None),
        "/apis/compute.trellis.dev/v1alpha1/gpupools"
    );
    assert_eq!(
        Placement::url_path(&(), Some("target-eu-1")),
        "/apis/compute.trellis.dev/v1alpha1/namespaces/target-eu-1/placements"
    );
    assert_eq!(
        ModelDeployment::url_path(&(), Some("ml")),
        "/apis/serving.trellis.dev/v1alpha1/namespaces/ml/modeldeployments"
    );
    const { assert!(!Workspace::NAMESPACED && !Shard::NAMESPACED && !GPUPool::NAMESPACED) };
    const { assert!(ModelDeployment::NAMESPACED && Placement::NAMESPACED) };
}

#[test]
fn kube_api_takes_every_kind() {
    // Checked at compile time: this builds only if each kind meets the bounds of
    // `kube::Api::all`, `get`, `list` and `watch` (and `namespaced` for namespaced kinds).
    fn check<K: ApiObject>(_: &str) {
        let _all: fn(kube::Client) -> kube::Api<K> = kube::Api::all;
        let _get = kube::Api::<K>::get;
        let _list = kube::Api::<K>::list;
        let _watch = kube::Api::<K>::watch;
    }
    for_every_kind!(check);
    fn namespaced<K>()
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
    {
        let _namespaced: fn(kube::Client, &str) -> kube::Api<K> = kube::Api::namespaced;
    }
    namespaced::<ModelDeployment>();
    namespaced::<Placement>();
}

#[test]
fn new_fills_type_meta_and_resource_ext_reaches_metadata() {
    let mut ws = Workspace::new("ml", WorkspaceSpec::default());
    assert_eq!(
        ws.api_version.as_deref(),
        Some("tenancy.trellis.dev/v1alpha1")
    );
    assert_eq!(ws.kind.as_deref(), Some("Workspace"));
    assert_eq!(ws.name_any(), "ml");
    ws.labels_mut().insert("team".into(), "ml".into());
    ws.annotations_mut()
        .insert(crate::CLUSTER_ANNOTATION.into(), "root:acme".into());
    assert_eq!(
        ws.metadata.labels.as_ref().map(|l| l["team"].as_str()),
        Some("ml")
    );
    assert_eq!(ws.labels()["team"], "ml");
    assert_eq!(
        ws.object_ref(&()).api_version.as_deref(),
        Some("tenancy.trellis.dev/v1alpha1")
    );
}

/// Serializing what was read gives back the same JSON.
pub(crate) fn round_trips<K: DeserializeOwned + serde::Serialize>(object: Value) -> K {
    let typed: K = match serde_json::from_value(object.clone()) {
        Ok(typed) => typed,
        Err(e) => panic!("does not deserialize: {e}"),
    };
    assert_eq!(serde_json::to_value(&typed).ok(), Some(object));
    typed
}

#[test]
fn a_workspace_as_the_server_returns_it_round_trips() {
    let ws: Workspace = round_trips(json!({
        "apiVersion": "tenancy.trellis.dev/v1alpha1",
        "kind": "Workspace",
        "metadata": {
            "name": "ml",
            "uid": "6f1c2a9e-3b1d-4d0a-9a52-0c5f1e7b8d21",
            "resourceVersion": "4182",
            "generation": 1,
            "creationTimestamp": "2025-06-01T10:00:00Z",
            "labels": {"team": "ml"},
            "annotations": {"trellis.dev/cluster": "root:acme"},
        },
        "spec": {
            "type": {"name": "universal", "path": "root"},
            "cluster": "2cynbfy2m0wtjqcs",
        },
        "status": {
            "phase": "Ready",
            "url": "https://hub:6443/clusters/root:acme:ml",
            "shard": "root",
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "Initialized", "message": "",
                "lastTransitionTime": "2025-06-01T10:00:02Z",
            }],
        },
    }));
    assert_eq!(ws.spec.cluster.as_deref(), Some("2cynbfy2m0wtjqcs"));
    assert_eq!(ws.status.map(|s| s.phase), Some(Some("Ready".into())));
}

#[test]
fn keyed_lists_have_required_keys() {
    // A list map needs every key present (required, or defaulted) in every item.
    fn check<K: ApiObject>(_: &str) {
        let definitions = openapi_definitions::<K>();
        for (name, definition) in &definitions {
            let Some(properties) = definition.get("properties").and_then(Value::as_object) else {
                continue;
            };
            for (field, schema) in properties {
                if schema.get("x-kubernetes-list-type") != Some(&json!("map")) {
                    continue;
                }
                let item = resolve(&definitions, &schema["items"]);
                let keys = schema["x-kubernetes-list-map-keys"].as_array();
                assert!(
                    keys.is_some_and(|k| !k.is_empty()),
                    "{name}.{field}: no keys"
                );
                for key in keys.into_iter().flatten() {
                    let required = item["required"].as_array().is_some_and(|r| r.contains(key));
                    let key = key.as_str().unwrap_or_default();
                    let defaulted = item["properties"][key].get("default").is_some();
                    assert!(required || defaulted, "{name}.{field}: key {key} optional");
                }
            }
        }
    }
    for_every_kind!(check);
}

#[test]
fn the_only_any_of_is_an_optional_field() {
    // What the server's schema reader must expect: `Option<T>` of a referenced type is
    // `anyOf: [{$ref}, {enum: [null], nullable: true}]`; enums are plain string enums.
    fn walk(path: &str, schema: &Value) {
        match schema {
            Value::Object(map) => {
                assert!(!map.contains_key("oneOf"), "{path}: oneOf");
                if let Some(any_of) = map.get("anyOf") {
                    assert_eq!(
                        any_of[1],
                        json!({"enum": [null], "nullable": true}),
                        "{path}"
                    );
                    assert!(any_of[0].get("$ref").is_some(), "{path}");
                }
                for (k, v) in map {
                    walk(&format!("{path}/{k}"), v);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(path, v)),
            _ => {}
        }
    }
    fn check<K: ApiObject>(_: &str) {
        for (name, definition) in openapi_definitions::<K>() {
            if name.starts_with("dev.trellis.") {
                walk(&name, &definition);
            }
        }
    }
    for_every_kind!(check);
}

/// Checks that each `default` in `T`'s schema is what serde fills in when the field is
/// missing from `minimal`, and what `T::default()` holds; returns how many there were.
pub(crate) fn defaults_agree<T>(minimal: Value) -> usize
where
    T: JsonSchema + DeserializeOwned + serde::Serialize + Default,
{
    let definitions = openapi_definitions::<T>();
    let schema = &definitions[T::schema_name().as_ref()];
    let read: T = match serde_json::from_value(minimal.clone()) {
        Ok(read) => read,
        Err(e) => panic!("{minimal} does not deserialize: {e}"),
    };
    let read = serde_json::to_value(read).unwrap_or_default();
    let default = serde_json::to_value(T::default()).unwrap_or_default();
    let mut checked = 0;
    for (field, property) in schema["properties"].as_object().into_iter().flatten() {
        let Some(schema_default) = property.get("default") else {
            continue;
        };
        assert!(
            minimal.get(field).is_none(),
            "{field} is in the minimal object"
        );
        assert_eq!(&read[field], schema_default, "serde's default of {field}");
        assert_eq!(&default[field], schema_default, "Default's {field}");
        checked += 1;
    }
    checked
}
