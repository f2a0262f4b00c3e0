//! `events.k8s.io/v1`: the newer Event API, stored with the core Events.

mod event;

pub use event::Event;

use super::SchemeBuilder;

pub const GROUP: &str = "events.k8s.io";

pub fn install(scheme: &mut SchemeBuilder) {
    scheme.add(Event);
}
