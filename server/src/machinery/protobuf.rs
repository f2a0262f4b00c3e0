//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`) for the built-in kinds.
//!
//! client-go's typed clients, and so `kubectl create configmap|secret|namespace|role…`, send
//! built-in objects as protobuf, and fall back to JSON only for CBOR. A body is the magic
//! `k8s\0` and a `runtime.Unknown` whose `raw` holds the object; the object is decoded with
//! k8s-pb's generated types and turned into the JSON the rest of the server works with,
//! leaving out empty fields as Kubernetes' JSON does. Responses stay JSON, which those clients
//! accept.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use k8s_pb::api::{authentication, authorization, coordination, core, rbac};
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::{Map, Value};

use crate::machinery::status::Status;

pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8] = b"k8s\0";

/// Converts one type's protobuf bytes (a `runtime.Unknown`'s `raw`) into its JSON form.
pub type Converter = fn(&[u8]) -> Result<Value, Status>;

/// Decodes a protobuf body into the object's JSON form (with `apiVersion` and `kind`), with
/// the converter `converter_for` picks for the body's apiVersion and kind (a kind's own, see
/// `Kind::protobuf`); a type without one gets 415.
pub fn decode(
    body: &[u8],
    converter_for: impl FnOnce(&str, &str) -> Option<Converter>,
) -> Result<Value, Status> {
    let bad = |why: String| Status::bad_request(format!("invalid protobuf body: {why}"));
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("missing the k8s protobuf prefix".into()))?;
    let unknown = Unknown::decode(envelope).map_err(|e| bad(e.to_string()))?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    let Some(converter) = converter_for(&api_version, &kind) else {
        return Err(Status::unsupported_media_type(
            &format!("{MEDIA_TYPE} for {api_version} {kind}"),
            &["application/json", "application/yaml"],
        ));
    };
    let mut object = converter(&raw)?;
    object["apiVersion"] = Value::String(api_version);
    object["kind"] = Value::String(kind);
    Ok(object)
}

fn decoded(e: prost::DecodeError) -> Status {
    Status::bad_request(format!("invalid protobuf body: {e}"))
}

pub fn config_map(raw: &[u8]) -> Result<Value, Status> {
    Ok(config_map_json(
        core::v1::ConfigMap::decode(raw).map_err(decoded)?,
    ))
}

pub fn secret(raw: &[u8]) -> Result<Value, Status> {
    Ok(secret_json(core::v1::Secret::decode(raw).map_err(decoded)?))
}

pub fn namespace(raw: &[u8]) -> Result<Value, Status> {
    Ok(namespace_json(
        core::v1::Namespace::decode(raw).map_err(decoded)?,
    ))
}

pub fn service_account(raw: &[u8]) -> Result<Value, Status> {
    Ok(service_account_json(
        core::v1::ServiceAccount::decode(raw).map_err(decoded)?,
    ))
}

pub fn role(raw: &[u8]) -> Result<Value, Status> {
    let role = rbac::v1::Role::decode(raw).map_err(decoded)?;
    Ok(Obj::with_meta(role.metadata)
        .list("rules", role.rules, policy_rule)
        .done())
}

pub fn cluster_role(raw: &[u8]) -> Result<Value, Status> {
    let role = rbac::v1::ClusterRole::decode(raw).map_err(decoded)?;
    Ok(Obj::with_meta(role.metadata)
        .list("rules", role.rules, policy_rule)
        .value(
            "aggregationRule",
            role.aggregation_rule.map(|a| {
                Obj::new()
                    .list(
                        "clusterRoleSelectors",
                        a.cluster_role_selectors,
                        label_selector,
                    )
                    .done()
            }),
        )
        .done())
}

pub fn role_binding(raw: &[u8]) -> Result<Value, Status> {
    let b = rbac::v1::RoleBinding::decode(raw).map_err(decoded)?;
    Ok(binding(b.metadata, b.subjects, b.role_ref))
}

