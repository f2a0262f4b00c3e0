//! Authentication end to end: who gets in (hub-CA certificates, token-file users,
//! ServiceAccount tokens in their own workspace) and who gets a 401 (no credentials, unknown,
//! forged, expired or foreign-workspace tokens, certificates of another CA); `kubectl create
//! token` and `kubectl auth whoami`; the audit log, the rate limit, the loopback-only plain
//! listener; and 10,000 malformed requests that must leave the hub up without a 500.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use trellis_integration_tests::{
    kubectl_with_kubeconfig, on_both_stores, write_file, Backend, Hub,
};
use trellis_server::internals::{ServiceAccountRef, ServiceAccountTokens, API_AUDIENCE};
use trellis_server::SecurityOptions;

const ALICE_TOKEN: &str = "alice-token-0123456789";
const FUZZ_TOKEN: &str = "fuzz-admin-token-0123456789";
const TOKEN_FILE: &str = "alice-token-0123456789,alice,u-alice,\"dev,ops\"\n\
                          fuzz-admin-token-0123456789,fuzzer,u-fuzz,system:masters\n";

/// A hub with a token file (alice; a masters user for the fuzzer) and an audit log.
async fn hub_with_users(backend: Backend, dir: &Path) -> Hub {
    let token_file = write_file(dir, "tokens.csv", TOKEN_FILE);
    Hub::start_with(
        backend,
        SecurityOptions {
            token_file: Some(token_file.into()),
            audit_log: Some(dir.join("audit.log")),
            ..SecurityOptions::default()
        },
    )
    .await
}

/// A client certificate and key, PEM.
struct ClientCert {
    cert: String,
    key: String,
}

impl ClientCert {
    fn admin(hub: &Hub) -> ClientCert {
        ClientCert {
            cert: std::fs::read_to_string(hub.data_dir.join("admin.crt")).unwrap(),
            key: std::fs::read_to_string(hub.data_dir.join("admin.key")).unwrap(),
        }
    }

    /// Claims to be a master, signed by a CA the hub never saw.
    fn foreign() -> ClientCert {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, "trellis-ca");
        params.distinguished_name = dn;
        let issuer = rcgen::Issuer::new(params, rcgen::KeyPair::generate().unwrap());
        let pair = trellis_server::internals::client_certificate(
            &issuer,
            "trellis-admin",
            &["system:masters"],
        )
        .unwrap();
        ClientCert {
            cert: pair.cert,
            key: pair.key,
        }
    }
}

