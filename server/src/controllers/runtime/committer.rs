//! The committer: how a controller writes. Given the object as it read it (with its revision)
//! and the state it wants, it writes only if something changed, as an update preconditioned on
//! that revision and uid, after applying the metadata rules every write of the API server
//! applies ([`object_meta::prepare_update`]: identity and timestamps kept, `generation` bumped
//! on a spec change; [`object_meta::prepare_create`] for creations: name, uid,
//! creationTimestamp, generation). So a controller builds the desired object and never
//! touches uid, creationTimestamp, generation or resourceVersion itself.
//!
//! One conflict policy: a precondition that fails comes back as [`Error::Storage`] with a
//! conflict, which the controller runtime requeues at once; an object that vanished meanwhile
//! is [`Committed::Gone`] (its deletion is a change the controller hears of anyway).
//!
//! Storage writes whole objects (no subresources), so a status write is an update that takes
//! everything but `status` from the object as read ([`update_status`]): it cannot undo a spec
//! change it did not see, because the precondition fails first.

use bytes::Bytes;
use serde_json::Value;
use trellis_storage::{ObjectKey, Preconditions, StorageError, Store, StoredObject};

use super::controller::Error;
use crate::machinery::deletion;
use crate::machinery::object_meta;
use crate::registry::ResourceType;

/// What a commit did.
#[derive(Debug)]
pub enum Committed {
    /// The desired state is the current one: nothing was written.
    Unchanged,
    /// Written; the new stored state.
    Written(StoredObject),
    /// The write took the last finalizer off an object being deleted: it is gone now.
    Deleted,
    /// Created; the stored object.
    Created(StoredObject),
    /// The object to create exists already.
    Exists,
    /// The object to update is gone.
    Gone,
}

/// The write an update comes to.
#[derive(Debug, PartialEq)]
pub enum Write {
    /// The desired object, with the metadata rules applied.
    Update(Value),
    /// The object was being deleted and nothing holds it any more.
    Delete,
}

/// The pure decision of [`update`]: nothing (`None`) when storing `desired` would leave
/// `current` as it is (server-owned metadata aside: it is taken from `current`); otherwise the
/// object to store, or its deletion when the update completes one.
pub fn plan_update(
    rt: &ResourceType,
    current: &Value,
    mut desired: Value,
) -> Result<Option<Write>, Error> {
    // The server-owned fields come from `current` whatever `desired` says: compare after.
    object_meta::prepare_update(&mut desired, current, rt)
        .map_err(|s| Error::Invalid(s.message))?;
    // Before the no-op check: an object being deleted that nothing holds any more goes, even
    // when this write changes nothing (its last finalizer went by another way), as
    // kube-apiserver deletes during any update that leaves it so.
    if deletion::update_completes_deletion(&desired) {
        return Ok(Some(Write::Delete));
    }
    if *without_revision(current) == desired {
        return Ok(None);
    }
    Ok(Some(Write::Update(desired)))
}

/// `object` without `metadata.resourceVersion`, which storage keeps out of stored bytes.
fn without_revision(object: &Value) -> std::borrow::Cow<'_, Value> {
    match object.pointer("/metadata/resourceVersion") {
        None => std::borrow::Cow::Borrowed(object),
        Some(_) => {
            let mut copy = object.clone();
            if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("resourceVersion");
            }
            std::borrow::Cow::Owned(copy)
        }
    }
}

/// A built-in type of the server's scheme, for the writes of controllers that know what they
/// write.
pub fn builtin<'s>(
    scheme: &'s crate::registry::Scheme,
    group: &str,
    version: &str,
    plural: &str,
) -> Result<&'s ResourceType, Error> {
    scheme
        .lookup(group, version, plural)
        .map(|rt| &**rt)
        .ok_or_else(|| Error::Invalid(format!("{plural}.{group}/{version} is not served here")))
}

