//! Kinds as values: everything the server knows about one built-in resource lives in one
//! [`Kind`], in one file per kind under a folder per API group (`kinds/core/config_map.rs`).
//!
//! A kind owns its names and scope, subresources, schema source, where it is stored, its
//! prepare/validate/admit hooks, Table columns, selectable fields, the verbs the default roles
//! grant on it, its strategic-merge list keys, protobuf decoding and, for kinds that are never
//! stored (reviews), the handler that answers them. Generic code (the REST layer, OpenAPI,
//! discovery, RBAC defaults, shard routing) asks the kind through this trait and never matches
//! on kind names. A group's `install` lists its kinds; a server is assembled from groups
//! ([`scheme::SchemeBuilder`], turned into a server's `registry::Scheme`), so the hub and another server (a test's, the edge simulator's)
//! serve different kinds from the same crate.
//!
//! To add a kind: a type in `trellis-apis` (or a k8s-openapi one), a file here implementing
//! [`Kind`] for a unit struct, and one line in its group's `install`.

pub mod apiextensions;
pub mod authentication;
pub mod authorization;
pub mod compute;
pub mod coordination;
pub mod core;
pub mod events;
pub mod openapi_style;
pub mod own_schema;
pub mod rbac;
pub mod scheme;
pub mod serving;
pub mod tenancy;
pub mod trellis_core;

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::response::Response;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::Value;

// What a kind's file names, for kinds written outside this crate too.
pub use crate::machinery::names::NameRule;
pub use crate::machinery::patch::strategic::{ListMerge, ListStrategy};
pub use crate::machinery::protobuf::Converter;
pub use crate::machinery::request_info::{ResourceRequest, Verb};
pub use crate::machinery::status::{Status, StatusCause, Subject};
pub use crate::security::authn::user::UserInfo;

pub use scheme::{Install, SchemeBuilder};

/// The subresources a resource serves besides itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Subresources {
    /// `/status`: writes to the main resource keep the stored status, writes here keep
    /// everything but the status.
    pub status: bool,
    /// `/scale`: an `autoscaling/v1` Scale over these fields.
    pub scale: Option<ScalePaths>,
    /// `/finalize` (Namespaces): a PUT here sets `spec.finalizers`, which writes to the main
    /// resource keep.
    pub finalize: bool,
}

impl Subresources {
    /// Just `/status`.
    pub fn with_status() -> Subresources {
        Subresources {
            status: true,
            ..Subresources::default()
        }
    }
}

/// Where a custom resource keeps what its Scale shows, as JSON paths (`.spec.replicas`).
#[derive(Clone, Debug, PartialEq)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// A kind's names and scope, as discovery serves them.
#[derive(Clone, Copy, Debug)]
pub struct Names {
    /// Empty for the legacy core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
}

impl Names {
    /// A cluster-scoped kind with no short names.
    pub const fn cluster(
        group: &'static str,
        version: &'static str,
        kind: &'static str,
        plural: &'static str,
    ) -> Names {
        Names {
            group,
            version,
            kind,
            plural,
            namespaced: false,
            short_names: &[],
            categories: &[],
        }
    }

    /// A namespaced kind with no short names.
    pub const fn namespaced(
        group: &'static str,
        version: &'static str,
        kind: &'static str,
        plural: &'static str,
    ) -> Names {
        Names {
            namespaced: true,
            ..Names::cluster(group, version, kind, plural)
        }
    }

    /// The names of one of our own `trellis-apis` kinds.
    pub const fn of<T: trellis_apis::ApiObject>() -> Names {
        Names {
            group: T::GROUP,
            version: T::VERSION,
            kind: T::KIND,
            plural: T::PLURAL,
            namespaced: T::NAMESPACED,
            short_names: &[],
            categories: &[],
        }
    }

    pub const fn short(self, short_names: &'static [&'static str]) -> Names {
        Names {
            short_names,
            ..self
        }
    }
}

/// Where a kind's objects are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Home {
    /// On the shard of the workspace they belong to.
    Workspace,
    /// On the root shard, whatever the workspace: the tenancy tree (workspaces, logical
    /// clusters, shards) lives there so routing and placement read one database.
    RootShard,
}

/// Where a kind's schema comes from.
#[derive(Clone, Copy)]
pub enum SchemaSource {
    /// No published schema.
    None,
    /// An upstream Kubernetes type from k8s-openapi: published in OpenAPI and used for field
    /// validation (wrong types 400, unknown fields per `fieldValidation`).
    Upstream(fn(&mut SchemaGenerator) -> String),
    /// One of our own `trellis-apis` types: published in OpenAPI and also read into a
    /// structural schema, so objects are pruned, defaulted and validated (CEL included) as a
    /// CRD's are, and server-side apply follows its list types.
    Own(fn(&mut SchemaGenerator) -> String),
}