pub fn cluster_role_binding(raw: &[u8]) -> Result<Value, Status> {
    let b = rbac::v1::ClusterRoleBinding::decode(raw).map_err(decoded)?;
    Ok(binding(b.metadata, b.subjects, b.role_ref))
}

pub fn lease(raw: &[u8]) -> Result<Value, Status> {
    Ok(lease_json(
        coordination::v1::Lease::decode(raw).map_err(decoded)?,
    ))
}

/// `kubectl create token`.
pub fn token_request(raw: &[u8]) -> Result<Value, Status> {
    let request = authentication::v1::TokenRequest::decode(raw).map_err(decoded)?;
    let spec = request.spec.unwrap_or_default();
    let bound = spec.bound_object_ref.map(|b| {
        Obj::new()
            .text("kind", b.kind)
            .text("apiVersion", b.api_version)
            .text("name", b.name)
            .text("uid", b.u_id)
            .done()
    });
    Ok(Obj::with_meta(request.metadata)
        .value(
            "spec",
            Some(
                Obj::new()
                    .strings("audiences", spec.audiences)
                    .value(
                        "expirationSeconds",
                        spec.expiration_seconds.map(Value::from),
                    )
                    .value("boundObjectRef", bound)
                    .done(),
            ),
        )
        .done())
}

pub fn self_subject_access_review(raw: &[u8]) -> Result<Value, Status> {
    let r = authorization::v1::SelfSubjectAccessReview::decode(raw).map_err(decoded)?;
    let spec = r.spec.unwrap_or_default();
    Ok(Obj::with_meta(r.metadata)
        .value(
            "spec",
            Some(access_review_spec(
                spec.resource_attributes,
                spec.non_resource_attributes,
            )),
        )
        .done())
}

pub fn subject_access_review(raw: &[u8]) -> Result<Value, Status> {
    let r = authorization::v1::SubjectAccessReview::decode(raw).map_err(decoded)?;
    let spec = r.spec.unwrap_or_default();
    let mut json = access_review_spec(spec.resource_attributes, spec.non_resource_attributes);
    if let Some(user) = spec.user {
        json["user"] = Value::String(user);
    }
    if let Some(uid) = spec.uid {
        json["uid"] = Value::String(uid);
    }
    if !spec.groups.is_empty() {
        json["groups"] = spec.groups.into_iter().map(Value::String).collect();
    }
    Ok(Obj::with_meta(r.metadata).value("spec", Some(json)).done())
}

pub fn self_subject_rules_review(raw: &[u8]) -> Result<Value, Status> {
    let r = authorization::v1::SelfSubjectRulesReview::decode(raw).map_err(decoded)?;
    let spec = r.spec.unwrap_or_default();
    Ok(Obj::with_meta(r.metadata)
        .value(
            "spec",
            Some(Obj::new().text("namespace", spec.namespace).done()),
        )
        .done())
}

/// The attributes of a (Self)SubjectAccessReview spec.
fn access_review_spec(
    resource: Option<authorization::v1::ResourceAttributes>,
    non_resource: Option<authorization::v1::NonResourceAttributes>,
) -> Value {
    Obj::new()
        .value(
            "resourceAttributes",
            resource.map(|r| {
                Obj::new()
                    .text("namespace", r.namespace)
                    .text("verb", r.verb)
                    .text("group", r.group)
                    .text("version", r.version)
                    .text("resource", r.resource)
                    .text("subresource", r.subresource)
                    .text("name", r.name)
                    .done()
            }),
        )
        .value(
            "nonResourceAttributes",
            non_resource.map(|n| Obj::new().text("path", n.path).text("verb", n.verb).done()),
        )
        .done()
}

/// A JSON object that leaves out what is absent or empty.
struct Obj(Map<String, Value>);

impl Obj {
    fn new() -> Obj {
        Obj(Map::new())
    }

    fn with_meta(metadata: Option<meta::ObjectMeta>) -> Obj {
        Obj::new().value("metadata", Some(object_meta(metadata.unwrap_or_default())))
    }

    fn value(mut self, key: &str, value: Option<Value>) -> Obj {
        if let Some(value) = value {
            self.0.insert(key.to_string(), value);
        }
        self
    }