/// Parses a stored object.
pub fn parse(stored: &StoredObject) -> Result<Value, Error> {
    serde_json::from_slice(&stored.value).map_err(|e| {
        Error::Invalid(format!(
            "stored {} {:?} is not JSON: {e}",
            stored.key.resource, stored.key.name
        ))
    })
}

fn encode(object: &Value) -> Result<Bytes, Error> {
    serde_json::to_vec(object)
        .map(Bytes::from)
        .map_err(|e| Error::Invalid(e.to_string()))
}

/// Writes `desired` over `current` (as the controller read it) if it differs.
pub async fn update(
    store: &Store,
    rt: &ResourceType,
    current: &StoredObject,
    desired: Value,
) -> Result<Committed, Error> {
    let current_value = parse(current)?;
    let Some(write) = plan_update(rt, &current_value, desired)? else {
        return Ok(Committed::Unchanged);
    };
    let preconditions = Preconditions {
        revision: Some(current.revision),
        uid: Some(current.uid.clone()),
    };
    let key = current.key.clone();
    let outcome = match write {
        Write::Update(object) => store
            .update(key, encode(&object)?, preconditions)
            .await
            .map(Committed::Written),
        Write::Delete => store
            .delete(key, preconditions)
            .await
            .map(|_| Committed::Deleted),
    };
    match outcome {
        Err(StorageError::NotFound(_)) => Ok(Committed::Gone),
        other => Ok(other?),
    }
}

/// Writes `status` as the status of `current` if it differs; everything else stays as read.
pub async fn update_status(
    store: &Store,
    rt: &ResourceType,
    current: &StoredObject,
    status: Value,
) -> Result<Committed, Error> {
    let mut desired = parse(current)?;
    match desired.as_object_mut() {
        Some(object) => object.insert("status".into(), status),
        None => {
            return Err(Error::Invalid(
                "a stored object is not a JSON object".into(),
            ))
        }
    };
    update(store, rt, current, desired).await
}

