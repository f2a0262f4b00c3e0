//! Metrics and health end to end: `/metrics` only with the `system:monitoring` grant, in a
//! format `promtool check metrics` accepts, with kube-apiserver's names and labels that never
//! name a workspace, namespace or object; a real Prometheus scraping the hub over HTTPS with a
//! bearer token; `/livez` and `/readyz` reporting each shard, failing when a shard's database
//! is gone.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use trellis_integration_tests::{write_file, Backend, Hub};
use trellis_server::SecurityOptions;
use trellis_testkit::{ClusterOptions, PostgresCluster};

const MONITOR_TOKEN: &str = "monitor-token-0123456789";
const ALICE_TOKEN: &str = "alice-token-0123456789";
const TOKEN_FILE: &str = "monitor-token-0123456789,prometheus,u-prom,system:monitoring\n\
                          alice-token-0123456789,alice,u-alice,dev\n";

/// One HTTP/1.0 GET to the hub over TLS (trusting its CA), with a bearer token or none:
/// (status code, body).
async fn https_get(hub: &Hub, path: &str, token: Option<&str>) -> (u16, String) {
    use rustls::pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        rustls::pki_types::CertificateDer::pem_file_iter(hub.data_dir.join("ca.crt")).unwrap()
    {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(hub.started.addr)
        .await
        .unwrap();
    let mut tls = connector
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .expect("TLS handshake");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n{auth}\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), tls.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP response: {text:?}"));
    (code, body.to_string())
}

/// A binary of the Debian `prometheus` package, if installed.
fn prometheus_binary(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from("/usr/bin").join(name);
    if path.is_file() {
        Some(path)
    } else {
        eprintln!("skipping: {name} is not installed (apt-get install prometheus)");
        None
    }
}

/// One plain HTTP/1.0 GET to 127.0.0.1:`port`: the body, if the answer was a 200.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(tcp, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    tcp.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    (head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200")).then(|| body.to_string())
}

