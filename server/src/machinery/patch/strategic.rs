//! Strategic merge patch: Kubernetes' patch format, which kubectl `apply`, `edit` and `patch`
//! send by default for built-in kinds.
//!
//! Like a JSON merge patch, except that some lists merge instead of being replaced: lists of
//! objects by a merge key (`ownerReferences` by `uid`) and lists of scalars as sets
//! (`finalizers`), as the kind's Go struct tags say (`patchStrategy`, `patchMergeKey`); and
//! that it carries directives: `$patch: replace|delete|merge` on maps and list elements,
//! `$retainKeys`, `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>`.
//! Pure functions, no I/O.

use serde_json::{Map, Value};

/// How a list field merges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListStrategy {
    /// The patch's list replaces the original (the default).
    Replace,
    /// Lists of objects merge element by element, matched on this key.
    MergeByKey(&'static str),
    /// Lists of scalars merge as sets.
    MergePrimitives,
}

/// A list field that merges, by path from the object root (list elements add no path
/// segment), and how.
pub type ListMerge = (&'static [&'static str], ListStrategy);

/// The list strategies of one kind, by field path from the object root (list elements do not
/// add path segments).
#[derive(Clone, Debug, Default)]
pub struct Strategies {
    lists: Vec<(&'static [&'static str], ListStrategy)>,
}

impl Strategies {
    /// How the list at `path` merges; server-side apply reads the same table.
    pub fn list_strategy(&self, path: &[String]) -> ListStrategy {
        self.lookup(path)
    }

    fn lookup(&self, path: &[String]) -> ListStrategy {
        self.lists
            .iter()
            .find(|(p, _)| p.len() == path.len() && p.iter().zip(path).all(|(a, b)| a == b))
            .map(|(_, s)| *s)
            .unwrap_or(ListStrategy::Replace)
    }
}

impl Strategies {
    /// ObjectMeta's merging lists (`finalizers` as a set, `ownerReferences` by `uid`) and the
    /// kind's own, from Kubernetes' struct tags (k8s-openapi's schemas do not carry
    /// `x-kubernetes-patch-strategy`, so each kind lists its few merging lists).
    pub fn with(kind_lists: &[ListMerge]) -> Strategies {
        let mut lists: Vec<(&'static [&'static str], ListStrategy)> = vec![
            (&["metadata", "finalizers"], ListStrategy::MergePrimitives),
            (
                &["metadata", "ownerReferences"],
                ListStrategy::MergeByKey("uid"),
            ),
        ];
        lists.extend_from_slice(kind_lists);
        Strategies { lists }
    }
}

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";

/// Applies `patch` to `original`.
pub fn apply(original: &Value, patch: &Value, strategies: &Strategies) -> Result<Value, String> {
    let patch = patch.as_object().ok_or("the patch must be a JSON object")?;
    let empty = Map::new();
    let original = original.as_object().unwrap_or(&empty);
    Ok(merge_map(original, patch, &mut Vec::new(), strategies)?
        .map(Value::Object)
        .unwrap_or_else(|| Value::Object(Map::new())))
}

