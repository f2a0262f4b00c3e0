//! The legacy core group (`v1`): the kinds every workspace serves at `/api/v1`.

mod config_map;
mod event;
mod namespace;
mod secret;
mod service_account;

pub use config_map::ConfigMap;
pub use event::Event;
pub(crate) use event::{cells as event_cells, COLUMNS as EVENT_COLUMNS};
pub use namespace::{Namespace, FINALIZER as NAMESPACE_FINALIZER};
pub use secret::Secret;
pub use service_account::ServiceAccount;

use super::SchemeBuilder;

pub const GROUP: &str = "";

pub fn install(scheme: &mut SchemeBuilder) {
    scheme.add(Namespace);
    scheme.add(ConfigMap);
    scheme.add(Secret);
    scheme.add(ServiceAccount);
    scheme.add(Event);
}
