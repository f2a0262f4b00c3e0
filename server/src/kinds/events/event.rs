//! Event (`events.k8s.io/v1`): stored as a core Event and converted on the way in and out
//! (`registry::conversion`), so both APIs show the same objects.

use k8s_openapi::api::events::v1;

use crate::kinds::{schema_of, Grants, Kind, Names, SchemaSource, READ, WRITE};

pub struct Event;

impl Kind for Event {
    fn names(&self) -> Names {
        Names::namespaced(super::GROUP, "v1", "Event", "events")
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Upstream(schema_of::<v1::Event>)
    }

    fn stored_as(&self) -> Option<&'static str> {
        Some("core/events")
    }

    fn grants(&self) -> Grants {
        Grants {
            view: READ,
            edit: WRITE,
            admin: &[],
        }
    }
}
