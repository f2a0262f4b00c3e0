//! ClusterRoleBinding: checked on every write for escalation (the writer must hold its role's rules).

use async_trait::async_trait;
use k8s_openapi::api::rbac::v1;
use serde_json::Value;

use crate::kinds::{schema_of, Admission, Column, Grants, Kind, Names, SchemaSource};
use crate::machinery::status::Status;
use crate::security::authz::escalation::{self, Grant};

pub struct ClusterRoleBinding;

#[async_trait]
impl Kind for ClusterRoleBinding {
    fn names(&self) -> Names {
        Names::cluster(
            super::GROUP,
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
        )
    }

    fn schema(&self) -> SchemaSource {
        SchemaSource::Upstream(schema_of::<v1::ClusterRoleBinding>)
    }

    async fn admit(
        &self,
        admission: &Admission<'_, '_>,
        object: &mut Value,
        _old: Option<&Value>,
    ) -> Result<(), Status> {
        escalation::check(admission, object, Grant::Binding)
    }

    fn columns(&self) -> &'static [Column] {
        super::BINDING_COLUMNS
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        super::binding_cells(o)
    }

    fn grants(&self) -> Grants {
        Grants::default()
    }

    fn protobuf(&self) -> Option<crate::machinery::protobuf::Converter> {
        Some(crate::machinery::protobuf::cluster_role_binding)
    }
}