/// Adds `T`'s schema (and what it references) to `generator`, returning its component name.
pub fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> String {
    generator.subschema_for::<T>();
    T::schema_name().into_owned()
}

/// A Table column: name, type, priority (0 = default view, 1 = `-o wide`).
pub type Column = (&'static str, &'static str, u8);

/// The default columns: name and age.
pub const NAME_AGE: &[Column] = &[NAME, AGE];
pub const NAME: Column = ("Name", "string", 0);
pub const AGE: Column = ("Age", "string", 0);
/// kube-apiserver's default table, for kinds it has no printer for (CustomResourceDefinitions,
/// Roles, ClusterRoles): the name and the creation time as a date.
pub const NAME_CREATED_AT: &[Column] = &[NAME, ("Created At", "date", 0)];

/// The cells of [`NAME_CREATED_AT`].
pub fn name_created_at_cells(object: &Value) -> Vec<Value> {
    vec![
        cell_text(object, "/metadata/name"),
        cell_text(object, "/metadata/creationTimestamp"),
    ]
}

/// Verbs the default roles grant on a kind. `view`, `edit` and `admin` aggregate (an admin may
/// do what an editor may), so a kind lists each verb at the lowest role that gets it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Grants {
    pub view: &'static [&'static str],
    pub edit: &'static [&'static str],
    pub admin: &'static [&'static str],
}

/// Read verbs.
pub const READ: &[&str] = &["get", "list", "watch"];
/// Write verbs.
pub const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
/// Read and write verbs.
pub const READ_WRITE: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "delete",
    "deletecollection",
    "patch",
    "update",
];

/// The server a hook or endpoint runs in, as this layer sees it: opaque. Kinds sit below the
/// server's state (which holds the registry of kinds), so the few hooks that need the state
/// (a TokenReview asks the authenticator) get it with `serving::state::AppState::of`.
pub type ServerState = dyn std::any::Any + Send + Sync;

/// What a request to a kind's endpoint (a never-stored kind, or a subresource served by code)
/// knows: the server, the workspace, the user, the request.
pub struct EndpointRequest<'a> {
    pub server: &'a ServerState,
    pub cluster: &'a str,
    pub user: &'a UserInfo,
    pub request: &'a ResourceRequest,
    pub extensions: &'a axum::http::Extensions,
}

/// Answers requests for a kind that is never stored (SubjectAccessReview, SelfSubjectReview)
/// or for a subresource served by code (`serviceaccounts/token`). Create only.
#[async_trait]
pub trait Endpoint: Send + Sync {
    async fn create(&self, request: EndpointRequest<'_>, body: Body) -> Result<Response, Status>;
}

/// What admission sees of a write: where it goes and who asks.
pub struct Admission<'a> {
    pub server: &'a ServerState,
    pub cluster: &'a str,
    /// The shard holding the workspace.
    pub shard: &'a str,
    pub namespace: Option<&'a str>,
    /// What errors name: the resource and the object.
    pub subject: Subject<'a>,
    pub user: Option<&'a UserInfo>,
    /// Admin of the workspace from above (or `system:masters`): RBAC inside it does not limit.
    pub admin: bool,
}

