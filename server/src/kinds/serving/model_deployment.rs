//! ModelDeployment: a model served on GPUs of a pool. Validated and defaulted by its schema
//! (CEL: minReplicas ≤ maxReplicas); scales like a Deployment; placed by the hub's placement
//! controller, which writes the status.

use serde_json::Value;

use crate::kinds::{
    age_cell, cell_text, condition, schema_of, Column, Grants, Kind, Names, SchemaSource, AGE,
    NAME, READ, WRITE,
};
use crate::kinds::{ScalePaths, Subresources};

pub struct ModelDeployment;

impl Kind for ModelDeployment {
    fn names(&self) -> Names {
        Names::of::<trellis_apis::serving::ModelDeployment>().short(&["md"])
    }

    fn subresources(&self) -> Subresources {
        Subresources {
            status: true,
            scale: Some(ScalePaths {
                spec_replicas: ".spec.replicas".into(),
                status_replicas: ".status.replicas".into(),
                label_selector: Some(".status.selector".into()),
            }),
            ..Subresources::default()
        }
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Own(schema_of::<trellis_apis::serving::ModelDeployment>)
    }

    /// Keeps the create's trace context (when traces are exported) for the placement
    /// controller and the syncer to continue.
    fn prepare_create(&self, object: &mut Value) {
        let Some(traceparent) = trellis_telemetry::traceparent(&tracing::Span::current()) else {
            return;
        };
        crate::machinery::object_meta::annotate(
            object,
            trellis_apis::TRACEPARENT_ANNOTATION,
            traceparent,
        );
    }

    fn columns(&self) -> &'static [Column] {
        &[
            NAME,
            ("Model", "string", 0),
            ("GPUs", "string", 0),
            ("Ready", "string", 0),
            ("Status", "string", 0),
            AGE,
            ("Pool", "string", 1),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let int = |p: &str| o.pointer(p).and_then(Value::as_i64);
        let desired = int("/spec/replicas")
            .or(int("/spec/minReplicas"))
            .unwrap_or(1);
        let ready = int("/status/readyReplicas").unwrap_or(0);
        let gpus = format!(
            "{}x{}",
            int("/spec/resources/gpu/count").unwrap_or(1),
            o.pointer("/spec/resources/gpu/class")
                .and_then(Value::as_str)
                .unwrap_or("<none>")
        );
        vec![
            cell_text(o, "/metadata/name"),
            cell_text(o, "/spec/model/uri"),
            gpus.into(),
            format!("{ready}/{desired}").into(),
            status_word(o).into(),
            age_cell(o),
            cell_text(o, "/spec/placement/pool"),
        ]
    }

    fn grants(&self) -> Grants {
        Grants {
            view: READ,
            edit: WRITE,
            admin: &[],
        }
    }
}

/// One word for the Status column: Ready, else the reason of the first condition that holds
/// it back (QuotaExceeded, NoTargetFits, …), else Pending.
fn status_word(o: &Value) -> String {
    let holds = |kind: &str| {
        condition(o, kind).filter(|c| c.get("status").and_then(Value::as_str) == Some("False"))
    };
    if condition(o, "Ready")
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        == Some("True")
    {
        return "Ready".into();
    }
    for kind in ["QuotaReserved", "Scheduled", "Synced", "Available", "Ready"] {
        if let Some(reason) = holds(kind)
            .and_then(|c| c.get("reason"))
            .and_then(Value::as_str)
        {
            return reason.to_string();
        }
    }
    "Pending".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_status_column_names_what_holds_a_deployment_back() {
        let md = |conditions: Value| json!({"status": {"conditions": conditions}});
        assert_eq!(status_word(&md(json!([]))), "Pending");
        assert_eq!(
            status_word(&md(json!([
                {"type": "QuotaReserved", "status": "False", "reason": "QuotaExceeded"},
                {"type": "Ready", "status": "False", "reason": "NotScheduled"},
            ]))),
            "QuotaExceeded"
        );
        assert_eq!(
            status_word(&md(
                json!([{"type": "Ready", "status": "True", "reason": "Available"}])
            )),
            "Ready"
        );
    }
}
