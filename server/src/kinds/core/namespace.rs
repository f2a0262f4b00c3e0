//! Namespace: new namespaces are `Active`, held by the `kubernetes` finalizer until their
//! content is gone (the namespace controller), and labelled with their name.

use k8s_openapi::api::core::v1;
use serde_json::{json, Value};

use crate::kinds::Subresources;
use crate::kinds::{
    age_cell, cell_text, schema_of, Column, Grants, Kind, ListMerge, Names, SchemaSource, AGE,
    NAME, READ,
};
use crate::machinery::patch::strategic::ListStrategy;
use crate::machinery::schema::FieldError;
use crate::machinery::status::StatusCause;

pub struct Namespace;

/// The namespaces kube-apiserver refuses to delete (its NamespaceLifecycle admission).
const IMMORTAL: &[&str] = &["default", "kube-system", "kube-public"];

/// The finalizer every new namespace gets; the namespace controller removes it once the
/// namespace's content is gone.
pub const FINALIZER: &str = "kubernetes";

impl Kind for Namespace {
    fn names(&self) -> Names {
        Names::cluster("", "v1", "Namespace", "namespaces").short(&["ns"])
    }

    fn name_rule(&self) -> crate::kinds::NameRule {
        crate::kinds::NameRule::Label
    }

    fn subresources(&self) -> Subresources {
        Subresources {
            finalize: true,
            ..Subresources::with_status()
        }
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Upstream(schema_of::<v1::Namespace>)
    }

    fn prepare(&self, object: &mut Value) {
        prepare_namespace(object)
    }

    fn prepare_create(&self, object: &mut Value) {
        // A new namespace is Active whatever the request says, and carries the `kubernetes`
        // finalizer (added to any it was given), as kube-apiserver makes it. Only a new one:
        // the finalizer may be removed over its life (through `/finalize`) and stays removed.
        object["status"] = json!({"phase": "Active"});
        if !object.get("spec").is_some_and(Value::is_object) {
            object["spec"] = json!({});
        }
        let finalizers = &mut object["spec"]["finalizers"];
        match finalizers.as_array_mut() {
            Some(list) if list.iter().any(|f| f == FINALIZER) => {}
            Some(list) => list.push(json!(FINALIZER)),
            None => *finalizers = json!([FINALIZER]),
        }
    }

    fn validate(&self, object: &Value, old: Option<&Value>) -> Vec<StatusCause> {
        if old.is_none() {
            return Vec::new();
        }
        let phase = object.pointer("/status/phase").unwrap_or(&Value::Null);
        let (wanted, rule) = if object.pointer("/metadata/deletionTimestamp").is_some() {
            (
                "Terminating",
                "may only be 'Terminating' if `deletionTimestamp` is not empty",
            )
        } else {
            (
                "Active",
                "may only be 'Active' if `deletionTimestamp` is empty",
            )
        };
        if phase.as_str() == Some(wanted) {
            return Vec::new();
        }
        vec![FieldError::invalid("status.Phase", phase, rule).into()]
    }

    fn deletes_gracefully(&self) -> bool {
        true
    }

    fn may_delete(&self, name: &str) -> Result<(), String> {
        if IMMORTAL.contains(&name) {
            return Err("this namespace may not be deleted".into());
        }
        Ok(())
    }

    fn deletes_collections(&self) -> bool {
        false
    }

    fn mark_deleting(&self, object: &mut Value) {
        object["status"]["phase"] = Value::String("Terminating".into());
    }

    fn columns(&self) -> &'static [Column] {
        &[NAME, ("Status", "string", 0), AGE]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![
            cell_text(o, "/metadata/name"),
            cell_text(o, "/status/phase"),
            age_cell(o),
        ]
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &["status.phase"]
    }

    fn grants(&self) -> Grants {
        Grants {
            view: READ,
            ..Grants::default()
        }
    }

    fn list_merges(&self) -> &'static [ListMerge] {
        &[(&["status", "conditions"], ListStrategy::MergeByKey("type"))]
    }

    fn protobuf(&self) -> Option<crate::machinery::protobuf::Converter> {
        Some(crate::machinery::protobuf::namespace)
    }
}

fn prepare_namespace(object: &mut Value) {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if object
        .pointer("/metadata/labels")
        .is_none_or(|l| !l.is_object())
    {
        object["metadata"]["labels"] = json!({});
    }
    object["metadata"]["labels"]["kubernetes.io/metadata.name"] = Value::String(name);
    if object.pointer("/status/phase").is_none() {
        if !object.get("status").is_some_and(Value::is_object) {
            object["status"] = json!({});
        }
        object["status"]["phase"] = json!("Active");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_phase_follows_the_deletion_timestamp() {
        let old = json!({"metadata": {"name": "ml"}, "status": {"phase": "Active"}});
        let with = |phase: &str, deleting: bool| {
            let mut n = json!({"metadata": {"name": "ml"}, "status": {"phase": phase}});
            if deleting {
                n["metadata"]["deletionTimestamp"] = json!("2026-12-05T00:00:00Z");
            }
            Namespace.validate(&n, Some(&old))
        };
        assert!(with("Active", false).is_empty());
        assert!(with("Terminating", true).is_empty());
        let causes = with("Terminating", false);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "status.Phase");
        assert_eq!(
            causes[0].message,
            "Invalid value: \"Terminating\": may only be 'Active' if `deletionTimestamp` is empty"
        );
        assert_eq!(with("Bogus", true).len(), 1);
        // A create is Active, whatever it asked for.
        let mut n = json!({"metadata": {"name": "ml"}, "status": {"phase": "Terminating"}});
        Namespace.prepare_create(&mut n);
        assert_eq!(n["status"], json!({"phase": "Active"}));
    }

    #[test]
    fn namespaces_get_phase_finalizer_and_label() {
        let mut n = json!({"metadata": {"name": "ml"}});
        Namespace.prepare(&mut n);
        assert_eq!(n["status"]["phase"], "Active");
        assert_eq!(n["metadata"]["labels"]["kubernetes.io/metadata.name"], "ml");
        // The finalizer comes with a create only: once removed, a write does not bring it back.
        assert!(n.pointer("/spec/finalizers").is_none());
        Namespace.prepare_create(&mut n);
        assert_eq!(n["spec"]["finalizers"], json!(["kubernetes"]));
        let mut given =
            json!({"metadata": {"name": "ml"}, "spec": {"finalizers": ["example.com/x"]}});
        Namespace.prepare_create(&mut given);
        assert_eq!(
            given["spec"]["finalizers"],
            json!(["example.com/x", "kubernetes"])
        );
    }
}
