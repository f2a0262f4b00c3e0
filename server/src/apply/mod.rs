//! Server-side apply and `metadata.managedFields`, as kube-apiserver does them with
//! sigs.k8s.io/structured-merge-diff. Pure functions, no I/O: the REST layer reads the stored
//! object, calls [`apply`] (for `application/apply-patch+yaml`) or [`track_update`] (for every
//! other write) and stores the result.
//!
//! - [`field_set`]: sets of owned fields and their `fieldsV1` encoding.
//! - [`schema`]: which lists and maps merge, from a CRD schema or the built-in table.
//! - [`compare`]: an object's fields, and what changed between two versions.
//! - [`merge`]: the apply itself, and conflicts.
//! - [`managed_fields`]: the entries, and recording non-apply writes.

pub mod compare;
pub mod field_set;
pub mod managed_fields;
pub mod merge;
pub mod schema;

use serde_json::{Map, Value};

pub use field_set::{FieldSet, PathElement};
pub use managed_fields::{
    is_reset, keep_times_if_unchanged, read_managed_fields, track_update, validate_managed_fields,
    write_managed_fields, ManagedEntry, Operation, UpdateOptions,
};
pub use merge::Conflict;
pub use schema::{ListType, MergeRules};

use crate::status::{Status, StatusCause};
use compare::fields_of;
use managed_fields::{ignored_set, untracked, without_managed_fields};
use merge::{merge, prune, take_ownership};

/// The longest field manager name kube-apiserver accepts.
pub const FIELD_MANAGER_MAX_LENGTH: usize = 128;

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

/// Why an apply was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// Other managers own fields the apply would change: 409.
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The applied configuration is unusable: 400.
    #[error("{0}")]
    Invalid(String),
}

impl ApplyError {
    /// The Status kube-apiserver answers with.
    pub fn to_status(&self) -> Status {
        match self {
            ApplyError::Conflicts(conflicts) => Status::apply_conflict(
                conflict_message(conflicts),
                conflicts
                    .iter()
                    .map(|c| StatusCause {
                        kind: "FieldManagerConflict".into(),
                        message: format!("conflict with {}", print_manager(c)),
                        field: c.field.clone(),
                    })
                    .collect(),
            ),
            ApplyError::Invalid(message) => Status::bad_request(message.clone()),
        }
    }
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

/// kube-apiserver's message for a refused apply.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            print_manager(only),
            only.field
        );
    }
    let mut managers: Vec<&Conflict> = Vec::new();
    for c in conflicts {
        if !managers.iter().any(|m| same_owner(m, c)) {
            managers.push(c);
        }
    }
    managers.sort_by(|a, b| {
        (&a.manager, a.operation, &a.api_version, &a.subresource).cmp(&(
            &b.manager,
            b.operation,
            &b.api_version,
            &b.subresource,
        ))
    });
    let mut lines = Vec::new();
    for m in managers {
        lines.push(format!("conflicts with {}:", print_manager(m)));
        for c in conflicts.iter().filter(|c| same_owner(m, c)) {
            lines.push(format!("- {}", c.field));
        }
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

fn same_owner(a: &Conflict, b: &Conflict) -> bool {
    a.manager == b.manager
        && a.operation == b.operation
        && a.api_version == b.api_version
        && a.subresource == b.subresource
}

/// `"kubectl"`, `"kube-controller-manager" with subresource "status" using v1`, ...
fn print_manager(c: &Conflict) -> String {
    let mut out = Value::from(c.manager.as_str()).to_string();
    if !c.subresource.is_empty() {
        out.push_str(&format!(
            " with subresource {}",
            Value::from(c.subresource.as_str())
        ));
    }
    if c.operation == Operation::Update {
        out.push_str(&format!(" using {}", c.api_version));
    }
    out
}

/// The manager of an apply: `?fieldManager=`, which apply requires.
pub fn apply_field_manager(query: Option<&str>) -> Result<String, String> {
    match query.filter(|m| !m.is_empty()) {
        Some(manager) => {
            check_field_manager(manager).map_err(|why| format!("fieldManager: {why}"))?;
            Ok(manager.to_string())
        }
        None => Err("fieldManager: Required value: is required for apply patch".into()),
    }
}

/// The manager of a write: `?fieldManager=` if given (and valid), else the User-Agent up to
/// its first `/`, printable characters only, cut to the maximum length, as kube-apiserver
/// derives it.
pub fn field_manager(query: Option<&str>, user_agent: Option<&str>) -> Result<String, String> {
    if let Some(manager) = query.filter(|m| !m.is_empty()) {
        check_field_manager(manager).map_err(|why| format!("fieldManager: {why}"))?;
        return Ok(manager.to_string());
    }
    let prefix = user_agent
        .unwrap_or_default()
        .split('/')
        .next()
        .unwrap_or_default();
    let mut out = String::new();
    for c in prefix.chars().filter(|c| printable(*c)) {
        if out.len() + c.len_utf8() > FIELD_MANAGER_MAX_LENGTH {
            break;
        }
        out.push(c);
    }
    Ok(out)
}

/// kube-apiserver's rules for a manager name: at most 128 bytes, printable characters.
pub(crate) fn check_field_manager(manager: &str) -> Result<(), String> {
    if manager.len() > FIELD_MANAGER_MAX_LENGTH {
        return Err(format!(
            "Too long: may not be more than {FIELD_MANAGER_MAX_LENGTH} bytes"
        ));
    }
    match manager.char_indices().find(|(_, c)| !printable(*c)) {
        Some((i, c)) => Err(format!(
            "Invalid value: {manager:?}: invalid character U+{:04X} (at position {i})",
            c as u32
        )),
        None => Ok(()),
    }
}

/// Go's `unicode.IsPrint`, near enough: no control characters, and ASCII space the only space.
fn printable(c: char) -> bool {
    !c.is_control() && (c == ' ' || !c.is_whitespace())
}

#[cfg(test)]
mod tests;