/// A TLS client to the hub, trusting its CA, speaking `alpn`.
fn tls_connector(hub: &Hub, cert: Option<&ClientCert>, alpn: &[u8]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(hub.data_dir.join("ca.crt")).unwrap();
    roots
        .add(CertificateDer::from_pem_slice(&ca).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match cert {
        Some(cert) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap(),
                PrivateKeyDer::from_pem_slice(cert.key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// One HTTP/1.1 request on a new connection: (status code, body).
async fn request(
    hub: &Hub,
    cert: Option<&ClientCert>,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    request_with_headers(hub, cert, method, path, token, &[], body).await
}

/// [`request`] with more headers.
async fn request_with_headers(
    hub: &Hub,
    cert: Option<&ClientCert>,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    for (name, value) in headers {
        auth.push_str(&format!("{name}: {value}\r\n"));
    }
    let raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let connector = tls_connector(hub, cert, b"http/1.1");
    let tcp = tokio::net::TcpStream::connect(hub.started.addr)
        .await
        .unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake");
    tls.write_all(raw.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), tls.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let code = status_code(&text).unwrap_or_else(|| panic!("no HTTP response: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

fn status_code(response: &str) -> Option<u16> {
    let line = response.lines().next()?;
    line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// A kubeconfig with only a bearer token (no client certificate) for `server`.
fn token_kubeconfig(hub: &Hub, dir: &Path, name: &str, server: &str, token: &str) -> PathBuf {
    let ca = hub.data_dir.join("ca.crt");
    let path = write_file(
        dir,
        name,
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: hub\n  cluster:\n    server: {server}\n    certificate-authority: {}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context: {{cluster: hub, user: u}}\ncurrent-context: c\n",
            ca.display()
        ),
    );
    PathBuf::from(path)
}

fn server_url(hub: &Hub, workspace: &str) -> String {
    format!(
        "https://127.0.0.1:{}/clusters/{workspace}",
        hub.started.addr.port()
    )
}

/// How kubectl reports a 401.
fn unauthorized(stderr: &str) -> bool {
    stderr.contains("the server has asked for the client to provide credentials")
        || stderr.contains("You must be logged in to the server (Unauthorized)")
}

fn whoami(kubeconfig: &Path) -> Result<serde_json::Value, String> {
    whoami_as(kubeconfig, &[])
}

/// `kubectl auth whoami` with more flags (`--as=…`).
fn whoami_as(kubeconfig: &Path, flags: &[&str]) -> Result<serde_json::Value, String> {
    let mut args = flags.to_vec();
    args.extend(["auth", "whoami", "-o", "json"]);
    let (ok, out, err) = kubectl_with_kubeconfig(kubeconfig, &args);
    if ok {
        Ok(serde_json::from_str(&out).expect("SelfSubjectReview JSON"))
    } else {
        Err(err)
    }
}

/// No credentials, unknown and forged tokens, expired ServiceAccount tokens and certificates
/// of another CA get 401; the public endpoints answer anyone.
async fn bad_credentials_get_401(hub: &Hub) {
    let namespaces = "/api/v1/namespaces";
    let (code, body) = request(hub, None, "GET", namespaces, None, "").await;
    assert_eq!(code, 401, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status["kind"].as_str(), status["reason"].as_str()),
        (Some("Status"), Some("Unauthorized"))
    );
    for public in [
        "/readyz",
        "/healthz",
        "/livez",
        "/version",
        "/clusters/root/readyz",
    ] {
        assert_eq!(
            request(hub, None, "GET", public, None, "").await.0,
            200,
            "{public}"
        );
    }
    // Credentials that are presented and fail get a 401 on the public paths too.
    let foreign = ClientCert::foreign();
    for public in ["/version", "/healthz", "/clusters/root/readyz"] {
        let (code, body) = request(hub, None, "GET", public, Some("not-a-token"), "").await;
        assert_eq!(code, 401, "{public} with a bad token: {body}");
        assert!(body.contains("Unauthorized"), "{body}");
        let (code, body) = request(hub, Some(&foreign), "GET", public, None, "").await;
        assert_eq!(code, 401, "{public} with a foreign certificate: {body}");
    }
    for token in ["nope", "a.b.c", "Bearer", "é"] {
        assert_eq!(
            request(hub, None, "GET", namespaces, Some(token), "")
                .await
                .0,
            401,
            "{token}"
        );
    }
    assert_eq!(
        request(hub, Some(&foreign), "GET", namespaces, None, "")
            .await
            .0,
        401
    );
    let admin = ClientCert::admin(hub);
    assert_eq!(
        request(hub, Some(&admin), "GET", namespaces, None, "")
            .await
            .0,
        200
    );

    // ServiceAccount tokens: signed with the hub's key (from its Secret) they work; expired,
    // for another audience, or signed with another key they do not.
    hub.ok(&["create", "serviceaccount", "builder", "-n", "default"]);
    // Authorization is RBAC's: let the account read, so a good token gets a 200.
    hub.ok(&[
        "create",
        "clusterrolebinding",
        "builder-view",
        "--clusterrole=view",
        "--serviceaccount=default:builder",
    ]);
    let uid = hub.ok(&[
        "get",
        "sa",
        "builder",
        "-n",
        "default",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let key = hub.ok(&[
        "get",
        "secret",
        "-n",
        "kube-system",
        "trellis-service-account-key",
        "-o",
        "jsonpath={.data.key\\.pem}",
    ]);
    let pem = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(key.trim())
            .unwrap(),
    )
    .unwrap();
    let hub_key = ServiceAccountTokens::from_pem(&pem).unwrap();
    let account = ServiceAccountRef {
        cluster: "root".into(),
        namespace: "default".into(),
        name: "builder".into(),
        uid,
    };
    let audience = vec![API_AUDIENCE.to_string()];
    let hour = Duration::from_secs(3600);
    let mint = |tokens: &ServiceAccountTokens, audience: &[String], at: SystemTime| {
        tokens.mint(&account, audience, hour, at).unwrap().0
    };
    let good = mint(&hub_key, &audience, SystemTime::now());
    let expired = mint(&hub_key, &audience, SystemTime::now() - 3 * hour);
    let vault = mint(&hub_key, &["vault".to_string()], SystemTime::now());
    let (_, forger) = ServiceAccountTokens::generate().unwrap();
    let forged = mint(&forger, &audience, SystemTime::now());
    let path = "/api/v1/namespaces/default/configmaps";
    assert_eq!(
        request(hub, None, "GET", path, Some(&good), "").await.0,
        200
    );
    for (what, token) in [
        ("expired", &expired),
        ("vault", &vault),
        ("forged", &forged),
    ] {
        assert_eq!(
            request(hub, None, "GET", path, Some(token), "").await.0,
            401,
            "{what}"
        );
    }
    // A token outlives neither its account nor a new account of the same name.
    hub.ok(&["delete", "sa", "builder", "-n", "default"]);
    assert_eq!(
        request(hub, None, "GET", path, Some(&good), "").await.0,
        401
    );
    hub.ok(&["create", "serviceaccount", "builder", "-n", "default"]);
    assert_eq!(
        request(hub, None, "GET", path, Some(&good), "").await.0,
        401
    );
}

/// `kubectl create token` mints a token that works in its workspace only; token-file users
/// and `kubectl auth whoami`.
async fn service_account_tokens_stay_in_their_workspace(hub: &Hub) {
    let dir = tempfile::tempdir().unwrap();
    // Every namespace has its `default` ServiceAccount (the controllers create it).
    trellis_integration_tests::wait_until(|| {
        hub.kubectl(&["get", "serviceaccount", "default", "-n", "default"])
            .0
    });
    hub.ok(&[
        "create",
        "clusterrolebinding",
        "default-view",
        "--clusterrole=view",
        "--serviceaccount=default:default",
    ]);
    let token = hub.ok(&["create", "token", "default", "-n", "default"]);
    let token = token.trim();
    assert_eq!(token.split('.').count(), 3, "{token}");
    let err = hub.fails(&["create", "token", "missing", "-n", "default"]);
    assert!(err.contains("not found"), "{err}");
    let err = hub.fails(&["create", "token", "default", "--duration=1m"]);
    assert!(err.contains("10 minutes"), "{err}");

    // TokenReview: listed in discovery, answers who a token is, and refuses a forged one.
    assert!(hub
        .ok(&["api-resources", "--api-group=authentication.k8s.io"])
        .contains("tokenreviews"));
    let review = |token: &str, audiences: &str| {
        let body = format!(
            r#"{{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {{"token": "{token}", "audiences": {audiences}}}}}"#
        );
        hub.ok(&[
            "create",
            "-f",
            &write_file(dir.path(), "review.json", &body),
            "-o",
            "jsonpath={.status.authenticated} {.status.user.username} {.status.error}",
        ])
    };
    assert_eq!(
        review(token, "[]").trim(),
        "true system:serviceaccount:default:default"
    );
    let forged = format!("{}x", token);
    assert!(review(&forged, "[]").starts_with("false "));
    assert!(review(token, r#"["vault"]"#).contains("invalid for the target audiences"));

    let in_root = token_kubeconfig(
        hub,
        dir.path(),
        "root.kubeconfig",
        &server_url(hub, "root"),
        token,
    );
    let review = whoami(&in_root).expect("whoami with the ServiceAccount token");
    let user = &review["status"]["userInfo"];
    assert_eq!(user["username"], "system:serviceaccount:default:default");
    assert_eq!(
        user["groups"],
        serde_json::json!([
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ])
    );
    assert_eq!(
        user["extra"]["trellis.dev/cluster"],
        serde_json::json!(["root"])
    );
    let (ok, _, err) = kubectl_with_kubeconfig(&in_root, &["get", "configmaps", "-n", "default"]);
    assert!(ok, "{err}");

    // Another workspace, by path and by id, and all workspaces at once: 401.
    hub.ok(&["ws", "create", "other"]);
    let id = hub.ok(&[
        "get",
        "workspace",
        "other",
        "-o",
        "jsonpath={.spec.cluster}",
    ]);
    let mut elsewhere = vec![server_url(hub, "root:other"), server_url(hub, "*")];
    if !id.trim().is_empty() {
        elsewhere.push(server_url(hub, id.trim()));
    }
    for server in elsewhere {
        let config = token_kubeconfig(hub, dir.path(), "other.kubeconfig", &server, token);
        let (ok, _, err) = kubectl_with_kubeconfig(&config, &["get", "configmaps", "-A"]);
        assert!(!ok && unauthorized(&err), "{server}: {err}");
    }
    // The other way round: a token of root:other is refused in root.
    let other_admin = dir.path().join("other-admin.kubeconfig");
    std::fs::copy(hub.kubeconfig(), &other_admin).unwrap();
    let (ok, _, err) = kubectl_with_kubeconfig(&other_admin, &["ws", "root:other"]);
    assert!(ok, "{err}");
    let (ok, _, err) =
        kubectl_with_kubeconfig(&other_admin, &["create", "sa", "robot", "-n", "default"]);
    assert!(ok, "{err}");
    let (ok, other_token, err) =
        kubectl_with_kubeconfig(&other_admin, &["create", "token", "robot", "-n", "default"]);
    assert!(ok, "{err}");
    let config = token_kubeconfig(
        hub,
        dir.path(),
        "x.kubeconfig",
        &server_url(hub, "root:other"),
        other_token.trim(),
    );
    assert!(whoami(&config).is_ok());
    // A workspace's own ServiceAccount enters it without the `access` verb: a RoleBinding
    // is all it needs, and RBAC decides each request.
    let (ok, _, err) = kubectl_with_kubeconfig(
        &other_admin,
        &[
            "create",
            "rolebinding",
            "robot-edit",
            "--clusterrole=edit",
            "--serviceaccount=default:robot",
            "-n",
            "default",
        ],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = kubectl_with_kubeconfig(
        &config,
        &["create", "secret", "generic", "by-robot", "-n", "default"],
    );
    assert!(ok, "the workspace's own ServiceAccount: {err}");
    let (ok, out, err) = kubectl_with_kubeconfig(&config, &["get", "secrets", "-n", "default"]);
    assert!(ok && out.contains("by-robot"), "{err}");
    let (ok, _, err) =
        kubectl_with_kubeconfig(&config, &["get", "configmaps", "-n", "kube-system"]);
    assert!(
        !ok && err.contains("cannot list resource \"configmaps\""),
        "RBAC still decides: {err}"
    );
    let config = token_kubeconfig(
        hub,
        dir.path(),
        "y.kubeconfig",
        &server_url(hub, "root"),
        other_token.trim(),
    );
    assert!(unauthorized(&whoami(&config).unwrap_err()));

    // A token-file user, and the admin's certificate.
    let alice = token_kubeconfig(
        hub,
        dir.path(),
        "alice.kubeconfig",
        &server_url(hub, "root"),
        ALICE_TOKEN,
    );
    let review = whoami(&alice).expect("whoami as alice");
    assert_eq!(review["status"]["userInfo"]["username"], "alice");
    assert_eq!(
        review["status"]["userInfo"]["groups"],
        serde_json::json!(["dev", "ops", "system:authenticated"])
    );
    // Authenticated, alice may do what RBAC grants her: nothing until she is bound.
    let err = kubectl_with_kubeconfig(&alice, &["get", "namespaces"]).2;
    assert!(err.contains("Forbidden"), "{err}");
    hub.ok(&[
        "create",
        "clusterrolebinding",
        "alice-view",
        "--clusterrole=view",
        "--user=alice",
    ]);
    let (ok, _, err) = kubectl_with_kubeconfig(&alice, &["get", "namespaces"]);
    assert!(ok, "{err}");
    let wrong = token_kubeconfig(
        hub,
        dir.path(),
        "wrong.kubeconfig",
        &server_url(hub, "root"),
        "not-alice",
    );
    assert!(unauthorized(&whoami(&wrong).unwrap_err()));
    let admin = whoami(hub.kubeconfig()).expect("whoami as admin");
    assert_eq!(admin["status"]["userInfo"]["username"], "trellis-admin");
    assert_eq!(
        admin["status"]["userInfo"]["groups"],
        serde_json::json!(["system:masters", "system:authenticated"])
    );
}

/// The audit log has a line per request: user, verb, workspace, resource, code; never a token.
async fn the_audit_log_records_requests(hub: &Hub, audit: &Path) {
    hub.ok(&["create", "configmap", "audited", "-n", "default"]);
    // Every response carries its audit ID and kube-apiserver's Cache-Control (kubectl prints
    // response headers at -v=8).
    let (ok, _, verbose) = hub.kubectl(&["get", "configmap", "audited", "-v=8"]);
    assert!(ok, "{verbose}");
    assert!(verbose.contains("Audit-Id:"), "{verbose}");
    assert!(
        verbose.contains("Cache-Control: no-cache, private"),
        "{verbose}"
    );
    // A client may name the ID itself; the log line carries it.
    let _ = request_with_headers(
        hub,
        None,
        "GET",
        "/api/v1/namespaces/default/configmaps/audited",
        Some(ALICE_TOKEN),
        &[("Audit-ID", "client-chosen-id-42")],
        "",
    )
    .await;
    let _ = request(hub, None, "GET", "/api/v1/secrets", Some(ALICE_TOKEN), "").await;
    let _ = request(hub, None, "GET", "/api/v1/secrets", Some("wrong-token"), "").await;
    let mut lines = Vec::new();
    for _ in 0..50 {
        let text = std::fs::read_to_string(audit).unwrap_or_default();
        lines = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON line"))
            .collect();
        // The last request of the two, once written, follows the first.
        if lines
            .iter()
            .any(|l| l["resource"] == "secrets" && l["code"] == 401)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let created = lines
        .iter()
        .find(|l| {
            l["verb"] == "create"
                && l["name"].as_str().is_some_and(|n| n.is_empty())
                && l["resource"] == "configmaps"
        })
        .expect("the create is audited");
    assert_eq!(created["user"], "trellis-admin");
    assert_eq!(created["workspace"], "root");
    assert_eq!(created["namespace"], "default");
    assert_eq!(created["code"], 201);
    assert!(created["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        created["auditID"].as_str().map(str::len),
        Some(36),
        "{created}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["auditID"] == "client-chosen-id-42" && l["user"] == "alice"),
        "the client's audit ID is logged"
    );
    let secrets: Vec<_> = lines
        .iter()
        .filter(|l| l["resource"] == "secrets")
        .collect();
    // Authenticated but not allowed to read Secrets (`view` does not cover them): 403.
    assert!(secrets
        .iter()
        .any(|l| l["user"] == "alice" && l["verb"] == "list" && l["code"] == 403));
    assert!(secrets.iter().any(|l| l["code"] == 401));
    let text = std::fs::read_to_string(audit).unwrap();
    assert!(!text.contains(ALICE_TOKEN) && !text.contains("wrong-token"));
}

const LET_ALICE_IMPERSONATE_BOB: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: impersonate-bob}
rules:
- apiGroups: [""]
  resources: [users]
  verbs: [impersonate]
  resourceNames: [bob]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: alice-impersonates-bob}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: impersonate-bob}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: alice-enters-root}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:trellis:workspace-access"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: bob-views}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: bob}]
"#;

/// `kubectl --as`: every impersonation is authorized in the workspace (masters may act as
/// anyone), the request then runs as the impersonated user (whoami, RBAC, can-i), a refused
/// impersonation is a 403 and nothing runs, and the audit log names both users.
async fn impersonation(hub: &Hub, audit: &Path) {
    let dir = tempfile::tempdir().unwrap();
    // The admin may act as anyone, and then is that user: nobody may do nothing.
    let review = whoami_as(hub.kubeconfig(), &["--as=nobody"]).expect("whoami --as=nobody");
    assert_eq!(review["status"]["userInfo"]["username"], "nobody");
    assert_eq!(
        review["status"]["userInfo"]["groups"],
        serde_json::json!(["system:authenticated"])
    );
    let err = hub.fails(&["--as=nobody", "get", "secrets", "-n", "kube-system"]);
    // (Refused already at discovery, which kubectl words as "Forbidden: unknown".)
    assert!(err.contains("(Forbidden)"), "{err}");
    hub.ok(&[
        "--as=nobody",
        "--as-group=system:masters",
        "get",
        "secrets",
        "-n",
        "kube-system",
    ]);

    // alice may act as bob only once RBAC in the workspace lets her.
    let alice = token_kubeconfig(
        hub,
        dir.path(),
        "alice.kubeconfig",
        &server_url(hub, "root"),
        ALICE_TOKEN,
    );
    let (ok, _, err) =
        kubectl_with_kubeconfig(&alice, &["--as=bob", "get", "configmaps", "-n", "default"]);
    assert!(!ok && err.contains("Forbidden"), "{err}");
    hub.ok(&[
        "apply",
        "-f",
        &write_file(dir.path(), "rbac.yaml", LET_ALICE_IMPERSONATE_BOB),
    ]);
    let (ok, _, err) =
        kubectl_with_kubeconfig(&alice, &["--as=bob", "get", "configmaps", "-n", "default"]);
    assert!(ok, "alice as bob: {err}");
    let review = whoami_as(&alice, &["--as=bob"]).expect("whoami --as=bob");
    assert_eq!(review["status"]["userInfo"]["username"], "bob");
    // bob only views: as bob, alice cannot write.
    let (ok, _, err) = kubectl_with_kubeconfig(
        &alice,
        &["--as=bob", "create", "configmap", "by-bob", "-n", "default"],
    );
    assert!(!ok && err.contains("User \"bob\" cannot create"), "{err}");
    // Anyone else, or a group on top, is refused before anything runs.
    for extra in [
        vec!["--as=carol"],
        vec!["--as=bob", "--as-group=system:masters"],
        vec!["--as=bob", "--as-uid=u-bob"],
    ] {
        let mut args = extra.clone();
        args.extend(["create", "configmap", "by-someone", "-n", "default"]);
        let (ok, _, err) = kubectl_with_kubeconfig(&alice, &args);
        assert!(
            !ok && err.contains("User \"alice\" cannot impersonate"),
            "{extra:?}: {err}"
        );
    }
    assert!(hub
        .fails(&["get", "configmap", "by-someone", "-n", "default"])
        .contains("not found"));
    let (code, body) = request_with_headers(
        hub,
        None,
        "GET",
        "/api/v1/namespaces/default/configmaps",
        Some(ALICE_TOKEN),
        &[("Impersonate-Group", "dev")],
        "",
    )
    .await;
    assert_eq!(code, 400, "a group without a user: {body}");

    // `kubectl auth can-i --as` answers for the impersonated user.
    let can_i = |args: &[&str]| {
        let mut all = vec!["auth", "can-i"];
        all.extend_from_slice(args);
        let (_, out, _) = hub.kubectl(&all);
        out.trim().to_string()
    };
    assert_eq!(can_i(&["list", "configmaps", "--as=bob"]), "yes");
    assert_eq!(can_i(&["create", "configmaps", "--as=bob"]), "no");
    assert_eq!(can_i(&["list", "secrets", "--as=bob"]), "no");
    assert_eq!(can_i(&["create", "configmaps"]), "yes");

    // A ServiceAccount is impersonated as the workspace's own; one of another workspace, or
    // across all workspaces, is refused.
    hub.ok(&["create", "serviceaccount", "imp", "-n", "default"]);
    hub.ok(&[
        "create",
        "rolebinding",
        "imp-view",
        "--clusterrole=view",
        "--serviceaccount=default:imp",
        "-n",
        "default",
    ]);
    let sa = "--as=system:serviceaccount:default:imp";
    let review = whoami_as(hub.kubeconfig(), &[sa]).expect("whoami as a ServiceAccount");
    assert_eq!(
        review["status"]["userInfo"]["extra"]["trellis.dev/cluster"],
        serde_json::json!(["root"])
    );
    hub.ok(&[sa, "get", "configmaps", "-n", "default"]);
    let err = hub.fails(&[sa, "get", "configmaps", "-n", "kube-system"]);
    assert!(err.contains("cannot list resource"), "{err}");
    let admin = ClientCert::admin(hub);
    let (code, body) = request_with_headers(
        hub,
        Some(&admin),
        "GET",
        "/api/v1/namespaces/default/configmaps",
        None,
        &[
            ("Impersonate-User", "system:serviceaccount:default:imp"),
            ("Impersonate-Extra-trellis.dev%2Fcluster", "elsewhere"),
        ],
        "",
    )
    .await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("another workspace"), "{body}");
    let (code, body) = request_with_headers(
        hub,
        Some(&admin),
        "GET",
        "/clusters/*/api/v1/configmaps",
        None,
        &[("Impersonate-User", "system:serviceaccount:default:imp")],
        "",
    )
    .await;
    assert!(
        code == 403 && body.contains("across all workspaces"),
        "{code} {body}"
    );

    // The audit log has both users.
    let mut line = None;
    for _ in 0..50 {
        let text = std::fs::read_to_string(audit).unwrap_or_default();
        line = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON line"))
            .find(|l| l["user"] == "alice" && l["impersonatedUser"] == "bob" && l["code"] == 200);
        if line.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let line = line.expect("an audit line for alice acting as bob");
    assert_eq!(
        line["impersonatedGroups"],
        serde_json::json!(["system:authenticated"])
    );
    assert_eq!(
        line["groups"],
        serde_json::json!(["dev", "ops", "system:authenticated"])
    );
}

async fn authentication(hub: &Hub) {
    bad_credentials_get_401(hub).await;
}

on_both_stores!(authentication);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impersonation_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub_with_users(Backend::Sqlite, dir.path()).await;
    impersonation(&hub, &dir.path().join("audit.log")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impersonation_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub_with_users(Backend::Postgres, dir.path()).await;
    impersonation(&hub, &dir.path().join("audit.log")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_whoami_and_audit_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub_with_users(Backend::Sqlite, dir.path()).await;
    service_account_tokens_stay_in_their_workspace(&hub).await;
    the_audit_log_records_requests(&hub, &dir.path().join("audit.log")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_whoami_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub_with_users(Backend::Postgres, dir.path()).await;
    service_account_tokens_stay_in_their_workspace(&hub).await;
}

/// OIDC ID tokens of the configured issuer, with keys from a JWKS file: kubectl works with
/// one; expired ones, ones for another client and ones signed with another key get 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_id_tokens_from_a_jwks_file() {
    use trellis_server::OidcOptions;
    let dir = tempfile::tempdir().unwrap();
    let issuer = "https://idp.example.com";
    let key = rcgen::KeyPair::generate().unwrap();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    // An uncompressed P-256 point: 0x04 || x || y.
    let raw = rcgen::PublicKeyData::der_bytes(&key).to_vec();
    let point = &raw[raw.len() - 65..];
    let jwks = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256",
        "use": "sig", "x": b64(&point[1..33]), "y": b64(&point[33..65])}]});
    let jwks_file = write_file(dir.path(), "jwks.json", &jwks.to_string());
    let hub = Hub::start_with(
        Backend::Sqlite,
        SecurityOptions {
            oidc: Some(OidcOptions {
                jwks_file: Some(jwks_file.into()),
                ..OidcOptions::new(issuer, "trellis")
            }),
            ..SecurityOptions::default()
        },
    )
    .await;
    let sign = |key: &rcgen::KeyPair, audience: &str, expires_in: i64| {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("k1".to_string());
        let claims = serde_json::json!({"iss": issuer, "aud": audience, "sub": "jane",
            "groups": ["ml"], "iat": now, "exp": now + expires_in});
        let key = jsonwebtoken::EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    };
    let server = server_url(&hub, "root");
    let config = token_kubeconfig(
        &hub,
        dir.path(),
        "jane.kubeconfig",
        &server,
        &sign(&key, "trellis", 600),
    );
    let review = whoami(&config).expect("whoami with an ID token");
    assert_eq!(
        review["status"]["userInfo"]["username"],
        "https://idp.example.com#jane"
    );
    assert_eq!(
        review["status"]["userInfo"]["groups"],
        serde_json::json!(["ml", "system:authenticated"])
    );
    let other_key = rcgen::KeyPair::generate().unwrap();
    for (what, token) in [
        ("expired", sign(&key, "trellis", -600)),
        ("another client", sign(&key, "grafana", 600)),
        ("another key", sign(&other_key, "trellis", 600)),
    ] {
        let config = token_kubeconfig(&hub, dir.path(), "bad.kubeconfig", &server, &token);
        assert!(unauthorized(&whoami(&config).unwrap_err()), "{what}");
    }
}

/// Two hubs on one database (replicas, each with its own data directory and CA) sign with the
/// same key: a token minted through one is accepted by the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_accept_each_others_service_account_tokens() {
    let db = trellis_testkit::PostgresCluster::shared()
        .create_database("replica_tokens")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let start = |name: &str| {
        let data_dir = dir.path().join(name);
        let url = db.url().to_string();
        async move {
            trellis_server::start(trellis_server::StartOptions {
                data_dir,
                listen: "127.0.0.1:0".parse().unwrap(),
                store: Some(url),
                tls_sans: Vec::new(),
                shards: Vec::new(),
                security: SecurityOptions::default(),
            })
            .await
            .unwrap()
        }
    };
    // Both at once: only one may create the key, the other must read it.
    let (a, b) = tokio::join!(start("a"), start("b"));
    let (ok, _, err) =
        kubectl_with_kubeconfig(&a.kubeconfig, &["create", "sa", "shared", "-n", "default"]);
    assert!(ok, "{err}");
    let (ok, token, err) = kubectl_with_kubeconfig(
        &a.kubeconfig,
        &["create", "token", "shared", "-n", "default"],
    );
    assert!(ok, "{err}");
    let ca_b = dir.path().join("b").join("ca.crt");
    let config = write_file(
        dir.path(),
        "b.kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: hub\n  cluster:\n    server: https://127.0.0.1:{}/clusters/root\n    certificate-authority: {}\nusers:\n- name: u\n  user:\n    token: {}\ncontexts:\n- name: c\n  context: {{cluster: hub, user: u}}\ncurrent-context: c\n",
            b.addr.port(),
            ca_b.display(),
            token.trim()
        ),
    );
    let review = whoami(Path::new(&config)).expect("replica b accepts a's token");
    assert_eq!(
        review["status"]["userInfo"]["username"],
        "system:serviceaccount:default:shared"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// Beyond its burst, a user gets 429 with Retry-After; masters are exempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_answers_429() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = write_file(dir.path(), "tokens.csv", TOKEN_FILE);
    let hub = Hub::start_with(
        Backend::Sqlite,
        SecurityOptions {
            token_file: Some(token_file.into()),
            max_requests_per_second_per_user: 0.5,
            max_request_burst_per_user: 3.0,
            ..SecurityOptions::default()
        },
    )
    .await;
    hub.ok(&[
        "create",
        "clusterrolebinding",
        "alice-view",
        "--clusterrole=view",
        "--user=alice",
    ]);
    let path = "/api/v1/namespaces";
    for _ in 0..3 {
        assert_eq!(
            request(&hub, None, "GET", path, Some(ALICE_TOKEN), "")
                .await
                .0,
            200
        );
    }
    let (code, body) = request(&hub, None, "GET", path, Some(ALICE_TOKEN), "").await;
    assert_eq!(code, 429, "{body}");
    assert!(body.contains("TooManyRequests"), "{body}");
    // Counted as kube-apiserver counts what it drops: by verb and resource, with code 429.
    let metrics = hub.ok(&["get", "--raw", "/metrics"]);
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("apiserver_request_total{")
                && line.contains("code=\"429\"")
                && line.contains("resource=\"namespaces\"")
                && line.contains("verb=\"LIST\"")),
        "{metrics}"
    );
    for _ in 0..10 {
        assert_eq!(
            request(&hub, None, "GET", path, Some(FUZZ_TOKEN), "")
                .await
                .0,
            200
        );
    }
}

/// Whether the server has closed `stream`: reads (discarding what comes, such as HTTP/2
/// SETTINGS) until end of stream or an error, for at most `wait`.
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(stream: &mut S, wait: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(wait, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Connections that idle (after the handshake, before a first request, between requests, on
/// HTTP/1.1 and HTTP/2) are closed at the idle limit, and so are handshakes that never finish;
/// a watch longer than the limit is not cut; one client holds only so many connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_clients_capped() {
    use trellis_server::ConnectionLimits;
    let hub = Hub::start_with(
        Backend::Sqlite,
        SecurityOptions {
            connections: ConnectionLimits {
                handshake_timeout: Duration::from_secs(1),
                idle_timeout: Duration::from_secs(1),
                max_per_client: 12,
            },
            ..SecurityOptions::default()
        },
    )
    .await;
    let admin = ClientCert::admin(&hub);
    let connect = |alpn: &'static [u8]| {
        let connector = tls_connector(&hub, Some(&admin), alpn);
        let addr = hub.started.addr;
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            connector
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
        }
    };
    // Handshaken, then silent: HTTP/1.1, HTTP/2 (with its preface and SETTINGS, as an idle
    // client sends them), and a TCP connection that never starts TLS.
    let mut h1 = connect(b"http/1.1").await.expect("handshake");
    let mut h2 = connect(b"h2").await.expect("handshake");
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let mut raw = tokio::net::TcpStream::connect(hub.started.addr)
        .await
        .unwrap();
    // Between requests: one request answered, then nothing.
    let mut kept = connect(b"http/1.1").await.expect("handshake");
    kept.write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    kept.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let wait = Duration::from_secs(8);
    assert!(closed_within(&mut h1, wait).await, "idle HTTP/1.1");
    assert!(closed_within(&mut h2, wait).await, "idle HTTP/2");
    assert!(closed_within(&mut raw, wait).await, "handshake never done");
    assert!(closed_within(&mut kept, wait).await, "idle keep-alive");

    // A watch outlives the idle limit and ends as asked.
    let mut watch = connect(b"http/1.1").await.expect("handshake");
    let started = std::time::Instant::now();
    watch
        .write_all(
            b"GET /api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=3 HTTP/1.1\r\n\
              Host: localhost\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), watch.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.ends_with("0\r\n\r\n"),
        "the watch ended cleanly: {text}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(2900),
        "{:?}",
        started.elapsed()
    );

    // One client holds 12 connections at most; the 13th is closed at once. (A hub with the
    // usual idle limit, so that the held connections stay open meanwhile.)
    let hub = Hub::start_with(
        Backend::Sqlite,
        SecurityOptions {
            connections: ConnectionLimits {
                max_per_client: 12,
                ..ConnectionLimits::default()
            },
            ..SecurityOptions::default()
        },
    )
    .await;
    let admin = ClientCert::admin(&hub);
    let connect = |alpn: &'static [u8]| {
        let connector = tls_connector(&hub, Some(&admin), alpn);
        let addr = hub.started.addr;
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            connector
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
        }
    };
    let mut held = Vec::new();
    for _ in 0..12 {
        held.push(connect(b"http/1.1").await.expect("within the cap"));
    }
    let refused = match connect(b"http/1.1").await {
        Err(_) => true,
        Ok(mut extra) => closed_within(&mut extra, Duration::from_millis(500)).await,
    };
    assert!(refused, "a 13th connection is refused");
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The slots are free again, and kubectl (several connections) works.
    hub.ok(&["get", "namespaces"]);
}

