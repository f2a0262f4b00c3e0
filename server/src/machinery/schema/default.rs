//! Defaulting: filling in a custom resource's missing fields from the schema's `default`s,
//! after pruning, as kube-apiserver does on read from the request and from storage.

use serde_json::Value;

use super::structural::{AdditionalProperties, Structural};

/// Whether `slot` should take `schema`'s default: it is absent, or null where null is not allowed.
fn wants_default(schema: &Structural, slot: Option<&Value>) -> bool {
    match slot {
        None => true,
        Some(Value::Null) => !schema.nullable,
        Some(_) => false,
    }
}

/// Applies the defaults of `schema` below `value` (never to `value` itself: the root has none).
pub fn apply(schema: &Structural, value: &mut Value) {
    match value {
        Value::Object(fields) => {
            for (name, prop) in &schema.properties {
                if let Some(default) = &prop.default {
                    if wants_default(prop, fields.get(name)) {
                        fields.insert(name.clone(), default.clone());
                    }
                }
            }
            for (name, sub) in fields.iter_mut() {
                let sub_schema = match schema.properties.get(name) {
                    Some(s) => s,
                    None => match &schema.additional_properties {
                        Some(AdditionalProperties::Schema(s)) => s.as_ref(),
                        _ => continue,
                    },
                };
                fill_null(sub_schema, sub);
                apply(sub_schema, sub);
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.items.as_deref() {
                for item in items.iter_mut() {
                    fill_null(item_schema, item);
                    apply(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

/// A null list item or map value takes the default of its schema, unless null is allowed.
fn fill_null(schema: &Structural, slot: &mut Value) {
    if let (Value::Null, Some(default)) = (&*slot, &schema.default) {
        if !schema.nullable {
            *slot = default.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::Structural;

    #[test]
    fn fills_missing_and_null_fields_everywhere() {
        let s = match Structural::parse(&json!({"type": "object", "properties": {"spec": {
            "type": "object",
            "default": {},
            "properties": {
                "replicas": {"type": "integer", "default": 1},
                "keep": {"type": "string", "nullable": true, "default": "d"},
                "fill": {"type": "string", "default": "d"},
                "list": {"type": "array", "items": {"type": "object", "properties": {"p": {"type": "integer", "default": 80}}}},
                "map": {"type": "object", "additionalProperties": {"type": "string", "default": "v"}},
            },
        }}})) {
            Ok(s) => s,
            Err(e) => panic!("{e:?}"),
        };
        let mut empty = json!({});
        s.apply_defaults(&mut empty);
        assert_eq!(
            empty,
            json!({"spec": {"replicas": 1, "keep": "d", "fill": "d"}})
        );

        let mut obj = json!({"spec": {"replicas": 3, "keep": null, "fill": null, "list": [{}, {"p": 1}], "map": {"a": null}}});
        s.apply_defaults(&mut obj);
        assert_eq!(
            obj,
            json!({"spec": {"replicas": 3, "keep": null, "fill": "d", "list": [{"p": 80}, {"p": 1}], "map": {"a": "v"}}})
        );
    }
}