/// Everything about one built-in resource. Every method but [`Kind::names`] has a default
/// that suits a plain kind (stored in its workspace, name and age columns, no extra rules).
#[async_trait]
pub trait Kind: Send + Sync + 'static {
    fn names(&self) -> Names;

    fn subresources(&self) -> Subresources {
        Subresources::default()
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::None
    }

    fn home(&self) -> Home {
        Home::Workspace
    }

    /// Stored with another resource's objects (`core/events` for `events.k8s.io` events) and
    /// converted on the way in and out.
    fn stored_as(&self) -> Option<&'static str> {
        None
    }

    /// With [`Kind::stored_as`]: turns a stored object into this kind's form (its
    /// `apiVersion` is set by the caller).
    fn convert_from_storage(&self, _object: &mut serde_json::Map<String, Value>) {}

    /// With [`Kind::stored_as`]: turns an object of this kind into the stored form,
    /// `apiVersion` included; leaves one already stored alone.
    fn convert_to_storage(&self, _object: &mut serde_json::Map<String, Value>) {}

    /// Deleting marks the object and leaves its removal to a controller even when it has no
    /// finalizers in its metadata (a Namespace waits for its content: `spec.finalizers`).
    fn deletes_gracefully(&self) -> bool {
        false
    }

    /// Why the object named `name` may never be deleted (a 403), as kube-apiserver keeps
    /// `default`, `kube-system` and `kube-public`.
    fn may_delete(&self, _name: &str) -> Result<(), String> {
        Ok(())
    }

    /// Whether a delete that removes the object at once answers with the object (as
    /// kube-apiserver's ServiceAccounts and Pods do) instead of a `Success` Status naming it.
    fn returns_deleted_object(&self) -> bool {
        false
    }

    /// Whether a deletecollection is served (not for Namespaces, as kube-apiserver does not).
    fn deletes_collections(&self) -> bool {
        true
    }

    /// With [`Kind::deletes_gracefully`]: what marks an object being deleted besides its
    /// `deletionTimestamp` (a Namespace's phase becomes `Terminating`).
    fn mark_deleting(&self, _object: &mut Value) {}

    /// Whether objects carry `metadata.generation`, counting changes of everything but metadata
    /// and status: kube-apiserver sets it only for kinds with a spec that controllers act on (a
    /// CRD, a Deployment), not for ConfigMaps, Secrets, Namespaces or RBAC objects. Our own
    /// kinds have it, as custom resources do.
    fn tracks_generation(&self) -> bool {
        matches!(self.schema(), SchemaSource::Own(_))
    }

    /// What names of this kind must look like (a DNS-1123 subdomain unless it says).
    fn name_rule(&self) -> NameRule {
        NameRule::Subdomain
    }

    /// Normalizes an object before every create and update.
    fn prepare(&self, _object: &mut Value) {}

    /// Steps of a create only, after [`Kind::prepare`].
    fn prepare_create(&self, _object: &mut Value) {}

    /// The kind's own rules for a new state of an object (`old` on updates); each problem is a
    /// cause of a 422.
    fn validate(&self, _object: &Value, _old: Option<&Value>) -> Vec<StatusCause> {
        Vec::new()
    }

    /// Checks and completions that need other objects or the user (on creates and updates,
    /// after validation, before storage).
    async fn admit(
        &self,
        _admission: &Admission<'_>,
        _object: &mut Value,
        _old: Option<&Value>,
    ) -> Result<(), Status> {
        Ok(())
    }

    fn columns(&self) -> &'static [Column] {
        NAME_AGE
    }

    /// The cells of [`Kind::columns`] for one object.
    fn cells(&self, object: &Value) -> Vec<Value> {
        vec![cell_text(object, "/metadata/name"), age_cell(object)]
    }

    /// Fields a field selector may name besides `metadata.name` and `metadata.namespace`.
    fn selectable_fields(&self) -> &'static [&'static str] {
        &[]
    }

    fn grants(&self) -> Grants {
        Grants::default()
    }

    /// Lists that merge (beyond ObjectMeta's finalizers and ownerReferences).
    fn list_merges(&self) -> &'static [ListMerge] {
        &[]
    }

    /// Decodes the kind from protobuf, for kinds client-go's typed clients send as protobuf
    /// (`kubectl create configmap|secret|role…`).
    fn protobuf(&self) -> Option<crate::machinery::protobuf::Converter> {
        None
    }

    /// For kinds that are never stored: what answers their creates.
    fn endpoint(&self) -> Option<Arc<dyn Endpoint>> {
        None
    }

    /// Subresources served by code (`token` of ServiceAccounts): name, the kind they take
    /// (group, version, kind) and what answers them.
    fn endpoint_subresources(&self) -> Vec<(&'static str, Names, Arc<dyn Endpoint>)> {
        Vec::new()
    }
}

/// A string cell at a JSON pointer (`<none>` when absent), as kubectl's printers show it.
pub fn cell_text(object: &Value, pointer: &str) -> Value {
    Value::String(
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("<none>")
            .to_string(),
    )
}

/// The number of entries of the maps or lists at `pointers`.
pub fn cell_count(object: &Value, pointers: &[&str]) -> Value {
    let n: usize = pointers
        .iter()
        .filter_map(|p| object.pointer(p))
        .map(|v| match v {
            Value::Object(m) => m.len(),
            Value::Array(a) => a.len(),
            _ => 0,
        })
        .sum();
    Value::from(n)
}

/// The status (`True`, `False`, `Unknown`) of condition `kind`; empty when absent.
pub fn condition_status<'a>(object: &'a Value, kind: &str) -> &'a str {
    condition(object, kind)
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Condition `kind` of `status.conditions`.
pub fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

/// The Age cell, from `metadata.creationTimestamp`.
pub fn age_cell(object: &Value) -> Value {
    Value::String(crate::machinery::age::since(
        object.pointer("/metadata/creationTimestamp"),
    ))
}
