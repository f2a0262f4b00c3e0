//! What a patch may build. A small patch must not make the server spend memory or stack the
//! request could never carry: a JSON patch of nested `copy` operations doubles the object with
//! each one (2.5 KB of them would need terabytes), and a patch nesting values ever deeper
//! builds an object that serializing or even freeing would overflow the stack on.
//!
//! As kube-apiserver does: at most [`MAX_JSON_PATCH_OPERATIONS`] operations (413), and the
//! values `copy` operations duplicate add up to at most [`MAX_PATCH_BYTES`] (422, checked
//! before each copy is made). Besides, no patch builds an object nested deeper than
//! [`MAX_DEPTH`] (422, checked before each operation, so the document never gets there) or,
//! whatever its type, larger than [`MAX_PATCH_BYTES`] encoded (413).

use std::io::Write;

use json_patch::PatchOperation;
use serde_json::Value;

use crate::machinery::status::Status;

/// kube-apiserver's cap on the operations of one JSON patch.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// The most a patch may copy, and the largest object it may produce: the request body limit,
/// as kube-apiserver sets its JSON patch copy limit (no object is bigger than a request could
/// carry).
pub const MAX_PATCH_BYTES: usize = crate::machinery::request_info::MAX_BODY_BYTES;

/// How deeply a patched object may nest (JSON parsing stops at 128 levels anyway, so deeper
/// objects could not even be read back).
pub const MAX_DEPTH: usize = 100;

/// Applies `operations` to a copy of `original`, one at a time, within the limits.
pub fn apply_json_patch(original: &Value, operations: &[PatchOperation]) -> Result<Value, Status> {
    if operations.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(Status::new(
            413,
            "RequestEntityTooLarge",
            format!(
                "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
                operations.len()
            ),
        ));
    }
    let mut doc = original.clone();
    // An upper bound of the document's depth, kept without walking it after every operation.
    let mut depth_bound = depth_within(&doc, usize::MAX).unwrap_or(usize::MAX);
    let mut spent = 0usize;
    for (index, operation) in operations.iter().enumerate() {
        let reached = match operation {
            PatchOperation::Add(op) => Some(op.path.count() + depth_of(&op.value)),
            PatchOperation::Replace(op) => Some(op.path.count() + depth_of(&op.value)),
            PatchOperation::Copy(op) => {
                let Some(value) = doc.pointer(op.from.as_str()) else {
                    return Err(unapplicable(
                        index,
                        format!("no value at {:?}", op.from.as_str()),
                    ));
                };
                let size = size_within(value, MAX_PATCH_BYTES.saturating_sub(spent))
                    .ok_or_else(|| copy_limit(spent, value))?;
                spent += size;
                Some(op.path.count() + depth_of(value))
            }
            PatchOperation::Move(op) => {
                let deeper = op.path.count().saturating_sub(op.from.count());
                if depth_bound.saturating_add(deeper) <= MAX_DEPTH {
                    Some(depth_bound + deeper)
                } else {
                    // Only when the cheap bound fails: the moved value's real depth, paid for
                    // from the same budget as copies.
                    let Some(value) = doc.pointer(op.from.as_str()) else {
                        return Err(unapplicable(
                            index,
                            format!("no value at {:?}", op.from.as_str()),
                        ));
                    };
                    let size = size_within(value, MAX_PATCH_BYTES.saturating_sub(spent))
                        .ok_or_else(|| copy_limit(spent, value))?;
                    spent += size;
                    Some(op.path.count() + depth_of(value))
                }
            }
            PatchOperation::Remove(_) | PatchOperation::Test(_) => None,
        };
        if let Some(reached) = reached {
            if reached > MAX_DEPTH {
                return Err(Status::new(
                    422,
                    "Invalid",
                    format!(
                        "the JSON patch could not be applied: operation {index} would nest the \
                         object more than {MAX_DEPTH} levels deep"
                    ),
                ));
            }
            depth_bound = depth_bound.max(reached);
        }
        // The document is a copy: no need to undo anything on failure.
        json_patch::patch_unsafe(&mut doc, std::slice::from_ref(operation))
            .map_err(|e| unapplicable(index, e.to_string()))?;
    }
    check_size(&doc)?;
    Ok(doc)
}

fn unapplicable(index: usize, why: String) -> Status {
    Status::new(
        422,
        "Invalid",
        format!("the JSON patch could not be applied: operation {index}: {why}"),
    )
}

/// kube-apiserver's words for a patch copying too much.
fn copy_limit(spent: usize, value: &Value) -> Status {
    let more = size_within(value, MAX_PATCH_BYTES + 1).unwrap_or(MAX_PATCH_BYTES + 1);
    Status::new(
        422,
        "Invalid",
        format!(
            "Unable to complete the copy, the accumulated size increase of copy is {}, \
             exceeding the limit {MAX_PATCH_BYTES}",
            spent + more
        ),
    )
}

