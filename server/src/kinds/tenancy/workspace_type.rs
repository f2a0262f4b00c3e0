//! WorkspaceType: a kind of workspace, where it may be created and what it may contain.

use crate::kinds::{schema_of, Grants, Home, Kind, Names, SchemaSource, READ};

pub struct WorkspaceType;

impl Kind for WorkspaceType {
    fn names(&self) -> Names {
        Names::of::<trellis_apis::tenancy::WorkspaceType>()
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Own(schema_of::<trellis_apis::tenancy::WorkspaceType>)
    }

    fn home(&self) -> Home {
        Home::RootShard
    }

    fn grants(&self) -> Grants {
        Grants {
            view: READ,
            ..Grants::default()
        }
    }
}
