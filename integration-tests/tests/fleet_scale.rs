//! The GPU fleet under many tenants at once, through kube-rs typed clients (the `trellis-apis`
//! types, as the syncer and tenants' tools use them).
//!
//! - Ten tenant workspaces create 200 ModelDeployments concurrently against a provider with ten
//!   SyncTargets reporting the real H200 reading (nodes of eight, `NVIDIA H200`, 143771 MiB).
//!   Every deployment is decided (scheduled, or refused for quota or capacity) and no GPU is
//!   booked twice: on each target the replicas placed there fit its nodes' free GPUs (a
//!   replica needing N GPUs on a node with N free), no tenant holds more than its quota with
//!   what it may borrow, and only scheduled deployments have Placements. The test's "syncers"
//!   never report the placements back, so only the hub's own bookkeeping stands between the
//!   concurrent deployments and a double booking.
//! - Spread divides replicas over targets in proportion to their free GPUs.
//! - A tenant borrows another's unused quota up to its borrowing limit, and no further.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use trellis_apis::compute::{GPUPool, Placement, SyncTarget};
use trellis_apis::serving::{
    GPURequest, ModelDeployment, ModelDeploymentSpec, ModelResources, ModelRuntime, ModelSource,
    PlacementPolicy, PlacementStrategy,
};
use trellis_integration_tests::fleet::{now_rfc3339, sync_target_status, H200};
use trellis_integration_tests::{on_both_stores, Hub};

const PROVIDER: &str = "root:platform";

/// A kube-rs client for `workspace` of the hub, as its admin.
async fn client(hub: &Hub, workspace: &str) -> kube::Client {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let kubeconfig = Kubeconfig::read_from(hub.kubeconfig()).expect("kubeconfig");
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("client config");
    let base = config.cluster_url.to_string();
    let base = base
        .trim_end_matches('/')
        .trim_end_matches("/clusters/root");
    config.cluster_url = format!("{base}/clusters/{workspace}")
        .parse()
        .expect("workspace URL");
    kube::Client::try_from(config).expect("client")
}

/// Writes status as a syncer does, trying again when the hub wrote the object meanwhile.
async fn report<K>(api: &Api<K>, name: &str, status: &serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
            .await
        {
            Ok(_) => return,
            Err(kube::Error::Api(e)) if e.code == 409 && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("status of {name}: {e}"),
        }
    }
}

/// Creates targets with the given free GPUs in the provider workspace, and keeps them
/// heartbeating (every 5 s, a real syncer every 10 s) until the returned task is aborted.
async fn targets(hub: &Hub, targets: &[(&str, &[(i64, i64)])]) -> tokio::task::JoinHandle<()> {
    let api: Api<SyncTarget> = Api::all(client(hub, PROVIDER).await);
    for (name, free) in targets {
        api.create(
            &PostParams::default(),
            &SyncTarget::new(name, Default::default()),
        )
        .await
        .expect("create target");
        report(&api, name, &sync_target_status(free)).await;
    }
    let names: Vec<String> = targets.iter().map(|(n, _)| n.to_string()).collect();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let beat = json!({"status": {"lastHeartbeatTime": now_rfc3339()}});
            for name in &names {
                // A heartbeat that lost a race with the hub's write: the next one follows.
                let _ = api
                    .patch_status(name, &PatchParams::default(), &Patch::Merge(&beat))
                    .await;
            }
        }
    })
}

/// A pool `h200` of the targets' H200s, with these tenants: (workspace, nominal quota,
/// borrowing limit).
async fn pool(hub: &Hub, tenants: &[(String, i32, i32)]) {
    let tenants: Vec<serde_json::Value> = tenants
        .iter()
        .map(|(ws, nominal, borrowing)| {
            json!({"workspace": ws, "quotas": [
                {"class": "h200", "nominalQuota": nominal, "borrowingLimit": borrowing}]})
        })
        .collect();
    let pool: GPUPool = serde_json::from_value(json!({
        "apiVersion": "compute.trellis.dev/v1alpha1", "kind": "GPUPool",
        "metadata": {"name": "h200"},
        "spec": {
            "classes": [{"name": "h200", "match": {"productName": H200}}],
            "tenants": tenants,
        },
    }))
    .expect("pool");
    Api::<GPUPool>::all(client(hub, PROVIDER).await)
        .create(&PostParams::default(), &pool)
        .await
        .expect("create pool");
}

