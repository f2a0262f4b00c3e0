//! How the kinds' schemas are published: as Kubernetes publishes its own, so `kubectl explain`
//! and clients that read CRD-style schemas follow them. Applied once, when a server's kinds are
//! assembled, to every schema their types generate.

use serde_json::Value;

/// Rewrites schemars' `Option<T>` form, `anyOf: [{$ref}, {enum: [null], nullable: true}]`, the
/// way Kubernetes publishes an optional reference, `allOf: [{$ref}]` with `nullable: true`:
/// `kubectl explain` follows `allOf` and not `anyOf`. With `rewrap`, descriptions (from our
/// doc comments) lose their hard line breaks, paragraphs kept, as `kubectl explain` wraps text
/// itself.
pub fn kubernetes_style(schema: &mut Value, rewrap: bool) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(description)) = map.get_mut("description").filter(|_| rewrap)
            {
                *description = unwrap_lines(description);
            }
            let optional = map
                .get("anyOf")
                .and_then(Value::as_array)
                .and_then(|branches| {
                    let is_null = |b: &Value| {
                        b.get("enum")
                            .and_then(Value::as_array)
                            .is_some_and(|e| e == &[Value::Null])
                            || b.get("const").is_some_and(Value::is_null)
                            || b.get("type").and_then(Value::as_str) == Some("null")
                    };
                    match branches.as_slice() {
                        [some, null] | [null, some] if is_null(null) && !is_null(some) => {
                            Some(some.clone())
                        }
                        _ => None,
                    }
                });
            if let Some(some) = optional {
                map.remove("anyOf");
                map.insert("allOf".into(), Value::Array(vec![some]));
                map.insert("nullable".into(), Value::Bool(true));
            }
            for value in map.values_mut() {
                kubernetes_style(value, rewrap);
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| kubernetes_style(item, rewrap)),
        _ => {}
    }
}

/// Joins the lines of each paragraph of `text` with spaces.
fn unwrap_lines(text: &str) -> String {
    text.split("\n\n")
        .map(|paragraph| {
            paragraph
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}
