//! Workspace: a child workspace of the one it is created in. A create gets its logical
//! cluster id, type (which must fit the parent's), owner and shard (placed in the same write);
//! the type and cluster never change. The workspace controller does the rest.

use async_trait::async_trait;
use serde_json::Value;

use crate::kinds::Subresources;
use crate::kinds::{
    age_cell, cell_text, schema_of, Admission, Column, Grants, Home, Kind, Names, SchemaSource,
    AGE, NAME, READ, WRITE,
};
use crate::machinery::selectors::LabelSelector;
use crate::machinery::status::{Status, StatusCause};
use crate::serving::state::AppState;
use crate::tenancy::workspaces::{self, Unroutable};

pub struct Workspace;

#[async_trait]
impl Kind for Workspace {
    fn names(&self) -> Names {
        Names::of::<trellis_apis::tenancy::Workspace>().short(&["ws"])
    }

    fn subresources(&self) -> Subresources {
        Subresources::with_status()
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Own(schema_of::<trellis_apis::tenancy::Workspace>)
    }

    fn home(&self) -> Home {
        Home::RootShard
    }

    fn validate(&self, object: &Value, old: Option<&Value>) -> Vec<StatusCause> {
        match old {
            Some(old) => workspaces::validate_update(object, old),
            None => Vec::new(),
        }
    }

    async fn admit(
        &self,
        admission: &Admission<'_>,
        object: &mut Value,
        old: Option<&Value>,
    ) -> Result<(), Status> {
        if old.is_some() {
            return Ok(());
        }
        let state = AppState::of(admission.server)?;
        let parent_type = match state.workspaces.type_of(admission.cluster).await {
            Ok(t) => t,
            Err(Unroutable::Unavailable(e)) => return Err(Status::unavailable(e, 1)),
            Err(_) => "universal".to_string(),
        };
        let mut causes = workspaces::prepare_create(object, &parent_type);
        let selector = object.pointer("/spec/location/selector").cloned();
        if let Some(Err(e)) = selector.as_ref().map(LabelSelector::from_structured) {
            causes.push(StatusCause {
                kind: "FieldValueInvalid".into(),
                message: format!("Invalid value: {e}"),
                field: "spec.location.selector".into(),
            });
        }
        crate::security::authz::owner::record(object, admission.user);
        if !causes.is_empty() {
            return Err(Status::invalid(&admission.subject, "Workspace", causes));
        }
        // Placed now, in the same write; with no shard matching, the workspace stays
        // Scheduling and the controller tries again.
        let cluster = object
            .pointer("/spec/cluster")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match state.shards.place(&cluster, selector.as_ref()).await {
            Ok(Some(shard)) => object["status"]["shard"] = Value::String(shard),
            Ok(None) => {}
            Err(e) => return Err(Status::from_storage(&e, &admission.subject)),
        }
        Ok(())
    }

    fn columns(&self) -> &'static [Column] {
        &[
            NAME,
            ("Type", "string", 0),
            ("Phase", "string", 0),
            ("URL", "string", 0),
            AGE,
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![
            cell_text(o, "/metadata/name"),
            cell_text(o, "/spec/type/name"),
            cell_text(o, "/status/phase"),
            cell_text(o, "/status/url"),
            age_cell(o),
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
