//! Scenarios as a user of `kubectl apply --server-side` sees them.

use serde_json::{json, Value};

use super::conflict::*;
use super::managed_fields::*;
use super::schema::*;
use super::*;

const T1: &str = "2026-11-27T06:00:00Z";
const T2: &str = "2026-11-27T06:05:00Z";

fn opts(manager: &str) -> ApplyOptions<'_> {
    ApplyOptions {
        manager,
        api_version: "v1",
        time: T1,
        force: false,
        subresource: None,
        ignored: &[],
    }
}

fn forced(manager: &str) -> ApplyOptions<'_> {
    ApplyOptions {
        force: true,
        ..opts(manager)
    }
}

fn cm(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "c", "namespace": "d"}, "data": data})
}

fn configmaps() -> MergeRules<'static> {
    MergeRules::builtin("ConfigMap")
}

/// `manager -> fieldsV1 text` for every entry, to assert ownership.
fn owners(obj: &Value) -> Vec<(String, &'static str, String)> {
    read_managed_fields(obj)
        .unwrap()
        .into_iter()
        .map(|e| (e.manager, e.operation.as_str(), e.fields.to_json_string()))
        .collect()
}

fn owner(manager: &str, op: &'static str, fields: &str) -> (String, &'static str, String) {
    (manager.to_string(), op, fields.to_string())
}

