//! The built-in WorkspaceTypes, as kcp has them: `root` (the root workspace's own type),
//! `organization` (only in root), `team` (in organizations and teams) and `universal`
//! (anywhere). They are published as WorkspaceType objects in root, and their rules live
//! here, shared by every workspace.

use serde_json::{json, Value};

pub struct BuiltinType {
    pub name: &'static str,
    pub default_child: &'static str,
    /// `None`: any parent.
    pub allowed_parents: Option<&'static [&'static str]>,
    pub initial_namespaces: &'static [&'static str],
}

impl BuiltinType {
    pub fn allows_parent(&self, parent: &str) -> bool {
        self.allowed_parents.is_none_or(|p| p.contains(&parent))
    }

    /// The WorkspaceType object published in root.
    pub fn object(&self) -> Value {
        let mut spec = json!({
            "defaultChildWorkspaceType": {"name": self.default_child, "path": "root"},
            "initialNamespaces": self.initial_namespaces,
        });
        if let Some(parents) = self.allowed_parents {
            let types: Vec<Value> = parents
                .iter()
                .map(|p| json!({"name": p, "path": "root"}))
                .collect();
            spec["limitAllowedParents"] = json!({"types": types});
        }
        json!({
            "apiVersion": "tenancy.trellis.dev/v1alpha1",
            "kind": "WorkspaceType",
            "metadata": {"name": self.name},
            "spec": spec,
        })
    }
}

pub const BUILTIN_TYPES: &[BuiltinType] = &[
    BuiltinType {
        name: "root",
        default_child: "organization",
        allowed_parents: Some(&[]),
        initial_namespaces: &["default"],
    },
    BuiltinType {
        name: "organization",
        default_child: "team",
        allowed_parents: Some(&["root"]),
        initial_namespaces: &["default"],
    },
    BuiltinType {
        name: "team",
        default_child: "universal",
        allowed_parents: Some(&["organization", "team"]),
        initial_namespaces: &["default"],
    },
    BuiltinType {
        name: "universal",
        default_child: "universal",
        allowed_parents: None,
        initial_namespaces: &["default"],
    },
];

pub fn builtin(name: &str) -> Option<&'static BuiltinType> {
    BUILTIN_TYPES.iter().find(|t| t.name == name)
}

/// The type of a child created without one.
pub fn default_child(parent_type: &str) -> &'static str {
    builtin(parent_type).map_or("universal", |t| t.default_child)
}
