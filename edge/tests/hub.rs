//! The hub and an edge are two assemblies of one server crate, in one process: the edge serves
//! Pods, Nodes and Deployments with kubectl's columns; the hub serves none of them.

mod support;

use trellis_edge::gpu::fixture::Fixture;
use trellis_edge::SimulationOptions;
use trellis_server::{ServerBuilder, StartOptions};

fn options(dir: &std::path::Path) -> StartOptions {
    StartOptions {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().expect("address"),
        store: None,
        tls_sans: Vec::new(),
        shards: Vec::new(),
        security: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_serves_no_cluster_kinds() {
    let (hub_dir, edge_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let hub = ServerBuilder::hub(options(hub_dir.path()))
        .start()
        .await
        .expect("hub");
    let mut simulation = SimulationOptions::new(Fixture::h200().expect("fixture"));
    simulation.nodes = 2;
    let edge = trellis_edge::builder(options(edge_dir.path()), simulation)
        .start()
        .await
        .expect("edge");
    let (hub_config, edge_config) = (hub.kubeconfig.clone(), edge.kubeconfig.clone());
    tokio::task::spawn_blocking(move || {
        for resource in [
            "pods",
            "nodes",
            "deployments",
            "replicasets",
            "resourceslices",
        ] {
            let (ok, _, err) = support::kubectl(&hub_config, &["get", resource]);
            assert!(
                !ok && err.contains("the server doesn't have a resource type"),
                "the hub serves {resource}: {err}"
            );
            let (ok, _, err) = support::kubectl(&edge_config, &["get", resource]);
            assert!(ok, "the edge does not serve {resource}: {err}");
        }
        support::wait_until("the edge's nodes", || {
            support::kubectl(&edge_config, &["get", "nodes", "-o", "name"])
                .1
                .lines()
                .count()
                == 2
        });
    })
    .await
    .expect("kubectl checks");
    hub.shutdown().await;
    edge.shutdown().await;
}