    /// A string field tagged `omitempty` in the Go type: Go's protobuf encoding writes such a
    /// field even when it is empty, and its JSON leaves it out.
    fn text(self, key: &str, value: Option<String>) -> Obj {
        self.value(key, value.filter(|v| !v.is_empty()).map(Value::String))
    }

    /// A string field that Go's JSON keeps when empty: one without `omitempty`, or a pointer
    /// that was set.
    fn text_kept(self, key: &str, value: Option<String>) -> Obj {
        self.value(key, value.map(Value::String))
    }

    fn strings(self, key: &str, values: Vec<String>) -> Obj {
        self.list(key, values, Value::String)
    }

    fn list<T>(self, key: &str, items: Vec<T>, f: impl Fn(T) -> Value) -> Obj {
        let value = (!items.is_empty()).then(|| Value::Array(items.into_iter().map(f).collect()));
        self.value(key, value)
    }

    fn map(self, key: &str, map: BTreeMap<String, String>) -> Obj {
        let value = (!map.is_empty()).then(|| {
            Value::Object(
                map.into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect(),
            )
        });
        self.value(key, value)
    }

    fn bytes_map(self, key: &str, map: BTreeMap<String, Vec<u8>>) -> Obj {
        let encoded = map
            .into_iter()
            .map(|(k, v)| (k, STANDARD.encode(v)))
            .collect();
        self.map(key, encoded)
    }

    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

fn time(seconds: Option<i64>, nanos: Option<i32>, micros: bool) -> Option<Value> {
    let seconds = seconds?;
    let at = UNIX_EPOCH + Duration::new(seconds.max(0) as u64, nanos.unwrap_or(0).max(0) as u32);
    Some(Value::String(if micros {
        humantime::format_rfc3339_micros(at).to_string()
    } else {
        humantime::format_rfc3339_seconds(at).to_string()
    }))
}

fn object_meta(m: meta::ObjectMeta) -> Value {
    Obj::new()
        .text("name", m.name)
        .text("generateName", m.generate_name)
        .text("namespace", m.namespace)
        .text("uid", m.uid)
        .text("resourceVersion", m.resource_version)
        .value("generation", m.generation.map(Value::from))
        .value(
            "creationTimestamp",
            m.creation_timestamp
                .and_then(|t| time(t.seconds, t.nanos, false)),
        )
        .value(
            "deletionTimestamp",
            m.deletion_timestamp
                .and_then(|t| time(t.seconds, t.nanos, false)),
        )
        .value(
            "deletionGracePeriodSeconds",
            m.deletion_grace_period_seconds.map(Value::from),
        )
        .map("labels", m.labels)
        .map("annotations", m.annotations)
        .list("ownerReferences", m.owner_references, |o| {
            Obj::new()
                .text_kept("apiVersion", o.api_version)
                .text_kept("kind", o.kind)
                .text_kept("name", o.name)
                .text_kept("uid", o.uid)
                .value("controller", o.controller.map(Value::Bool))
                .value(
                    "blockOwnerDeletion",
                    o.block_owner_deletion.map(Value::Bool),
                )
                .done()
        })
        .strings("finalizers", m.finalizers)
        .done()
}

fn config_map_json(c: core::v1::ConfigMap) -> Value {
    Obj::with_meta(c.metadata)
        .map("data", c.data)
        .bytes_map("binaryData", c.binary_data)
        .value("immutable", c.immutable.map(Value::Bool))
        .done()
}

fn secret_json(s: core::v1::Secret) -> Value {
    Obj::with_meta(s.metadata)
        .bytes_map("data", s.data)
        .map("stringData", s.string_data)
        .text("type", s.r#type)
        .value("immutable", s.immutable.map(Value::Bool))
        .done()
}

fn namespace_json(n: core::v1::Namespace) -> Value {
    Obj::with_meta(n.metadata)
        .value(
            "spec",
            n.spec
                .map(|s| Obj::new().strings("finalizers", s.finalizers).done()),
        )
        .value(
            "status",
            n.status.map(|s| Obj::new().text("phase", s.phase).done()),
        )
        .done()
}

fn service_account_json(sa: core::v1::ServiceAccount) -> Value {
    Obj::with_meta(sa.metadata)
        .list("secrets", sa.secrets, |r| {
            Obj::new()
                .text("kind", r.kind)
                .text("namespace", r.namespace)
                .text("name", r.name)
                .text("uid", r.uid)
                .text("apiVersion", r.api_version)
                .text("resourceVersion", r.resource_version)
                .text("fieldPath", r.field_path)
                .done()
        })
        .list("imagePullSecrets", sa.image_pull_secrets, |r| {
            Obj::new().text("name", r.name).done()
        })
        .value(
            "automountServiceAccountToken",
            sa.automount_service_account_token.map(Value::Bool),
        )
        .done()
}

fn policy_rule(r: rbac::v1::PolicyRule) -> Value {
    Obj::new()
        .strings("verbs", r.verbs)
        .strings("apiGroups", r.api_groups)
        .strings("resources", r.resources)
        .strings("resourceNames", r.resource_names)
        .strings("nonResourceURLs", r.non_resource_ur_ls)
        .done()
}

fn label_selector(s: meta::LabelSelector) -> Value {
    Obj::new()
        .map("matchLabels", s.match_labels)
        .list("matchExpressions", s.match_expressions, |e| {
            Obj::new()
                .text_kept("key", e.key)
                .text_kept("operator", e.operator)
                .strings("values", e.values)
                .done()
        })
        .done()
}

fn binding(
    metadata: Option<meta::ObjectMeta>,
    subjects: Vec<rbac::v1::Subject>,
    role_ref: Option<rbac::v1::RoleRef>,
) -> Value {
    Obj::with_meta(metadata)
        .list("subjects", subjects, |s| {
            Obj::new()
                .text_kept("kind", s.kind)
                .text("apiGroup", s.api_group)
                .text_kept("name", s.name)
                .text("namespace", s.namespace)
                .done()
        })
        .value(
            "roleRef",
            role_ref.map(|r| {
                Obj::new()
                    .text_kept("apiGroup", r.api_group)
                    .text_kept("kind", r.kind)
                    .text_kept("name", r.name)
                    .done()
            }),
        )
        .done()
}

fn lease_json(l: coordination::v1::Lease) -> Value {
    Obj::with_meta(l.metadata)
        .value(
            "spec",
            l.spec.map(|s| {
                Obj::new()
                    .text_kept("holderIdentity", s.holder_identity)
                    .value(
                        "leaseDurationSeconds",
                        s.lease_duration_seconds.map(Value::from),
                    )
                    .value(
                        "acquireTime",
                        s.acquire_time.and_then(|t| time(t.seconds, t.nanos, true)),
                    )
                    .value(
                        "renewTime",
                        s.renew_time.and_then(|t| time(t.seconds, t.nanos, true)),
                    )
                    .value("leaseTransitions", s.lease_transitions.map(Value::from))
                    .text_kept("strategy", s.strategy)
                    .text_kept("preferredHolder", s.preferred_holder)
                    .done()
            }),
        )
        .done()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_pb::apimachinery::pkg::runtime::TypeMeta;
    use serde_json::json;

    /// Decodes with the converter of whichever kind the body names.
    fn decode_any(body: &[u8]) -> Result<Value, Status> {
        decode(body, |api_version, kind| {
            Some(match (api_version, kind) {
                ("v1", "ConfigMap") => config_map,
                ("v1", "Secret") => secret,
                ("v1", "Namespace") => namespace,
                ("v1", "ServiceAccount") => service_account,
                ("rbac.authorization.k8s.io/v1", "Role") => role,
                ("rbac.authorization.k8s.io/v1", "ClusterRole") => cluster_role,
                ("rbac.authorization.k8s.io/v1", "RoleBinding") => role_binding,
                ("coordination.k8s.io/v1", "Lease") => lease,
                ("authentication.k8s.io/v1", "TokenRequest") => token_request,
                ("authorization.k8s.io/v1", "SubjectAccessReview") => subject_access_review,
                _ => return None,
            })
        })
    }

    fn decoded_role_binding(rb: &rbac::v1::RoleBinding) -> Value {
        decode_any(&envelope(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            rb.encode_to_vec(),
        ))
        .unwrap()
    }

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            ..Default::default()
        };
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        body
    }

