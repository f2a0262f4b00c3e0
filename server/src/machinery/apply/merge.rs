//! Server-side apply: merging an applied configuration into the live object, removing what
//! the applier stopped applying, and moving ownership (or refusing to, on conflict).
//!
//! The steps are structured-merge-diff's: merge the configuration over the live object (the
//! configuration wins, granular maps and merging lists combine); the applier now owns exactly
//! its configuration's fields; fields it owned before and no longer applies are removed unless
//! some manager still owns them; then every other manager that owns a field whose value
//! changed is a conflict, unless forced, when it loses that field.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::compare::{compare, fields_of, list_elements};
use super::conflict::{ApplyError, Conflict};
use super::field_set::{FieldSet, PathElement, MAX_DEPTH};
use super::managed_fields::{
    ignored_set, read_managed_fields, untracked, without_managed_fields, write_managed_fields,
    ManagedEntry, Operation,
};
use super::schema::{MergeRules, Node};

/// An apply request.
#[derive(Clone, Debug)]
pub struct ApplyOptions<'a> {
    /// `?fieldManager=`, which apply requires.
    pub manager: &'a str,
    /// The apiVersion the resource is served in; the applied config must use it.
    pub api_version: &'a str,
    /// Now, RFC 3339 seconds in UTC: `2026-11-27T06:00:00Z`.
    pub time: &'a str,
    /// `?force=true`: take conflicting fields instead of failing.
    pub force: bool,
    /// `status` (or another subresource) when applied through one.
    pub subresource: Option<&'a str>,
    /// Fields this endpoint resets whatever the client sends, e.g. `&[&["status"]]` on the
    /// main resource of a kind with a status: the applier does not own them.
    pub ignored: &'a [&'a [&'a str]],
}

/// Metadata the server owns: an applied configuration cannot set it, so the live values (or
/// none, on create) are kept. A `resourceVersion` in the configuration is a precondition the
/// caller checks against `applied` itself.
const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Applies `applied` (the request body, as JSON) for `opts.manager` to `live` (`None` creates
/// the object) and returns the new object with its managedFields updated.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    opts: &ApplyOptions,
    rules: &MergeRules,
) -> Result<Value, ApplyError> {
    let invalid = |m: &str| ApplyError::Invalid(m.to_string());
    if !applied.is_object() {
        return Err(invalid("the applied configuration must be an object"));
    }
    if !matches!(
        applied.pointer("/metadata/managedFields"),
        None | Some(Value::Null)
    ) {
        return Err(invalid("metadata.managedFields must be nil"));
    }
    if let Some(version) = applied.get("apiVersion").and_then(Value::as_str) {
        if version != opts.api_version {
            return Err(ApplyError::Invalid(format!(
                "Incorrect version specified in apply patch. Specified patch version: {version}, expected: {}",
                opts.api_version
            )));
        }
    }
    let node = rules.root();
    // Stored managedFields that do not parse are a server bug or old data; starting over
    // beats refusing every apply to the object.
    let mut entries = live
        .and_then(|l| read_managed_fields(l).ok())
        .unwrap_or_default();
    let empty = Value::Object(Map::new());
    let live_plain = live.map(without_managed_fields).unwrap_or(empty);
    let config = without_managed_fields(applied);
    let ignored = ignored_set(opts.ignored);
    let owned_now = untracked(&fields_of(&config, &node, true).map_err(ApplyError::Invalid)?)
        .recursive_difference(&ignored);

    let mut merged = merge(&live_plain, &config, &node, 0);
    keep_server_metadata(&live_plain, &mut merged);

    let mine = ManagedEntry {
        manager: opts.manager.to_string(),
        operation: Operation::Apply,
        api_version: opts.api_version.to_string(),
        time: Some(opts.time.to_string()),
        subresource: opts.subresource.unwrap_or_default().to_string(),
        fields: owned_now,
    };
    let (writer, last) = match entries.iter().position(|e| e.same_manager(&mine)) {
        Some(i) => {
            let last = std::mem::replace(&mut entries[i], mine).fields;
            (i, Some(last.recursive_difference(&ignored)))
        }
        None => {
            entries.push(mine);
            (entries.len() - 1, None)
        }
    };
    if let Some(last) = last {
        let owned = entries
            .iter()
            .fold(FieldSet::new(), |all, e| all.union(&e.fields));
        let remove = last.difference(&owned);
        prune(&mut merged, &remove, Some(&last), Some(&owned), &node, 0);
    }
    take_ownership(
        &live_plain,
        &merged,
        &mut entries,
        writer,
        opts.force,
        &ignored,
        &node,
    )
    .map_err(ApplyError::Conflicts)?;
    write_managed_fields(&mut merged, entries);
    Ok(merged)
}

