//! `authentication.k8s.io/v1`: SelfSubjectReview (`kubectl auth whoami`) and TokenReview,
//! create-only and never stored. (TokenRequest is a subresource of ServiceAccounts.)

mod self_subject_review;
mod token_review;

pub use self_subject_review::SelfSubjectReview;
pub use token_review::TokenReview;

use super::SchemeBuilder;

pub const GROUP: &str = "authentication.k8s.io";

pub fn install(scheme: &mut SchemeBuilder) {
    scheme.add(SelfSubjectReview);
    scheme.add(TokenReview);
}