/// Plain HTTP only on loopback, and still authenticated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plain_listener_is_loopback_only_and_authenticated() {
    let dir = tempfile::tempdir().unwrap();
    let options = |listen: &str| trellis_server::StartOptions {
        data_dir: dir.path().join("data"),
        listen: "127.0.0.1:0".parse().unwrap(),
        store: None,
        tls_sans: Vec::new(),
        shards: Vec::new(),
        security: SecurityOptions {
            token_file: Some(write_file(dir.path(), "tokens.csv", TOKEN_FILE).into()),
            insecure_listen: Some(listen.parse().unwrap()),
            ..SecurityOptions::default()
        },
    };
    let err = trellis_server::start(options("0.0.0.0:0"))
        .await
        .err()
        .expect("a non-loopback plain listener is refused");
    assert!(err.to_string().contains("loopback"), "{err}");
    let started = trellis_server::start(options("127.0.0.1:0")).await.unwrap();
    let addr = started.insecure_addr.expect("plain listener");
    let (ok, _, err) = kubectl_with_kubeconfig(
        &started.kubeconfig,
        &[
            "create",
            "clusterrolebinding",
            "alice-view",
            "--clusterrole=view",
            "--user=alice",
        ],
    );
    assert!(ok, "{err}");
    let plain = |token: Option<&'static str>| async move {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        tcp.write_all(
            format!(
                "GET /api/v1/namespaces HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let mut out = Vec::new();
        tcp.read_to_end(&mut out).await.unwrap();
        status_code(&String::from_utf8_lossy(&out))
    };
    assert_eq!(plain(None).await, Some(401));
    assert_eq!(plain(Some(ALICE_TOKEN)).await, Some(200));
    started.shutdown().await;
}

