//! One served resource ([`ResourceType`]): a built-in kind's, or a version of a
//! CustomResourceDefinition's. Generic code asks it, and it asks its kind
//! ([`crate::kinds::Kind`]) or its CRD.

use std::sync::Arc;

use serde_json::Value;

use crate::kinds::own_schema::OwnSchema;
use crate::kinds::{Column, Endpoint, Grants, Home, Kind, Names};
use crate::machinery::patch::strategic::Strategies;
use crate::machinery::schema::Structural;
use crate::machinery::status::StatusCause;

pub use crate::kinds::{ScalePaths, Subresources};

/// One served resource of one API group version.
#[derive(Clone)]
pub struct ResourceType {
    /// Empty for the legacy core group.
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub subresources: Subresources,
    /// Stored with another resource (`core/events` for `events.k8s.io` events) and
    /// converted on the way in and out ([`conversion`]).
    pub stored_as: Option<String>,
    /// Set for the resources of a CustomResourceDefinition.
    pub custom: Option<Arc<CustomVersion>>,
    /// Set for the built-in kinds: their rules.
    pub kind_rules: Option<Arc<dyn Kind>>,
    /// The OpenAPI component schema of a built-in kind (`io.k8s.api.core.v1.ConfigMap`).
    pub schema_name: Option<String>,
    /// Our own kinds' schema, read as a CRD's is.
    pub own_schema: Option<Arc<OwnSchema>>,
}

impl std::fmt::Debug for ResourceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceType")
            .field("group", &self.group)
            .field("version", &self.version)
            .field("plural", &self.plural)
            .finish_non_exhaustive()
    }
}

impl PartialEq for ResourceType {
    fn eq(&self, other: &Self) -> bool {
        self.group == other.group
            && self.version == other.version
            && self.kind == other.kind
            && self.plural == other.plural
            && self.singular == other.singular
            && self.namespaced == other.namespaced
            && self.short_names == other.short_names
            && self.categories == other.categories
            && self.subresources == other.subresources
            && self.stored_as == other.stored_as
            && self.custom == other.custom
            && self.schema_name == other.schema_name
    }
}

/// Every resource supports every verb.
pub const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

const VERBS_BUT_DELETECOLLECTION: [&str; 7] = [
    "create", "delete", "get", "list", "patch", "update", "watch",
];

impl ResourceType {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The resource part of storage keys.
    pub fn storage_resource(&self) -> String {
        if let Some(stored_as) = &self.stored_as {
            return stored_as.clone();
        }
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        format!("{group}/{}", self.plural)
    }

    /// The resource of a built-in kind.
    pub fn of_kind(
        kind: Arc<dyn Kind>,
        schema_name: Option<String>,
        own_schema: Option<Arc<OwnSchema>>,
    ) -> ResourceType {
        let n: Names = kind.names();
        let strings = |s: &[&str]| s.iter().map(|s| s.to_string()).collect();
        ResourceType {
            group: n.group.to_string(),
            version: n.version.to_string(),
            kind: n.kind.to_string(),
            plural: n.plural.to_string(),
            singular: n.kind.to_lowercase(),
            namespaced: n.namespaced,
            short_names: strings(n.short_names),
            categories: strings(n.categories),
            subresources: kind.subresources(),
            stored_as: kind.stored_as().map(str::to_string),
            custom: None,
            kind_rules: Some(kind),
            schema_name,
            own_schema,
        }
    }

    /// Fields a field selector may name for this kind, as kube-apiserver allows them.
    pub fn selectable_fields(&self) -> Vec<&str> {
        let mut fields = vec!["metadata.name", "metadata.namespace"];
        if let Some(custom) = &self.custom {
            fields.extend(custom.selectable_fields.iter().map(String::as_str));
        }
        if let Some(kind) = &self.kind_rules {
            fields.extend(kind.selectable_fields());
        }
        fields
    }