/// Merges a patch map into an original map; `None` means the map is deleted.
fn merge_map(
    original: &Map<String, Value>,
    patch: &Map<String, Value>,
    path: &mut Vec<String>,
    strategies: &Strategies,
) -> Result<Option<Map<String, Value>>, String> {
    match patch.get(PATCH).map(|d| d.as_str()) {
        None | Some(Some("merge")) => {}
        Some(Some("replace")) => {
            let mut replaced = patch.clone();
            replaced.remove(PATCH);
            return Ok(Some(replaced));
        }
        Some(Some("delete")) => return Ok(None),
        Some(other) => return Err(format!("unknown $patch directive {other:?}")),
    }
    let mut result = original.clone();
    for (key, value) in patch {
        if key.starts_with('$') {
            continue;
        }
        path.push(key.clone());
        match value {
            Value::Null => {
                result.remove(key);
            }
            Value::Object(patch_map) => {
                let empty = Map::new();
                let base = result.get(key).and_then(Value::as_object).unwrap_or(&empty);
                match merge_map(base, patch_map, path, strategies)? {
                    Some(merged) => {
                        result.insert(key.clone(), Value::Object(merged));
                    }
                    None => {
                        result.remove(key);
                    }
                }
            }
            Value::Array(patch_list) => {
                let empty = Vec::new();
                let base = result.get(key).and_then(Value::as_array).unwrap_or(&empty);
                let merged =
                    merge_list(base, patch_list, strategies.lookup(path), path, strategies)?;
                result.insert(key.clone(), Value::Array(merged));
            }
            scalar => {
                result.insert(key.clone(), scalar.clone());
            }
        }
        path.pop();
    }
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let remove = value
                .as_array()
                .ok_or("$deleteFromPrimitiveList needs a list")?;
            if let Some(Value::Array(list)) = result.get_mut(field) {
                list.retain(|item| !remove.contains(item));
            }
        }
    }
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) {
            let order = value.as_array().ok_or("$setElementOrder needs a list")?;
            path.push(field.to_string());
            let strategy = strategies.lookup(path);
            path.pop();
            if let Some(Value::Array(list)) = result.get_mut(field) {
                reorder(list, order, strategy);
            }
        }
    }
    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let retain: Vec<&str> = retain
            .as_array()
            .ok_or("$retainKeys needs a list")?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        result.retain(|k, _| retain.contains(&k.as_str()));
    }
    Ok(Some(result))
}

fn is_replace_directive(item: &Value) -> bool {
    item.get(PATCH).and_then(Value::as_str) == Some("replace")
}

/// New content from a patch: directives stripped, nulls dropped.
fn materialize(
    item: &Value,
    path: &mut Vec<String>,
    strategies: &Strategies,
) -> Result<Option<Value>, String> {
    match item {
        Value::Object(map) => Ok(merge_map(&Map::new(), map, path, strategies)?.map(Value::Object)),
        other => Ok(Some(other.clone())),
    }
}

fn merge_list(
    original: &[Value],
    patch: &[Value],
    strategy: ListStrategy,
    path: &mut Vec<String>,
    strategies: &Strategies,
) -> Result<Vec<Value>, String> {
    // `{"$patch": "replace"}` as an element: the list is exactly the patch's other elements.
    if patch.iter().any(is_replace_directive) {
        let mut list = Vec::new();
        for item in patch.iter().filter(|i| !is_replace_directive(i)) {
            list.extend(materialize(item, path, strategies)?);
        }
        return Ok(list);
    }
    match strategy {
        ListStrategy::Replace => {
            let mut list = Vec::new();
            for item in patch {
                list.extend(materialize(item, path, strategies)?);
            }
            Ok(list)
        }
        ListStrategy::MergePrimitives => {
            let mut list = original.to_vec();
            for item in patch {
                if !list.contains(item) {
                    list.push(item.clone());
                }
            }
            Ok(list)
        }
        ListStrategy::MergeByKey(merge_key) => {
            let mut list = original.to_vec();
            for item in patch {
                let item_map = item
                    .as_object()
                    .ok_or_else(|| format!("elements of {} must be objects", path.join(".")))?;
                let key_value = item_map.get(merge_key).ok_or_else(|| {
                    format!(
                        "an element of {} is missing its merge key {merge_key:?}",
                        path.join(".")
                    )
                })?;
                let position = list
                    .iter()
                    .position(|e| e.get(merge_key) == Some(key_value));
                if item_map.get(PATCH).and_then(Value::as_str) == Some("delete") {
                    if let Some(i) = position {
                        list.remove(i);
                    }
                    continue;
                }
                match position {
                    Some(i) => {
                        let empty = Map::new();
                        let base = list[i].as_object().unwrap_or(&empty);
                        match merge_map(base, item_map, path, strategies)? {
                            Some(merged) => list[i] = Value::Object(merged),
                            None => {
                                list.remove(i);
                            }
                        }
                    }
                    None => list.extend(materialize(item, path, strategies)?),
                }
            }
            Ok(list)
        }
    }
}

