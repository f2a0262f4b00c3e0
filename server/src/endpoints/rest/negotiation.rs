//! Which encoding a resource request's answer takes, from its `Accept` header, as
//! kube-apiserver negotiates it: JSON, or YAML when the client prefers it; a client that
//! accepts neither (nor protobuf, which built-in clients list beside JSON and are answered
//! JSON) gets 406. A watch is a stream of JSON events: YAML has no stream form, so a watch
//! that accepts only YAML gets 406 too. Whether JSON carries the object, a Table or
//! `PartialObjectMetadata` is the `as=` parameter's business, which the table module reads
//! from the same media ranges.

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use serde_json::Value;

use crate::machinery::protobuf;
use crate::machinery::status::Status;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Yaml,
}

const JSON: &str = "application/json";
const YAML: &str = "application/yaml";

/// One media range of an `Accept` header: its type (`application/json`) and its parameters.
pub struct MediaRange<'a> {
    pub essence: &'a str,
    params: Vec<(&'a str, &'a str)>,
}

impl<'a> MediaRange<'a> {
    pub fn param(&self, key: &str) -> Option<&'a str> {
        self.params.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// `q`, 1 when not given.
    fn quality(&self) -> f32 {
        self.param("q").and_then(|q| q.parse().ok()).unwrap_or(1.0)
    }
}

/// The media ranges of `accept`, in the client's order.
pub fn media_ranges(accept: &str) -> impl Iterator<Item = MediaRange<'_>> {
    accept.split(',').map(|range| {
        let mut parts = range.split(';');
        MediaRange {
            essence: parts.next().unwrap_or_default().trim(),
            params: parts
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.trim(), v.trim()))
                .collect(),
        }
    })
}

/// The encoding `accept` asks for: its ranges by falling quality (`q`, 1 by default; 0 never),
/// the first one served wins; `*/*` and `application/*` mean JSON. No header means JSON.
pub fn negotiate(accept: Option<&str>, watch: bool) -> Result<Encoding, Status> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(Encoding::Json);
    };
    let mut clauses: Vec<(f32, &str)> = media_ranges(accept)
        .map(|range| (range.quality(), range.essence))
        .filter(|(quality, _)| *quality > 0.0)
        .collect();
    // Stable: equal qualities keep the client's order.
    clauses.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (_, essence) in clauses {
        match essence.to_ascii_lowercase().as_str() {
            JSON | "*/*" | "application/*" => return Ok(Encoding::Json),
            protobuf::MEDIA_TYPE => return Ok(Encoding::Json),
            YAML if !watch => return Ok(Encoding::Yaml),
            _ => {}
        }
    }
    let offered = if watch {
        format!("{JSON}, {}", protobuf::MEDIA_TYPE)
    } else {
        format!("{JSON}, {YAML}, {}", protobuf::MEDIA_TYPE)
    };
    Err(Status::new(
        406,
        "NotAcceptable",
        format!("only the following media types are accepted: {offered}"),
    ))
}

/// `response` in `encoding`: a JSON body re-encoded as YAML when asked for; anything else as
/// it is.
pub async fn encode(response: Response, encoding: Encoding) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(JSON.as_bytes()));
    if encoding == Encoding::Json || !is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // The body is already in memory (the answers of a get, list or write).
    let yaml = axum::body::to_bytes(body, usize::MAX)
        .await
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|value| serde_yaml_ng::to_string(&value).ok());
    let Some(yaml) = yaml else {
        return crate::serving::response::status(Status::internal("encoding the response as YAML"));
    };
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(YAML));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(yaml))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chosen(accept: &str) -> Result<Encoding, u16> {
        negotiate(Some(accept), false).map_err(|status| status.code)
    }

    #[test]
    fn the_first_served_clause_by_quality_wins() {
        assert_eq!(chosen("application/yaml"), Ok(Encoding::Yaml));
        assert_eq!(
            chosen("application/json, application/yaml"),
            Ok(Encoding::Json)
        );
        assert_eq!(
            chosen("application/yaml, application/json"),
            Ok(Encoding::Yaml)
        );
        assert_eq!(
            chosen("application/yaml;q=0.5, application/json"),
            Ok(Encoding::Json)
        );
        assert_eq!(chosen("text/html, application/yaml"), Ok(Encoding::Yaml));
        assert_eq!(
            chosen("application/json;as=Table;v=v1;g=meta.k8s.io,application/json"),
            Ok(Encoding::Json)
        );
        assert_eq!(
            chosen("application/vnd.kubernetes.protobuf, application/json"),
            Ok(Encoding::Json)
        );
        assert_eq!(chosen("*/*"), Ok(Encoding::Json));
        assert_eq!(chosen("application/*;q=0.8"), Ok(Encoding::Json));
        assert_eq!(negotiate(None, false).unwrap(), Encoding::Json);
        assert_eq!(negotiate(Some(""), true).unwrap(), Encoding::Json);
    }

    #[test]
    fn a_client_that_accepts_nothing_served_gets_406() {
        for accept in ["text/html", "application/json;q=0", "image/png, text/plain"] {
            assert_eq!(chosen(accept), Err(406), "{accept}");
        }
        let status = negotiate(Some("application/yaml"), true).unwrap_err();
        assert_eq!((status.code, status.reason), (406, "NotAcceptable"));
        assert_eq!(
            status.message,
            "only the following media types are accepted: application/json, \
             application/vnd.kubernetes.protobuf"
        );
    }

    #[tokio::test]
    async fn json_answers_become_yaml() {
        let response = crate::serving::response::json(
            axum::http::StatusCode::CREATED,
            &serde_json::json!({"kind": "ConfigMap", "data": {"a": "1"}}),
        );
        let response = encode(response, Encoding::Yaml).await;
        assert_eq!(response.status(), 201);
        assert_eq!(response.headers()[header::CONTENT_TYPE], YAML);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let back: Value = serde_yaml_ng::from_slice(&body).unwrap();
        assert_eq!(
            back,
            serde_json::json!({"kind": "ConfigMap", "data": {"a": "1"}})
        );
    }
}
