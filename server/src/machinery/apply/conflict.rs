//! Apply conflicts: a field another manager owns and an apply would change, and how
//! kube-apiserver reports them (409, one `FieldManagerConflict` cause per field).

use serde_json::Value;

use super::managed_fields::Operation;
use crate::machinery::status::{Status, StatusCause};

/// A field another manager owns and the apply would change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager, as its managedFields entry names it.
    pub manager: String,
    pub operation: Operation,
    pub api_version: String,
    /// The subresource its write came through, or empty.
    pub subresource: String,
    /// The path in kube-apiserver's notation, e.g. `.data.key`.
    pub field: String,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managers_print_with_their_subresource_and_version() {
        let conflict = Conflict {
            manager: "ctrl".into(),
            operation: Operation::Update,
            api_version: "v1".into(),
            subresource: "status".into(),
            field: ".status.phase".into(),
        };
        assert_eq!(
            conflict_message(&[conflict]),
            r#"Apply failed with 1 conflict: conflict with "ctrl" with subresource "status" using v1: .status.phase"#
        );
    }
}