/// 10,000 malformed requests over TLS: random methods, paths, encodings, headers (huge ones,
/// invalid UTF-8), content types and bodies, half of them as a master. No 500, no panic, and
/// the hub still answers afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_never_get_a_500() {
    static PANICS: AtomicUsize = AtomicUsize::new(0);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));
    let dir = tempfile::tempdir().unwrap();
    let hub = Arc::new(hub_with_users(Backend::Sqlite, dir.path()).await);
    hub.ok(&["create", "serviceaccount", "fuzz", "-n", "default"]);
    let sa_token = hub
        .ok(&["create", "token", "fuzz", "-n", "default"])
        .trim()
        .to_string();
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    println!("FUZZ_SEED={seed}");
    const TOTAL: usize = 10_000;
    const WORKERS: usize = 16;
    let next = Arc::new(AtomicUsize::new(0));
    let started = std::time::Instant::now();
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let (hub, next, sa_token) = (hub.clone(), next.clone(), sa_token.clone());
        let plain = tls_connector(&hub, None, b"http/1.1");
        let h2 = tls_connector(&hub, None, b"h2");
        workers.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed.wrapping_add(worker as u64));
            let mut codes: Vec<(u16, String)> = Vec::new();
            let mut seen = std::collections::BTreeMap::<Option<u16>, usize>::new();
            while next.fetch_add(1, Ordering::SeqCst) < TOTAL {
                let raw_garbage = rng.gen_bool(0.03);
                let raw = if raw_garbage {
                    (0..rng.gen_range(0..4096)).map(|_| rng.gen()).collect()
                } else {
                    fuzz::request(&mut rng, &sa_token)
                };
                let connector = if raw_garbage && rng.gen_bool(0.5) {
                    &h2
                } else {
                    &plain
                };
                let answer = fuzz::send(&hub, connector, &raw).await;
                *seen.entry(answer).or_default() += 1;
                if let Some(code) = answer {
                    if code >= 500 && code != 503 && code != 504 {
                        codes.push((
                            code,
                            String::from_utf8_lossy(&raw[..raw.len().min(600)]).into_owned(),
                        ));
                    }
                }
            }
            (codes, seen)
        }));
    }
    let mut failures = Vec::new();
    let mut seen = std::collections::BTreeMap::<Option<u16>, usize>::new();
    for worker in workers {
        let (codes, counts) = worker.await.unwrap();
        failures.extend(codes);
        for (code, n) in counts {
            *seen.entry(code).or_default() += n;
        }
    }
    println!(
        "{TOTAL} requests in {:?}; responses: {seen:?}",
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "server errors (seed {seed}): {failures:#?}"
    );
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        0,
        "the hub panicked (seed {seed})"
    );
    assert_eq!(request(&hub, None, "GET", "/readyz", None, "").await.0, 200);
    hub.ok(&["get", "namespaces"]);
}

