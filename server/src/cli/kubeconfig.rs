//! The admin kubeconfig written next to the data: a cluster entry pointing at the root
//! workspace, the admin's client certificate, and a current context using both.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;

use crate::security::tls::PemPair;

/// Renders a kubeconfig (JSON is valid YAML, and kubectl reads both).
pub fn render(server_url: &str, ca_cert_pem: &str, user: &PemPair) -> String {
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "trellis",
            "cluster": {
                "server": server_url,
                "certificate-authority-data": STANDARD.encode(ca_cert_pem),
            }
        }],
        "users": [{
            "name": "trellis-admin",
            "user": {
                "client-certificate-data": STANDARD.encode(&user.cert),
                "client-key-data": STANDARD.encode(&user.key),
            }
        }],
        "contexts": [{
            "name": "trellis",
            "context": {"cluster": "trellis", "user": "trellis-admin"}
        }],
        "current-context": "trellis",
        "preferences": {},
    });
    // A `json!` value always serializes.
    serde_json::to_string_pretty(&config).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_the_current_context_at_the_server() {
        let pair = PemPair {
            cert: "CERT".into(),
            key: "KEY".into(),
        };
        let text = render("https://127.0.0.1:6443/clusters/root", "CA", &pair);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["current-context"], "trellis");
        assert_eq!(
            v["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:6443/clusters/root"
        );
        assert_eq!(
            v["users"][0]["user"]["client-key-data"],
            STANDARD.encode("KEY")
        );
    }
}
