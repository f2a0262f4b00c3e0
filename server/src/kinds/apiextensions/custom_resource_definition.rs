//! CustomResourceDefinition: validated (names, versions, schemas) and completed on create as
//! kube-apiserver does (`registry::crd`).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1;
use serde_json::Value;

use crate::kinds::Subresources;
use crate::kinds::{schema_of, Kind, Names, SchemaSource};
use crate::machinery::status::StatusCause;

pub struct CustomResourceDefinition;

impl Kind for CustomResourceDefinition {
    fn names(&self) -> Names {
        Names {
            short_names: &["crd", "crds"],
            categories: &["api-extensions"],
            ..Names::cluster(
                super::GROUP,
                "v1",
                "CustomResourceDefinition",
                "customresourcedefinitions",
            )
        }
    }

    fn subresources(&self) -> Subresources {
        Subresources::with_status()
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Upstream(schema_of::<v1::CustomResourceDefinition>)
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare(&self, object: &mut Value) {
        crate::crds::rules::apply_defaults(object)
    }

    fn prepare_create(&self, object: &mut Value) {
        crate::crds::rules::prepare_create(object)
    }

    fn validate(&self, object: &Value, old: Option<&Value>) -> Vec<StatusCause> {
        crate::crds::rules::validate(object, old)
    }
}
