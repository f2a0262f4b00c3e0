//! Patching: the three patch formats kubectl and client-go send, applied to the stored object.
//!
//! JSON patch (RFC 6902) and JSON merge patch (RFC 7396) come from the `json-patch` crate;
//! strategic merge patch, which only Kubernetes has, is [`strategic`]. What any patch may
//! build (operations, copies, depth, size) is bounded by [`limits`].

pub mod limits;
pub mod strategic;

use serde_json::Value;

use crate::machinery::status::Status;

pub const JSON_PATCH: &str = "application/json-patch+json";
pub const MERGE_PATCH: &str = "application/merge-patch+json";
pub const STRATEGIC_MERGE_PATCH: &str = "application/strategic-merge-patch+json";
pub const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// The patch types this server applies, for 415 answers.
pub const ACCEPTED: &[&str] = &[JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
}

impl PatchType {
    pub fn from_media_type(media_type: &str) -> Result<PatchType, Status> {
        match media_type.split(';').next().unwrap_or_default().trim() {
            JSON_PATCH => Ok(PatchType::Json),
            MERGE_PATCH => Ok(PatchType::Merge),
            STRATEGIC_MERGE_PATCH => Ok(PatchType::Strategic),
            _ => Err(Status::unsupported_media_type(media_type, ACCEPTED)),
        }
    }
}

/// Applies `patch` (raw body) of `kind` to `original`; strategic merge patches merge lists as
/// `strategies` say.
pub fn apply(
    kind: PatchType,
    original: &Value,
    patch: &[u8],
    strategies: &strategic::Strategies,
) -> Result<Value, Status> {
    match kind {
        PatchType::Json => {
            let operations: json_patch::Patch = serde_json::from_slice(patch)
                .map_err(|e| Status::bad_request(format!("invalid JSON patch: {e}")))?;
            limits::apply_json_patch(original, &operations)
        }
        PatchType::Merge => {
            let patch: Value = serde_json::from_slice(patch)
                .map_err(|e| Status::bad_request(format!("invalid merge patch: {e}")))?;
            if !patch.is_object() {
                return Err(Status::bad_request("a merge patch must be a JSON object"));
            }
            let mut doc = original.clone();
            json_patch::merge(&mut doc, &patch);
            limits::check_size(&doc)?;
            Ok(doc)
        }
        PatchType::Strategic => {
            let patch: Value = serde_json::from_slice(patch)
                .map_err(|e| Status::bad_request(format!("invalid strategic merge patch: {e}")))?;
            let doc = strategic::apply(original, &patch, strategies)
                .map_err(|e| Status::bad_request(format!("invalid strategic merge patch: {e}")))?;
            limits::check_size(&doc)?;
            Ok(doc)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_and_merge_patches() {
        let original =
            json!({"metadata": {"name": "x", "labels": {"a": "1", "b": "2"}}, "data": {"k": "v"}});
        let merged = apply(
            PatchType::Merge,
            &original,
            br#"{"metadata": {"labels": {"a": null, "c": "3"}}}"#,
            &strategic::Strategies::with(&[]),
        )
        .unwrap();
        assert_eq!(merged["metadata"]["labels"], json!({"b": "2", "c": "3"}));
        let patched = apply(
            PatchType::Json,
            &original,
            br#"[{"op": "replace", "path": "/data/k", "value": "w"}, {"op": "add", "path": "/data/n", "value": "1"}]"#,
            &strategic::Strategies::with(&[]),
        )
        .unwrap();
        assert_eq!(patched["data"], json!({"k": "w", "n": "1"}));
        let failed = apply(
            PatchType::Json,
            &original,
            br#"[{"op": "test", "path": "/data/k", "value": "nope"}]"#,
            &strategic::Strategies::with(&[]),
        );
        assert_eq!(failed.unwrap_err().code, 422);
        assert_eq!(
            apply(
                PatchType::Merge,
                &original,
                b"[1]",
                &strategic::Strategies::with(&[])
            )
            .unwrap_err()
            .code,
            400
        );
        assert_eq!(
            apply(
                PatchType::Json,
                &original,
                b"{",
                &strategic::Strategies::with(&[])
            )
            .unwrap_err()
            .code,
            400
        );
    }

    #[test]
    fn media_types() {
        assert_eq!(
            PatchType::from_media_type("application/strategic-merge-patch+json; charset=utf-8")
                .unwrap(),
            PatchType::Strategic
        );
        assert_eq!(
            PatchType::from_media_type("application/apply-patch+yaml")
                .unwrap_err()
                .code,
            415
        );
    }
}
