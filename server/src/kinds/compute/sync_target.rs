//! SyncTarget: one physical cluster. Its syncer writes the status (health, heartbeat, GPU
//! inventory); platform admins write the spec (cordon, taints) and its region/zone labels.

use serde_json::Value;

use crate::kinds::Subresources;
use crate::kinds::{
    age_cell, cell_text, condition_status, schema_of, Column, Grants, Kind, Names, SchemaSource,
    AGE, NAME, READ, WRITE,
};

pub struct SyncTarget;

impl Kind for SyncTarget {
    fn names(&self) -> Names {
        Names::of::<trellis_apis::compute::SyncTarget>()
    }

    fn subresources(&self) -> Subresources {
        Subresources::with_status()
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Own(schema_of::<trellis_apis::compute::SyncTarget>)
    }

    fn columns(&self) -> &'static [Column] {
        &[
            NAME,
            ("Ready", "string", 0),
            ("GPUs", "string", 0),
            ("Heartbeat", "string", 0),
            AGE,
            ("Kubernetes", "string", 1),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let gpus = o
            .pointer("/status/gpus")
            .and_then(Value::as_array)
            .map(|gpus| {
                let sum = |field: &str| {
                    gpus.iter()
                        .filter_map(|g| g.get(field).and_then(Value::as_i64))
                        .sum::<i64>()
                };
                format!("{}/{}", sum("availableDevices"), sum("totalDevices"))
            })
            .unwrap_or_else(|| "<none>".into());
        let ready = match condition_status(o, "Ready") {
            "" => "Unknown",
            status => status,
        };
        vec![
            cell_text(o, "/metadata/name"),
            ready.into(),
            gpus.into(),
            Value::String(crate::machinery::age::since(
                o.pointer("/status/lastHeartbeatTime"),
            )),
            age_cell(o),
            cell_text(o, "/status/kubernetesVersion"),
        ]
    }

    fn grants(&self) -> Grants {
        Grants {
            view: READ,
            edit: &[],
            admin: WRITE,
        }
    }
}