fn keep_server_metadata(live: &Value, merged: &mut Value) {
    let Some(meta) = merged.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    for field in SERVER_METADATA {
        match live.get("metadata").and_then(|m| m.get(*field)) {
            Some(value) => meta.insert(field.to_string(), value.clone()),
            None => meta.remove(*field),
        };
    }
}

/// Merges `config` over `live`: the configuration's values win; granular maps keep the live
/// keys the configuration does not mention, and merging lists keep the live items it does not
/// mention.
pub(crate) fn merge(live: &Value, config: &Value, node: &Node, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return config.clone();
    }
    match (live, config) {
        (Value::Object(l), Value::Object(c)) if !node.map_is_atomic() => {
            let mut out = l.clone();
            for (key, value) in c {
                let merged = match l.get(key) {
                    Some(live_value) => merge(live_value, value, &node.field(key).0, depth + 1),
                    None => value.clone(),
                };
                out.insert(key.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(c)) => {
            match (
                list_elements(l, node, false).ok().flatten(),
                list_elements(c, node, false).ok().flatten(),
            ) {
                (Some(l), Some(c)) => Value::Array(merge_list(&l, &c, &node.items(), depth)),
                _ => config.clone(),
            }
        }
        _ => config.clone(),
    }
}

/// Merges two identified lists as structured-merge-diff orders them: items both lists have
/// come in the configuration's order, and a live item the configuration does not mention
/// stays where it was relative to the shared items around it, so that what other managers
/// added keeps its place.
fn merge_list(
    live: &[(PathElement, &Value)],
    config: &[(PathElement, &Value)],
    item_node: &Node,
    depth: usize,
) -> Vec<Value> {
    let live_by_pe: BTreeMap<&PathElement, &Value> = live.iter().map(|(pe, v)| (pe, *v)).collect();
    let in_config: BTreeSet<&PathElement> = config.iter().map(|(pe, _)| pe).collect();
    // The shared items in the order they will be written; a live shared item only goes out
    // when it is the next one due, otherwise it waits for its turn in the configuration.
    let mut shared = config
        .iter()
        .map(|(pe, _)| pe)
        .filter(|pe| live_by_pe.contains_key(pe));
    let mut next_shared = shared.next();
    let mut written: BTreeSet<&PathElement> = BTreeSet::new();
    let merged = |pe: &PathElement, value: &Value| match live_by_pe.get(pe) {
        Some(live_value) => merge(live_value, value, item_node, depth + 1),
        None => value.clone(),
    };
    let mut out = Vec::with_capacity(live.len() + config.len());
    let (mut l, mut c) = (0, 0);
    while l < live.len() || c < config.len() {
        if let (Some((lpe, _)), Some((cpe, cvalue))) = (live.get(l), config.get(c)) {
            if lpe == cpe {
                out.push(merged(cpe, cvalue));
                written.insert(cpe);
                l += 1;
                c += 1;
                next_shared = shared.next();
                continue;
            }
            if in_config.contains(lpe) && next_shared != Some(lpe) && !written.contains(lpe) {
                l += 1;
                continue;
            }
        }
        if let Some((lpe, lvalue)) = live.get(l) {
            if !in_config.contains(lpe) {
                out.push((*lvalue).clone());
                l += 1;
                continue;
            }
            if written.contains(lpe) {
                l += 1;
                continue;
            }
        }
        if let Some((cpe, cvalue)) = config.get(c) {
            out.push(merged(cpe, cvalue));
            written.insert(cpe);
            c += 1;
            if next_shared == Some(cpe) {
                next_shared = shared.next();
            }
        } else {
            // Only reachable with a shared live item the configuration already passed, which
            // `written` rules out; stepping on keeps the loop finite regardless.
            l += 1;
        }
    }
    out
}

/// Removes from `value` the fields in `remove`. A struct left empty by the removal, which the
/// applier used to own fields in and nobody owns anything in now, goes too: otherwise taking a
/// whole block out of a configuration would leave `{}` behind.
pub(crate) fn prune(
    value: &mut Value,
    remove: &FieldSet,
    last: Option<&FieldSet>,
    owned: Option<&FieldSet>,
    node: &Node,
    depth: usize,
) {
    if depth > MAX_DEPTH || remove.is_empty() {
        return;
    }
    match value {
        Value::Object(map) if !node.map_is_atomic() => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let pe = PathElement::Field(key.clone());
                // A field somebody still owns anything in stays, even if the applier gave up
                // the field itself (kubectl's client-side to server-side upgrade leaves it
                // owning `data` as a whole, then applies only `data.k`): only what is below
                // and owned by nobody goes.
                let still_owned = owned.is_some_and(|o| o.touches(&pe));
                if remove.has_member(&pe) && !still_owned {
                    map.remove(&key);
                    continue;
                }
                let (Some(sub), Some(child)) = (remove.child(&pe), map.get_mut(&key)) else {
                    continue;
                };
                let last_child = last.and_then(|l| l.child(&pe));
                let owned_child = owned.and_then(|o| o.child(&pe));
                prune(
                    child,
                    sub,
                    last_child,
                    owned_child,
                    &node.field(&key).0,
                    depth + 1,
                );
                let now_empty = child.as_object().is_some_and(Map::is_empty)
                    || child.as_array().is_some_and(Vec::is_empty);
                if now_empty && last_child.is_some() && !still_owned {
                    map.remove(&key);
                }
            }
        }
        Value::Array(items) => {
            let Ok(Some(elements)) = list_elements(items, node, false) else {
                return;
            };
            let pes: Vec<PathElement> = elements.into_iter().map(|(pe, _)| pe).collect();
            let item_node = node.items();
            let mut kept = Vec::with_capacity(items.len());
            for (pe, mut item) in pes.into_iter().zip(std::mem::take(items)) {
                // An item goes whole: kept for another manager's field in it, it would lose
                // its key fields below (which the applier owned), and so its identity.
                if remove.has_member(&pe) {
                    continue;
                }
                if let Some(sub) = remove.child(&pe) {
                    prune(
                        &mut item,
                        sub,
                        last.and_then(|l| l.child(&pe)),
                        owned.and_then(|o| o.child(&pe)),
                        &item_node,
                        depth + 1,
                    );
                }
                kept.push(item);
            }
            *items = kept;
        }
        _ => {}
    }
}

