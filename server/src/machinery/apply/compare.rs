//! What an object's fields are, and what changed between two versions of it, as field sets.
//!
//! Ownership follows these sets: an applier owns exactly the field set of its configuration;
//! an updater gains what it added or modified and every manager loses what was removed. A list
//! that merges contributes one path element per item, so it can only be walked when every item
//! can be identified: a live object that breaks that (duplicates, missing keys) has the list
//! treated as atomic rather than failing the write, while an applied configuration that breaks
//! it is refused, as kube-apiserver refuses it.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::field_set::{FieldSet, PathElement, MAX_DEPTH};
use super::schema::{element_of, ListType, Node};

/// Fields added, modified (leaf values that differ) and removed between two objects.
#[derive(Clone, Debug, Default)]
pub(crate) struct Comparison {
    pub added: FieldSet,
    pub modified: FieldSet,
    pub removed: FieldSet,
}

/// The items of a merging list by their path elements, or `None` for a list owned whole.
/// In strict mode an item that cannot be identified is an error.
pub(crate) fn list_elements<'v>(
    items: &'v [Value],
    node: &Node,
    strict: bool,
) -> Result<Option<Vec<(PathElement, &'v Value)>>, String> {
    let list_type = node.list_type();
    if list_type == ListType::Atomic {
        return Ok(None);
    }
    let mut seen = BTreeMap::new();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Some(pe) = element_of(&list_type, item) else {
            return match (strict, &list_type) {
                (true, ListType::Map(keys)) => Err(format!(
                    "associative list with keys {keys:?} has an element that omits a key field or has a non-scalar key"
                )),
                _ => Ok(None),
            };
        };
        if seen.insert(pe.clone(), ()).is_some() {
            return if strict {
                Err(format!("duplicate entries for key {pe}"))
            } else {
                Ok(None)
            };
        }
        out.push((pe, item));
    }
    Ok(Some(out))
}

/// The fields of `value` (as structured-merge-diff's `ToFieldSet` computes them), added below
/// `prefix` in `out`. With `every_node`, every map key and list item is a member too: a
/// comparison counts each node that appeared or disappeared, so a writer that adds a whole
/// block owns the block itself.
pub(crate) fn collect_fields(
    value: &Value,
    node: &Node,
    prefix: &mut Vec<PathElement>,
    out: &mut FieldSet,
    strict: bool,
    every_node: bool,
) -> Result<(), String> {
    if prefix.len() > MAX_DEPTH {
        return Err("the object is nested too deeply".into());
    }
    match value {
        Value::Object(map) if !node.map_is_atomic() => {
            for (key, child) in map {
                let (child_node, declared) = node.field(key);
                prefix.push(PathElement::Field(key.clone()));
                let below = collect_fields(child, &child_node, prefix, out, strict, every_node);
                // Null, an empty object and a free-form map entry have no children that
                // would carry ownership, so the field itself is owned.
                let empty = child.is_null() || child.as_object().is_some_and(|m| m.is_empty());
                if below.is_ok() && (empty || !declared || every_node) {
                    out.insert(prefix);
                }
                // The prefix is the caller's too: restore it before any error goes up.
                prefix.pop();
                below?;
            }
        }
        Value::Array(items) => match list_elements(items, node, strict)? {
            Some(elements) => {
                let item_node = node.items();
                for (pe, item) in elements {
                    prefix.push(pe);
                    let below = collect_fields(item, &item_node, prefix, out, strict, every_node);
                    if below.is_ok() {
                        out.insert(prefix);
                    }
                    prefix.pop();
                    below?;
                }
            }
            None => out.insert(prefix),
        },
        _ => out.insert(prefix),
    }
    Ok(())
}

/// The field set of a whole object.
pub(crate) fn fields_of(value: &Value, node: &Node, strict: bool) -> Result<FieldSet, String> {
    let mut out = FieldSet::new();
    collect_fields(value, node, &mut Vec::new(), &mut out, strict, false)?;
    Ok(out)
}

/// What a comparison with nothing counts as added below `value` (every map key and list item),
/// as the members of a `fieldsV1` level: the level `collect_fields` with `every_node` then
/// `FieldSet::to_fields_v1` give, built straight from the value (every create records one).
/// `depth` is the length of `value`'s path; `None` when the value goes deeper than a stored
/// `fieldsV1` may, where the caller takes the general path.
pub(crate) fn added_fields_v1(
    value: &Value,
    node: &Node,
    depth: usize,
) -> Option<Map<String, Value>> {
    let mut level = Map::new();
    match value {
        Value::Object(map) if !node.map_is_atomic() => {
            for (key, child) in map {
                let (child_node, _) = node.field(key);
                level.insert(
                    PathElement::field_key(key),
                    added_member(child, &child_node, depth + 1)?,
                );
            }
        }
        Value::Array(items) => {
            if let Ok(Some(elements)) = list_elements(items, node, false) {
                let item_node = node.items();
                for (pe, item) in elements {
                    level.insert(pe.encode(), added_member(item, &item_node, depth + 1)?);
                }
            }
        }
        _ => {}
    }
    Some(level)
}

/// The `fieldsV1` entry of an added node, itself a member: `{}` for a leaf, else `"."` and
/// what is below it.
fn added_member(value: &Value, node: &Node, depth: usize) -> Option<Value> {
    if depth > MAX_DEPTH {
        return None;
    }
    let mut level = added_fields_v1(value, node, depth)?;
    if !level.is_empty() {
        level.insert(".".into(), Value::Object(Map::new()));
    }
    Some(Value::Object(level))
}