/// `text` as a URL query value.
fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The series of `metric` in `text` (the text format): each line's labels and value.
fn series<'a>(text: &'a str, metric: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| {
            l.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_to_monitoring_and_scraped_by_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = write_file(dir.path(), "tokens.csv", TOKEN_FILE);
    let hub = Hub::start_with(
        Backend::Postgres,
        SecurityOptions {
            token_file: Some(tokens.into()),
            ..SecurityOptions::default()
        },
    )
    .await;

    // Some traffic, in a namespace and a workspace whose names must not become labels.
    hub.ok(&["create", "namespace", "ns-label-probe"]);
    for i in 0..3 {
        hub.ok(&[
            "create",
            "configmap",
            &format!("cm-{i}"),
            "-n",
            "ns-label-probe",
            "--from-literal=k=v",
        ]);
    }
    hub.ok(&["get", "configmaps", "-n", "ns-label-probe"]);
    hub.ok(&["get", "namespaces"]);
    hub.kubectl(&[
        "get",
        "configmap",
        "nope-object-name",
        "-n",
        "ns-label-probe",
    ]);
    hub.kubectl(&[
        "get",
        "--raw",
        "/api/v1/namespaces/ns-label-probe/bogusresource",
    ]);
    hub.ok(&["ws", "create", "ws-label-probe"]);

    // step: only the monitoring grant reads /metrics.
    let (code, body) = https_get(&hub, "/metrics", None).await;
    assert_eq!(code, 401, "anonymous: {body}");
    let (code, body) = https_get(&hub, "/metrics", Some(ALICE_TOKEN)).await;
    assert_eq!(code, 403, "alice: {body}");
    assert!(body.contains("Forbidden"), "{body}");
    let (code, body) = https_get(&hub, "/metrics", Some(MONITOR_TOKEN)).await;
    assert_eq!(code, 200, "monitoring: {body}");
    // The admin (system:masters) may too.
    assert!(hub
        .ok(&["get", "--raw", "/metrics"])
        .contains("apiserver_request_total"));

    // step: kube-apiserver's names and labels.
    let created = series(&body, "apiserver_request_total")
        .into_iter()
        .find(|l| {
            l.contains("verb=\"POST\"")
                && l.contains("resource=\"configmaps\"")
                && l.contains("code=\"201\"")
        })
        .unwrap_or_else(|| panic!("no counted configmap creates:\n{body}"));
    for label in [
        "component=\"apiserver\"",
        "group=\"\"",
        "version=\"v1\"",
        "scope=\"resource\"",
        "subresource=\"\"",
    ] {
        assert!(created.contains(label), "{label} in {created}");
    }
    let count: f64 = created.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 3.0, "{created}");
    assert!(
        series(&body, "apiserver_request_total")
            .iter()
            .any(|l| l.contains("verb=\"GET\"") && l.contains("code=\"404\"")),
        "a 404 is counted"
    );
    assert!(
        series(&body, "apiserver_request_total")
            .iter()
            .any(|l| l.contains("resource=\"other\"")),
        "an unknown resource is counted as other"
    );
    for metric in [
        "apiserver_request_duration_seconds_bucket",
        "apiserver_current_inflight_requests",
        "trellis_storage_commit_batches_total",
        "trellis_storage_commit_writes_total",
        "trellis_storage_watchers",
        "trellis_workspaces",
        "trellis_leader",
    ] {
        assert!(!series(&body, metric).is_empty(), "{metric} in\n{body}");
    }
    assert!(body.contains("trellis_leader 1"), "the only replica leads");
    assert!(
        series(&body, "trellis_workspaces")
            .iter()
            .any(|l| l.contains("shard=\"root\"")),
        "{body}"
    );
    // Bounded: no namespace, workspace or object name is a label value.
    for name in [
        "ns-label-probe",
        "ws-label-probe",
        "cm-0",
        "nope-object-name",
        "bogusresource",
    ] {
        assert!(!body.contains(name), "{name} appears in the metrics");
    }

    // step: objects per resource, counted in the background (at start, then every 30 s).
    let started = Instant::now();
    loop {
        let (_, body) = https_get(&hub, "/metrics", Some(MONITOR_TOKEN)).await;
        if series(&body, "apiserver_storage_objects")
            .iter()
            .any(|l| l.contains("resource=\"namespaces\""))
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "no apiserver_storage_objects:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // step: promtool accepts the exposition.
    if let Some(promtool) = prometheus_binary("promtool") {
        let mut check = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        check
            .stdin
            .take()
            .unwrap()
            .write_all(body.as_bytes())
            .unwrap();
        let out = check.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // step: a real Prometheus scrapes the hub over HTTPS with the token.
    let Some(prometheus) = prometheus_binary("prometheus") else {
        return;
    };
    let port = trellis_testkit::free_loopback_port();
    let config = write_file(
        dir.path(),
        "prometheus.yml",
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n- job_name: trellis\n  scheme: https\n  metrics_path: /metrics\n  authorization:\n    credentials: {MONITOR_TOKEN}\n  tls_config:\n    ca_file: {}\n    server_name: localhost\n  static_configs:\n  - targets: ['127.0.0.1:{}']\n",
            hub.data_dir.join("ca.crt").display(),
            hub.started.addr.port()
        ),
    );
    let mut child = Command::new(prometheus)
        .arg(format!("--config.file={config}"))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
        .spawn()
        .expect("start prometheus");
    let stop = KillOnDrop(&mut child);
    let query = |q: &str| http_get(port, &format!("/api/v1/query?query={}", percent_encoded(q)));
    let started = Instant::now();
    let answer = loop {
        if let Some(answer) =
            query("apiserver_request_total{resource=\"configmaps\",verb=\"POST\"}")
        {
            if answer.contains("\"result\":[{") {
                break answer;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "Prometheus has no apiserver_request_total from the hub; its log:\n{}",
            std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let result = &answer["data"]["result"][0];
    assert_eq!(result["metric"]["job"], "trellis");
    assert_eq!(result["metric"]["code"], "201");
    let value: f64 = result["value"][1].as_str().unwrap().parse().unwrap();
    assert!(value >= 3.0, "{answer}");
    let up = query("up").expect("query up");
    assert!(up.contains("\"1\"]"), "the hub is up for Prometheus: {up}");
    drop(stop);
}

/// Kills a child process when dropped.
struct KillOnDrop<'a>(&'a mut std::process::Child);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_each_shard_and_a_lost_database() {
    // The root shard embedded, and a shard `eu` on a Postgres cluster of its own, to stop.
    let eu = tokio::task::spawn_blocking(|| PostgresCluster::start(ClusterOptions::default()))
        .await
        .unwrap()
        .expect("a Postgres cluster for the shard");
    let db = eu.create_database("health_eu").await.unwrap();
    let hub = Hub::start_sharded(
        None,
        vec![("eu".to_string(), db.url().to_string())],
        Vec::new(),
        SecurityOptions::default(),
    )
    .await;

    // step: every probe passes, per shard, without credentials.
    for probe in ["/livez", "/readyz", "/healthz"] {
        let (code, body) = https_get(&hub, probe, None).await;
        assert!(code == 200 && body == "ok", "{probe}: {code} {body}");
        let (code, body) = https_get(&hub, &format!("{probe}?verbose"), None).await;
        assert_eq!(code, 200, "{probe}?verbose: {body}");
        let name = probe.trim_start_matches('/');
        for line in [
            "[+]ping ok",
            "[+]shard-root ok",
            "[+]shard-eu ok",
            &format!("{name} check passed"),
        ] {
            assert!(body.contains(line), "{probe}?verbose: {line} in {body}");
        }
    }
    let (_, body) = https_get(&hub, "/readyz?verbose", None).await;
    assert!(body.contains("[+]shutdown ok"), "{body}");
    assert_eq!(
        https_get(&hub, "/clusters/root/readyz/shard-eu", None).await,
        (200, "ok".to_string())
    );
    assert_eq!(https_get(&hub, "/readyz/no-such-check", None).await.0, 404);

    // step: the shard's database goes away: its check fails, the others pass.
    eu.stop().expect("stop the shard's cluster");
    let (code, body) = https_get(&hub, "/readyz?verbose", None).await;
    assert_eq!(code, 500, "readyz without the eu database: {body}");
    for line in [
        "[+]shard-root ok",
        "[-]shard-eu failed: reason withheld",
        "readyz check failed",
    ] {
        assert!(body.contains(line), "{line} in {body}");
    }
    let (code, body) = https_get(&hub, "/livez/shard-eu", None).await;
    assert_eq!(code, 500, "livez/shard-eu without its database: {body}");
    assert_eq!(
        https_get(&hub, "/livez/shard-root", None).await,
        (200, "ok".to_string())
    );
    eu.start_again().expect("start the shard's cluster again");
    drop(hub);
    drop(db);
}
