//! Putting `metadata.resourceVersion` into stored bytes without parsing them.
//!
//! Storage keeps the resourceVersion out of the stored JSON, so every read has to add it. Doing
//! that by parsing into a `serde_json::Value`, inserting and re-encoding costs tens of
//! microseconds per object, which dominates watch fan-out (every event, once per watcher) and the
//! replies to writes. The stored bytes are almost always serde_json's own compact output of a
//! `Value` (keys sorted), so a splice at the right byte offset gives exactly the bytes the
//! parse-and-encode path would.
//!
//! The scanner only accepts the plain shape: a top-level object with exactly one `metadata`
//! object, no escaped keys where it compares keys, no `resourceVersion` already present and, when
//! asked, the expected `apiVersion`. Anything else returns `None` and the caller takes the
//! parsing path ([`crate::machinery::object_meta::decode`]), so unusual bytes behave exactly as before.

const METADATA: &[u8] = b"metadata";
const RESOURCE_VERSION: &[u8] = b"resourceVersion";
const API_VERSION: &[u8] = b"apiVersion";

/// `value` with `"resourceVersion":"<revision>"` inserted into its `metadata` object, in key
/// order. With `api_version`, the object's `apiVersion` must already be that string (custom
/// resources read through another version are rewritten by the parsing path instead).
pub fn splice_revision(value: &[u8], revision: u64, api_version: Option<&str>) -> Option<Vec<u8>> {
    let mut i = skip_ws(value, 0);
    expect(value, i, b'{')?;
    i += 1;
    // Where the field goes, and whether it needs a comma after (before a key) or before (at the
    // closing brace of a non-empty metadata).
    let mut insert: Option<(usize, Placement)> = None;
    let mut api_version_ok = api_version.is_none();
    i = skip_ws(value, i);
    if value.get(i) == Some(&b'}') {
        return None;
    }
    loop {
        let (key, after_key) = key_at(value, i)?;
        i = skip_ws(value, after_key);
        expect(value, i, b':')?;
        i = skip_ws(value, i + 1);
        let end = if key == METADATA {
            if insert.is_some() {
                // A duplicate key: leave the semantics of that to the parser.
                return None;
            }
            let (at, end) = metadata_insertion(value, i)?;
            insert = Some(at);
            end
        } else {
            let end = skip_value(value, i)?;
            if key == API_VERSION {
                if let Some(expected) = api_version {
                    api_version_ok = is_string(&value[i..end], expected);
                }
            }
            end
        };
        i = skip_ws(value, end);
        match value.get(i)? {
            b',' => i = skip_ws(value, i + 1),
            b'}' => break,
            _ => return None,
        }
    }
    if skip_ws(value, i + 1) != value.len() || !api_version_ok {
        return None;
    }
    let (at, placement) = insert?;
    let digits = revision.to_string();
    let mut out = Vec::with_capacity(value.len() + RESOURCE_VERSION.len() + digits.len() + 6);
    out.extend_from_slice(&value[..at]);
    if placement == Placement::AfterLast {
        out.push(b',');
    }
    out.extend_from_slice(b"\"resourceVersion\":\"");
    out.extend_from_slice(digits.as_bytes());
    out.push(b'"');
    if placement == Placement::BeforeKey {
        out.push(b',');
    }
    out.extend_from_slice(&value[at..]);
    Some(out)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placement {
    /// Before an existing key, which sorts after `resourceVersion`.
    BeforeKey,
    /// Before the closing brace of a non-empty object.
    AfterLast,
    /// Into an empty object.
    Only,
}

/// For the `metadata` value starting at `i`: where the field goes, and the end of the value.
fn metadata_insertion(value: &[u8], i: usize) -> Option<((usize, Placement), usize)> {
    expect(value, i, b'{')?;
    let mut j = skip_ws(value, i + 1);
    if value.get(j) == Some(&b'}') {
        return Some(((i + 1, Placement::Only), j + 1));
    }
    let mut insert = None;
    loop {
        let (key, after_key) = key_at(value, j)?;
        if key == RESOURCE_VERSION {
            return None;
        }
        if insert.is_none() && key > RESOURCE_VERSION {
            insert = Some((j, Placement::BeforeKey));
        }
        j = skip_ws(value, after_key);
        expect(value, j, b':')?;
        j = skip_ws(value, skip_value(value, skip_ws(value, j + 1))?);
        match value.get(j)? {
            b',' => j = skip_ws(value, j + 1),
            b'}' => {
                return Some((insert.unwrap_or((j, Placement::AfterLast)), j + 1));
            }
            _ => return None,
        }
    }
}

/// The raw bytes of the key string starting at `i` and the index after its closing quote. Keys
/// with escapes are refused: their raw bytes are not what they compare as.
fn key_at(value: &[u8], i: usize) -> Option<(&[u8], usize)> {
    expect(value, i, b'"')?;
    let rest = value.get(i + 1..)?;
    let len = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
    if rest[len] == b'\\' {
        return None;
    }
    Some((&rest[..len], i + 1 + len + 1))
}

/// The index just after the JSON value starting at `i`.
fn skip_value(value: &[u8], i: usize) -> Option<usize> {
    match value.get(i)? {
        b'"' => skip_string(value, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match value.get(j)? {
                    b'"' => {
                        j = skip_string(value, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let len = value[i..]
                .iter()
                .position(|&b| matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace())
                .unwrap_or(value.len() - i);
            (len > 0).then_some(i + len)
        }
    }
}

/// The index just after the string whose opening quote is at `i`.
fn skip_string(value: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        match value.get(j)? {
            b'"' => return Some(j + 1),
            b'\\' => j += 2,
            _ => j += 1,
        }
    }
}

/// Whether `raw` is the JSON string `expected` written without escapes.
fn is_string(raw: &[u8], expected: &str) -> bool {
    raw.len() == expected.len() + 2
        && raw.first() == Some(&b'"')
        && raw.last() == Some(&b'"')
        && &raw[1..raw.len() - 1] == expected.as_bytes()
}

fn skip_ws(value: &[u8], mut i: usize) -> usize {
    while value.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

fn expect(value: &[u8], i: usize, byte: u8) -> Option<()> {
    (value.get(i) == Some(&byte)).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// What the parsing path produces: parse, insert, encode.
    fn parsed(value: &[u8], revision: u64) -> Vec<u8> {
        let mut object: Value = serde_json::from_slice(value).unwrap();
        object["metadata"]["resourceVersion"] = Value::String(revision.to_string());
        serde_json::to_vec(&object).unwrap()
    }

    #[test]
    fn compact_stored_objects_come_out_byte_for_byte_as_parsing_would() {
        for object in [
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "d", "uid": "u"}, "data": {"a": "}\"{", "z": "1"}}),
            json!({"metadata": {}}),
            json!({"metadata": {"name": "x"}}),
            json!({"metadata": {"uid": "u"}}),
            json!({"metadata": {"annotations": {"resourceVersion": "9"}, "labels": {"a": "b"}, "uid": "u"}, "spec": [1, {"x": [true, null]}, "]"], "z": -1.5e3}),
            json!({"a": {"metadata": {"nested": true}}, "metadata": {"name": "x"}, "status": {}}),
        ] {
            let stored = serde_json::to_vec(&object).unwrap();
            assert_eq!(
                splice_revision(&stored, 42, None).map(String::from_utf8),
                Some(Ok(String::from_utf8(parsed(&stored, 42)).unwrap())),
                "{object}"
            );
        }
    }

    #[test]
    fn whitespace_is_tolerated_and_the_result_is_the_same_value() {
        let stored = b" { \"data\" : { \"k\" : \"v\" } , \"metadata\" : { \"name\" : \"x\" , \"uid\" : \"u\" } } \n";
        let spliced = splice_revision(stored, 7, None).unwrap();
        let value: Value = serde_json::from_slice(&spliced).unwrap();
        assert_eq!(
            value,
            serde_json::from_slice::<Value>(&parsed(stored, 7)).unwrap()
        );
        let empty = b"{\"metadata\":{ }}";
        let value: Value =
            serde_json::from_slice(&splice_revision(empty, 7, None).unwrap()).unwrap();
        assert_eq!(value, json!({"metadata": {"resourceVersion": "7"}}));
    }

    #[test]
    fn unusual_shapes_are_left_to_the_parser() {
        for stored in [
            &b"{}"[..],
            b"{\"data\":{}}",
            b"{\"metadata\":null}",
            b"{\"metadata\":{\"resourceVersion\":\"3\"}}",
            b"{\"metadata\":{\"name\":\"x\"},\"metadata\":{\"name\":\"y\"}}",
            b"{\"metad\\u0061ta\":{\"name\":\"x\"}}",
            b"{\"metadata\":{\"resourceVersio\\u006e\":\"3\"}}",
            b"{\"metadata\":{\"name\":\"x\"}} trailing",
            b"{\"metadata\":{\"name\":\"x\"}",
            b"[1]",
            b"",
        ] {
            assert_eq!(
                splice_revision(stored, 1, None),
                None,
                "{}",
                String::from_utf8_lossy(stored)
            );
        }
    }

    #[test]
    fn api_version_must_match_when_asked() {
        let stored = br#"{"apiVersion":"example.com/v1","kind":"W","metadata":{"name":"x"}}"#;
        assert!(splice_revision(stored, 1, Some("example.com/v1")).is_some());
        assert!(splice_revision(stored, 1, Some("example.com/v2")).is_none());
        assert!(
            splice_revision(br#"{"metadata":{"name":"x"}}"#, 1, Some("example.com/v1")).is_none()
        );
    }
}
