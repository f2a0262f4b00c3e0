//! The core (`v1`) kinds of a cluster that the hub does not serve: Pods, Nodes and Services.
//! Installed next to the server's own core group (namespaces, config maps, secrets, service
//! accounts, events): one group served from two install lists.

mod node;
pub mod pod;
mod service;

pub use node::Node;
pub use pod::Pod;
pub use service::Service;

use trellis_server::kinds::SchemeBuilder;

pub fn install(scheme: &mut SchemeBuilder) {
    scheme.add(Pod);
    scheme.add(Node);
    scheme.add(Service);
}
