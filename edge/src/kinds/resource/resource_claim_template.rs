//! ResourceClaimTemplate: what a pod's claim looks like; a ResourceClaim is made of it for each
//! pod that names it (`spec.resourceClaims[].resourceClaimTemplateName`).

use k8s_openapi::api::resource::v1;
use trellis_server::kinds::{schema_of, Grants, Kind, Names, SchemaSource, READ, WRITE};

pub struct ResourceClaimTemplate;

impl Kind for ResourceClaimTemplate {
    fn names(&self) -> Names {
        Names::namespaced(
            super::GROUP,
            "v1",
            "ResourceClaimTemplate",
            "resourceclaimtemplates",
        )
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Upstream(schema_of::<v1::ResourceClaimTemplate>)
    }

    fn grants(&self) -> Grants {
        Grants {
            view: READ,
            edit: WRITE,
            admin: &[],
        }
    }
}
