//! Logical workspaces: each a complete Kubernetes API of its own, stored under a random,
//! stable logical cluster id and reached by its path (`root:acme:ml`).
//!
//! - [`index`]: path and id → logical cluster, for routing;
//! - [`types`]: the built-in WorkspaceTypes and what they allow;
//! - this module: the Workspace strategy (what a create sets and checks);
//! - the lifecycle (initialization, deletion of everything inside) is
//!   `controllers::workspace`.

/// The logical cluster id of the root workspace (also its path). Keys never contain
/// workspace paths, only logical cluster ids.
pub const ROOT_CLUSTER: &str = "root";

pub mod index;
pub mod types;

use rand::Rng;
use serde_json::{json, Value};

use crate::machinery::status::StatusCause;

pub use index::{Phase, Unroutable, WorkspaceIndex};

/// Held by every Workspace until its content is gone.
pub const CONTENT_FINALIZER: &str = "tenancy.trellis.dev/workspace-content";

const ID_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const ID_LEN: usize = 16;

/// A new logical cluster id: 16 lowercase letters and digits, never a path.
pub fn new_cluster_id() -> String {
    let mut rng = rand::thread_rng();
    loop {
        let id: String = (0..ID_LEN)
            .map(|_| ID_ALPHABET[rng.gen_range(0..ID_ALPHABET.len())] as char)
            .collect();
        // An id must not read as `root` or start with a digit-only prefix that could be
        // confused with a resourceVersion in logs; letters first keeps them recognizable.
        if id.as_bytes()[0].is_ascii_lowercase() {
            return id;
        }
    }
}

/// What a Workspace create in `parent_type` sets: a cluster id, the default type, phase
/// Scheduling and the content finalizer. Problems are causes of a 422.
pub fn prepare_create(workspace: &mut Value, parent_type: &str) -> Vec<StatusCause> {
    let mut causes = Vec::new();
    let requested = workspace
        .pointer("/spec/type/name")
        .and_then(Value::as_str)
        .map(str::to_string);
    let type_name = match requested {
        Some(name) => name,
        None => types::default_child(parent_type).to_string(),
    };
    match types::builtin(&type_name) {
        None => causes.push(StatusCause {
            kind: "FieldValueNotFound".into(),
            message: format!("Not found: {type_name:?}: no such WorkspaceType in root"),
            field: "spec.type.name".into(),
        }),
        Some(t) if !t.allows_parent(parent_type) => causes.push(StatusCause {
            kind: "FieldValueForbidden".into(),
            message: format!(
                "Forbidden: workspace type {type_name:?} is not allowed in a workspace of type {parent_type:?}"
            ),
            field: "spec.type".into(),
        }),
        Some(_) => {}
    }
    if !workspace.get("spec").is_some_and(Value::is_object) {
        workspace["spec"] = json!({});
    }
    workspace["spec"]["type"] = json!({"name": type_name, "path": "root"});
    workspace["spec"]["cluster"] = json!(new_cluster_id());
    workspace["status"] = json!({"phase": Phase::Scheduling.as_str()});
    if let Some(meta) = workspace.get_mut("metadata").and_then(Value::as_object_mut) {
        let finalizers = meta.entry("finalizers").or_insert_with(|| json!([]));
        if let Some(list) = finalizers.as_array_mut() {
            if !list.iter().any(|f| f.as_str() == Some(CONTENT_FINALIZER)) {
                list.push(json!(CONTENT_FINALIZER));
            }
        }
    }
    causes
}

/// On update: the type and the cluster id never change.
pub fn validate_update(workspace: &Value, old: &Value) -> Vec<StatusCause> {
    let mut causes = Vec::new();
    for (pointer, field) in [
        ("/spec/cluster", "spec.cluster"),
        ("/spec/type", "spec.type"),
    ] {
        if workspace.pointer(pointer) != old.pointer(pointer) {
            causes.push(StatusCause {
                kind: "FieldValueInvalid".into(),
                message: format!(
                    "Invalid value: {}: field is immutable",
                    workspace.pointer(pointer).unwrap_or(&Value::Null)
                ),
                field: field.into(),
            });
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_create_gets_an_id_a_type_and_the_finalizer() {
        let mut ws = json!({"metadata": {"name": "acme"}});
        assert!(prepare_create(&mut ws, "root").is_empty());
        let id = ws["spec"]["cluster"].as_str().unwrap();
        assert_eq!(id.len(), 16);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        assert_eq!(ws["spec"]["type"]["name"], "organization");
        assert_eq!(ws["status"]["phase"], "Scheduling");
        assert_eq!(ws["metadata"]["finalizers"], json!([CONTENT_FINALIZER]));
        assert_ne!(new_cluster_id(), new_cluster_id());
    }

    #[test]
    fn types_limit_where_workspaces_go() {
        let mut org_in_team =
            json!({"metadata": {"name": "x"}, "spec": {"type": {"name": "organization"}}});
        let causes = prepare_create(&mut org_in_team, "team");
        assert_eq!(causes[0].field, "spec.type");
        let mut unknown = json!({"metadata": {"name": "x"}, "spec": {"type": {"name": "nope"}}});
        assert_eq!(
            prepare_create(&mut unknown, "root")[0].kind,
            "FieldValueNotFound"
        );
        let mut moved = json!({"metadata": {"name": "x"}});
        prepare_create(&mut moved, "root");
        let mut changed = moved.clone();
        changed["spec"]["cluster"] = json!("other");
        assert_eq!(validate_update(&changed, &moved)[0].field, "spec.cluster");
    }
}