#[test]
fn first_apply_creates_the_object_and_records_the_applier() {
    let obj = apply(
        None,
        &cm(json!({"a": "1"})),
        &opts("kubectl"),
        &configmaps(),
    )
    .unwrap();
    assert_eq!(obj["data"], json!({"a": "1"}));
    assert_eq!(
        obj["metadata"]["managedFields"],
        json!([{"manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "time": T1,
                "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}}}}])
    );
}

#[test]
fn a_repeated_apply_changes_nothing_once_times_are_kept() {
    let v1 = apply(
        None,
        &cm(json!({"a": "1"})),
        &opts("kubectl"),
        &configmaps(),
    )
    .unwrap();
    let later = ApplyOptions {
        time: T2,
        ..opts("kubectl")
    };
    let mut again = apply(Some(&v1), &cm(json!({"a": "1"})), &later, &configmaps()).unwrap();
    assert_eq!(again["metadata"]["managedFields"][0]["time"], T2);
    keep_times_if_unchanged(&v1, &mut again);
    assert_eq!(again, v1);
    // A real change keeps its new time.
    let mut changed = apply(Some(&v1), &cm(json!({"a": "2"})), &later, &configmaps()).unwrap();
    keep_times_if_unchanged(&v1, &mut changed);
    assert_eq!(changed["metadata"]["managedFields"][0]["time"], T2);
}

#[test]
fn server_fields_in_the_config_are_neither_owned_nor_applied() {
    let live = {
        let mut o = apply(
            None,
            &cm(json!({"a": "1"})),
            &opts("kubectl"),
            &configmaps(),
        )
        .unwrap();
        o["metadata"]["uid"] = json!("u-1");
        o["metadata"]["resourceVersion"] = json!("7");
        o
    };
    let mut config = cm(json!({"a": "1"}));
    config["metadata"]["uid"] = json!("forged");
    config["metadata"]["resourceVersion"] = json!("7");
    config["metadata"]["creationTimestamp"] = Value::Null;
    let obj = apply(Some(&live), &config, &opts("kubectl"), &configmaps()).unwrap();
    assert_eq!(obj["metadata"]["uid"], "u-1");
    assert!(obj["metadata"].get("creationTimestamp").is_none());
    assert_eq!(
        owners(&obj),
        [owner("kubectl", "Apply", r#"{"f:data":{"f:a":{}}}"#)]
    );
}

#[test]
fn reapplying_without_a_field_removes_it() {
    let v1 = apply(
        None,
        &cm(json!({"a": "1", "b": "2"})),
        &opts("kubectl"),
        &configmaps(),
    )
    .unwrap();
    let v2 = apply(
        Some(&v1),
        &cm(json!({"a": "1"})),
        &opts("kubectl"),
        &configmaps(),
    )
    .unwrap();
    assert_eq!(v2["data"], json!({"a": "1"}));
    // Dropping a whole block removes it rather than leaving `{}` behind.
    let mut bare = cm(json!({}));
    bare.as_object_mut().unwrap().remove("data");
    let v3 = apply(Some(&v2), &bare, &opts("kubectl"), &configmaps()).unwrap();
    assert!(v3.get("data").is_none(), "{v3}");
    assert!(v3["metadata"].get("managedFields").is_none());
}

#[test]
fn changing_another_appliers_field_conflicts_and_force_takes_it() {
    let v1 = apply(
        None,
        &cm(json!({"key": "1"})),
        &opts("alice"),
        &configmaps(),
    )
    .unwrap();
    let err = apply(
        Some(&v1),
        &cm(json!({"key": "2"})),
        &opts("bob"),
        &configmaps(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "alice": .data.key"#
    );
    let status = serde_json::to_value(err.to_status()).unwrap();
    assert_eq!(status["code"], 409);
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(
        status["details"]["causes"],
        json!([{"reason": "FieldManagerConflict", "message": "conflict with \"alice\"",
                "field": ".data.key"}])
    );

    let v2 = apply(
        Some(&v1),
        &cm(json!({"key": "2"})),
        &forced("bob"),
        &configmaps(),
    )
    .unwrap();
    assert_eq!(v2["data"]["key"], "2");
    assert_eq!(
        owners(&v2),
        [owner("bob", "Apply", r#"{"f:data":{"f:key":{}}}"#)]
    );
}

#[test]
fn appliers_of_the_same_value_share_it_and_it_survives_one_leaving() {
    let v1 = apply(
        None,
        &cm(json!({"shared": "x", "a": "1"})),
        &opts("alice"),
        &configmaps(),
    )
    .unwrap();
    let v2 = apply(
        Some(&v1),
        &cm(json!({"shared": "x"})),
        &opts("bob"),
        &configmaps(),
    )
    .unwrap();
    assert_eq!(
        owners(&v2),
        [
            owner("alice", "Apply", r#"{"f:data":{"f:a":{},"f:shared":{}}}"#),
            owner("bob", "Apply", r#"{"f:data":{"f:shared":{}}}"#),
        ]
    );
    let v3 = apply(
        Some(&v2),
        &cm(json!({"a": "1"})),
        &opts("alice"),
        &configmaps(),
    )
    .unwrap();
    assert_eq!(v3["data"], json!({"a": "1", "shared": "x"}));
    // With bob gone too, nobody keeps it.
    let v4 = apply(Some(&v3), &cm(json!({})), &opts("bob"), &configmaps()).unwrap();
    assert_eq!(v4["data"], json!({"a": "1"}));
}

#[test]
fn an_updated_field_conflicts_with_a_later_applier() {
    let mut created = cm(json!({"key": "1"}));
    let update = UpdateOptions {
        manager: "kubectl-client-side-apply",
        api_version: "v1",
        time: T1,
        subresource: None,
        ignored: &[],
    };
    track_update(None, &mut created, &update, &configmaps());
    let err = apply(
        Some(&created),
        &cm(json!({"key": "2"})),
        &opts("kubectl"),
        &configmaps(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using v1: .data.key"#
    );
    let status = serde_json::to_value(err.to_status()).unwrap();
    assert_eq!(
        status["details"]["causes"][0]["message"],
        "conflict with \"kubectl-client-side-apply\" using v1"
    );
    // The same value is no conflict: ownership is shared.
    let same = apply(
        Some(&created),
        &cm(json!({"key": "1"})),
        &opts("kubectl"),
        &configmaps(),
    )
    .unwrap();
    assert_eq!(owners(&same).len(), 2);
}

#[test]
fn several_conflicts_are_listed_by_manager() {
    let v1 = apply(
        None,
        &cm(json!({"a": "1", "b": "1"})),
        &opts("zed"),
        &configmaps(),
    )
    .unwrap();
    let mut v2 = v1.clone();
    v2["data"]["c"] = json!("1");
    let update = UpdateOptions {
        manager: "amy",
        api_version: "v1",
        time: T2,
        subresource: None,
        ignored: &[],
    };
    track_update(Some(&v1), &mut v2, &update, &configmaps());
    let err = apply(
        Some(&v2),
        &cm(json!({"a": "2", "b": "2", "c": "2"})),
        &opts("kubectl"),
        &configmaps(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 3 conflicts: conflicts with \"amy\" using v1:\n- .data.c\nconflicts with \"zed\":\n- .data.a\n- .data.b"
    );
}

#[test]
fn map_lists_keep_other_managers_elements() {
    let rules = MergeRules::builtin("ServiceAccount");
    let sa = |secrets: Value| {
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "s"}, "secrets": secrets})
    };
    let v1 = apply(None, &sa(json!([{"name": "a"}])), &opts("alice"), &rules).unwrap();
    let v2 = apply(Some(&v1), &sa(json!([{"name": "b"}])), &opts("bob"), &rules).unwrap();
    assert_eq!(v2["secrets"], json!([{"name": "a"}, {"name": "b"}]));
    assert_eq!(
        owners(&v2)[1],
        owner(
            "bob",
            "Apply",
            r#"{"f:secrets":{"k:{\"name\":\"b\"}":{".":{},"f:name":{}}}}"#
        )
    );
    // Alice dropping hers removes only hers.
    let v3 = apply(Some(&v2), &sa(json!([])), &opts("alice"), &rules).unwrap();
    assert_eq!(v3["secrets"], json!([{"name": "b"}]));
}

#[test]
fn set_lists_merge_by_value() {
    let rules = configmaps();
    let with = |finalizers: Value| {
        let mut o = cm(json!({}));
        o["metadata"]["finalizers"] = finalizers;
        o
    };
    let v1 = apply(None, &with(json!(["a"])), &opts("alice"), &rules).unwrap();
    let v2 = apply(Some(&v1), &with(json!(["b"])), &opts("bob"), &rules).unwrap();
    assert_eq!(v2["metadata"]["finalizers"], json!(["a", "b"]));
    assert_eq!(
        owners(&v2)[1].2,
        r#"{"f:data":{},"f:metadata":{"f:finalizers":{"v:\"b\"":{}}}}"#
    );
    let v3 = apply(Some(&v2), &with(json!([])), &opts("bob"), &rules).unwrap();
    assert_eq!(v3["metadata"]["finalizers"], json!(["a"]));
}

#[test]
fn atomic_lists_are_replaced_whole_and_owned_whole() {
    let schema = json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
            "args": {"type": "array", "items": {"type": "string"}}}}}});
    let rules = MergeRules::Schema(&schema);
    let obj = |args: Value| {
        json!({"apiVersion": "v1", "kind": "Widget", "metadata": {"name": "w"},
               "spec": {"args": args}})
    };
    let v1 = apply(None, &obj(json!(["a", "b"])), &opts("alice"), &rules).unwrap();
    assert_eq!(owners(&v1)[0].2, r#"{"f:spec":{"f:args":{}}}"#);
    let err = apply(Some(&v1), &obj(json!(["c"])), &opts("bob"), &rules).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "alice": .spec.args"#
    );
    let v2 = apply(Some(&v1), &obj(json!(["c"])), &forced("bob"), &rules).unwrap();
    assert_eq!(v2["spec"]["args"], json!(["c"]));
}

#[test]
fn crd_map_lists_and_granular_maps_merge_per_schema() {
    let schema = json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
            "ports": {"type": "array", "x-kubernetes-list-type": "map",
                      "x-kubernetes-list-map-keys": ["port"],
                      "items": {"type": "object", "properties": {
                          "port": {"type": "integer"}, "name": {"type": "string"}}}},
            "selector": {"type": "object", "x-kubernetes-map-type": "atomic",
                         "additionalProperties": {"type": "string"}}}}}});
    let rules = MergeRules::Schema(&schema);
    let obj = |spec: Value| json!({"apiVersion": "v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec});
    let v1 = apply(
        None,
        &obj(json!({"ports": [{"port": 80, "name": "http"}], "selector": {"a": "1"}})),
        &opts("alice"),
        &rules,
    )
    .unwrap();
    let v2 = apply(
        Some(&v1),
        &obj(json!({"ports": [{"port": 443, "name": "https"}]})),
        &opts("bob"),
        &rules,
    )
    .unwrap();
    assert_eq!(
        v2["spec"]["ports"],
        json!([{"port": 80, "name": "http"}, {"port": 443, "name": "https"}])
    );
    let err = apply(
        Some(&v2),
        &obj(json!({"selector": {"b": "2"}})),
        &opts("bob"),
        &rules,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "alice": .spec.selector"#
    );
}

#[test]
fn custom_resources_metadata_follows_object_meta() {
    let schema = json!({"type": "object", "properties": {
        "metadata": {"type": "object"}, "spec": {"type": "object"}}});
    let rules = MergeRules::Schema(&schema);
    let obj = |finalizers: Value| {
        json!({"apiVersion": "v1", "kind": "Widget",
               "metadata": {"name": "w", "labels": {"a": "1"}, "finalizers": finalizers}})
    };
    let v1 = apply(None, &obj(json!(["x"])), &opts("alice"), &rules).unwrap();
    assert_eq!(
        owners(&v1)[0].2,
        r#"{"f:metadata":{"f:finalizers":{"v:\"x\"":{}},"f:labels":{"f:a":{}}}}"#
    );
    let v2 = apply(Some(&v1), &obj(json!(["y"])), &opts("bob"), &rules).unwrap();
    assert_eq!(v2["metadata"]["finalizers"], json!(["x", "y"]));
}

#[test]
fn deep_input_is_refused_without_overflowing() {
    let mut deep = json!("leaf");
    for _ in 0..120 {
        deep = json!({ "a": deep });
    }
    let config = cm(deep.clone());
    assert!(matches!(
        apply(None, &config, &opts("kubectl"), &configmaps()),
        Err(ApplyError::Invalid(_))
    ));
    let mut new = config.clone();
    let update = UpdateOptions {
        manager: "m",
        api_version: "v1",
        time: T1,
        subresource: None,
        ignored: &[],
    };
    track_update(None, &mut new, &update, &configmaps());
    let mut newer = new.clone();
    newer["data"] = json!({"b": deep});
    track_update(Some(&new), &mut newer, &update, &configmaps());
    assert!(
        read_managed_fields(&new).is_ok(),
        "{:?}",
        read_managed_fields(&new).err()
    );
    assert!(
        read_managed_fields(&newer).is_ok(),
        "{:?}",
        read_managed_fields(&newer).err()
    );
}

#[test]
fn bad_apply_requests_are_refused() {
    let mut with_managed = cm(json!({}));
    with_managed["metadata"]["managedFields"] = json!([]);
    let err = apply(None, &with_managed, &opts("kubectl"), &configmaps()).unwrap_err();
    assert_eq!(err.to_string(), "metadata.managedFields must be nil");
    assert_eq!(err.to_status().code, 400);

    let mut other_version = cm(json!({}));
    other_version["apiVersion"] = json!("v2");
    assert!(matches!(
        apply(None, &other_version, &opts("kubectl"), &configmaps()),
        Err(ApplyError::Invalid(_))
    ));

    let mut dup = cm(json!({}));
    dup["metadata"]["finalizers"] = json!(["a", "a"]);
    assert!(matches!(
        apply(None, &dup, &opts("kubectl"), &configmaps()),
        Err(ApplyError::Invalid(_))
    ));

    assert!(apply(None, &json!([1]), &opts("kubectl"), &configmaps()).is_err());
}

#[test]
fn reset_fields_are_not_owned() {
    let rules = MergeRules::builtin("Namespace");
    let main = ApplyOptions {
        ignored: &[&["status"]],
        ..opts("kubectl")
    };
    let ns = json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": "n", "labels": {"a": "1"}},
                    "status": {"phase": "Active"}});
    let obj = apply(None, &ns, &main, &rules).unwrap();
    assert_eq!(
        owners(&obj),
        [owner(
            "kubectl",
            "Apply",
            r#"{"f:metadata":{"f:labels":{"f:a":{}}}}"#
        )]
    );
    let mut edited = obj.clone();
    edited["status"]["phase"] = json!("Terminating");
    let update = UpdateOptions {
        manager: "kubectl-edit",
        api_version: "v1",
        time: T2,
        subresource: None,
        ignored: &[&["status"]],
    };
    track_update(Some(&obj), &mut edited, &update, &rules);
    assert_eq!(owners(&edited), owners(&obj));
}

