//! Server-side apply and `metadata.managedFields`, as kube-apiserver does them with
//! sigs.k8s.io/structured-merge-diff. Pure functions, no I/O: the REST layer reads the stored
//! object, calls [`apply`] (for `application/apply-patch+yaml`) or [`track_update`] (for every
//! other write) and stores the result.
//!
//! - [`field_set`]: sets of owned fields and their `fieldsV1` encoding.
//! - [`schema`]: which lists and maps merge, from a CRD schema or the built-in table.
//! - [`compare`]: an object's fields, and what changed between two versions.
//! - [`merge`]: the apply itself.
//! - [`conflict`]: what a refused apply reports.
//! - [`managed_fields`]: the entries, and recording non-apply writes.
//! - [`field_manager`]: who made a write.

pub mod compare;
pub mod conflict;
pub mod field_manager;
pub mod field_set;
pub mod managed_fields;
pub mod merge;
pub mod schema;

pub use field_manager::{apply_field_manager, field_manager};
pub use managed_fields::{
    keep_times_if_unchanged, track_update, validate_managed_fields, UpdateOptions,
};
pub use merge::{apply, ApplyOptions};
pub use schema::MergeRules;

#[cfg(test)]
mod tests;
