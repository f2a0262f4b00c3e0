//! The hub: the assembly of Trellis' API groups and controllers that `trellis start` runs
//! (`ServerBuilder::hub`). Another server (a test's, the edge
//! simulator's) is assembled from other lists.

use crate::controllers::{self, Wire};
use crate::kinds::{self, Install};

/// The groups the hub serves.
pub const GROUPS: &[Install] = &[
    kinds::core::install,
    kinds::events::install,
    kinds::coordination::install,
    kinds::rbac::install,
    kinds::apiextensions::install,
    kinds::tenancy::install,
    kinds::trellis_core::install,
    kinds::authorization::install,
    kinds::authentication::install,
    kinds::compute::install,
    kinds::serving::install,
];

/// The controllers the hub runs (on its leader replica).
pub const CONTROLLERS: &[Wire] = &[
    controllers::tenancy,
    controllers::rbac_aggregation::wire,
    controllers::crd_establishing,
    controllers::namespace_finalization,
    controllers::service_account::wire,
    controllers::garbage_collection,
    controllers::placement::wire,
];

/// The hub's scheme.
pub fn scheme() -> crate::registry::Scheme {
    // The hub's kinds are this crate's own: a failure is a bug caught by every test.
    crate::registry::Scheme::of(GROUPS).unwrap_or_else(|e| panic!("the hub's scheme: {e}"))
}

/// The hub's scheme, built once per process for unit tests.
#[cfg(test)]
pub fn test_hub() -> &'static crate::registry::Scheme {
    static HUB: std::sync::LazyLock<crate::registry::Scheme> = std::sync::LazyLock::new(scheme);
    &HUB
}

/// The OpenAPI documents of the hub's kinds, built once per process for unit tests.
#[cfg(test)]
pub fn test_openapi() -> &'static crate::endpoints::openapi::Documents {
    static DOCS: std::sync::LazyLock<crate::endpoints::openapi::Documents> =
        std::sync::LazyLock::new(|| {
            crate::endpoints::openapi::build(
                test_hub().resources(),
                test_hub().definitions().clone(),
            )
        });
    &DOCS
}

/// The hub's default roles, for unit tests.
#[cfg(test)]
pub fn test_default_roles() -> &'static crate::security::authz::defaults::DefaultRoles {
    static ROLES: std::sync::LazyLock<crate::security::authz::defaults::DefaultRoles> =
        std::sync::LazyLock::new(|| {
            crate::security::authz::defaults::DefaultRoles::new(test_hub().resources())
        });
    &ROLES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenancy_kinds_live_in_the_root_shard() {
        use crate::kinds::Home;
        let hub = test_hub();
        let home = |g, v, p| hub.lookup(g, v, p).map(|rt| rt.home());
        assert_eq!(
            home("tenancy.trellis.dev", "v1alpha1", "workspaces"),
            Some(Home::RootShard)
        );
        assert_eq!(
            home("core.trellis.dev", "v1alpha1", "logicalclusters"),
            Some(Home::RootShard)
        );
        assert_eq!(home("", "v1", "configmaps"), Some(Home::Workspace));
        assert_eq!(
            home("coordination.k8s.io", "v1", "leases"),
            Some(Home::Workspace)
        );
    }

    #[test]
    fn admins_manage_roles_and_bindings_in_their_namespaces() {
        let admin = test_default_roles()
            .cluster_roles()
            .iter()
            .find(|r| r["metadata"]["name"] == "system:aggregate-to-admin")
            .expect("the admin aggregation role");
        let rules = admin["rules"].as_array().expect("rules");
        for resource in ["roles", "rolebindings"] {
            assert!(
                rules.iter().any(|rule| {
                    rule["apiGroups"] == serde_json::json!(["rbac.authorization.k8s.io"])
                        && rule["resources"]
                            .as_array()
                            .is_some_and(|r| r.iter().any(|r| r == resource))
                        && rule["verbs"] == serde_json::json!(["*"])
                }),
                "admin manages {resource}: {rules:?}"
            );
        }
    }
}
