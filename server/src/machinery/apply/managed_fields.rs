//! `metadata.managedFields`: reading, validating and writing the entries, which fields are
//! never tracked, and recording an ordinary (non-apply) write.
//!
//! A manager is identified by name, operation and subresource, and for updaters also by API
//! version, as kube-apiserver keys them; so `kubectl` applying and `kubectl` editing are two
//! entries. Entries are written sorted as kube-apiserver sorts them: appliers first, then by
//! time, manager, API version and subresource.

use std::sync::LazyLock;

use serde_json::{json, Map, Value};

use super::compare::{added_fields_v1, compare, Comparison};
use super::field_set::{field_path, FieldSet, FieldSetError, PathElement};
use super::schema::{MergeRules, Node};
use crate::machinery::status::StatusCause;

/// The operation of a managedFields entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One `metadata.managedFields` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagedEntry {
    pub manager: String,
    pub operation: Operation,
    pub api_version: String,
    /// RFC 3339, as the caller passed it; absent in entries written without one.
    pub time: Option<String>,
    /// The subresource (e.g. `status`) the write came through, or empty.
    pub subresource: String,
    pub fields: FieldSet,
}

impl ManagedEntry {
    /// Whether `self` and `other` are the same manager.
    pub fn same_manager(&self, other: &ManagedEntry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            // An applier keeps its entry across API versions; updaters get one per version.
            && (self.operation == Operation::Apply || self.api_version == other.api_version)
    }

    fn to_json(&self) -> Value {
        entry_json(
            &self.manager,
            self.operation,
            &self.api_version,
            self.time.as_deref(),
            &self.subresource,
            self.fields.to_fields_v1(),
        )
    }

    fn from_json(value: &Value) -> Result<ManagedEntry, FieldSetError> {
        let bad = |why: &str| FieldSetError(format!("invalid managedFields entry: {why}"));
        let entry = value.as_object().ok_or_else(|| bad("not an object"))?;
        let text = |key: &str| -> Result<String, FieldSetError> {
            match entry.get(key) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(bad(&format!("{key} must be a string"))),
            }
        };
        let operation = match text("operation")?.as_str() {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            other => return Err(bad(&format!("unknown operation {other:?}"))),
        };
        if text("fieldsType")? != "FieldsV1" {
            return Err(bad("fieldsType must be FieldsV1"));
        }
        let fields = match entry.get("fieldsV1") {
            None | Some(Value::Null) => FieldSet::new(),
            Some(v) => FieldSet::from_fields_v1(v)?,
        };
        let time = text("time")?;
        Ok(ManagedEntry {
            manager: text("manager")?,
            operation,
            api_version: text("apiVersion")?,
            time: (!time.is_empty()).then_some(time),
            subresource: text("subresource")?,
            fields,
        })
    }
}

/// One managedFields entry as it is stored.
fn entry_json(
    manager: &str,
    operation: Operation,
    api_version: &str,
    time: Option<&str>,
    subresource: &str,
    fields_v1: Value,
) -> Value {
    let mut entry = Map::new();
    entry.insert("manager".into(), json!(manager));
    entry.insert("operation".into(), json!(operation.as_str()));
    entry.insert("apiVersion".into(), json!(api_version));
    if let Some(time) = time {
        entry.insert("time".into(), json!(time));
    }
    entry.insert("fieldsType".into(), json!("FieldsV1"));
    entry.insert("fieldsV1".into(), fields_v1);
    if !subresource.is_empty() {
        entry.insert("subresource".into(), json!(subresource));
    }
    Value::Object(entry)
}

/// Reads an object's managedFields. An error means they are invalid; kube-apiserver then
/// falls back to the stored object's.
pub fn read_managed_fields(object: &Value) -> Result<Vec<ManagedEntry>, FieldSetError> {
    match object.pointer("/metadata/managedFields") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(entries)) => {
            let mut out: Vec<ManagedEntry> = Vec::with_capacity(entries.len());
            for entry in entries.iter().map(ManagedEntry::from_json) {
                let entry = entry?;
                // A repeated manager keeps its last entry, as kube-apiserver decodes them.
                out.retain(|e| !e.same_manager(&entry));
                out.push(entry);
            }
            Ok(out)
        }
        Some(_) => Err(FieldSetError("managedFields must be a list".into())),
    }
}

