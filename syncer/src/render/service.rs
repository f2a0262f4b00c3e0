//! The Service of a Placement: ClusterIP, the runtime's port, selecting the Placement's pods;
//! its cluster DNS name is the endpoint the Placement's status reports.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use trellis_apis::compute::Placement;

use crate::naming::{name_of, PLACEMENT_LABEL};

/// The port's name, on the Service and the container.
pub const PORT_NAME: &str = "http";

pub fn render(placement: &Placement, namespace: &str, target: &str) -> Service {
    let name = name_of(placement);
    Service {
        metadata: super::metadata(placement, name.clone(), namespace, target),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some([(PLACEMENT_LABEL.to_string(), name)].into()),
            ports: Some(vec![ServicePort {
                name: Some(PORT_NAME.into()),
                port: placement.spec.runtime.port,
                target_port: Some(IntOrString::String(PORT_NAME.into())),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// Where a Placement is served: `http://<service>.<namespace>.svc.cluster.local:<port>`.
pub fn endpoint(service: &str, namespace: &str, port: i32) -> String {
    format!("http://{service}.{namespace}.svc.cluster.local:{port}")
}