#[test]
fn applying_and_updating_under_one_name_are_separate_managers() {
    let v1 = apply(
        None,
        &cm(json!({"a": "1"})),
        &opts("kubectl"),
        &configmaps(),
    )
    .unwrap();
    let mut v2 = v1.clone();
    v2["data"]["b"] = json!("1");
    let edit = UpdateOptions {
        manager: "kubectl",
        api_version: "v1",
        time: T2,
        subresource: None,
        ignored: &[],
    };
    track_update(Some(&v1), &mut v2, &edit, &configmaps());
    assert_eq!(
        owners(&v2),
        [
            owner("kubectl", "Apply", r#"{"f:data":{"f:a":{}}}"#),
            owner("kubectl", "Update", r#"{"f:data":{"f:b":{}}}"#),
        ]
    );
    // The applier changing `b` conflicts with its own name's update, and force moves it.
    let err = apply(
        Some(&v2),
        &cm(json!({"a": "1", "b": "2"})),
        &opts("kubectl"),
        &configmaps(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kubectl" using v1: .data.b"#
    );
    let v3 = apply(
        Some(&v2),
        &cm(json!({"a": "1", "b": "2"})),
        &forced("kubectl"),
        &configmaps(),
    )
    .unwrap();
    assert_eq!(
        owners(&v3),
        [owner(
            "kubectl",
            "Apply",
            r#"{"f:data":{"f:a":{},"f:b":{}}}"#
        )]
    );
}

/// `kubectl apply --server-side` on an object made by client-side apply: kubectl first hands
/// the client-side manager's fields to its own Apply entry (owning `data` and the annotations
/// map as wholes), then applies only `data.k`. What it gave up but still owns below, or what
/// another manager owns, stays (as in Kubernetes); before, `data` and the annotation vanished.
#[test]
fn giving_up_a_field_keeps_what_is_still_owned_below_it() {
    let last_applied = "kubectl.kubernetes.io/last-applied-configuration";
    let live = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": "c", "namespace": "d",
            "annotations": {last_applied: "{}"},
            "managedFields": [
                {"manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "time": T1,
                 "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:data": {".": {}, "f:k": {}},
                              "f:metadata": {"f:annotations": {".": {}, format!("f:{last_applied}"): {}}}}},
                {"manager": "kubectl-last-applied", "operation": "Apply", "apiVersion": "v1",
                 "time": T1, "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:annotations": {format!("f:{last_applied}"): {}}}}}
            ]
        },
        "data": {"k": "v1"}
    });
    let obj = apply(
        Some(&live),
        &cm(json!({"k": "v2"})),
        &forced("kubectl"),
        &configmaps(),
    )
    .unwrap();
    assert_eq!(obj["data"], json!({"k": "v2"}));
    assert_eq!(obj["metadata"]["annotations"], json!({last_applied: "{}"}));
    assert_eq!(
        owners(&obj),
        vec![
            owner("kubectl", "Apply", r#"{"f:data":{"f:k":{}}}"#),
            owner(
                "kubectl-last-applied",
                "Apply",
                &format!(r#"{{"f:metadata":{{"f:annotations":{{"f:{last_applied}":{{}}}}}}}}"#)
            ),
        ]
    );

    // Giving up a whole block nobody else has anything in still removes it.
    let without_data = json!({"apiVersion": "v1", "kind": "ConfigMap",
                              "metadata": {"name": "c", "namespace": "d"}});
    let again = apply(Some(&obj), &without_data, &opts("kubectl"), &configmaps()).unwrap();
    assert!(again.get("data").is_none(), "{again}");
}
