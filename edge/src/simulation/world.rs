//! What every simulated component reads and writes through: one shared reflector per
//! resource (pods, nodes, workloads, DRA objects), each keeping the stored object and its
//! typed form parsed once per change, and the writes of the server's committer. Controllers
//! share these caches, so 10,000 nodes and their pods are listed and watched once, not once
//! per component.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::resource::v1::{ResourceClaim, ResourceClaimTemplate, ResourceSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde::de::DeserializeOwned;
use serde_json::Value;
use trellis_server::controller::committer::{self, Committed};
use trellis_server::controller::ControllerContext;
use trellis_server::controller::Scheme;
use trellis_server::controller::{every_shard, Error, Reflector, Running};
use trellis_storage::{ListScope, ObjectKey, Preconditions, StorageError, Store, StoredObject};

use super::SimulationOptions;

/// A stored object and its typed form.
pub struct Typed<T> {
    pub stored: StoredObject,
    pub object: T,
}

/// A shared cache of one resource, typed.
pub type Cache<T> = Reflector<Typed<T>>;

/// A served resource: group, version, plural.
#[derive(Clone, Copy, Debug)]
pub struct Resource {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
}

pub const PODS: Resource = Resource {
    group: "",
    version: "v1",
    plural: "pods",
};
pub const NODES: Resource = Resource {
    group: "",
    version: "v1",
    plural: "nodes",
};
pub const REPLICA_SETS: Resource = Resource {
    group: "apps",
    version: "v1",
    plural: "replicasets",
};
pub const DEPLOYMENTS: Resource = Resource {
    group: "apps",
    version: "v1",
    plural: "deployments",
};
pub const RESOURCE_CLAIMS: Resource = Resource {
    group: "resource.k8s.io",
    version: "v1",
    plural: "resourceclaims",
};
pub const RESOURCE_CLAIM_TEMPLATES: Resource = Resource {
    group: "resource.k8s.io",
    version: "v1",
    plural: "resourceclaimtemplates",
};
pub const RESOURCE_SLICES: Resource = Resource {
    group: "resource.k8s.io",
    version: "v1",
    plural: "resourceslices",
};
pub const EVENTS: Resource = Resource {
    group: "",
    version: "v1",
    plural: "events",
};
pub const DEVICE_CLASSES: Resource = Resource {
    group: "resource.k8s.io",
    version: "v1",
    plural: "deviceclasses",
};

/// The simulator's view of the cluster and its means to change it.
#[derive(Clone)]
pub struct World {
    pub store: Store,
    /// The shard the store is, as the reflectors name it.
    pub shard: String,
    pub scheme: Arc<Scheme>,
    /// The logical cluster the edge serves (its only one).
    pub cluster: String,
    pub options: Arc<SimulationOptions>,
    pub pods: Cache<Pod>,
    pub nodes: Cache<Node>,
    pub replica_sets: Cache<ReplicaSet>,
    pub deployments: Cache<Deployment>,
    pub claims: Cache<ResourceClaim>,
    pub claim_templates: Cache<ResourceClaimTemplate>,
    pub slices: Cache<ResourceSlice>,
}

impl World {
    /// The caches of the edge's resources, started into `running`.
    pub fn start(
        running: &mut Running,
        ctx: &ControllerContext,
        options: Arc<SimulationOptions>,
    ) -> Result<World, String> {
        let scheme = ctx.registry.scheme().clone();
        let root = ctx.shards.root();
        let sources = every_shard(&ctx.shards);
        let world = World {
            store: root.store.clone(),
            shard: root.name.clone(),
            cluster: trellis_server::ROOT_CLUSTER.to_string(),
            options,
            pods: cache(&scheme, &sources, PODS)?,
            nodes: cache(&scheme, &sources, NODES)?,
            replica_sets: cache(&scheme, &sources, REPLICA_SETS)?,
            deployments: cache(&scheme, &sources, DEPLOYMENTS)?,
            claims: cache(&scheme, &sources, RESOURCE_CLAIMS)?,
            claim_templates: cache(&scheme, &sources, RESOURCE_CLAIM_TEMPLATES)?,
            slices: cache(&scheme, &sources, RESOURCE_SLICES)?,
            scheme,
        };
        for run in [
            world.pods.run(running.token()).boxed(),
            world.nodes.run(running.token()).boxed(),
            world.replica_sets.run(running.token()).boxed(),
            world.deployments.run(running.token()).boxed(),
            world.claims.run(running.token()).boxed(),
            world.claim_templates.run(running.token()).boxed(),
            world.slices.run(running.token()).boxed(),
        ] {
            running.spawn(run);
        }
        Ok(world)
    }

