//! Secret: confidential data. `stringData` is write-only, folded into `data` (base64) on every
//! write; `type` defaults to `Opaque`. Readable by editors, not viewers, as in Kubernetes.
//!
//! Checked as kube-apiserver checks them: `data` values are base64 (a 400, as its decoder
//! answers), keys and size as a ConfigMap's, the keys each `type` needs are there, and `type`
//! never changes, nor anything once `immutable` is set.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use k8s_openapi::api::core::v1;
use serde_json::{Map, Value};

use super::config_map::{decoded_len, entries, immutable_errors, key_errors, MAX_SIZE};
use crate::kinds::{
    age_cell, cell_count, cell_text, schema_of, Admission, Column, Grants, Kind, Names,
    SchemaSource, AGE, NAME, READ_WRITE,
};
use crate::machinery::schema::FieldError;
use crate::machinery::status::{Status, StatusCause};

pub struct Secret;

/// The `data` keys a Secret of a given type must have (any one of several, for basic-auth).
fn required_keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        "kubernetes.io/tls" => &["tls.key", "tls.crt"],
        _ => &[],
    }
}

#[async_trait::async_trait]
impl Kind for Secret {
    fn names(&self) -> Names {
        Names::namespaced("", "v1", "Secret", "secrets")
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Upstream(schema_of::<v1::Secret>)
    }

    fn prepare(&self, object: &mut Value) {
        fold_string_data(object)
    }

    fn validate(&self, object: &Value, old: Option<&Value>) -> Vec<StatusCause> {
        let mut errors = Vec::new();
        let mut size = 0;
        for (key, value) in entries(object, "data") {
            errors.extend(key_errors("data", key));
            size += decoded_len(value);
        }
        if size > MAX_SIZE {
            errors.push(FieldError::too_long("data", MAX_SIZE as u64));
        }
        let kind = object
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("Opaque");
        let has = |key: &str| object.pointer("/data").and_then(|d| d.get(key)).is_some();
        for key in required_keys(kind) {
            if !has(key) {
                errors.push(FieldError::required(format!("data[{key}]"), ""));
            }
        }
        match kind {
            "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
                errors.push(FieldError::required("data[username]", ""));
                errors.push(FieldError::required("data[password]", ""));
            }
            "kubernetes.io/service-account-token"
                if object
                    .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
                    .is_none() =>
            {
                errors.push(FieldError::required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "",
                ));
            }
            _ => {}
        }
        if let Some(old) = old {
            let was = old.get("type").and_then(Value::as_str).unwrap_or("Opaque");
            if was != kind {
                errors.push(FieldError::invalid(
                    "type",
                    &Value::String(kind.to_string()),
                    "field is immutable",
                ));
            }
            errors.extend(immutable_errors(object, old, &["data"]));
        }
        errors.into_iter().map(StatusCause::from).collect()
    }

    /// `data` that is not base64 is refused as kube-apiserver's decoder refuses it.
    async fn admit(
        &self,
        _admission: &Admission<'_>,
        object: &mut Value,
        _old: Option<&Value>,
    ) -> Result<(), Status> {
        for (_, value) in entries(object, "data") {
            let Some(text) = value.as_str() else { continue };
            if let Err(e) = STANDARD.decode(text) {
                let at = match e {
                    base64::DecodeError::InvalidByte(at, _)
                    | base64::DecodeError::InvalidLastSymbol(at, _) => at,
                    _ => text.len(),
                };
                return Err(Status::bad_request(format!(
                    "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data \
                     at input byte {at}"
                )));
            }
        }
        Ok(())
    }

    fn columns(&self) -> &'static [Column] {
        &[NAME, ("Type", "string", 0), ("Data", "integer", 0), AGE]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![
            cell_text(o, "/metadata/name"),
            cell_text(o, "/type"),
            cell_count(o, &["/data"]),
            age_cell(o),
        ]
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &["type"]
    }

    fn grants(&self) -> Grants {
        Grants {
            view: &[],
            edit: READ_WRITE,
            admin: &[],
        }
    }

    fn protobuf(&self) -> Option<crate::machinery::protobuf::Converter> {
        Some(crate::machinery::protobuf::secret)
    }
}

/// `stringData` merged into `data` (base64), winning over it; `type` defaults to `Opaque`.
fn fold_string_data(object: &mut Value) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(string_data)) = map.remove("stringData") {
        let data = map
            .entry("data")
            .or_insert_with(|| Value::Object(Map::new()));
        if !data.is_object() {
            *data = Value::Object(Map::new());
        }
        if let Some(data) = data.as_object_mut() {
            for (key, value) in string_data {
                if let Some(text) = value.as_str() {
                    data.insert(key, Value::String(STANDARD.encode(text)));
                }
            }
        }
    }
    if map
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        map.insert("type".into(), Value::String("Opaque".into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(object: &Value, old: Option<&Value>) -> Vec<String> {
        Secret
            .validate(object, old)
            .into_iter()
            .map(|c| c.field)
            .collect()
    }

    #[test]
    fn each_type_has_its_keys() {
        let tls = |data: Value| json!({"type": "kubernetes.io/tls", "data": data});
        assert!(fields(&tls(json!({"tls.crt": "eA==", "tls.key": "eA=="})), None).is_empty());
        assert_eq!(
            fields(&tls(json!({"tls.crt": "eA=="})), None),
            ["data[tls.key]"]
        );
        let basic = json!({"type": "kubernetes.io/basic-auth", "data": {}});
        assert_eq!(fields(&basic, None), ["data[username]", "data[password]"]);
        let token = json!({"type": "kubernetes.io/service-account-token"});
        assert_eq!(
            fields(&token, None),
            ["metadata.annotations[kubernetes.io/service-account.name]"]
        );
        assert_eq!(
            fields(&json!({"data": {"a b": "eA=="}}), None),
            ["data[a b]"]
        );
    }

    #[test]
    fn type_and_immutable_data_stay() {
        let old = json!({"type": "Opaque", "data": {"a": "eA=="}});
        assert!(fields(&old, Some(&old)).is_empty());
        let retyped =
            json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "eA==", "tls.key": "eA=="}});
        assert_eq!(fields(&retyped, Some(&old)), ["type"]);
        let frozen = json!({"type": "Opaque", "immutable": true, "data": {"a": "eA=="}});
        let changed = json!({"type": "Opaque", "immutable": true, "data": {"a": "eQ=="}});
        assert_eq!(fields(&changed, Some(&frozen)), ["data"]);
    }

    #[test]
    fn secrets_fold_string_data_into_data() {
        let mut s = json!({"metadata": {"name": "s"}, "data": {"a": "eA==", "k": "b2xk"}, "stringData": {"k": "v"}});
        Secret.prepare(&mut s);
        assert_eq!(s["data"], json!({"a": "eA==", "k": "dg=="}));
        assert!(s.get("stringData").is_none());
        assert_eq!(s["type"], "Opaque");
        let mut tls = json!({"type": "kubernetes.io/tls"});
        Secret.prepare(&mut tls);
        assert_eq!(tls["type"], "kubernetes.io/tls");
    }
}