/// Compares `old` with `new`.
pub(crate) fn compare(old: &Value, new: &Value, node: &Node) -> Comparison {
    let mut cmp = Comparison::default();
    walk(Some(old), Some(new), node, &mut Vec::new(), &mut cmp);
    cmp
}

fn walk(
    old: Option<&Value>,
    new: Option<&Value>,
    node: &Node,
    prefix: &mut Vec<PathElement>,
    cmp: &mut Comparison,
) {
    match (old, new) {
        (None, None) => {}
        (Some(old), None) => {
            // Lenient collection never fails; a too-deep subtree is owned whole instead.
            if collect_fields(old, node, prefix, &mut cmp.removed, false, true).is_err() {
                cmp.removed.insert(prefix);
            }
            cmp.removed.insert(prefix);
        }
        (None, Some(new)) => {
            if collect_fields(new, node, prefix, &mut cmp.added, false, true).is_err() {
                cmp.added.insert(prefix);
            }
            cmp.added.insert(prefix);
        }
        (Some(old), Some(new)) => {
            // Paths stop at MAX_DEPTH elements, the deepest a stored fieldsV1 may be read back.
            if prefix.len() >= MAX_DEPTH {
                if old != new {
                    cmp.modified.insert(prefix);
                }
                return;
            }
            match (old, new) {
                (Value::Object(o), Value::Object(n)) if !node.map_is_atomic() => {
                    for key in o.keys().chain(n.keys().filter(|k| !o.contains_key(*k))) {
                        let (child, _) = node.field(key);
                        prefix.push(PathElement::Field(key.clone()));
                        walk(o.get(key), n.get(key), &child, prefix, cmp);
                        prefix.pop();
                    }
                }
                (Value::Array(o), Value::Array(n)) => {
                    let elements = (
                        list_elements(o, node, false).ok().flatten(),
                        list_elements(n, node, false).ok().flatten(),
                    );
                    match elements {
                        (Some(o), Some(n)) => {
                            let item_node = node.items();
                            let old_items: BTreeMap<_, _> = o.into_iter().collect();
                            let new_items: BTreeMap<_, _> = n.into_iter().collect();
                            for pe in old_items
                                .keys()
                                .chain(new_items.keys().filter(|pe| !old_items.contains_key(*pe)))
                            {
                                prefix.push(pe.clone());
                                walk(
                                    old_items.get(pe).copied(),
                                    new_items.get(pe).copied(),
                                    &item_node,
                                    prefix,
                                    cmp,
                                );
                                prefix.pop();
                            }
                        }
                        _ if old != new => cmp.modified.insert(prefix),
                        _ => {}
                    }
                }
                _ if old != new => {
                    // A changed leaf, an atomic value, or a change of shape. Whatever was
                    // owned below the old shape is gone with it.
                    let mut below = FieldSet::new();
                    let _ = collect_fields(old, node, prefix, &mut below, false, true);
                    let mut itself = FieldSet::new();
                    itself.insert(prefix);
                    cmp.removed = cmp.removed.union(&below.difference(&itself));
                    cmp.modified.insert(prefix);
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machinery::apply::schema::MergeRules;
    use serde_json::json;

    #[test]
    fn field_sets_own_leaves_and_free_form_entries() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "labels": {"type": "object", "additionalProperties": {"type": "object"}},
                "empty": {"type": "object"},
                "ports": {"type": "array", "x-kubernetes-list-type": "map",
                          "x-kubernetes-list-map-keys": ["name"],
                          "items": {"type": "object", "properties": {
                              "name": {"type": "string"}, "port": {"type": "integer"}}}}
            }}
        }});
        let rules = MergeRules::Schema(&schema);
        let obj = json!({"spec": {
            "labels": {"a": {"x": 1}},
            "empty": {},
            "ports": [{"name": "http", "port": 80}]
        }});
        let set = fields_of(&obj, &rules.root(), true).unwrap();
        assert_eq!(
            set.to_json_string(),
            r#"{"f:spec":{"f:empty":{},"f:labels":{"f:a":{".":{},"f:x":{}}},"f:ports":{"k:{\"name\":\"http\"}":{".":{},"f:name":{},"f:port":{}}}}}"#
        );
    }

    #[test]
    fn applied_lists_must_identify_their_items() {
        let rules = MergeRules::builtin("Pod");
        let dup = json!({"metadata": {"finalizers": ["a", "a"]}});
        assert!(fields_of(&dup, &rules.root(), true).is_err());
        // A live object with the same flaw owns the list whole instead of failing.
        let set = fields_of(&dup, &rules.root(), false).unwrap();
        assert_eq!(
            set.to_json_string(),
            r#"{"f:metadata":{"f:finalizers":{}}}"#
        );
    }

    #[test]
    fn comparison_sorts_changes() {
        let rules = MergeRules::builtin("ConfigMap");
        let old = json!({"data": {"keep": "1", "change": "1", "drop": "1"}});
        let new = json!({"data": {"keep": "1", "change": "2", "add": "1"}});
        let cmp = compare(&old, &new, &rules.root());
        assert_eq!(cmp.added.to_json_string(), r#"{"f:data":{"f:add":{}}}"#);
        assert_eq!(
            cmp.modified.to_json_string(),
            r#"{"f:data":{"f:change":{}}}"#
        );
        assert_eq!(cmp.removed.to_json_string(), r#"{"f:data":{"f:drop":{}}}"#);
    }
}
