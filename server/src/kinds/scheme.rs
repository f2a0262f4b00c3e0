//! Assembling a server's kinds: each API group's `install` adds its kinds to a
//! [`SchemeBuilder`], which checks them and generates their schemas once. The registry turns
//! what it built into the server's scheme (`registry::Scheme`), shared by every workspace.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::own_schema::OwnSchema;
use super::{openapi_style, Kind, SchemaSource};

/// Collects the kinds of the groups a server installs.
#[derive(Default)]
pub struct SchemeBuilder {
    kinds: Vec<Arc<dyn Kind>>,
}

/// A group's install list: adds its kinds.
pub type Install = fn(&mut SchemeBuilder);

/// One assembled kind: the kind, its OpenAPI component name and, for our own kinds, their
/// schema read as a CRD's is.
pub struct Assembled {
    pub kind: Arc<dyn Kind>,
    pub schema_name: Option<String>,
    pub own_schema: Option<Arc<OwnSchema>>,
}

/// What [`SchemeBuilder::assemble`] makes of the kinds.
pub struct Assembly {
    pub kinds: Vec<Assembled>,
    /// Every schema the kinds' types generate, by OpenAPI component name, in Kubernetes' style.
    pub definitions: Map<String, Value>,
}

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

    /// The kinds of `groups`.
    pub fn of(groups: &[Install]) -> SchemeBuilder {
        groups
            .iter()
            .fold(SchemeBuilder::new(), |b, group| b.install(*group))
    }

    /// Checks the kinds and generates their schemas. Fails on a kind served twice (same
    /// group, version and plural), or an own kind whose schema is not structural.
    pub fn assemble(self) -> Result<Assembly, String> {
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
            openapi_style::kubernetes_style(schema, name.starts_with("dev.trellis."));
        }
        let mut kinds = Vec::with_capacity(self.kinds.len());
        for (kind, schema_name) in self.kinds.into_iter().zip(schema_names) {
            let own_schema = match (kind.schema(), &schema_name) {
                (SchemaSource::Own(_), Some(name)) => Some(Arc::new(
                    OwnSchema::read(name, &definitions)
                        .map_err(|e| format!("{}: {e}", kind.names().kind))?,
                )),
                _ => None,
            };
            kinds.push(Assembled {
                kind,
                schema_name,
                own_schema,
            });
        }
        Ok(Assembly { kinds, definitions })
    }
}
