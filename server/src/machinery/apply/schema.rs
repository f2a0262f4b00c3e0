//! How lists and maps merge, which decides what a manager can own inside them.
//!
//! An atomic list or map is owned whole, so applying it replaces it. A granular map's keys and
//! a merging list's elements are owned one by one, so several managers can share the value.
//! The rules come from a CRD's OpenAPI v3 schema (its `x-kubernetes-*` extensions) or, for
//! built-in kinds, from the strategic merge patch table, whose few merging lists are the same
//! ones kube-apiserver merges on apply; everything else there is a granular map or an atomic
//! list.

use std::sync::OnceLock;

use serde_json::Value;

use super::field_set::PathElement;
use crate::machinery::patch::strategic::{ListStrategy, Strategies};

/// Where a kind's merge rules come from, supplied by the caller.
#[derive(Clone, Debug)]
pub enum MergeRules<'a> {
    /// A built-in kind; see [`MergeRules::builtin`].
    Builtin(Strategies),
    /// A custom resource's OpenAPI v3 schema (the version's `schema.openAPIV3Schema`).
    Schema(&'a Value),
}

#[cfg(test)]
impl MergeRules<'static> {
    /// The rules of a built-in `kind` of the test scheme, e.g. `ConfigMap` (ObjectMeta's alone for a kind
    /// it does not have).
    pub fn builtin(kind: &str) -> MergeRules<'static> {
        let strategies = crate::registry::scheme::test_scheme()
            .resources()
            .iter()
            .find(|r| r.kind == kind)
            .map(|r| r.strategies())
            .unwrap_or_else(|| Strategies::with(&[]));
        MergeRules::Builtin(strategies)
    }
}

impl MergeRules<'_> {
    pub(crate) fn root(&self) -> Node<'_> {
        match self {
            MergeRules::Builtin(strategies) => Node::Builtin {
                strategies,
                path: Vec::new(),
            },
            MergeRules::Schema(schema) => Node::OpenapiRoot(schema),
        }
    }
}

/// How a list merges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListType {
    /// Owned and replaced whole: the default.
    Atomic,
    /// A set of scalars; elements are owned one by one (`v:`).
    Set,
    /// A list of objects identified by these key fields (`k:`).
    Map(Vec<String>),
}

/// A position in the rules, following the object down.
#[derive(Clone, Debug)]
pub(crate) enum Node<'a> {
    /// Built-in kinds: the strategic table is keyed by field path, without list elements.
    Builtin {
        strategies: &'a Strategies,
        path: Vec<String>,
    },
    /// A schema node; `None` where the schema says nothing (unknown fields kept by
    /// `x-kubernetes-preserve-unknown-fields`), which structured-merge-diff treats as
    /// granular maps and atomic lists.
    Openapi(Option<&'a Value>),
    /// The top of a custom resource. Its `metadata` is an ObjectMeta whatever the CRD says
    /// (CRD schemas may only say `type: object` there), so it follows the built-in rules.
    OpenapiRoot(&'a Value),
}

/// The rules of ObjectMeta: the list strategies every kind shares.
fn object_meta() -> &'static Strategies {
    static RULES: OnceLock<Strategies> = OnceLock::new();
    RULES.get_or_init(|| Strategies::with(&[]))
}

impl<'a> Node<'a> {
    /// The rules of map key `name`, and whether it is a declared struct field rather than an
    /// entry of a free-form map. A free-form entry is owned itself, not only through its
    /// children, so it is a member of the field set even when it holds an object.
    pub fn field(&self, name: &str) -> (Node<'a>, bool) {
        match self {
            Node::Builtin { strategies, path } => {
                let mut path = path.clone();
                path.push(name.to_string());
                (Node::Builtin { strategies, path }, true)
            }
            Node::OpenapiRoot(_) if name == "metadata" => (
                Node::Builtin {
                    strategies: object_meta(),
                    path: vec![name.to_string()],
                },
                true,
            ),
            Node::OpenapiRoot(schema) => Node::Openapi(Some(schema)).field(name),
            Node::Openapi(None) => (Node::Openapi(None), false),
            Node::Openapi(Some(schema)) => {
                if let Some(field) = schema.get("properties").and_then(|p| p.get(name)) {
                    return (Node::Openapi(Some(field)), true);
                }
                match schema.get("additionalProperties") {
                    Some(extra) if extra.is_object() => (Node::Openapi(Some(extra)), false),
                    _ => (Node::Openapi(None), false),
                }
            }
        }
    }