fn model_deployment(
    name: &str,
    replicas: i32,
    gpus: i32,
    strategy: PlacementStrategy,
) -> ModelDeployment {
    let mut md = ModelDeployment::new(
        name,
        ModelDeploymentSpec {
            model: ModelSource {
                uri: "hf://meta-llama/Llama-3.1-8B-Instruct".into(),
                served_name: Some("llama-8b".into()),
            },
            runtime: ModelRuntime {
                image: "vllm/vllm-openai:v0.9.1".into(),
                ..Default::default()
            },
            resources: ModelResources {
                gpu: GPURequest {
                    class: "h200".into(),
                    count: gpus,
                },
                ..Default::default()
            },
            replicas: Some(replicas),
            placement: PlacementPolicy {
                pool: format!("{PROVIDER}/h200"),
                strategy,
                ..Default::default()
            },
            ..Default::default()
        },
    );
    md.metadata.namespace = Some("default".into());
    md
}

/// The status and reason of condition `type_` of a deployment, `""` while it has none.
fn condition(md: &ModelDeployment, type_: &str) -> String {
    md.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .map(|c| format!("{}/{}", c.status, c.reason))
        .unwrap_or_default()
}

/// Whether the deployment is decided: scheduled, or refused for quota or capacity.
fn decided(md: &ModelDeployment) -> bool {
    condition(md, "Scheduled").starts_with("True")
        || condition(md, "QuotaReserved").starts_with("False")
        || condition(md, "Scheduled").starts_with("False")
}