    /// The storage key of `name` (in `namespace`) of `resource`.
    pub fn key(&self, resource: Resource, namespace: &str, name: &str) -> Result<ObjectKey, Error> {
        let rt = committer::builtin(
            &self.scheme,
            resource.group,
            resource.version,
            resource.plural,
        )?;
        Ok(ObjectKey::new(
            self.cluster.clone(),
            rt.storage_resource(),
            namespace,
            name,
        ))
    }

    /// Writes `desired` over `current` if it differs.
    pub async fn update(
        &self,
        resource: Resource,
        current: &StoredObject,
        desired: Value,
    ) -> Result<Committed, Error> {
        let rt = committer::builtin(
            &self.scheme,
            resource.group,
            resource.version,
            resource.plural,
        )?;
        committer::update(&self.store, rt, current, desired).await
    }

    /// Writes `status` as the status of `current` if it differs.
    pub async fn update_status(
        &self,
        resource: Resource,
        current: &StoredObject,
        status: Value,
    ) -> Result<Committed, Error> {
        let rt = committer::builtin(
            &self.scheme,
            resource.group,
            resource.version,
            resource.plural,
        )?;
        committer::update_status(&self.store, rt, current, status).await
    }

    /// Creates `desired` (in `namespace`) unless it exists.
    pub async fn create(
        &self,
        resource: Resource,
        namespace: Option<&str>,
        desired: Value,
    ) -> Result<Committed, Error> {
        let rt = committer::builtin(
            &self.scheme,
            resource.group,
            resource.version,
            resource.plural,
        )?;
        committer::create(&self.store, rt, &self.cluster, namespace, desired).await
    }

    /// Deletes `current` (if it is still the object read); the revision of the deletion.
    pub async fn delete(&self, current: &StoredObject) -> Result<Option<u64>, Error> {
        let preconditions = Preconditions {
            revision: None,
            uid: Some(current.uid.clone()),
        };
        match self.store.delete(current.key.clone(), preconditions).await {
            Ok(deleted) => Ok(Some(deleted.revision)),
            Err(StorageError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits (briefly) until `cache` has seen revision `revision` of the store: after a
    /// controller's own writes, so its next look sees them (kube-controller-manager's
    /// "expectations").
    pub async fn wait_for<T: Send + Sync + 'static>(&self, cache: &Cache<T>, revision: u64) {
        cache
            .wait_for_revision(&self.shard, revision, Duration::from_secs(5))
            .await;
    }
}

/// A typed cache of `resource` across `sources`.
fn cache<T: DeserializeOwned + Send + Sync + 'static>(
    scheme: &Scheme,
    sources: &[(String, Store)],
    resource: Resource,
) -> Result<Cache<T>, String> {
    let rt = scheme
        .lookup(resource.group, resource.version, resource.plural)
        .ok_or_else(|| format!("{} is not served", resource.plural))?;
    Ok(Reflector::new(
        resource.plural,
        ListScope::all_clusters(rt.storage_resource()),
        sources.to_vec(),
        |stored| {
            serde_json::from_slice(&stored.value)
                .ok()
                .map(|object| Typed {
                    stored: stored.clone(),
                    object,
                })
        },
    ))
}

/// The controller owner reference of `meta`, if it is of `kind`.
pub fn controller_of<'a>(meta: &'a ObjectMeta, kind: &str) -> Option<&'a OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true) && r.kind == kind)
}

/// An owner reference to `owner` that makes it the controller of its dependent.
pub fn controller_reference(api_version: &str, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Now, to the second (as Kubernetes' timestamps are).
pub fn now() -> k8s_openapi::jiff::Timestamp {
    let now = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::jiff::Timestamp::from_second(now.as_second()).unwrap_or(now)
}

/// The typed object as JSON.
pub fn to_value<T: serde::Serialize>(object: &T) -> Result<Value, Error> {
    serde_json::to_value(object).map_err(|e| Error::Invalid(e.to_string()))
}
