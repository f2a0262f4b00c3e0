//! CustomResourceDefinition: validated (names, versions, schemas) and completed on create as
//! kube-apiserver does (`registry::crd`).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1;
use serde_json::Value;

use crate::kinds::Subresources;
use crate::kinds::{schema_of, Column, Kind, Names, SchemaSource};
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

    fn columns(&self) -> &'static [Column] {
        crate::kinds::NAME_CREATED_AT
    }

    fn cells(&self, object: &Value) -> Vec<Value> {
        crate::kinds::name_created_at_cells(object)
    }

    fn validate(&self, object: &Value, old: Option<&Value>) -> Vec<StatusCause> {
        crate::crds::rules::validate(object, old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// kubectl shows CRDs as kube-apiserver's default table does: NAME and CREATED AT.
    #[test]
    fn printed_with_their_creation_time() {
        let crd = json!({"metadata": {"name": "widgets.example.com",
            "creationTimestamp": "2026-12-05T18:00:00Z"}});
        let names: Vec<_> = CustomResourceDefinition
            .columns()
            .iter()
            .map(|c| (c.0, c.1))
            .collect();
        assert_eq!(names, [("Name", "string"), ("Created At", "date")]);
        assert_eq!(
            CustomResourceDefinition.cells(&crd),
            [json!("widgets.example.com"), json!("2026-12-05T18:00:00Z")]
        );
    }
}
