//! The hub against kube-rs, a client with its own (rustls) TLS, watcher and reflector.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::Api;
use serde_json::json;
use trellis_integration_tests::{on_both_stores, Hub};

fn configmap(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "data": data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
    }))
    .unwrap()
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn api_code(err: kube::Error) -> u16 {
    match err {
        kube::Error::Api(status) => status.code,
        other => panic!("expected an API error, got {other}"),
    }
}

async fn typed_and_dynamic_crud_and_metadata_lists(hub: &Hub) {
    let client = hub.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    let created = api
        .create(&PostParams::default(), &configmap("cfg", &[("a", "1")]))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some() && created.metadata.resource_version.is_some());
    let mut fetched = api.get("cfg").await.unwrap();
    assert_eq!(fetched.data.as_ref().unwrap()["a"], "1");
    assert_eq!(
        api_code(
            api.create(&PostParams::default(), &configmap("cfg", &[]))
                .await
                .unwrap_err()
        ),
        409
    );

    fetched.data = Some(BTreeMap::from([("a".into(), "2".into())]));
    let replaced = api
        .replace("cfg", &PostParams::default(), &fetched)
        .await
        .unwrap();
    assert_eq!(replaced.data.as_ref().unwrap()["a"], "2");
    // The stale copy conflicts.
    assert_eq!(
        api_code(
            api.replace("cfg", &PostParams::default(), &fetched)
                .await
                .unwrap_err()
        ),
        409
    );

    let patched = api
        .patch(
            "cfg",
            &PatchParams::default(),
            &Patch::Strategic(json!({"data": {"b": "3"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data.as_ref().unwrap().len(), 2);
    let patched = api
        .patch(
            "cfg",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": null}})),
        )
        .await
        .unwrap();
    assert_eq!(
        patched.data.unwrap(),
        BTreeMap::from([("b".to_string(), "3".to_string())])
    );

    // Metadata-only list (PartialObjectMetadataList).
    let metadata = api.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(metadata.items.len(), 1);
    assert_eq!(metadata.items[0].metadata.name.as_deref(), Some("cfg"));

    // Dynamic objects of another group.
    let lease = ApiResource::from_gvk(&GroupVersionKind::gvk("coordination.k8s.io", "v1", "Lease"));
    let leases: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &lease);
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "leader"},
        "spec": {"holderIdentity": "replica-1", "leaseDurationSeconds": 15},
    }))
    .unwrap();
    leases
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
    let got = leases.get("leader").await.unwrap();
    assert_eq!(got.data["spec"]["holderIdentity"], "replica-1");
    assert_eq!(
        leases
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    api.delete("cfg", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_code(api.get("cfg").await.unwrap_err()), 404);
}