/// What kube-apiserver's object validation says about a client-sent managedFields (a 422,
/// unlike entries that do not decode, which are silently replaced by the stored ones).
pub fn validate_managed_fields(object: &Value) -> Vec<StatusCause> {
    let Some(Value::Array(entries)) = object.pointer("/metadata/managedFields") else {
        return Vec::new();
    };
    let mut causes = Vec::new();
    let mut invalid = |field: String, value: &str, why: &str| {
        causes.push(StatusCause {
            kind: "FieldValueInvalid".into(),
            message: format!("Invalid value: {value:?}: {why}"),
            field,
        })
    };
    for (i, entry) in entries.iter().enumerate() {
        let text = |key: &str| entry.get(key).and_then(Value::as_str).unwrap_or_default();
        let path = |child: &str| format!("metadata.managedFields[{i}].{child}");
        if !matches!(text("operation"), "Apply" | "Update") {
            invalid(
                path("operation"),
                text("operation"),
                "must be `Apply` or `Update`",
            );
        }
        if !matches!(text("fieldsType"), "" | "FieldsV1") {
            invalid(path("fieldsType"), text("fieldsType"), "must be `FieldsV1`");
        }
        if let Err(why) = super::field_manager::check_field_manager(text("manager")) {
            invalid(path("manager"), text("manager"), &why);
        }
    }
    causes
}

/// Whether the client asked to clear managedFields: `managedFields: []`, or one empty entry.
pub fn is_reset(object: &Value) -> bool {
    match object.pointer("/metadata/managedFields") {
        Some(Value::Array(entries)) => match entries.as_slice() {
            [] => true,
            [only] => only.as_object().is_some_and(Map::is_empty),
            _ => false,
        },
        _ => false,
    }
}

