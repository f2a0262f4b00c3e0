//! LogicalCluster: the identity of a workspace (its stable id and path), written by the
//! workspace controller.

use crate::kinds::Subresources;
use crate::kinds::{schema_of, Home, Kind, Names, SchemaSource};

pub struct LogicalCluster;

impl Kind for LogicalCluster {
    fn names(&self) -> Names {
        Names::of::<trellis_apis::core::LogicalCluster>()
    }

    fn subresources(&self) -> Subresources {
        Subresources::with_status()
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Own(schema_of::<trellis_apis::core::LogicalCluster>)
    }

    fn home(&self) -> Home {
        Home::RootShard
    }
}