/// Generating and sending malformed requests.
mod fuzz {
    use super::*;

    const METHODS: &[&str] = &[
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT", "get",
        "G\u{0}T", "PROPFIND", "", "GET GET",
    ];
    const SEGMENTS: &[&str] = &[
        "api",
        "apis",
        "v1",
        "v2",
        "clusters",
        "root",
        "*",
        "%2A",
        "%2a",
        "root:other",
        "namespaces",
        "default",
        "kube-system",
        "configmaps",
        "secrets",
        "serviceaccounts",
        "token",
        "fuzz",
        "selfsubjectreviews",
        "authentication.k8s.io",
        "apps",
        "deployments",
        "status",
        "scale",
        "finalize",
        "customresourcedefinitions",
        "apiextensions.k8s.io",
        "workspaces",
        "tenancy.trellis.dev",
        "v1alpha1",
        "openapi",
        "v3",
        "healthz",
        "readyz",
        "version",
        "..",
        ".",
        "",
        "%00",
        "%ff%fe",
        "%",
        "%zz",
        "a%2Fb",
        "😀",
        "rbac.authorization.k8s.io",
        "clusterroles",
        "events",
        "leases",
        "coordination.k8s.io",
    ];
    const QUERIES: &[&str] = &[
        "watch=true",
        "watch=1&timeoutSeconds=1",
        "limit=1",
        "limit=-5",
        "limit=abc",
        "continue=garbage",
        "labelSelector=a%3Db",
        "labelSelector=%28%28",
        "fieldSelector=x%3Dy",
        "fieldSelector=metadata.name%3D",
        "resourceVersion=0",
        "resourceVersion=abc",
        "resourceVersionMatch=Exact",
        "dryRun=All",
        "fieldValidation=Strict",
        "fieldManager=",
        "force=true",
        "propagationPolicy=Nope",
        "pretty=1",
        "%zz=%zz",
        "a=%ff",
        "includeObject=Object",
        "sendInitialEvents=true",
        "allowWatchBookmarks=true",
        "timeoutSeconds=-1",
    ];
    const CONTENT_TYPES: &[&str] = &[
        "application/json",
        "application/yaml",
        "application/merge-patch+json",
        "application/json-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
        "application/vnd.kubernetes.protobuf",
        "text/plain",
        "application/json; charset=utf-16",
        "multipart/form-data; boundary=x",
        "",
        "*/*",
        "application/json;;;",
        "\u{7f}",
    ];
    const ACCEPTS: &[&str] = &[
        "application/json",
        "application/json;as=Table;v=v1;g=meta.k8s.io",
        "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        "application/vnd.kubernetes.protobuf",
        "application/yaml",
        "text/html",
        "*/*",
        ";;;",
        "",
        "application/json;as=Table;v=v9;g=meta.k8s.io",
    ];
    const BODIES: &[&str] = &[
        "",
        "{",
        "}",
        "[]",
        "null",
        "0",
        "\"x\"",
        "{\"kind\":\"ConfigMap\"}",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"fz","namespace":"default"},"data":{"a":"b"}}"#,
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"","generateName":"x-"},"data":{"a":1}}"#,
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"data":{"k":"not base64!"}}"#,
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"Bad_Name"}}"#,
        r#"[{"op":"replace","path":"/data/a","value":"c"}]"#,
        r#"[{"op":"move","from":"/a","path":"/a/b"}]"#,
        r#"{"metadata":{"labels":{"x":null}},"$patch":"delete"}"#,
        r#"{"metadata":{"finalizers":[1,2]},"spec":{"$setElementOrder/x":[{}]}}"#,
        r#"{"kind":"TokenRequest","spec":{"expirationSeconds":-1,"audiences":[""]}}"#,
        r#"{"kind":"TokenRequest","spec":{"expirationSeconds":1e30}}"#,
        r#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"x.y.z"},"spec":{"group":"y.z","names":{"plural":"x","kind":"X"},"scope":"Cluster","versions":[{"name":"v1","served":true,"storage":true,"schema":{"openAPIV3Schema":{"type":"object","x-kubernetes-validations":[{"rule":"self.a.b.c("}]}}}]}}"#,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: y}\ndata: &a {x: *a}\n",
        "a: &a [*a, *a]\nb: &b [*a, *a, *a]\nc: &c [*b, *b, *b]\nd: [*c, *c, *c, *c]\n",
        "--- !!binary\n?? :: ::\n\t- x\n",
        "{\"a\":\"\\ud800\"}",
        "{\"a\":1,\"a\":2}",
        "{\"metadata\":{\"resourceVersion\":\"99999999999999999999999\"}}",
    ];

    fn pick<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
        from[rng.gen_range(0..from.len())]
    }

    /// A path the server routes (so that the request reaches a handler), with a random query.
    fn routed_path(rng: &mut StdRng) -> Vec<u8> {
        let workspace = pick(
            rng,
            &["", "/clusters/root", "/clusters/root:other", "/clusters/*"],
        );
        let resource = pick(
            rng,
            &[
                "/api/v1/namespaces/default/configmaps",
                "/api/v1/namespaces/default/secrets",
                "/api/v1/namespaces/default/serviceaccounts",
                "/api/v1/namespaces",
                "/api/v1/configmaps",
                "/apis/rbac.authorization.k8s.io/v1/clusterroles",
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                "/apis/tenancy.trellis.dev/v1alpha1/workspaces",
                "/apis/coordination.k8s.io/v1/namespaces/default/leases",
                "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                "/apis/events.k8s.io/v1/events",
            ],
        );
        let tail = pick(
            rng,
            &[
                "",
                "/fz",
                "/fuzz",
                "/fz/status",
                "/fuzz/token",
                "/default",
                "/default/finalize",
                "/x.y.z",
            ],
        );
        let mut path = format!("{workspace}{resource}{tail}").into_bytes();
        if rng.gen_bool(0.5) {
            path.push(b'?');
            path.extend_from_slice(pick(rng, QUERIES).as_bytes());
        }
        path
    }

    fn path(rng: &mut StdRng) -> Vec<u8> {
        let mut path = Vec::new();
        if rng.gen_bool(0.9) {
            path.push(b'/');
        }
        for _ in 0..rng.gen_range(0..9) {
            match rng.gen_range(0..20) {
                0 => path.extend((0..rng.gen_range(1..20)).map(|_| rng.gen_range(0x21u8..=0xff))),
                1 => path.extend(std::iter::repeat_n(b'a', rng.gen_range(100..20_000))),
                _ => path.extend_from_slice(pick(rng, SEGMENTS).as_bytes()),
            }
            path.push(b'/');
        }
        if rng.gen_bool(0.5) {
            path.pop();
        }
        if rng.gen_bool(0.4) {
            path.push(b'?');
            for i in 0..rng.gen_range(1..4) {
                if i > 0 {
                    path.push(b'&');
                }
                path.extend_from_slice(pick(rng, QUERIES).as_bytes());
            }
        }
        path
    }

    fn body(rng: &mut StdRng) -> Vec<u8> {
        match rng.gen_range(0..12) {
            0 => (0..rng.gen_range(0..2048)).map(|_| rng.gen()).collect(),
            1 => {
                let depth = rng.gen_range(100..5000);
                let mut b = "[".repeat(depth).into_bytes();
                b.extend("]".repeat(depth).into_bytes());
                b
            }
            2 => {
                let mut b = pick(rng, BODIES).as_bytes().to_vec();
                if !b.is_empty() {
                    let cut = rng.gen_range(0..b.len());
                    b.truncate(cut);
                }
                b
            }
            3 => {
                let mut b = pick(rng, BODIES).as_bytes().to_vec();
                for _ in 0..rng.gen_range(1..5) {
                    if !b.is_empty() {
                        let at = rng.gen_range(0..b.len());
                        b[at] = rng.gen();
                    }
                }
                b
            }
            _ => pick(rng, BODIES).as_bytes().to_vec(),
        }
    }

    /// One malformed HTTP/1.1 request. Half of them are well framed (a method the server
    /// serves, a routed path, HTTP/1.1, a right Content-Length), so that they get past the
    /// HTTP parser to the handlers; the rest are malformed at every level.
    pub fn request(rng: &mut StdRng, sa_token: &str) -> Vec<u8> {
        let framed = rng.gen_bool(0.5);
        let mut out = Vec::new();
        if framed {
            out.extend_from_slice(pick(rng, &METHODS[..5]).as_bytes());
            out.push(b' ');
            out.extend(routed_path(rng));
        } else {
            out.extend_from_slice(pick(rng, METHODS).as_bytes());
            out.push(b' ');
            out.extend(path(rng));
        }
        out.extend_from_slice(match rng.gen_range(0..20) {
            _ if framed => b" HTTP/1.1\r\n".as_slice(),
            0 => b" HTTP/1.0\r\n".as_slice(),
            1 => b" HTTP/9.9\r\n",
            2 => b"\r\n",
            _ => b" HTTP/1.1\r\n",
        });
        let mut headers: Vec<Vec<u8>> = vec![b"Host: localhost".to_vec()];
        match rng.gen_range(0..10) {
            0..=4 => headers.push(format!("Authorization: Bearer {FUZZ_TOKEN}").into_bytes()),
            5 => headers.push(format!("Authorization: Bearer {sa_token}").into_bytes()),
            6 => headers.push(format!("Authorization: Bearer {ALICE_TOKEN}").into_bytes()),
            7 => {
                let mut h = b"Authorization: ".to_vec();
                h.extend((0..rng.gen_range(0..300)).map(|_| rng.gen_range(0x20u8..=0xff)));
                headers.push(h);
            }
            _ => {}
        }
        if rng.gen_bool(0.8) {
            headers.push(format!("Content-Type: {}", pick(rng, CONTENT_TYPES)).into_bytes());
        }
        if rng.gen_bool(0.5) {
            headers.push(format!("Accept: {}", pick(rng, ACCEPTS)).into_bytes());
        }
        match rng.gen_range(0..30) {
            0 => headers.push(
                format!("X-Huge: {}", "h".repeat(rng.gen_range(10_000..300_000))).into_bytes(),
            ),
            1 => headers
                .extend((0..rng.gen_range(50..300)).map(|i| format!("X-Many-{i}: v").into_bytes())),
            2 => {
                let mut h = b"X-Bytes: ".to_vec();
                h.extend((0..rng.gen_range(1..200)).map(|_| rng.gen_range(0x80u8..=0xff)));
                headers.push(h);
            }
            3 => headers.push(b"Bad Header Name: x".to_vec()),
            4 => headers.push(b"Content-Encoding: gzip".to_vec()),
            5 => headers.push(b"Expect: 100-continue".to_vec()),
            6 => headers.push(b": empty-name".to_vec()),
            7 => headers.push(b"Transfer-Encoding: gzip, chunked".to_vec()),
            _ => {}
        }
        let body = body(rng);
        match rng.gen_range(0..10) {
            _ if framed => headers.push(format!("Content-Length: {}", body.len()).into_bytes()),
            // Chunked, sometimes with a malformed chunk size; always terminated.
            0 => {
                headers.push(b"Transfer-Encoding: chunked".to_vec());
                headers.push(b"Connection: close".to_vec());
                for h in headers {
                    out.extend(h);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"\r\n");
                if rng.gen_bool(0.5) {
                    out.extend(format!("{:x}\r\n", body.len()).into_bytes());
                } else {
                    out.extend_from_slice(b"zz\r\n");
                }
                out.extend(&body);
                out.extend_from_slice(b"\r\n0\r\n\r\n");
                return out;
            }
            // A Content-Length smaller than the body, or not a number.
            1 => headers.push(format!("Content-Length: {}", body.len() / 2).into_bytes()),
            2 => headers.push(b"Content-Length: -1".to_vec()),
            3 => {
                headers.push(format!("Content-Length: {}", body.len()).into_bytes());
                headers.push(format!("Content-Length: {}", body.len() + 1).into_bytes());
            }
            _ => headers.push(format!("Content-Length: {}", body.len()).into_bytes()),
        }
        headers.push(b"Connection: close".to_vec());
        for h in headers {
            out.extend(h);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend(body);
        out
    }

    /// Sends `raw` on a new TLS connection; the status code of the response, if one came.
    pub async fn send(
        hub: &Hub,
        connector: &tokio_rustls::TlsConnector,
        raw: &[u8],
    ) -> Option<u16> {
        let attempt = async {
            let tcp = tokio::net::TcpStream::connect(hub.started.addr)
                .await
                .ok()?;
            let mut tls = connector
                .connect(ServerName::try_from("localhost").ok()?, tcp)
                .await
                .ok()?;
            // The server may answer (and close) before reading everything.
            let _ = tls.write_all(raw).await;
            let _ = tls.flush().await;
            let mut head = Vec::new();
            let mut buf = [0u8; 512];
            while !head.windows(2).any(|w| w == b"\r\n") {
                let n = tls.read(&mut buf).await.ok()?;
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            status_code(&String::from_utf8_lossy(&head))
        };
        tokio::time::timeout(Duration::from_secs(10), attempt)
            .await
            .ok()
            .flatten()
    }
}
