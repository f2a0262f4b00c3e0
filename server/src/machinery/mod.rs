//! Generic Kubernetes API machinery, the same for every kind: object metadata rules, label and
//! field selectors, `Status` errors, patches (JSON, merge, strategic merge) and server-side
//! apply, structural schemas (pruning, defaulting, validation, CEL), deletion and finalizers,
//! request parsing, protobuf bodies. Nothing here knows a particular kind; kinds plug in
//! through `crate::kinds::Kind`.

pub mod admission;
pub mod age;
pub mod apply;
pub mod deletion;
pub mod metrics;
pub mod names;
pub mod object_meta;
pub mod patch;
pub mod protobuf;
pub mod request_info;
pub mod revision_splice;
pub mod schema;
pub mod selectors;
pub mod status;
