//! DeviceClass: a named kind of device (a driver and CEL selectors) that claims ask for;
//! cluster-scoped, installed by the driver (`gpu.nvidia.com` in DRA mode).

use k8s_openapi::api::resource::v1;
use trellis_server::kinds::{schema_of, Grants, Kind, Names, SchemaSource, READ};

pub struct DeviceClass;

impl Kind for DeviceClass {
    fn names(&self) -> Names {
        Names::cluster(super::GROUP, "v1", "DeviceClass", "deviceclasses")
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Upstream(schema_of::<v1::DeviceClass>)
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn grants(&self) -> Grants {
        Grants {
            view: READ,
            edit: &[],
            admin: &[],
        }
    }
}