/// Orders `list` as `order` says; elements the order does not mention keep their relative
/// order after the ones it does.
fn reorder(list: &mut [Value], order: &[Value], strategy: ListStrategy) {
    let rank = |item: &Value| -> usize {
        order
            .iter()
            .position(|o| match strategy {
                ListStrategy::MergeByKey(key) => {
                    o.get(key).is_some() && o.get(key) == item.get(key)
                }
                _ => o == item,
            })
            .unwrap_or(usize::MAX)
    };
    list.sort_by_key(rank);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(original: Value, patch: Value) -> Value {
        apply(&original, &patch, &Strategies::with(&[])).unwrap()
    }

    #[test]
    fn maps_merge_and_nulls_delete() {
        let out = smp(
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "data": {"k": "v"}}),
            json!({"metadata": {"labels": {"a": null, "c": "3"}}, "data": {"n": "1"}}),
        );
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"b": "2", "c": "3"}}, "data": {"k": "v", "n": "1"}})
        );
    }

    #[test]
    fn lists_without_strategy_are_replaced() {
        let out = smp(
            json!({"rules": [{"verbs": ["get"]}, {"verbs": ["list"]}]}),
            json!({"rules": [{"verbs": ["watch"]}]}),
        );
        assert_eq!(out, json!({"rules": [{"verbs": ["watch"]}]}));
    }

    #[test]
    fn finalizers_merge_as_a_set_and_can_be_deleted() {
        let out = smp(
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"finalizers": ["b", "c"], "$deleteFromPrimitiveList/finalizers": ["a"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["b", "c"]));
    }

    #[test]
    fn owner_references_merge_by_uid() {
        let out = smp(
            json!({"metadata": {"ownerReferences": [
                {"uid": "1", "name": "a", "kind": "X"},
                {"uid": "2", "name": "b", "kind": "X"}]}}),
            json!({"metadata": {"ownerReferences": [
                {"uid": "2", "name": "b2"},
                {"uid": "1", "$patch": "delete"},
                {"uid": "3", "name": "c", "kind": "X"}]}}),
        );
        assert_eq!(
            out["metadata"]["ownerReferences"],
            json!([{"uid": "2", "name": "b2", "kind": "X"}, {"uid": "3", "name": "c", "kind": "X"}])
        );
        let missing_key = apply(
            &json!({}),
            &json!({"metadata": {"ownerReferences": [{"name": "no-uid"}]}}),
            &Strategies::with(&[]),
        );
        assert!(missing_key.unwrap_err().contains("merge key"));
    }

    #[test]
    fn directives() {
        // $patch: replace on a map, delete on a map, replace as a list element.
        let out = smp(
            json!({"data": {"a": "1", "b": "2"}, "binaryData": {"x": "eA=="}, "metadata": {"finalizers": ["a", "b"]}}),
            json!({"data": {"$patch": "replace", "c": "3"}, "binaryData": {"$patch": "delete"},
                   "metadata": {"finalizers": [{"$patch": "replace"}, "z"]}}),
        );
        assert_eq!(
            out,
            json!({"data": {"c": "3"}, "metadata": {"finalizers": ["z"]}})
        );
        // $retainKeys keeps only the listed keys of the merged map.
        let out = smp(
            json!({"spec": {"a": 1, "b": 2}}),
            json!({"spec": {"$retainKeys": ["a", "c"], "c": 3}}),
        );
        assert_eq!(out, json!({"spec": {"a": 1, "c": 3}}));
        // $setElementOrder orders a merged list.
        let out = smp(
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"$setElementOrder/finalizers": ["b", "c", "a"], "finalizers": ["c"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["b", "c", "a"]));
        assert!(apply(
            &json!({}),
            &json!({"$patch": "bogus"}),
            &Strategies::default()
        )
        .is_err());
    }

    #[test]
    fn new_maps_from_a_patch_lose_their_directives_and_nulls() {
        let out = smp(
            json!({}),
            json!({"data": {"$patch": "merge", "a": "1", "b": null}}),
        );
        assert_eq!(out, json!({"data": {"a": "1"}}));
    }
}