    #[test]
    fn configmaps_decode_to_their_json_form() {
        let cm = core::v1::ConfigMap {
            metadata: Some(meta::ObjectMeta {
                name: Some("cfg".into()),
                labels: BTreeMap::from([("app".into(), "llm".into())]),
                ..Default::default()
            }),
            data: BTreeMap::from([("model".into(), "llama".into())]),
            binary_data: BTreeMap::from([("blob".into(), b"x".to_vec())]),
            ..Default::default()
        };
        let json = decode_any(&envelope("v1", "ConfigMap", cm.encode_to_vec())).unwrap();
        assert_eq!(
            json,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "cfg", "labels": {"app": "llm"}},
                   "data": {"model": "llama"}, "binaryData": {"blob": "eA=="}})
        );
    }

    /// Go's protobuf encoding writes every plain string field, empty or not (what `kubectl
    /// create configmap` sends carries `generateName: ""`); its JSON leaves out the empty ones
    /// tagged `omitempty` and keeps the others.
    #[test]
    fn empty_strings_go_as_they_do_in_kubernetes_json() {
        let cm = core::v1::ConfigMap {
            metadata: Some(meta::ObjectMeta {
                name: Some("cfg".into()),
                generate_name: Some(String::new()),
                namespace: Some(String::new()),
                uid: Some(String::new()),
                resource_version: Some(String::new()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let json = decode_any(&envelope("v1", "ConfigMap", cm.encode_to_vec())).unwrap();
        assert_eq!(json["metadata"], json!({"name": "cfg"}));

        let rb = rbac::v1::RoleBinding {
            metadata: Some(meta::ObjectMeta {
                name: Some("rb".into()),
                ..Default::default()
            }),
            subjects: vec![rbac::v1::Subject {
                kind: Some("Group".into()),
                name: Some("devs".into()),
                api_group: Some(String::new()),
                namespace: Some(String::new()),
            }],
            role_ref: Some(rbac::v1::RoleRef {
                api_group: Some(String::new()),
                kind: Some("Role".into()),
                name: Some("reader".into()),
            }),
        };
        let json = decoded_role_binding(&rb);
        assert_eq!(json["subjects"], json!([{"kind": "Group", "name": "devs"}]));
        assert_eq!(
            json["roleRef"],
            json!({"apiGroup": "", "kind": "Role", "name": "reader"})
        );
    }

    #[test]
    fn bindings_and_times() {
        let rb = rbac::v1::RoleBinding {
            metadata: Some(meta::ObjectMeta {
                name: Some("rb".into()),
                creation_timestamp: Some(meta::Time {
                    seconds: Some(0),
                    nanos: Some(0),
                }),
                ..Default::default()
            }),
            subjects: vec![rbac::v1::Subject {
                kind: Some("User".into()),
                name: Some("alice".into()),
                api_group: Some("rbac.authorization.k8s.io".into()),
                namespace: None,
            }],
            role_ref: Some(rbac::v1::RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: Some("Role".into()),
                name: Some("reader".into()),
            }),
        };
        let json = decoded_role_binding(&rb);
        assert_eq!(
            json["metadata"]["creationTimestamp"],
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(json["subjects"][0]["name"], "alice");
        assert_eq!(json["roleRef"]["name"], "reader");
    }

    #[test]
    fn garbage_and_unknown_kinds_are_clear_errors() {
        assert_eq!(decode_any(b"not protobuf").unwrap_err().code, 400);
        assert_eq!(decode_any(b"k8s\0\xff\xff\xff").unwrap_err().code, 400);
        assert_eq!(
            decode_any(&envelope("apps/v1", "Deployment", vec![]))
                .unwrap_err()
                .code,
            415
        );
    }
}
