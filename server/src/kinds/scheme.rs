//! A server's scheme: the kinds it serves, assembled from API groups when the server is built
//! and shared by every workspace it serves (a workspace costs nothing here). From the kinds it
//! derives, once, the served resources, the OpenAPI documents, our own kinds' structural
//! schemas and the default ClusterRoles.

use std::collections::HashSet;
use std::sync::Arc;

use super::{own_schema, Kind, SchemaSource};
use crate::endpoints::openapi::Documents;
use crate::registry::ResourceType;

/// Collects the kinds of the groups a server installs.
#[derive(Default)]
pub struct SchemeBuilder {
    kinds: Vec<Arc<dyn Kind>>,
}

/// A group's install list: adds its kinds.
pub type Install = fn(&mut SchemeBuilder);

impl SchemeBuilder {
    pub fn new() -> SchemeBuilder {
        SchemeBuilder::default()
    }

    /// Adds one kind.
    pub fn add(&mut self, kind: impl Kind) -> &mut SchemeBuilder {
        self.kinds.push(Arc::new(kind));
        self
    }

    /// Adds a group's kinds.
    pub fn install(mut self, group: Install) -> SchemeBuilder {
        group(&mut self);
        self
    }

    /// Builds the scheme. Fails on a kind served twice (same group, version and plural), or an
    /// own kind whose schema is not structural.
    pub fn build(self) -> Result<Scheme, String> {
        let mut seen = HashSet::new();
        for kind in &self.kinds {
            let n = kind.names();
            if !seen.insert((n.group, n.version, n.plural)) {
                return Err(format!(
                    "{}/{} {} installed twice",
                    n.group, n.version, n.plural
                ));
            }
        }
        let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
        let schema_names: Vec<Option<String>> = self
            .kinds
            .iter()
            .map(|kind| match kind.schema() {
                SchemaSource::None => None,
                SchemaSource::Upstream(add) | SchemaSource::Own(add) => Some(add(&mut generator)),
            })
            .collect();
        let mut definitions = generator.take_definitions(true);
        for (name, schema) in definitions.iter_mut() {
            crate::endpoints::openapi::kubernetes_style(schema, name.starts_with("dev.trellis."));
        }
        let mut resources = Vec::with_capacity(self.kinds.len());
        for (kind, schema_name) in self.kinds.iter().zip(schema_names) {
            let own = match (kind.schema(), &schema_name) {
                (SchemaSource::Own(_), Some(name)) => Some(Arc::new(
                    own_schema::OwnSchema::read(name, &definitions)
                        .map_err(|e| format!("{}: {e}", kind.names().kind))?,
                )),
                _ => None,
            };
            resources.push(Arc::new(ResourceType::of_kind(
                kind.clone(),
                schema_name,
                own,
            )));
        }
        let openapi = crate::endpoints::openapi::build(&resources, definitions);
        let default_roles = crate::security::authz::defaults::DefaultRoles::new(&resources);
        Ok(Scheme {
            resources,
            openapi,
            default_roles: Arc::new(default_roles),
        })
    }
}

/// The kinds one server serves, and what is derived from them.
pub struct Scheme {
    resources: Vec<Arc<ResourceType>>,
    openapi: Documents,
    default_roles: Arc<crate::security::authz::defaults::DefaultRoles>,
}

impl Scheme {
    /// The groups the hub serves.
    pub const HUB: &'static [Install] = &[
        super::core::install,
        super::events::install,
        super::coordination::install,
        super::rbac::install,
        super::apiextensions::install,
        super::tenancy::install,
        super::trellis_core::install,
        super::authorization::install,
        super::authentication::install,
        super::compute::install,
        super::serving::install,
    ];

    /// A scheme of `groups`.
    pub fn of(groups: &[Install]) -> Result<Scheme, String> {
        groups
            .iter()
            .fold(SchemeBuilder::new(), |b, group| b.install(*group))
            .build()
    }

    /// The hub's scheme.
    pub fn hub() -> Scheme {
        // The hub's kinds are this crate's own: a failure is a bug caught by every test.
        Scheme::of(Scheme::HUB).unwrap_or_else(|e| panic!("the hub's scheme: {e}"))
    }

    /// The built-in resources, the same in every workspace.
    pub fn resources(&self) -> &[Arc<ResourceType>] {
        &self.resources
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

    /// The OpenAPI documents of the built-in kinds.
    pub fn openapi(&self) -> &Documents {
        &self.openapi
    }

    /// The default ClusterRoles and ClusterRoleBindings, with the kinds' grants.
    pub fn default_roles(&self) -> &Arc<crate::security::authz::defaults::DefaultRoles> {
        &self.default_roles
    }
}

/// The hub's scheme, built once per process for unit tests that need a resource.
#[cfg(test)]
pub fn test_hub() -> &'static Scheme {
    static HUB: std::sync::LazyLock<Scheme> = std::sync::LazyLock::new(Scheme::hub);
    &HUB
}

/// A resource of the hub's scheme, for unit tests.
#[cfg(test)]
pub fn lookup_builtin(
    group: &str,
    version: &str,
    plural: &str,
) -> Option<&'static Arc<ResourceType>> {
    test_hub().lookup(group, version, plural)
}