/// Reflectors (list+watch, and streaming lists with sendInitialEvents) stay exactly in step
/// with the server through 1,000 updates.
async fn reflectors_stay_exact_through_a_thousand_updates(hub: &Hub) {
    let client = hub.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    const OBJECTS: usize = 10;
    const ROUNDS: usize = 100;
    for i in 0..OBJECTS {
        api.create(
            &PostParams::default(),
            &configmap(&format!("cm-{i}"), &[("n", "0")]),
        )
        .await
        .unwrap();
    }
    let mut readers = Vec::new();
    // The reflectors' tasks end with the test: once the hub stops, a watcher left running
    // would retry against a closed port for as long as the process lives.
    let mut tasks = Vec::new();
    for config in [
        watcher::Config::default(),
        watcher::Config::default().streaming_lists(),
    ] {
        let (reader, writer) = reflector::store::<ConfigMap>();
        let stream =
            reflector(writer, watcher(api.clone(), config).default_backoff()).applied_objects();
        tasks.push(AbortOnDrop(tokio::spawn(stream.for_each(|_| async {}))));
        tokio::time::timeout(Duration::from_secs(10), reader.wait_until_ready())
            .await
            .expect("reflector ready in time")
            .unwrap();
        readers.push(reader);
    }

    let writers: Vec<_> = (0..OBJECTS)
        .map(|i| {
            let api = api.clone();
            tokio::spawn(async move {
                for round in 1..=ROUNDS {
                    let patch = Patch::Merge(json!({"data": {"n": round.to_string()}}));
                    api.patch(&format!("cm-{i}"), &PatchParams::default(), &patch)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }

    let expected: BTreeMap<String, String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|cm| {
            (
                cm.metadata.name.unwrap(),
                cm.metadata.resource_version.unwrap(),
            )
        })
        .collect();
    assert_eq!(expected.len(), OBJECTS);
    for (i, reader) in readers.iter().enumerate() {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let seen: BTreeMap<String, String> = reader
                .state()
                .iter()
                .map(|cm| {
                    (
                        cm.metadata.name.clone().unwrap(),
                        cm.metadata.resource_version.clone().unwrap(),
                    )
                })
                .collect();
            let values_final = reader.state().iter().all(|cm| {
                cm.data
                    .as_ref()
                    .is_some_and(|d| d["n"] == ROUNDS.to_string())
            });
            if seen == expected && values_final {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "reflector {i} never caught up: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A watch from "0" starts with the current state, filtered by its selectors like every
/// later event.
async fn initial_watch_events_honour_selectors(hub: &Hub) {
    let api: Api<ConfigMap> = Api::namespaced(hub.client().await, "default");
    for (name, team) in [("red", "a"), ("blue", "b")] {
        let mut cm = configmap(name, &[]);
        cm.metadata.labels = Some([("team".to_string(), team.to_string())].into());
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    let mut events = api
        .watch(&WatchParams::default().labels("team=b").timeout(2), "0")
        .await
        .unwrap()
        .boxed();
    let mut added = Vec::new();
    while let Some(event) = events.next().await {
        if let WatchEvent::Added(cm) = event.unwrap() {
            added.push(cm.metadata.name.unwrap());
        }
    }
    assert_eq!(added, ["blue"]);

    // `sendInitialEvents=false` asks for changes only: none of the current state.
    let client = hub.client().await;
    let changes_only = http::Request::get(
        "/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=false\
         &resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1",
    )
    .body(Vec::new())
    .unwrap();
    let text = client.request_text(changes_only).await.unwrap();
    assert!(!text.contains("blue") && !text.contains("red"), "{text}");

    // Options kube-apiserver refuses (kube-rs itself would not send this one).
    let exact_zero = http::Request::get(
        "/api/v1/namespaces/default/configmaps?resourceVersion=0&resourceVersionMatch=Exact",
    )
    .body(Vec::new())
    .unwrap();
    match client.request_text(exact_zero).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(
                status.message.starts_with("ListOptions.meta.k8s.io"),
                "{}",
                status.message
            );
        }
        other => panic!("expected 422, got {other:?}"),
    }
}

/// A list at a compacted resourceVersion is a 410 that names the resourceVersion sent; an
/// expired continue token a 410 about the continue parameter.
async fn compacted_revisions_are_named(hub: &Hub) {
    let api: Api<ConfigMap> = Api::namespaced(hub.client().await, "default");
    for i in 0..3 {
        api.create(&PostParams::default(), &configmap(&format!("old-{i}"), &[]))
            .await
            .unwrap();
    }
    let first = api.list(&ListParams::default().limit(1)).await.unwrap();
    let old = first.metadata.resource_version.clone().unwrap();
    let token = first.metadata.continue_.clone().expect("a continue token");
    api.create(&PostParams::default(), &configmap("newer", &[]))
        .await
        .unwrap();
    hub.compact_now().await;

    let exact = ListParams::default()
        .at(&old)
        .matching(kube::api::VersionMatch::Exact);
    match api.list(&exact).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
            assert!(
                status.message.contains(&format!("resourceVersion {old} ")),
                "{}",
                status.message
            );
            assert!(!status.message.contains("continue"), "{}", status.message);
        }
        other => panic!("expected 410, got {other:?}"),
    }
    match api
        .list(&ListParams::default().limit(1).continue_token(&token))
        .await
    {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 410);
            assert!(
                status.message.contains("continue parameter is too old"),
                "{}",
                status.message
            );
        }
        other => panic!("expected 410, got {other:?}"),
    }
    // NotOlderThan the same revision is still served.
    let newer = ListParams::default()
        .at(&old)
        .matching(kube::api::VersionMatch::NotOlderThan);
    assert_eq!(api.list(&newer).await.unwrap().items.len(), 4);
}

/// This process's peak resident memory (the hub runs in it), in MiB.
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a number of kB");
    kib / 1024
}

