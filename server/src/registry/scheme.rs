//! A server's scheme: the resources of the kinds it was assembled with
//! ([`crate::kinds::SchemeBuilder`]), with their schemas; one copy shared by every workspace
//! it serves (a workspace costs nothing here).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::resource_type::ResourceType;
use crate::kinds::scheme::{Install, SchemeBuilder};

/// The built-in resources of one server.
pub struct Scheme {
    resources: Vec<Arc<ResourceType>>,
    definitions: Map<String, Value>,
}

impl Scheme {
    /// A scheme of `groups`.
    pub fn of(groups: &[Install]) -> Result<Scheme, String> {
        Scheme::build(SchemeBuilder::of(groups))
    }

    /// The scheme of the kinds `builder` collected.
    pub fn build(builder: SchemeBuilder) -> Result<Scheme, String> {
        let assembly = builder.assemble()?;
        let resources = assembly
            .kinds
            .into_iter()
            .map(|k| Arc::new(ResourceType::of_kind(k.kind, k.schema_name, k.own_schema)))
            .collect();
        Ok(Scheme {
            resources,
            definitions: assembly.definitions,
        })
    }

    /// The built-in resources, the same in every workspace.
    pub fn resources(&self) -> &[Arc<ResourceType>] {
        &self.resources
    }

    /// The OpenAPI component schemas of the built-in kinds, by name.
    pub fn definitions(&self) -> &Map<String, Value> {
        &self.definitions
    }

    /// Finds a built-in resource.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<&Arc<ResourceType>> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    /// Finds a built-in resource by kind (any version).
    pub fn lookup_kind(&self, group: &str, kind: &str) -> Option<&Arc<ResourceType>> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.kind == kind)
    }
}

/// A scheme of a few built-in kinds (no server state behind any of their hooks), built once
/// per process, for unit tests below the server's assembly (the whole hub's is
/// `serving::hub::test_hub`).
#[cfg(test)]
pub fn test_scheme() -> &'static Scheme {
    use crate::kinds::{coordination, core, events, serving, trellis_core};
    static SCHEME: std::sync::LazyLock<Scheme> = std::sync::LazyLock::new(|| {
        let mut builder = SchemeBuilder::new();
        builder
            .add(core::ConfigMap)
            .add(core::Namespace)
            .add(core::Secret)
            .add(core::ServiceAccount)
            .add(core::Event)
            .add(events::Event)
            .add(coordination::Lease)
            .add(trellis_core::Shard)
            .add(serving::ModelDeployment);
        Scheme::build(builder).unwrap_or_else(|e| panic!("the test scheme: {e}"))
    });
    &SCHEME
}

/// A resource of [`test_scheme`].
#[cfg(test)]
pub fn test_lookup(group: &str, version: &str, plural: &str) -> Option<&'static Arc<ResourceType>> {
    test_scheme().lookup(group, version, plural)
}