/// Creates `desired` (of type `rt`) in `cluster` (and `namespace`, for a namespaced type),
/// with the server-set metadata of any create, unless an object of that name exists.
pub async fn create(
    store: &Store,
    rt: &ResourceType,
    cluster: &str,
    namespace: Option<&str>,
    mut desired: Value,
) -> Result<Committed, Error> {
    let (name, uid) = object_meta::prepare_create(&mut desired, rt, namespace)
        .map_err(|s| Error::Invalid(s.message))?;
    let key = ObjectKey::new(
        cluster,
        rt.storage_resource(),
        namespace.filter(|_| rt.namespaced).unwrap_or_default(),
        name,
    );
    match store.create(key, uid, encode(&desired)?).await {
        Ok(stored) => Ok(Committed::Created(stored)),
        Err(StorageError::AlreadyExists(_)) => Ok(Committed::Exists),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A kind that counts generations.
    fn tracked() -> &'static ResourceType {
        crate::registry::scheme::test_scheme()
            .lookup("serving.trellis.dev", "v1alpha1", "modeldeployments")
            .unwrap()
    }

    fn current() -> Value {
        json!({"apiVersion": "serving.trellis.dev/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": "x", "namespace": "ns", "uid": "u1",
                "creationTimestamp": "2026-01-01T00:00:00Z", "generation": 3},
            "data": {"a": "1"}})
    }

    #[test]
    fn nothing_is_written_when_nothing_changed() {
        assert_eq!(plan_update(tracked(), &current(), current()).unwrap(), None);
        // The resourceVersion a reader put back is not a change.
        let mut read = current();
        read["metadata"]["resourceVersion"] = json!("17");
        assert_eq!(plan_update(tracked(), &current(), read).unwrap(), None);
    }

    #[test]
    fn a_spec_change_bumps_the_generation_and_identity_stays() {
        let mut desired = current();
        desired["data"]["a"] = json!("2");
        desired["metadata"]["uid"] = json!("forged");
        let Some(Write::Update(written)) = plan_update(tracked(), &current(), desired).unwrap()
        else {
            panic!("expected an update")
        };
        assert_eq!(written["metadata"]["generation"], 4);
        assert_eq!(written["metadata"]["uid"], "u1");
        assert_eq!(
            written["metadata"]["creationTimestamp"],
            "2026-01-01T00:00:00Z"
        );
    }

    #[test]
    fn a_metadata_or_status_change_keeps_the_generation() {
        let mut desired = current();
        desired["metadata"]["labels"] = json!({"l": "v"});
        desired["status"] = json!({"ready": true});
        let Some(Write::Update(written)) = plan_update(tracked(), &current(), desired).unwrap()
        else {
            panic!("expected an update")
        };
        assert_eq!(written["metadata"]["generation"], 3);
        assert_eq!(written["status"]["ready"], true);
    }

    #[test]
    fn taking_the_last_finalizer_off_a_deleted_object_deletes_it() {
        let mut deleting = current();
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-02T00:00:00Z");
        deleting["metadata"]["finalizers"] = json!(["example.com/x"]);
        let mut desired = deleting.clone();
        desired["metadata"]["finalizers"] = json!([]);
        assert_eq!(
            plan_update(tracked(), &deleting, desired.clone()).unwrap(),
            Some(Write::Delete)
        );
        // Also when the finalizer went by another way and this write changes nothing.
        assert_eq!(
            plan_update(tracked(), &desired, desired.clone()).unwrap(),
            Some(Write::Delete)
        );
        // An update cannot take the deletion back either.
        let mut undeleted = deleting.clone();
        undeleted["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("deletionTimestamp");
        undeleted["data"]["a"] = json!("2");
        let Some(Write::Update(written)) = plan_update(tracked(), &deleting, undeleted).unwrap()
        else {
            panic!("expected an update")
        };
        assert_eq!(
            written["metadata"]["deletionTimestamp"],
            "2026-01-02T00:00:00Z"
        );
    }

    #[tokio::test]
    async fn writes_are_preconditioned_on_what_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path().join("s.db"), Default::default())
            .await
            .unwrap();
        let Committed::Created(created) = create(
            &store,
            tracked(),
            "c1",
            Some("ns"),
            json!({"metadata": {"name": "x"}, "data": {"a": "1"}}),
        )
        .await
        .unwrap() else {
            panic!("expected a create")
        };
        let object = parse(&created).unwrap();
        assert_eq!(object["metadata"]["generation"], 1);
        assert!(object["metadata"]["uid"].is_string());
        assert!(matches!(
            create(
                &store,
                tracked(),
                "c1",
                Some("ns"),
                json!({"metadata": {"name": "x"}})
            )
            .await
            .unwrap(),
            Committed::Exists
        ));
        let mut desired = object.clone();
        desired["data"]["a"] = json!("2");
        let Committed::Written(written) = update(&store, tracked(), &created, desired.clone())
            .await
            .unwrap()
        else {
            panic!("expected a write")
        };
        assert!(matches!(
            update(&store, tracked(), &written, desired.clone())
                .await
                .unwrap(),
            Committed::Unchanged
        ));
        // Written from a stale read: a conflict, for the runtime to requeue.
        desired["data"]["a"] = json!("3");
        let stale = update(&store, tracked(), &created, desired).await;
        assert!(stale.is_err_and(|e| e.is_conflict()));
        let status = update_status(&store, tracked(), &written, json!({"n": 1}))
            .await
            .unwrap();
        assert!(matches!(status, Committed::Written(_)));
        store
            .delete(created.key.clone(), Preconditions::none())
            .await
            .unwrap();
        assert!(matches!(
            update_status(&store, tracked(), &written, json!({"n": 2}))
                .await
                .unwrap(),
            Committed::Gone
        ));
    }
}