/// Writes `entries` into `object`'s metadata, sorted and without empty ones; no entries
/// leaves no `managedFields` key, as kube-apiserver omits an empty list.
pub fn write_managed_fields(object: &mut Value, mut entries: Vec<ManagedEntry>) {
    entries.retain(|e| !e.fields.is_empty());
    // RFC 3339 times in UTC with seconds compare correctly as text.
    entries.sort_by(|a, b| {
        (
            a.operation,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                b.operation,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    set_managed_fields(object, entries.iter().map(ManagedEntry::to_json).collect());
}

/// Stores `entries` (already sorted, none empty) as `object`'s managedFields.
fn set_managed_fields(object: &mut Value, entries: Vec<Value>) {
    let Some(object) = object.as_object_mut() else {
        return;
    };
    if entries.is_empty() && !object.contains_key("metadata") {
        return;
    }
    let metadata = object
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(metadata) = metadata.as_object_mut() else {
        return;
    };
    if entries.is_empty() {
        metadata.remove("managedFields");
    } else {
        metadata.insert("managedFields".into(), Value::Array(entries));
    }
}

/// Undoes a write's managedFields time changes when they are all it changed, so that a
/// repeated apply or a no-op update stores nothing and bumps no resourceVersion, as
/// kube-apiserver does. Call it with the stored object, before the write is persisted.
pub fn keep_times_if_unchanged(old: &Value, new: &mut Value) {
    let entries = |o: &Value| -> Vec<Value> {
        let list = o
            .pointer("/metadata/managedFields")
            .and_then(Value::as_array);
        list.into_iter()
            .flatten()
            .map(|e| {
                let mut e = e.clone();
                if let Some(e) = e.as_object_mut() {
                    e.remove("time");
                }
                e
            })
            .collect()
    };
    let rest = |o: &Value| {
        let mut copy = without_managed_fields(o);
        if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
        copy
    };
    if entries(old) == entries(new) && rest(old) == rest(new) {
        if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
            match old.pointer("/metadata/managedFields") {
                Some(stored) => meta.insert("managedFields".into(), stored.clone()),
                None => meta.remove("managedFields"),
            };
        }
    }
}

/// A copy of `object` without managedFields: they never take part in merging or comparing.
pub(crate) fn without_managed_fields(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    copy
}

/// The top-level fields no manager owns as such (what is below `metadata` is owned as usual).
const SERVER_TOP: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// The metadata fields the server sets, which no manager owns, nor anything below them.
const SERVER_METADATA: [&str; 11] = [
    "name",
    "namespace",
    "creationTimestamp",
    "selfLink",
    "uid",
    "clusterName",
    "generation",
    "managedFields",
    "resourceVersion",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Fields the server sets, which no manager owns: kube-apiserver's list, plus the deletion
/// fields, which only the server writes. `apiVersion`, `kind` and `metadata` are only dropped
/// as members: what is below `metadata` is owned as usual.
pub(crate) fn untracked(set: &FieldSet) -> FieldSet {
    let mut tracked = set.clone();
    remove_untracked(&mut tracked);
    tracked
}

/// [`untracked`], in place.
fn remove_untracked(set: &mut FieldSet) {
    static SERVER_SET: LazyLock<(FieldSet, FieldSet)> = LazyLock::new(|| {
        let mut shallow = FieldSet::new();
        for top in SERVER_TOP {
            shallow.insert(&field_path(&[top]));
        }
        let mut deep = FieldSet::new();
        for field in SERVER_METADATA {
            deep.insert(&field_path(&["metadata", field]));
        }
        (shallow, deep)
    });
    let (shallow, deep) = &*SERVER_SET;
    set.remove(shallow);
    set.remove_recursive(deep);
}

/// A write that is not an apply.
#[derive(Clone, Debug)]
pub struct UpdateOptions<'a> {
    /// From `?fieldManager=`, else [`super::manager_from_user_agent`].
    pub manager: &'a str,
    /// The apiVersion the client wrote in, e.g. `v1` or `example.com/v1`.
    pub api_version: &'a str,
    /// Now, RFC 3339 seconds in UTC: `2026-11-27T06:00:00Z`.
    pub time: &'a str,
    /// `status` (or another subresource) when the write came through one.
    pub subresource: Option<&'a str>,
    /// Fields this endpoint resets whatever the client sends (kube-apiserver's reset fields:
    /// `status` on the main resource of kinds with a status, the rest on `status`). Nobody
    /// gains or loses them through this write.
    pub ignored: &'a [&'a [&'a str]],
}

/// The field set of `paths`, each a list of field names from the root.
pub(crate) fn ignored_set(paths: &[&[&str]]) -> FieldSet {
    let mut set = FieldSet::new();
    for path in paths {
        set.insert(&field_path(path));
    }
    set
}

/// Records a create (`old` is `None`), update or non-apply patch in `new`'s managedFields.
///
/// Which entries to start from follows kube-apiserver: a write through a subresource cannot
/// touch managedFields, so the stored ones are used; `managedFields: []` clears them; absent,
/// empty or invalid ones from the client mean the stored ones; otherwise the client's own
/// (a client may rewrite managedFields directly). Then the manager takes over what this write
/// added or changed, everyone loses what it removed, and the manager's time is updated if it
/// gained anything.
pub fn track_update(
    old: Option<&Value>,
    new: &mut Value,
    opts: &UpdateOptions,
    rules: &MergeRules,
) {
    let stored = || {
        old.and_then(|o| read_managed_fields(o).ok())
            .unwrap_or_default()
    };
    let mut entries = if opts.subresource.is_some() {
        stored()
    } else if is_reset(new) {
        Vec::new()
    } else {
        match read_managed_fields(new) {
            Ok(sent) if !sent.is_empty() => sent,
            _ => stored(),
        }
    };
    // `new` is compared without its managedFields, which are rewritten below: taken out
    // rather than the whole object copied.
    if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    if old.is_none() && entries.is_empty() {
        if let Some(fields) = created_fields_v1(new, opts, &rules.root()) {
            let entry = (!fields.is_empty()).then(|| {
                entry_json(
                    opts.manager,
                    Operation::Update,
                    opts.api_version,
                    Some(opts.time),
                    opts.subresource.unwrap_or_default(),
                    Value::Object(fields),
                )
            });
            set_managed_fields(new, entry.into_iter().collect());
            return;
        }
    }
    let old_plain = match old {
        Some(old) => without_managed_fields(old),
        None => Value::Object(Map::new()),
    };
    record_update(&old_plain, new, &mut entries, opts, &rules.root());
    cap_updaters(&mut entries);
    write_managed_fields(new, entries);
}

/// The fields a create with no managedFields of its own gives its manager, as `fieldsV1`:
/// everything it sent, less what nobody owns and the endpoint's ignored fields. What
/// [`record_update`] records for it, without comparing against nothing and without building
/// a field set first. `None` where only the general path can tell (an object nested past
/// the depth a `fieldsV1` is read back to, or an ignored path below the top level).
fn created_fields_v1(new: &Value, opts: &UpdateOptions, root: &Node) -> Option<Map<String, Value>> {
    if !new.is_object() || root.map_is_atomic() || opts.ignored.iter().any(|p| p.len() != 1) {
        return None;
    }
    let mut fields = added_fields_v1(new, root, 0)?;
    let named_in = |names: &[&str], key: &str| {
        PathElement::field_name(key).is_some_and(|name| names.contains(&name))
    };
    let ignored: Vec<&str> = opts.ignored.iter().map(|path| path[0]).collect();
    fields.retain(|key, _| !named_in(&ignored, key));
    for top in SERVER_TOP {
        let key = PathElement::field_key(top);
        let Some(Value::Object(level)) = fields.get_mut(&key) else {
            continue;
        };
        level.remove(".");
        if top == "metadata" {
            level.retain(|key, _| !named_in(&SERVER_METADATA, key));
        }
        if level.is_empty() {
            fields.remove(&key);
        }
    }
    Some(fields)
}

/// The most updater entries an object keeps; appliers are not capped.
pub const MAX_UPDATERS: usize = 10;

/// Where the oldest updaters' fields go once there are too many.
pub const ANCIENT_CHANGES: &str = "ancient-changes";

/// Keeps at most [`MAX_UPDATERS`] updater entries, as kube-apiserver does, so that a stream
/// of differently named clients cannot grow managedFields without bound. Oldest first, each
/// updater is folded into an `ancient-changes` entry of its API version (the first of a
/// version becomes that entry), which takes the time of the latest one folded in.
fn cap_updaters(entries: &mut Vec<ManagedEntry>) {
    entries.retain(|e| !e.fields.is_empty());
    let mut updaters: Vec<usize> = (0..entries.len())
        .filter(|&i| entries[i].operation == Operation::Update)
        .collect();
    if updaters.len() <= MAX_UPDATERS {
        return;
    }
    updaters.sort_by(|&a, &b| {
        let key = |e: &ManagedEntry| {
            (
                e.time.clone().unwrap_or_default(),
                e.manager.clone(),
                e.api_version.clone(),
                e.subresource.clone(),
            )
        };
        key(&entries[a]).cmp(&key(&entries[b]))
    });
    let mut count = updaters.len();
    let mut first_of_version: Vec<(String, usize)> = Vec::new();
    let mut folded = vec![false; entries.len()];
    for i in updaters {
        if count <= MAX_UPDATERS {
            break;
        }
        let version = entries[i].api_version.clone();
        let Some(&(_, first)) = first_of_version.iter().find(|(v, _)| *v == version) else {
            first_of_version.push((version, i));
            continue;
        };
        let existing = (0..entries.len()).find(|&b| {
            !folded[b]
                && entries[b].manager == ANCIENT_CHANGES
                && entries[b].operation == Operation::Update
                && entries[b].subresource.is_empty()
                && entries[b].api_version == version
        });
        let bucket = existing.unwrap_or_else(|| {
            entries[first].manager = ANCIENT_CHANGES.to_string();
            entries[first].subresource.clear();
            first
        });
        if bucket == i {
            continue;
        }
        let fields = entries[i].fields.clone();
        entries[bucket].fields = entries[bucket].fields.union(&fields);
        entries[bucket].time = entries[i].time.clone();
        folded[i] = true;
        count -= 1;
    }
    let mut index = 0;
    entries.retain(|_| {
        index += 1;
        !folded[index - 1]
    });
}

fn record_update(
    old: &Value,
    new: &Value,
    entries: &mut Vec<ManagedEntry>,
    opts: &UpdateOptions,
    node: &Node,
) {
    let Comparison {
        added,
        modified,
        mut removed,
    } = compare(old, new, node);
    let ignored = ignored_set(opts.ignored);
    // A create modifies nothing: what it added is all it changed.
    let mut changed = if modified.is_empty() {
        added
    } else {
        modified.union(&added)
    };
    remove_untracked(&mut changed);
    changed.remove_recursive(&ignored);
    removed.remove_recursive(&ignored);
    for entry in entries.iter_mut() {
        // An update always wins: what it changed is nobody else's any more.
        entry.fields = entry.fields.difference(&changed).difference(&removed);
    }
    let mine = ManagedEntry {
        manager: opts.manager.to_string(),
        operation: Operation::Update,
        api_version: opts.api_version.to_string(),
        time: Some(opts.time.to_string()),
        subresource: opts.subresource.unwrap_or_default().to_string(),
        fields: changed,
    };
    if mine.fields.is_empty() {
        return;
    }
    match entries.iter_mut().find(|e| e.same_manager(&mine)) {
        Some(previous) => {
            previous.fields = previous.fields.union(&mine.fields);
            previous.time = mine.time;
        }
        None => entries.push(mine),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opts(manager: &str) -> UpdateOptions<'_> {
        UpdateOptions {
            manager,
            api_version: "v1",
            time: "2026-11-27T06:00:00Z",
            subresource: None,
            ignored: &[],
        }
    }

    fn configmap(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "c", "namespace": "d", "resourceVersion": "5",
                            "labels": {"app": "x"}},
               "data": data})
    }

    /// What the general path records for a create: compare with nothing, then write.
    fn recorded_in_general(new: &Value, opts: &UpdateOptions, rules: &MergeRules) -> Value {
        let mut new = new.clone();
        if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
        }
        let mut entries = Vec::new();
        let nothing = Value::Object(Map::new());
        record_update(&nothing, &new, &mut entries, opts, &rules.root());
        write_managed_fields(&mut new, entries);
        new
    }

    #[test]
    fn a_create_records_what_the_general_comparison_records() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "d", "uid": "u", "generateName": "p-",
                         "labels": {"app": "x"}, "annotations": {},
                         "finalizers": ["a", "b"], "creationTimestamp": null,
                         "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap",
                                              "name": "o", "uid": "o1"}]},
            "spec": {"containers": [
                        {"name": "c", "image": "i", "args": ["x", "y"],
                         "ports": [{"containerPort": 80, "protocol": "TCP"}],
                         "env": [{"name": "A", "value": "1"}, {"name": "B"}],
                         "resources": {}},
                        {"name": "d", "image": "j", "ports": []}],
                     "nodeSelector": {"gpu": "a100"}, "tolerations": [{"key": "k"}, {"key": "k"}]},
            "status": {"phase": "Pending"}});
        let mut duplicated = pod.clone();
        duplicated["spec"]["containers"][1]["name"] = json!("c");
        let mut deep = json!("leaf");
        for _ in 0..70 {
            deep = json!({ "x": deep });
        }
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "set": {"type": "array", "x-kubernetes-list-type": "set",
                        "items": {"type": "string"}},
                "byName": {"type": "array", "x-kubernetes-list-type": "map",
                           "x-kubernetes-list-map-keys": ["name"],
                           "items": {"type": "object"}},
                "whole": {"type": "object", "x-kubernetes-map-type": "atomic"},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}});
        let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "managedFields": [{"manager": "ignored"}]},
            "spec": {"set": ["a", "b"], "byName": [{"name": "n", "v": 1}, {"name": "m"}],
                     "whole": {"a": {"b": 1}}, "free": {"a": {"b": [1, 2]}, "n": null}},
            "status": {"ok": true}});
        let cases = [
            (
                configmap(json!({"a": "1", "b": ""})),
                MergeRules::builtin("ConfigMap"),
            ),
            (
                json!({"metadata": {"name": "only"}}),
                MergeRules::builtin("ConfigMap"),
            ),
            (
                json!({"data": {"a": "1"}}),
                MergeRules::builtin("ConfigMap"),
            ),
            (
                json!({"kind": {"odd": 1}, "metadata": {"name": {"x": 1}}}),
                MergeRules::builtin("ConfigMap"),
            ),
            (pod.clone(), MergeRules::builtin("Pod")),
            (duplicated, MergeRules::builtin("Pod")),
            (
                json!({"metadata": {"name": "deep"}, "data": deep}),
                MergeRules::builtin("ConfigMap"),
            ),
            (widget, MergeRules::Schema(&schema)),
        ];
        let ignoring: [&[&[&str]]; 4] = [
            &[],
            &[&["status"]],
            &[&["spec"]],
            &[&["spec", "nodeSelector"]],
        ];
        for (object, rules) in &cases {
            for ignored in ignoring {
                let mut options = opts("creator");
                options.ignored = ignored;
                let mut fast = object.clone();
                track_update(None, &mut fast, &options, rules);
                assert_eq!(
                    fast,
                    recorded_in_general(object, &options, rules),
                    "{object} ignoring {ignored:?}"
                );
            }
            let mut through_status = opts("creator");
            through_status.subresource = Some("status");
            let mut fast = object.clone();
            track_update(None, &mut fast, &through_status, rules);
            assert_eq!(fast, recorded_in_general(object, &through_status, rules));
        }
        // The cases reach the fast path: keyed and set-like items show in the entry.
        let (widget, rules) = &cases[7];
        let mut recorded = widget.clone();
        track_update(None, &mut recorded, &opts("creator"), rules);
        let fields = &recorded["metadata"]["managedFields"][0]["fieldsV1"];
        assert_eq!(
            fields["f:spec"]["f:byName"]["k:{\"name\":\"n\"}"]["f:v"],
            json!({})
        );
        assert_eq!(fields["f:spec"]["f:set"]["v:\"a\""], json!({}));
        assert_eq!(fields["f:spec"]["f:whole"], json!({}));
        let mut recorded = pod.clone();
        track_update(
            None,
            &mut recorded,
            &opts("creator"),
            &MergeRules::builtin("Pod"),
        );
        let fields = &recorded["metadata"]["managedFields"][0]["fieldsV1"];
        assert_eq!(fields["f:metadata"]["f:finalizers"]["v:\"a\""], json!({}));
        assert!(fields["f:metadata"].get("f:uid").is_none());
    }

    #[test]
    fn create_records_the_update_without_server_fields() {
        let mut obj = configmap(json!({"a": "1"}));
        track_update(
            None,
            &mut obj,
            &opts("kubectl-create"),
            &MergeRules::builtin("ConfigMap"),
        );
        assert_eq!(
            obj["metadata"]["managedFields"],
            json!([{"manager": "kubectl-create", "operation": "Update", "apiVersion": "v1",
                    "time": "2026-11-27T06:00:00Z", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:data": {".": {}, "f:a": {}},
                                 "f:metadata": {"f:labels": {".": {}, "f:app": {}}}}}])
        );
    }

    #[test]
    fn an_update_takes_changed_fields_from_others_and_drops_empty_entries() {
        let rules = MergeRules::builtin("ConfigMap");
        let mut v1 = configmap(json!({"a": "1"}));
        track_update(None, &mut v1, &opts("first"), &rules);
        let mut v2 = configmap(json!({"a": "2"}));
        v2["metadata"]["labels"] = json!({"app": "y"});
        track_update(Some(&v1), &mut v2, &opts("second"), &rules);
        let entries = read_managed_fields(&v2).unwrap();
        let first = entries.iter().find(|e| e.manager == "first").unwrap();
        assert_eq!(
            first.fields.to_json_string(),
            r#"{"f:data":{},"f:metadata":{"f:labels":{}}}"#
        );
        let mut v3 = v2.clone();
        v3["data"] = json!({"a": "3"});
        v3["metadata"]["labels"] = json!({"app": "z"});
        v3["metadata"]["managedFields"] = Value::Null;
        track_update(Some(&v2), &mut v3, &opts("second"), &rules);
        let managers: Vec<String> = read_managed_fields(&v3)
            .unwrap()
            .into_iter()
            .map(|e| e.manager)
            .collect();
        assert_eq!(managers, ["first", "second"]);
        // A write that changes nothing leaves managedFields as they were.
        let mut v4 = v3.clone();
        track_update(Some(&v3), &mut v4, &opts("third"), &rules);
        assert_eq!(v4, v3);
    }

    #[test]
    fn client_sent_managed_fields_are_used_reset_or_ignored() {
        let rules = MergeRules::builtin("ConfigMap");
        let mut stored = configmap(json!({"a": "1"}));
        track_update(None, &mut stored, &opts("first"), &rules);

        let mut cleared = stored.clone();
        cleared["metadata"]["managedFields"] = json!([]);
        track_update(Some(&stored), &mut cleared, &opts("second"), &rules);
        assert!(cleared["metadata"].get("managedFields").is_none());

        let mut invalid = stored.clone();
        invalid["metadata"]["managedFields"] = json!([{"manager": "x", "fieldsType": "nope"}]);
        track_update(Some(&stored), &mut invalid, &opts("second"), &rules);
        assert_eq!(
            invalid["metadata"]["managedFields"],
            stored["metadata"]["managedFields"]
        );

        let mut rewritten = stored.clone();
        rewritten["metadata"]["managedFields"][0]["manager"] = json!("renamed");
        track_update(Some(&stored), &mut rewritten, &opts("second"), &rules);
        assert_eq!(
            rewritten["metadata"]["managedFields"][0]["manager"],
            "renamed"
        );

        let mut via_status = stored.clone();
        via_status["metadata"]["managedFields"] = json!([]);
        let status = UpdateOptions {
            subresource: Some("status"),
            ..opts("second")
        };
        track_update(Some(&stored), &mut via_status, &status, &rules);
        assert_eq!(
            via_status["metadata"]["managedFields"],
            stored["metadata"]["managedFields"]
        );
    }

    #[test]
    fn the_oldest_updaters_fold_into_ancient_changes() {
        let rules = MergeRules::builtin("ConfigMap");
        let mut obj = configmap(json!({}));
        for n in 0..=MAX_UPDATERS {
            let mut next = obj.clone();
            next["data"][format!("k{n:02}")] = json!("v");
            let time = format!("2026-11-27T06:{n:02}:00Z");
            let manager = format!("m{n:02}");
            let update = UpdateOptions {
                time: &time,
                ..opts(&manager)
            };
            track_update(Some(&obj), &mut next, &update, &rules);
            obj = next;
        }
        let entries = read_managed_fields(&obj).unwrap();
        assert_eq!(entries.len(), MAX_UPDATERS);
        let ancient = entries
            .iter()
            .find(|e| e.manager == ANCIENT_CHANGES)
            .unwrap();
        assert_eq!(ancient.time.as_deref(), Some("2026-11-27T06:01:00Z"));
        assert_eq!(
            ancient.fields.to_json_string(),
            r#"{"f:data":{"f:k00":{},"f:k01":{}}}"#
        );
    }

    #[test]
    fn malformed_entries_are_invalid() {
        let obj = json!({"metadata": {"managedFields": [
            {"manager": "ok", "operation": "Update", "fieldsType": "FieldsV1"},
            {"manager": "a\u{7}", "operation": "Merge", "fieldsType": "FieldsV2"}]}});
        let fields: Vec<String> = validate_managed_fields(&obj)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(
            fields,
            [
                "metadata.managedFields[1].operation",
                "metadata.managedFields[1].fieldsType",
                "metadata.managedFields[1].manager"
            ]
        );
    }

    #[test]
    fn subresource_writes_are_their_own_entries() {
        let rules = MergeRules::builtin("Namespace");
        let old = json!({"metadata": {"name": "n"}, "status": {"phase": "Active"}});
        let mut new = json!({"metadata": {"name": "n"}, "status": {"phase": "Terminating"}});
        let status = UpdateOptions {
            subresource: Some("status"),
            ..opts("controller")
        };
        track_update(Some(&old), &mut new, &status, &rules);
        assert_eq!(new["metadata"]["managedFields"][0]["subresource"], "status");
    }
}