fn api_status(result: Result<ConfigMap, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A 3 KB JSON patch of nested copies (each doubling the ConfigMap: 2^60 bytes if let be)
/// from a user who may patch one ConfigMap gets a 4xx at once, and memory stays put; so do
/// patches of more than 10,000 operations, and merge patches building a too large object.
async fn hostile_patches_are_bounded(hub: &Hub) {
    let api: Api<ConfigMap> = Api::namespaced(hub.client().await, "default");
    let a = "x".repeat(100);
    api.create(&PostParams::default(), &configmap("target", &[("a", &a)]))
        .await
        .unwrap();
    let doubling: Vec<serde_json::Value> = (0..60)
        .map(|i| json!({"op": "copy", "from": "/data", "path": format!("/data/k{i}")}))
        .collect();
    let attack = serde_json::to_vec(&doubling).unwrap();
    assert!(attack.len() < 4096, "{} bytes", attack.len());
    let before = peak_rss_mib();
    let started = std::time::Instant::now();
    let status = api_status(
        api.patch(
            "target",
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_slice(&attack).unwrap()),
        )
        .await,
    );
    let took = started.elapsed();
    let grew = peak_rss_mib().saturating_sub(before);
    println!("bench: json_patch_copy_attack_time {} ms", took.as_millis());
    println!("bench: json_patch_copy_attack_peak_rss_growth {grew} MiB");
    assert_eq!(status.code, 422, "{status:?}");
    assert!(
        status.message.contains("accumulated size increase of copy"),
        "{}",
        status.message
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(grew < 200, "peak RSS grew by {grew} MiB");
    let unchanged = api.get("target").await.unwrap();
    assert_eq!(unchanged.data.unwrap().len(), 1);

    // More than 10,000 operations: 413, as kube-apiserver answers.
    let tests = vec![json!({"op": "test", "path": "/data/a", "value": a}); 10_001];
    let status = api_status(
        api.patch(
            "target",
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(json!(tests)).unwrap()),
        )
        .await,
    );
    assert_eq!(
        (status.code, status.reason.as_str()),
        (413, "RequestEntityTooLarge")
    );

    // Merge and strategic merge patches may not build an object larger than a request: a
    // ConfigMap just under its 1 MiB limit, and a patch of 2.5 MiB (under 3 MiB itself).
    let almost_one_mib = "y".repeat(1000 << 10);
    api.create(
        &PostParams::default(),
        &configmap("big", &[("a", &almost_one_mib)]),
    )
    .await
    .unwrap();
    let more = json!({"data": {"b": "y".repeat(5 << 19)}});
    for patch in [Patch::Merge(&more), Patch::Strategic(&more)] {
        let status = api_status(api.patch("big", &PatchParams::default(), &patch).await);
        assert_eq!(status.code, 413, "{status:?}");
    }
}

/// Answers are encoded as `Accept` asks, as kube-apiserver negotiates them: YAML when the client
/// prefers it (errors included), JSON otherwise, 406 for a client that takes neither.
async fn answers_follow_the_accept_header(hub: &Hub) {
    let client = hub.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.create(
        &PostParams::default(),
        &configmap("negotiated", &[("a", "1")]),
    )
    .await
    .unwrap();
    let get = |path: &str, accept: &str| {
        http::Request::get(path)
            .header("accept", accept)
            .body(Vec::new())
            .unwrap()
    };
    let text = |path: String, accept: &'static str| {
        let (client, request) = (client.clone(), get(&path, accept));
        async move { client.request_text(request).await }
    };
    let path = "/api/v1/namespaces/default/configmaps";
    let one = format!("{path}/negotiated");
    let yaml = text(one.clone(), "application/yaml, application/json")
        .await
        .unwrap();
    let object: serde_json::Value = serde_yaml_ng::from_str(&yaml).unwrap();
    assert_eq!(
        (&object["metadata"]["name"], &object["data"]),
        (&json!("negotiated"), &json!({"a": "1"})),
        "{yaml}"
    );
    assert!(yaml.starts_with("apiVersion: v1\n"), "{yaml}");
    let list = text(path.to_string(), "application/json;q=0.5, application/yaml")
        .await
        .unwrap();
    let list: serde_json::Value = serde_yaml_ng::from_str(&list).unwrap();
    assert_eq!(list["kind"], "ConfigMapList");
    let json = text(one.clone(), "application/json, application/yaml")
        .await
        .unwrap();
    assert!(serde_json::from_str::<ConfigMap>(&json).is_ok(), "{json}");

    for (what, path, accept) in [
        ("html", one.clone(), "text/html"),
        (
            "a YAML-only watch",
            format!("{path}?watch=true"),
            "application/yaml",
        ),
    ] {
        match text(path, accept).await {
            Err(kube::Error::Api(status)) => {
                assert_eq!(
                    (status.code, status.reason.as_str()),
                    (406, "NotAcceptable"),
                    "{what}"
                )
            }
            other => panic!("{what}: expected 406, got {other:?}"),
        }
    }
    // An error in YAML, as asked.
    let missing = client
        .send(get(&format!("{path}/missing"), "application/yaml").map(Into::into))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["content-type"], "application/yaml");
}

on_both_stores!(
    hostile_patches_are_bounded,
    answers_follow_the_accept_header,
    typed_and_dynamic_crud_and_metadata_lists,
    reflectors_stay_exact_through_a_thousand_updates,
    initial_watch_events_honour_selectors,
    compacted_revisions_are_named,
);
