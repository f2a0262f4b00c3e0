//! The envelope every kind of our own groups shares (`apiVersion`, `kind`, `metadata`,
//! `spec`, optional `status`) and the one place a kind's names live: [`ApiObject`] carries
//! group, version, kind, plural and scope as constants, and the [`api_object!`] macro writes
//! the envelope struct, [`kube_core::Resource`] (so `kube::Api<K>` and `kube::ResourceExt`
//! work on our types), `HasSpec`/`HasStatus` and [`ApiObject`] from one declaration; and the
//! small serde helpers the kinds' layouts share.
//!
//! Why a `macro_rules!` and not kube's `CustomResource` derive: the derive writes its own
//! struct without `api_version`/`kind` fields and its own `Serialize` (the server builds and
//! reads these structs field by field), names the root schema after the Rust type instead of
//! our `dev.trellis.<group>.<version>.<Kind>` ids, shapes the schema for a CRD manifest rather
//! than for the OpenAPI documents the server publishes, and pulls a proc-macro crate into
//! every client. The envelope is five fields; a declarative macro keeps its serde and schema
//! layout exactly what the hand-written structs had.

use std::fmt::Debug;

use kube_core::{ClusterResourceScope, NamespaceResourceScope};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// One kind of our own API groups, with the names it is served under. Everything generic
/// over our kinds (the server's registry, a client's `kube::Api<K>`) bounds on this.
pub trait ApiObject:
    kube_core::Resource<DynamicType = ()>
    + Clone
    + Debug
    + Default
    + Serialize
    + DeserializeOwned
    + JsonSchema
    + Send
    + Sync
    + 'static
{
    /// The API group, e.g. `tenancy.trellis.dev`.
    const GROUP: &'static str;
    /// The version within the group, e.g. `v1alpha1`.
    const VERSION: &'static str;
    /// The kind, e.g. `Workspace`; always the Rust type's name.
    const KIND: &'static str;
    /// The resource: the lower-case plural in URLs, e.g. `workspaces`.
    const PLURAL: &'static str;
    /// Whether objects live in a namespace (`/namespaces/<ns>/<plural>`) or beside them.
    const NAMESPACED: bool;
}

/// Ties kube's scope marker types to the `NAMESPACED` constant, so a kind names its scope
/// once and the two can never disagree.
pub(crate) trait Scope {
    /// Whether the scope is a namespace.
    const NAMESPACED: bool;
}

impl Scope for ClusterResourceScope {
    const NAMESPACED: bool = false;
}

impl Scope for NamespaceResourceScope {
    const NAMESPACED: bool = true;
}

/// Declares a kind: the envelope struct plus `kube_core::Resource`, `HasSpec`, `HasStatus`
/// (when it has a status), [`ApiObject`] and a `new(name, spec)` constructor.
///
/// ```ignore
/// api_object! {
///     /// A workspace: ... (the kind's description, shown by `kubectl explain`)
///     pub struct Workspace {
///         group: GROUP, version: VERSION, plural: "workspaces", scope: ClusterResourceScope,
///         schema: "dev.trellis.tenancy.v1alpha1.Workspace",
///         #[serde(default)]
///         spec: WorkspaceSpec,
///         status: WorkspaceStatus,
///     }
/// }
/// ```
///
/// Attributes before `spec` and `status` go onto those fields (e.g. `#[serde(default)]`
/// for a spec with nothing required, doc comments). Leave `status` out for a kind without
/// one. The `schema` name is a literal because schemars reads it from an attribute; a unit
/// test checks it against the group and kind.
macro_rules! api_object {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            group: $group:expr,
            version: $version:expr,
            plural: $plural:literal,
            scope: $scope:ty,
            schema: $schema:literal,
            $(#[$spec_meta:meta])*
            spec: $spec:ty,
            $(
                $(#[$status_meta:meta])*
                status: $status:ty,
            )?
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Clone,
            Debug,
            Default,
            PartialEq,
            ::serde::Serialize,
            ::serde::Deserialize,
            ::schemars::JsonSchema,
        )]
        #[serde(rename_all = "camelCase")]
        #[schemars(rename = $schema)]
        pub struct $name {
            /// APIVersion defines the versioned schema of this representation of an object.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub api_version: Option<String>,
            /// Kind is a string value representing the REST resource this object represents.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub kind: Option<String>,
            /// Standard object's metadata.
            #[serde(default)]
            pub metadata: ::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
            $(#[$spec_meta])*
            pub spec: $spec,
            $(
                $(#[$status_meta])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub status: Option<$status>,
            )?
        }

        impl $name {
            /// An object named `name` with `apiVersion` and `kind` filled in (server-side
            /// apply needs both), ready for `kube::Api::create` or `patch`.
            pub fn new(name: &str, spec: $spec) -> Self {
                let mut object = Self::default();
                object.api_version =
                    Some(<Self as ::kube_core::Resource>::api_version(&()).into_owned());
                object.kind = Some(<Self as $crate::ApiObject>::KIND.to_owned());
                object.metadata.name = Some(name.to_owned());
                object.spec = spec;
                object
            }
        }

        impl $crate::ApiObject for $name {
            const GROUP: &'static str = $group;
            const VERSION: &'static str = $version;
            const KIND: &'static str = stringify!($name);
            const PLURAL: &'static str = $plural;
            const NAMESPACED: bool = <$scope as $crate::object::Scope>::NAMESPACED;
        }

        impl ::kube_core::Resource for $name {
            type DynamicType = ();
            type Scope = $scope;

            fn kind(_: &()) -> ::std::borrow::Cow<'_, str> {
                <Self as $crate::ApiObject>::KIND.into()
            }
            fn group(_: &()) -> ::std::borrow::Cow<'_, str> {
                <Self as $crate::ApiObject>::GROUP.into()
            }
            fn version(_: &()) -> ::std::borrow::Cow<'_, str> {
                <Self as $crate::ApiObject>::VERSION.into()
            }
            fn plural(_: &()) -> ::std::borrow::Cow<'_, str> {
                <Self as $crate::ApiObject>::PLURAL.into()
            }
            fn meta(&self) -> &::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &self.metadata
            }
            fn meta_mut(
                &mut self,
            ) -> &mut ::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &mut self.metadata
            }
        }

        impl ::kube_core::object::HasSpec for $name {
            type Spec = $spec;

            fn spec(&self) -> &$spec {
                &self.spec
            }
            fn spec_mut(&mut self) -> &mut $spec {
                &mut self.spec
            }
        }

        $(
            impl ::kube_core::object::HasStatus for $name {
                type Status = $status;

                fn status(&self) -> Option<&$status> {
                    self.status.as_ref()
                }
                fn status_mut(&mut self) -> &mut Option<$status> {
                    &mut self.status
                }
            }
        )?
    };
}

pub(crate) use api_object;

/// For `skip_serializing_if`: counts (and ids) that are zero stay off the wire, as Kubernetes'
/// `omitempty` leaves them. Shared by every kind's layout, hence here beside the envelope.
pub(crate) fn is_zero<N: Default + PartialEq>(n: &N) -> bool {
    *n == N::default()
}