/// Moves ownership after a write from `live` to `new` by `writer` (an index into `entries`):
/// other managers lose what was removed, and what was added or modified is theirs no more
/// when `force`, a conflict otherwise. The writer's own set is left to the caller.
pub(crate) fn take_ownership(
    live: &Value,
    new: &Value,
    entries: &mut [ManagedEntry],
    writer: usize,
    force: bool,
    ignored: &FieldSet,
    node: &Node,
) -> Result<(), Vec<Conflict>> {
    let cmp = compare(live, new, node);
    let changed = cmp.modified.union(&cmp.added).recursive_difference(ignored);
    let removed = cmp.removed.recursive_difference(ignored);
    let mut conflicts = Vec::new();
    for (i, entry) in entries.iter_mut().enumerate() {
        if i == writer {
            continue;
        }
        let lost = entry.fields.intersection(&changed);
        if force {
            entry.fields = entry.fields.difference(&lost);
        } else {
            conflicts.extend(lost.paths().iter().map(|path| Conflict {
                manager: entry.manager.clone(),
                operation: entry.operation,
                api_version: entry.api_version.clone(),
                subresource: entry.subresource.clone(),
                field: super::field_set::path_string(path),
            }));
        }
        entry.fields = entry.fields.difference(&removed);
    }
    if conflicts.is_empty() {
        Ok(())
    } else {
        Err(conflicts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machinery::apply::schema::MergeRules;
    use serde_json::json;

    #[test]
    fn map_lists_merge_by_key_keeping_live_order_around_shared_items() {
        let rules = MergeRules::builtin("ServiceAccount");
        let live = json!({"secrets": [{"name": "a"}, {"name": "x"}, {"name": "b", "v": 1}]});
        let config = json!({"secrets": [{"name": "b", "v": 2}, {"name": "c"}]});
        let merged = merge(&live, &config, &rules.root(), 0);
        assert_eq!(
            merged,
            json!({"secrets": [{"name": "a"}, {"name": "x"}, {"name": "b", "v": 2}, {"name": "c"}]})
        );
    }

    #[test]
    fn live_only_items_stay_between_the_shared_items_around_them() {
        let rules = MergeRules::builtin("ServiceAccount");
        let names = |names: &[&str]| json!({"secrets": names.iter().map(|n| json!({"name": n})).collect::<Vec<_>>()});
        let cases: &[(&[&str], &[&str], &[&str])] = &[
            (&["x", "b", "y", "a"], &["a", "b"], &["x", "y", "a", "b"]),
            (&["b", "a"], &["a", "b"], &["a", "b"]),
            (&["a", "b"], &["c", "a"], &["c", "a", "b"]),
            (&[], &["a"], &["a"]),
            (&["a"], &[], &["a"]),
        ];
        for (live, config, want) in cases {
            let merged = merge(&names(live), &names(config), &rules.root(), 0);
            assert_eq!(merged, names(want), "{live:?} + {config:?}");
        }
    }

    #[test]
    fn atomic_values_are_replaced() {
        let rules = MergeRules::builtin("Pod");
        let live = json!({"spec": {"args": ["a", "b"], "n": 1}});
        let config = json!({"spec": {"args": ["c"]}});
        assert_eq!(
            merge(&live, &config, &rules.root(), 0),
            json!({"spec": {"args": ["c"], "n": 1}})
        );
    }
}
