//! Pruning: dropping the fields of a custom resource its schema does not declare, as
//! kube-apiserver does before storing one. The paths dropped feed `fieldValidation`
//! (`unknown field "spec.foo"`).

use serde_json::Value;

use super::field_error::{child, index};
use super::structural::{AdditionalProperties, Structural};

/// Fields every object carries whatever its schema says; their content is the server's to
/// check (metadata) or fixed (apiVersion, kind).
const TYPE_AND_OBJECT_META: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// Prunes `value` against `schema`, appending the paths removed to `pruned`. `keep_meta` is set
/// at the root and in embedded resources.
pub fn prune(
    schema: &Structural,
    value: &mut Value,
    path: &str,
    keep_meta: bool,
    pruned: &mut Vec<String>,
) {
    match value {
        Value::Object(fields) => {
            let names: Vec<String> = fields.keys().cloned().collect();
            for name in names {
                if keep_meta && TYPE_AND_OBJECT_META.contains(&name.as_str()) {
                    continue;
                }
                let sub_path = child(path, &name);
                let sub_schema = match schema.properties.get(&name) {
                    Some(s) => Some(s),
                    None => match &schema.additional_properties {
                        Some(AdditionalProperties::Schema(s)) => Some(s.as_ref()),
                        _ => None,
                    },
                };
                match sub_schema {
                    Some(s) => {
                        if let Some(sub) = fields.get_mut(&name) {
                            prune(s, sub, &sub_path, s.embedded_resource, pruned);
                        }
                    }
                    None => {
                        let keep = schema.preserve_unknown_fields
                            || matches!(
                                schema.additional_properties,
                                Some(AdditionalProperties::Allowed(true))
                            );
                        if !keep {
                            fields.remove(&name);
                            pruned.push(sub_path);
                        }
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.items.as_deref() {
                for (i, item) in items.iter_mut().enumerate() {
                    prune(
                        item_schema,
                        item,
                        &index(path, i),
                        item_schema.embedded_resource,
                        pruned,
                    );
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::Structural;

    fn parse(schema: serde_json::Value) -> Structural {
        match Structural::parse(&schema) {
            Ok(s) => s,
            Err(e) => panic!("schema did not parse: {e:?}"),
        }
    }

    #[test]
    fn drops_undeclared_fields_and_reports_them() {
        let s = parse(json!({"type": "object", "properties": {"spec": {
            "type": "object",
            "properties": {
                "a": {"type": "string"},
                "list": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "integer"}}}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "port": {"x-kubernetes-int-or-string": true},
            },
        }}}));
        let mut obj = json!({
            "apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"},
            "status": {"s": 1},
            "spec": {
                "a": "x", "foo": 1,
                "list": [{"x": 1, "y": 2}],
                "free": {"anything": {"deep": true}},
                "labels": {"k": "v"},
                "port": 80,
            },
        });
        let pruned = s.prune(&mut obj);
        assert_eq!(pruned, vec!["spec.foo", "spec.list[0].y", "status"]);
        assert_eq!(
            obj,
            json!({
                "apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"},
                "spec": {"a": "x", "list": [{"x": 1}], "free": {"anything": {"deep": true}}, "labels": {"k": "v"}, "port": 80},
            })
        );
    }

    #[test]
    fn embedded_resources_keep_type_and_metadata() {
        let s = parse(json!({"type": "object", "properties": {"template": {
            "type": "object",
            "x-kubernetes-embedded-resource": true,
            "properties": {"spec": {"type": "object"}},
        }}}));
        let mut obj = json!({"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": {}, "junk": 1}});
        assert_eq!(s.prune(&mut obj), vec!["template.junk"]);
        assert_eq!(
            obj,
            json!({"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": {}}})
        );
    }
}
