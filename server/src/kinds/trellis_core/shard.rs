//! Shard: one database workspaces are placed on, recorded at start (`bootstrap`), its
//! `status.workspaces` kept by the shard controller.

use serde_json::Value;

use crate::kinds::Subresources;
use crate::kinds::{
    age_cell, cell_text, schema_of, Column, Home, Kind, Names, SchemaSource, AGE, NAME,
};

pub struct Shard;

impl Kind for Shard {
    fn names(&self) -> Names {
        Names::of::<trellis_apis::core::Shard>()
    }

    fn subresources(&self) -> Subresources {
        Subresources::with_status()
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Own(schema_of::<trellis_apis::core::Shard>)
    }

    fn home(&self) -> Home {
        Home::RootShard
    }

    fn columns(&self) -> &'static [Column] {
        &[
            NAME,
            ("Workspaces", "integer", 0),
            ("Database", "string", 0),
            AGE,
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![
            cell_text(o, "/metadata/name"),
            o.pointer("/status/workspaces")
                .cloned()
                .unwrap_or(Value::from(0)),
            cell_text(o, "/spec/database"),
            age_cell(o),
        ]
    }
}
