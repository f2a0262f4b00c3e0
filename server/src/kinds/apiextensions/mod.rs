//! `apiextensions.k8s.io/v1`: CustomResourceDefinitions. What they define is served by
//! `registry::custom`; their own rules are in `registry::crd`.

mod custom_resource_definition;

pub use custom_resource_definition::CustomResourceDefinition;

use super::SchemeBuilder;

pub const GROUP: &str = "apiextensions.k8s.io";

pub fn install(scheme: &mut SchemeBuilder) {
    scheme.add(CustomResourceDefinition);
}
