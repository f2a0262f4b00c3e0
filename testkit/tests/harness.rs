use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};
use trellis_testkit::{ClusterOptions, PostgresCluster};

const KILL_CHILD_ENV: &str = "TRELLIS_TESTKIT_KILL_CHILD";

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    tokio::spawn(connection);
    client
}

async fn select_one(url: &str) {
    let row = connect(url).await.query_one("SELECT 1", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
}

async fn database_exists(admin: &Client, name: &str) -> bool {
    let rows = admin
        .query("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .unwrap();
    !rows.is_empty()
}

#[tokio::test]
async fn shared_cluster_serves_isolated_databases() {
    let cluster = PostgresCluster::shared();
    let a = cluster.create_database("harness").await.unwrap();
    let b = cluster.create_database("harness").await.unwrap();
    assert_ne!(a.name(), b.name());
    select_one(a.url()).await;
    select_one(b.url()).await;

    let admin = connect(&cluster.admin_url()).await;
    let name = a.name().to_string();
    assert!(database_exists(&admin, &name).await);
    // Open connection on purpose: the drop must force it out.
    let _held = connect(a.url()).await;
    drop(a);
    assert!(!database_exists(&admin, &name).await);
    assert!(database_exists(&admin, b.name()).await);
}

#[test]
fn dropping_database_outside_async_context() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt
        .block_on(PostgresCluster::shared().create_database("sync drop"))
        .unwrap();
    assert!(db.name().starts_with("sync_drop_"));
    drop(db);
}

#[tokio::test]
async fn owned_cluster_restarts() {
    let cluster = PostgresCluster::start(ClusterOptions { durable: true }).unwrap();
    let data_dir = cluster.data_dir().unwrap();
    let db = cluster.create_database("restart").await.unwrap();
    let client = connect(db.url()).await;
    client
        .batch_execute("CREATE TABLE t (v int); INSERT INTO t VALUES (42)")
        .await
        .unwrap();

    cluster.restart().unwrap();
    assert!(client.query_one("SELECT 1", &[]).await.is_err());
    let client = connect(db.url()).await;
    let row = client.query_one("SELECT v FROM t", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);

    cluster.stop().unwrap();
    assert!(tokio_postgres::connect(db.url(), NoTls).await.is_err());
    cluster.start_again().unwrap();
    select_one(db.url()).await;

    drop(client);
    drop(db);
    drop(cluster);
    assert!(!data_dir.exists(), "{} left behind", data_dir.display());
}

/// Runs in a child process of `killed_process_cleans_up`; a no-op otherwise.
#[test]
fn kill_child_helper() {
    if std::env::var_os(KILL_CHILD_ENV).is_none() {
        return;
    }
    let cluster = PostgresCluster::start(ClusterOptions::default()).unwrap();
    let url = cluster.admin_url();
    let port = url.rsplit_once(':').unwrap().1.split('/').next().unwrap();
    println!("DATA_DIR={}", cluster.data_dir().unwrap().display());
    println!("PORT={port}");
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn killed_process_cleans_up() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "kill_child_helper", "--nocapture"])
        .env(KILL_CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut data_dir = None;
    let mut port = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(v) = line.strip_prefix("DATA_DIR=") {
            data_dir = Some(PathBuf::from(v));
        } else if let Some(v) = line.strip_prefix("PORT=") {
            port = Some(v.parse::<u16>().unwrap());
            break;
        }
    }
    let (data_dir, port) = (data_dir.unwrap(), port.unwrap());
    assert!(data_dir.exists());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());

    child.kill().unwrap(); // SIGKILL: no destructors run in the child
    child.wait().unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    while data_dir.exists() || TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "cluster in {} not cleaned up",
            data_dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn start_failure_reports_server_log() {
    let cluster = PostgresCluster::start(ClusterOptions::default()).unwrap();
    let url = cluster.admin_url();
    let port: u16 = url
        .rsplit_once(':')
        .unwrap()
        .1
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    cluster.stop().unwrap();
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let err = cluster.start_again().unwrap_err().to_string();
    eprintln!("{err}");
    assert!(err.contains("already in use"), "{err}");
    assert!(cluster.stop().is_err());
}