/// 413 when `object` encodes to more than [`MAX_PATCH_BYTES`]; stops counting past it.
pub fn check_size(object: &Value) -> Result<(), Status> {
    let mut counter = Counter {
        written: 0,
        limit: MAX_PATCH_BYTES,
    };
    if serde_json::to_writer(&mut counter, object).is_err() {
        return Err(Status::new(
            413,
            "RequestEntityTooLarge",
            format!("the patched object is larger than the limit of {MAX_PATCH_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Counts bytes written, failing past the limit.
struct Counter {
    written: usize,
    limit: usize,
}

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.written += buf.len();
        if self.written > self.limit {
            return Err(std::io::Error::other("over the limit"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The encoded size of `value` (close to it: numbers are counted as their text), if it is at
/// most `budget`; walks no further than that, without recursion.
fn size_within(value: &Value, budget: usize) -> Option<usize> {
    let mut size = 0usize;
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        size += match value {
            Value::Null => 4,
            Value::Bool(b) => 4 + usize::from(!b),
            Value::Number(n) => n.to_string().len(),
            Value::String(s) => s.len() + 2,
            Value::Array(items) => {
                stack.extend(items);
                2 + items.len()
            }
            Value::Object(map) => {
                stack.extend(map.values());
                2 + map.keys().map(|k| k.len() + 4).sum::<usize>()
            }
        };
        if size > budget {
            return None;
        }
    }
    Some(size)
}

/// How many containers nest in `value` (a scalar 0, `{}` 1), if at most `limit`; iterative.
fn depth_within(value: &Value, limit: usize) -> Option<usize> {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((value, above)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        let depth = above + 1;
        if depth > limit {
            return None;
        }
        deepest = deepest.max(depth);
        stack.extend(children.map(|child| (child, depth)));
    }
    Some(deepest)
}

/// The depth of a value within the limit, or more than the limit.
fn depth_of(value: &Value) -> usize {
    depth_within(value, MAX_DEPTH).unwrap_or(MAX_DEPTH + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ops(value: Value) -> Vec<PatchOperation> {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn nested_copies_stop_at_the_copy_limit() {
        let original = json!({"data": {"a": "x".repeat(100)}});
        let doubling: Vec<Value> = (0..60)
            .map(|i| json!({"op": "copy", "from": "/data", "path": format!("/data/k{i}")}))
            .collect();
        let started = std::time::Instant::now();
        let err = apply_json_patch(&original, &ops(Value::Array(doubling))).unwrap_err();
        assert_eq!(err.code, 422);
        assert!(
            err.message.contains("accumulated size increase of copy"),
            "{}",
            err.message
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        // A few copies are fine.
        let few = ops(json!([{"op": "copy", "from": "/data/a", "path": "/data/b"}]));
        let patched = apply_json_patch(&original, &few).unwrap();
        assert_eq!(patched["data"]["b"], original["data"]["a"]);
    }

    #[test]
    fn too_many_operations_are_refused() {
        let test = json!({"op": "test", "path": "/a", "value": 1});
        let many = ops(Value::Array(vec![test; MAX_JSON_PATCH_OPERATIONS + 1]));
        let err = apply_json_patch(&json!({"a": 1}), &many).unwrap_err();
        assert_eq!((err.code, err.reason), (413, "RequestEntityTooLarge"));
        assert!(err.message.contains("10000, got 10001"), "{}", err.message);
    }

    #[test]
    fn nothing_nests_deeper_than_the_limit() {
        // Each add goes one level deeper than the last value reached.
        let mut path = String::new();
        let mut operations = Vec::new();
        for _ in 0..200 {
            path.push_str("/a");
            operations.push(json!({"op": "add", "path": path, "value": {}}));
        }
        let err = apply_json_patch(&json!({}), &ops(Value::Array(operations))).unwrap_err();
        assert_eq!(err.code, 422);
        assert!(err.message.contains("levels deep"), "{}", err.message);
        // Moving a value deeper is checked too.
        let mut deep = json!({});
        for _ in 0..(MAX_DEPTH - 2) {
            deep = json!({"a": deep});
        }
        let doc = json!({"x": deep, "y": {}});
        let down = ops(json!([{"op": "move", "from": "/x", "path": "/y/z"}]));
        assert_eq!(apply_json_patch(&doc, &down).unwrap_err().code, 422);
        let across = ops(json!([{"op": "move", "from": "/x", "path": "/w"}]));
        assert!(apply_json_patch(&doc, &across).is_ok());
    }

    #[test]
    fn results_larger_than_a_request_are_refused() {
        assert!(check_size(&json!({"a": "x".repeat(1000)})).is_ok());
        let huge = json!({"a": "x".repeat(MAX_PATCH_BYTES)});
        assert_eq!(check_size(&huge).unwrap_err().code, 413);
    }

    #[test]
    fn sizes_and_depths() {
        let v = json!({"a": [1, "xy", null, true, {"b": {}}]});
        // Close to the encoded size, never below it.
        let exact = v.to_string().len();
        let estimate = size_within(&v, usize::MAX).unwrap();
        assert!(
            (exact..exact + 4).contains(&estimate),
            "{estimate} for {exact}"
        );
        assert_eq!(size_within(&v, 5), None);
        assert_eq!(depth_within(&v, usize::MAX), Some(4));
        assert_eq!(depth_within(&v, 3), None);
        assert_eq!(depth_within(&json!("s"), 0), Some(0));
    }
}