    /// The rules of a list's elements.
    pub fn items(&self) -> Node<'a> {
        match self {
            Node::Builtin { .. } => self.clone(),
            Node::Openapi(schema) => Node::Openapi(schema.and_then(|s| s.get("items"))),
            Node::OpenapiRoot(schema) => Node::Openapi(schema.get("items")),
        }
    }

    pub fn list_type(&self) -> ListType {
        match self {
            Node::Builtin { strategies, path } => match strategies.list_strategy(path) {
                ListStrategy::Replace => ListType::Atomic,
                ListStrategy::MergePrimitives => ListType::Set,
                ListStrategy::MergeByKey(key) => ListType::Map(vec![key.to_string()]),
            },
            Node::Openapi(None) => ListType::Atomic,
            Node::Openapi(Some(schema)) | Node::OpenapiRoot(schema) => {
                match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
                    Some("set") => ListType::Set,
                    Some("map") => {
                        let keys: Vec<String> = schema
                            .get("x-kubernetes-list-map-keys")
                            .and_then(Value::as_array)
                            .map(|keys| {
                                keys.iter()
                                    .filter_map(|k| k.as_str().map(str::to_string))
                                    .collect()
                            })
                            .unwrap_or_default();
                        // A map list without keys cannot identify elements; the API server
                        // rejects such CRDs, and owning it whole is the safe reading.
                        if keys.is_empty() {
                            ListType::Atomic
                        } else {
                            ListType::Map(keys)
                        }
                    }
                    _ => ListType::Atomic,
                }
            }
        }
    }

    /// Whether a map here is owned whole (`x-kubernetes-map-type: atomic`).
    pub fn map_is_atomic(&self) -> bool {
        match self {
            Node::Builtin { .. } | Node::Openapi(None) => false,
            Node::Openapi(Some(schema)) | Node::OpenapiRoot(schema) => {
                schema.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic")
            }
        }
    }
}

/// The path element of a merging list's `item`, or `None` when the item cannot be identified
/// (a map-list element without its keys, or any element of an atomic list).
pub(crate) fn element_of(list_type: &ListType, item: &Value) -> Option<PathElement> {
    match list_type {
        ListType::Atomic => None,
        ListType::Set => Some(PathElement::Value(item.clone())),
        ListType::Map(keys) => {
            let mut fields = Vec::with_capacity(keys.len());
            for key in keys {
                match item.get(key) {
                    Some(v) if !v.is_object() && !v.is_array() && !v.is_null() => {
                        fields.push((key.clone(), v.clone()))
                    }
                    _ => return None,
                }
            }
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Some(PathElement::Key(fields))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builtin_lists_follow_the_strategic_table() {
        let rules = MergeRules::builtin("ServiceAccount");
        let root = rules.root();
        let (meta, _) = root.field("metadata");
        assert_eq!(meta.field("finalizers").0.list_type(), ListType::Set);
        assert_eq!(
            meta.field("ownerReferences").0.list_type(),
            ListType::Map(vec!["uid".into()])
        );
        assert_eq!(
            root.field("secrets").0.list_type(),
            ListType::Map(vec!["name".into()])
        );
        assert_eq!(
            root.field("imagePullSecrets").0.list_type(),
            ListType::Atomic
        );
    }

    #[test]
    fn openapi_extensions_are_read() {
        let schema = json!({
            "type": "object",
            "properties": {
                "spec": {"type": "object", "properties": {
                    "tags": {"type": "array", "x-kubernetes-list-type": "set",
                             "items": {"type": "string"}},
                    "ports": {"type": "array", "x-kubernetes-list-type": "map",
                              "x-kubernetes-list-map-keys": ["port", "protocol"],
                              "items": {"type": "object"}},
                    "args": {"type": "array", "items": {"type": "string"}},
                    "selector": {"type": "object", "x-kubernetes-map-type": "atomic"},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                }}
            }
        });
        let rules = MergeRules::Schema(&schema);
        let (spec, declared) = rules.root().field("spec");
        assert!(declared);
        assert_eq!(spec.field("tags").0.list_type(), ListType::Set);
        assert_eq!(
            spec.field("ports").0.list_type(),
            ListType::Map(vec!["port".into(), "protocol".into()])
        );
        assert_eq!(spec.field("args").0.list_type(), ListType::Atomic);
        assert!(spec.field("selector").0.map_is_atomic());
        assert!(!spec.field("labels").0.field("app").1);
        assert!(!spec.field("unknown").1);
        // Custom resources' metadata merges as every kind's does.
        let (meta, _) = rules.root().field("metadata");
        assert_eq!(meta.field("finalizers").0.list_type(), ListType::Set);
        assert!(meta.field("labels").1);
    }

    #[test]
    fn map_list_elements_need_their_keys() {
        let keys = ListType::Map(vec!["port".into(), "name".into()]);
        assert_eq!(
            element_of(&keys, &json!({"port": 80, "name": "http"}))
                .map(|pe| pe.encode())
                .as_deref(),
            Some(r#"k:{"name":"http","port":80}"#)
        );
        assert_eq!(element_of(&keys, &json!({"port": 80})), None);
    }
}
