//! The syncer's writes to the hub, both server-side applies of the status subresource as
//! field manager `trellis-syncer` (forced: the syncer is the only writer of these fields, and
//! takes them back after the hub's own writes of the same object): its SyncTarget's status
//! and its Placements' status. Its credentials allow exactly these (see `trellis synctarget
//! create`).

use kube::api::{Patch, PatchParams};
use kube::Api;
use serde_json::{json, Value};
use trellis_apis::compute::{Placement, PlacementStatus, SyncTarget};
use trellis_apis::ApiObject;

use crate::target_status::{apply_body, reading, Report};
use crate::FIELD_MANAGER;

fn apply() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Applies the SyncTarget `name`'s status for `report` now; the reading it applied (see
/// [`reading`]).
pub async fn report(hub: &kube::Client, name: &str, report: &Report) -> kube::Result<Value> {
    let targets: Api<SyncTarget> = Api::all(hub.clone());
    let previous = targets
        .get_status(name)
        .await?
        .status
        .map(|s| s.conditions)
        .unwrap_or_default();
    let body = apply_body(name, report, &previous, crate::time::now());
    targets
        .patch_status(name, &apply(), &Patch::Apply(&body))
        .await?;
    Ok(reading(&body))
}

/// Applies `status` to the Placement `namespace/name`.
pub async fn placement_status(
    hub: &kube::Client,
    namespace: &str,
    name: &str,
    status: &PlacementStatus,
) -> kube::Result<()> {
    let placements: Api<Placement> = Api::namespaced(hub.clone(), namespace);
    let body = json!({
        "apiVersion": format!("{}/{}", Placement::GROUP, Placement::VERSION),
        "kind": Placement::KIND,
        "metadata": {"name": name, "namespace": namespace},
        "status": status,
    });
    placements
        .patch_status(name, &apply(), &Patch::Apply(&body))
        .await?;
    Ok(())
}