    /// The verbs discovery lists: kinds answered by an endpoint are create-only.
    pub fn verbs(&self) -> &'static [&'static str] {
        if !self.is_stored() {
            &["create"]
        } else if self
            .kind_rules
            .as_ref()
            .is_some_and(|k| !k.deletes_collections())
        {
            &VERBS_BUT_DELETECOLLECTION
        } else {
            VERBS
        }
    }

    /// Whether objects of this resource are kept in storage: not the reviews, which are
    /// answered and forgotten (controllers need not list or watch them).
    pub fn is_stored(&self) -> bool {
        self.endpoint().is_none()
    }

    /// What answers a kind that is never stored.
    pub fn endpoint(&self) -> Option<Arc<dyn Endpoint>> {
        self.kind_rules.as_ref().and_then(|k| k.endpoint())
    }

    /// What answers a subresource served by code (`serviceaccounts/token`).
    pub fn endpoint_subresource(&self, name: &str) -> Option<Arc<dyn Endpoint>> {
        self.kind_rules.as_ref().and_then(|k| {
            k.endpoint_subresources()
                .into_iter()
                .find(|(n, _, _)| *n == name)
                .map(|(_, _, endpoint)| endpoint)
        })
    }

    /// What names of this resource must look like.
    pub fn name_rule(&self) -> crate::kinds::NameRule {
        self.kind_rules
            .as_ref()
            .map_or(crate::kinds::NameRule::Subdomain, |k| k.name_rule())
    }

    /// Whether objects carry `metadata.generation` (custom resources always do).
    pub fn tracks_generation(&self) -> bool {
        self.custom.is_some()
            || self
                .kind_rules
                .as_ref()
                .is_some_and(|k| k.tracks_generation())
    }

    /// Where this resource's objects are stored.
    pub fn home(&self) -> Home {
        self.kind_rules
            .as_ref()
            .map_or(Home::Workspace, |k| k.home())
    }

    /// The structural schema objects are pruned, defaulted and validated by: a CRD version's,
    /// or one of our own kinds'.
    pub fn structural(&self) -> Option<&Structural> {
        match (&self.custom, &self.own_schema) {
            (Some(custom), _) => custom.structural.as_deref(),
            (None, Some(own)) => Some(&own.structural),
            (None, None) => None,
        }
    }

    /// The OpenAPI v3 schema (as a CRD writes it) of a custom resource or own kind.
    pub fn openapi_schema(&self) -> Option<&Value> {
        match (&self.custom, &self.own_schema) {
            (Some(custom), _) => custom.schema.as_ref(),
            (None, Some(own)) => Some(&own.schema),
            (None, None) => None,
        }
    }

    /// How lists of a built-in kind merge in strategic merge patches.
    pub fn strategies(&self) -> Strategies {
        Strategies::with(
            self.kind_rules
                .as_ref()
                .map_or(&[][..], |k| k.list_merges()),
        )
    }

    /// Normalizes an object before every create and update (then, on creates,
    /// the create-only steps).
    pub fn prepare(&self, object: &mut Value, create: bool) {
        if let Some(kind) = &self.kind_rules {
            kind.prepare(object);
            if create {
                kind.prepare_create(object);
            }
        }
    }

    /// The kind's own rules for a new state of an object.
    pub fn validate(&self, object: &Value, old: Option<&Value>) -> Vec<StatusCause> {
        self.kind_rules
            .as_ref()
            .map(|k| k.validate(object, old))
            .unwrap_or_default()
    }

    /// Table columns and cells of a built-in kind.
    pub fn columns(&self) -> &'static [Column] {
        self.kind_rules
            .as_ref()
            .map_or(crate::kinds::NAME_AGE, |k| k.columns())
    }

    pub fn cells(&self, object: &Value) -> Vec<Value> {
        match &self.kind_rules {
            Some(kind) => kind.cells(object),
            None => vec![
                crate::kinds::cell_text(object, "/metadata/name"),
                crate::kinds::age_cell(object),
            ],
        }
    }

    pub fn grants(&self) -> Grants {
        self.kind_rules
            .as_ref()
            .map(|k| k.grants())
            .unwrap_or_default()
    }

    /// The protobuf converter of this kind, if clients may send it as protobuf.
    pub fn protobuf(&self) -> Option<crate::machinery::protobuf::Converter> {
        self.kind_rules.as_ref().and_then(|k| k.protobuf())
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Whether this is the built-in `kind` of the core or another group.
    pub fn is(&self, group: &str, kind: &str) -> bool {
        self.custom.is_none() && self.group == group && self.kind == kind
    }
}

/// What a custom resource's version adds to its [`ResourceType`].
#[derive(Debug)]
pub struct CustomVersion {
    /// The CRD's name, `<plural>.<group>`.
    pub crd_name: String,
    /// The version objects are stored in; reads in another version only change `apiVersion`
    /// (conversion strategy `None`).
    pub storage_version: String,
    /// `openAPIV3Schema`, as written in the CRD; published in OpenAPI.
    pub schema: Option<Value>,
    /// The same schema, parsed once for pruning, defaulting and validation (CEL included).
    pub structural: Option<Arc<Structural>>,
    pub columns: Vec<PrinterColumn>,
    /// From `selectableFields`, without the leading dot (`spec.color`).
    pub selectable_fields: Vec<String>,
    /// The CRD is being deleted: its objects can be read and deleted, not created.
    pub terminating: bool,
    /// A deprecated version's warning, sent with every response that uses it.
    pub deprecation_warning: Option<String>,
}

impl PartialEq for CustomVersion {
    fn eq(&self, other: &Self) -> bool {
        self.crd_name == other.crd_name && self.schema == other.schema
    }
}

/// An `additionalPrinterColumns` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    /// Without the leading `$`: `.spec.replicas`.
    pub json_path: String,
}