/// Waits until every deployment in `api` is decided; they all, as read last.
async fn all_decided(api: &Api<ModelDeployment>, count: usize) -> Vec<ModelDeployment> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let list = api.list(&ListParams::default()).await.expect("list").items;
        if list.len() == count && list.iter().all(decided) {
            return list;
        }
        let pending: Vec<String> = list
            .iter()
            .filter(|md| !decided(md))
            .filter_map(|md| md.metadata.name.clone())
            .take(5)
            .collect();
        assert!(
            Instant::now() < deadline,
            "{} of {count} deployments listed, undecided: {pending:?}…",
            list.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Whether replicas needing `sizes` GPUs each fit nodes with `free` GPUs each, a replica on a
/// single node. First fit by decreasing size, exact for sizes that divide each other (1, 2, 4,
/// 8, as here).
fn fits(mut sizes: Vec<i64>, mut free: Vec<i64>) -> bool {
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    sizes.into_iter().all(|size| {
        free.sort_unstable();
        match free.iter_mut().find(|f| **f >= size) {
            Some(f) => {
                *f -= size;
                true
            }
            None => false,
        }
    })
}

/// The placements of the provider workspace, by target (from the namespace `target-<name>`).
async fn placements_by_target(hub: &Hub) -> BTreeMap<String, Vec<Placement>> {
    let api: Api<Placement> = Api::all(client(hub, PROVIDER).await);
    let mut by_target: BTreeMap<String, Vec<Placement>> = BTreeMap::new();
    for p in api.list(&ListParams::default()).await.expect("list").items {
        let namespace = p.metadata.namespace.clone().unwrap_or_default();
        let target = namespace.trim_start_matches("target-").to_string();
        by_target.entry(target).or_default().push(p);
    }
    by_target
}

async fn two_hundred_deployments_from_ten_tenants_never_double_book_a_gpu(hub: &Hub) {
    // Ten targets of eight nodes, partly used: 8+8 free on two nodes, 4 on three, 2 on two,
    // one node full: 32 free each, 320 in all.
    let free: &[(i64, i64)] = &[(8, 2), (4, 3), (2, 2), (0, 1)];
    let names: Vec<String> = (0..10).map(|i| format!("gpu-{i}")).collect();
    hub.ok(&["ws", "create", "platform"]);
    let tenants: Vec<String> = (0..10).map(|i| format!("tenant-{i}")).collect();
    for tenant in &tenants {
        hub.ok(&["ws", "create", tenant]);
    }
    let specs: Vec<(&str, &[(i64, i64)])> = names.iter().map(|n| (n.as_str(), free)).collect();
    let heart = targets(hub, &specs).await;
    // Quotas of 36 with 12 to borrow: 360 nominal over 320 GPUs; tenant-0 asks for twice
    // what the others ask for, past its quota and what it may borrow.
    let quotas: Vec<(String, i32, i32)> = tenants
        .iter()
        .map(|t| (format!("root:{t}"), 36, 12))
        .collect();
    pool(hub, &quotas).await;

    let sizes = [1, 2, 1, 4, 2, 1, 8, 1, 2, 4];
    let started = Instant::now();
    let creates = tenants.iter().enumerate().map(|(t, tenant)| async move {
        let api: Api<ModelDeployment> =
            Api::namespaced(client(hub, &format!("root:{tenant}")).await, "default");
        let replicas = if t == 0 { 2 } else { 1 };
        let creates = (0..20).map(|i| {
            let md = model_deployment(
                &format!("m-{i}"),
                replicas,
                sizes[i % sizes.len()],
                PlacementStrategy::BinPack,
            );
            let api = api.clone();
            async move { api.create(&PostParams::default(), &md).await }
        });
        for created in join_all(creates).await {
            created.expect("create deployment");
        }
        api
    });
    let apis = join_all(creates).await;
    let mut decided = Vec::new();
    for api in &apis {
        decided.push(all_decided(api, 20).await);
    }
    eprintln!("200 deployments decided in {:?}", started.elapsed());

    // No GPU booked twice: each target's replicas fit its nodes.
    let placed = placements_by_target(hub).await;
    let node_free: Vec<i64> = free
        .iter()
        .flat_map(|(f, n)| std::iter::repeat_n(*f, *n as usize))
        .collect();
    let mut booked = 0;
    let mut by_tenant: BTreeMap<String, i64> = BTreeMap::new();
    for (target, placements) in &placed {
        assert!(names.contains(target), "a placement in {target}");
        let sizes: Vec<i64> = placements
            .iter()
            .flat_map(|p| {
                std::iter::repeat_n(
                    i64::from(p.spec.resources.gpu.count),
                    p.spec.replicas as usize,
                )
            })
            .collect();
        booked += sizes.iter().sum::<i64>();
        assert!(
            fits(sizes.clone(), node_free.clone()),
            "{target}: replicas of {sizes:?} GPUs do not fit nodes with {node_free:?} free"
        );
        for p in placements {
            *by_tenant
                .entry(p.spec.origin.workspace.clone())
                .or_default() += i64::from(p.spec.resources.gpu.count) * i64::from(p.spec.replicas);
        }
    }
    eprintln!("bench: gpu_overcommit 0 gpus ({booked} of 320 GPUs booked)");
    assert!(
        booked >= 200,
        "most of the fleet is used: {booked} of 320 GPUs"
    );
    // No tenant beyond its quota and what it may borrow.
    for (tenant, gpus) in &by_tenant {
        assert!(*gpus <= 36 + 12, "{tenant} holds {gpus} GPUs");
    }
    // Placements only for scheduled deployments, and every scheduled one placed in full.
    let mut placed_replicas: BTreeMap<(String, String), i32> = BTreeMap::new();
    for p in placed.values().flatten() {
        *placed_replicas
            .entry((p.spec.origin.workspace.clone(), p.spec.origin.name.clone()))
            .or_default() += p.spec.replicas;
    }
    let mut scheduled = 0;
    let mut over_quota = 0;
    for (tenant, mds) in tenants.iter().zip(&decided) {
        for md in mds {
            let name = md.metadata.name.clone().unwrap_or_default();
            let key = (format!("root:{tenant}"), name.clone());
            if condition(md, "Scheduled").starts_with("True") {
                scheduled += 1;
                assert_eq!(
                    placed_replicas.get(&key).copied().unwrap_or_default(),
                    md.spec.wanted_replicas(),
                    "{key:?} is scheduled"
                );
            } else {
                if condition(md, "QuotaReserved") == "False/QuotaExceeded" {
                    over_quota += 1;
                }
                assert!(!placed_replicas.contains_key(&key), "{key:?}: {md:?}");
            }
        }
    }
    assert!(scheduled >= 80, "{scheduled} of 200 scheduled");
    assert!(over_quota > 0, "tenant-0 asks past its quota");
    heart.abort();
}

async fn spread_follows_capacity_and_tenants_borrow_up_to_their_limit(hub: &Hub) {
    hub.ok(&["ws", "create", "platform"]);
    hub.ok(&["ws", "create", "acme"]);
    hub.ok(&["ws", "create", "globex"]);
    // big: two nodes of eight free; small: one.
    let heart = targets(hub, &[("big", &[(8, 2)]), ("small", &[(8, 1)])]).await;
    pool(
        hub,
        &[("root:acme".into(), 8, 4), ("root:globex".into(), 16, 0)],
    )
    .await;
    let acme: Api<ModelDeployment> = Api::namespaced(client(hub, "root:acme").await, "default");

    // Spread: six one-GPU replicas over 16 and 8 free GPUs go four and two.
    acme.create(
        &PostParams::default(),
        &model_deployment("spread", 6, 1, PlacementStrategy::Spread),
    )
    .await
    .expect("create");
    let spread = all_decided(&acme, 1).await;
    assert!(
        condition(&spread[0], "Scheduled").starts_with("True"),
        "{:?}",
        spread[0].status
    );
    let replicas = |placed: &BTreeMap<String, Vec<Placement>>, name: &str| {
        placed
            .iter()
            .map(|(target, ps)| {
                let n: i32 = ps
                    .iter()
                    .filter(|p| p.spec.origin.name == name)
                    .map(|p| p.spec.replicas)
                    .sum();
                (target.clone(), n)
            })
            .filter(|(_, n)| *n > 0)
            .collect::<BTreeMap<String, i32>>()
    };
    let placed = placements_by_target(hub).await;
    assert_eq!(
        replicas(&placed, "spread"),
        BTreeMap::from([("big".to_string(), 4), ("small".to_string(), 2)])
    );

    // Borrowing: acme (8 nominal, 4 to borrow) already holds 6; four more borrow 2 of
    // globex's unused 16.
    acme.create(
        &PostParams::default(),
        &model_deployment("borrower", 4, 1, PlacementStrategy::BinPack),
    )
    .await
    .expect("create");
    let both = all_decided(&acme, 2).await;
    let borrower = both
        .iter()
        .find(|md| md.metadata.name.as_deref() == Some("borrower"))
        .expect("borrower");
    assert!(
        condition(borrower, "QuotaReserved").starts_with("True"),
        "{:?}",
        borrower.status
    );
    assert!(condition(borrower, "Scheduled").starts_with("True"));
    // The pool accounts for it: acme reserved 10, of which 2 borrowed.
    let pools: Api<GPUPool> = Api::all(client(hub, PROVIDER).await);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pool = pools.get("h200").await.expect("pool");
        let usage = pool
            .status
            .as_ref()
            .and_then(|s| s.tenants.iter().find(|t| t.workspace == "root:acme"))
            .and_then(|t| t.classes.iter().find(|c| c.class == "h200"))
            .map(|c| (c.reserved, c.borrowed));
        if usage == Some((10, 2)) {
            break;
        }
        assert!(Instant::now() < deadline, "acme's usage: {usage:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Past the limit: three more would make 13 of at most 12.
    acme.create(
        &PostParams::default(),
        &model_deployment("greedy", 3, 1, PlacementStrategy::BinPack),
    )
    .await
    .expect("create");
    let all = all_decided(&acme, 3).await;
    let greedy = all
        .iter()
        .find(|md| md.metadata.name.as_deref() == Some("greedy"))
        .expect("greedy");
    assert_eq!(condition(greedy, "QuotaReserved"), "False/QuotaExceeded");
    assert!(!replicas(&placements_by_target(hub).await, "greedy")
        .values()
        .any(|n| *n > 0));
    heart.abort();
}

on_both_stores!(
    two_hundred_deployments_from_ten_tenants_never_double_book_a_gpu,
    spread_follows_capacity_and_tenants_borrow_up_to_their_limit,
);
