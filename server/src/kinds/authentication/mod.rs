//! `authentication.k8s.io/v1`: SelfSubjectReview (`kubectl auth whoami`), create-only and never
//! stored; answered by `authn`. (TokenRequest is a subresource of ServiceAccounts.)

mod self_subject_review;

pub use self_subject_review::SelfSubjectReview;

use super::SchemeBuilder;

pub const GROUP: &str = "authentication.k8s.io";

pub fn install(scheme: &mut SchemeBuilder) {
    scheme.add(SelfSubjectReview);
}
