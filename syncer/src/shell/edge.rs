//! The syncer's writes to its cluster: server-side applies as `trellis-syncer` (forced: these
//! objects are the syncer's alone; deterministic names make a repeated apply a no-op, never a
//! duplicate), and deletions only of objects it labelled for a Placement the hub no longer
//! has ([`orphans`]).

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::resource::v1::ResourceClaimTemplate;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde::Serialize;

use crate::naming::{owned_selector, PLACEMENT_LABEL};
use crate::render::Rendered;
use crate::FIELD_MANAGER;

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

async fn apply<K>(api: &Api<K>, object: &K) -> kube::Result<()>
where
    K: kube::Resource + Clone + Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    api.patch(&name, &apply_params(), &Patch::Apply(object))
        .await?;
    Ok(())
}

/// Applies everything `rendered` holds, then removes claim templates of older renderings
/// (after the Deployment names the new one: claims already made from an old template belong
/// to their pods and stay).
pub async fn apply_rendered(
    edge: &kube::Client,
    rendered: &Rendered,
    target: &str,
) -> kube::Result<()> {
    let namespace = rendered.namespace.metadata.name.clone().unwrap_or_default();
    apply(&Api::<Namespace>::all(edge.clone()), &rendered.namespace).await?;
    let templates: Api<ResourceClaimTemplate> = Api::namespaced(edge.clone(), &namespace);
    if let Some(template) = &rendered.claim_template {
        apply(&templates, template).await?;
    }
    apply(
        &Api::<Deployment>::namespaced(edge.clone(), &namespace),
        &rendered.deployment,
    )
    .await?;
    apply(
        &Api::<Service>::namespaced(edge.clone(), &namespace),
        &rendered.service,
    )
    .await?;
    if let Some(template) = &rendered.claim_template {
        let placement = rendered
            .deployment
            .labels()
            .get(PLACEMENT_LABEL)
            .cloned()
            .unwrap_or_default();
        let selector = format!("{},{PLACEMENT_LABEL}={placement}", owned_selector(target));
        for old in templates
            .list(&ListParams::default().labels(&selector))
            .await?
        {
            if old.metadata.name != template.metadata.name {
                templates
                    .delete(&old.name_any(), &DeleteParams::default())
                    .await?;
            }
        }
    }
    Ok(())
}

/// Deletes what this syncer made for the Placement `placement` in `namespace`.
pub async fn remove(
    edge: &kube::Client,
    namespace: &str,
    placement: &str,
    target: &str,
    dra: bool,
) -> kube::Result<()> {
    let selector = format!("{},{PLACEMENT_LABEL}={placement}", owned_selector(target));
    let by_label = ListParams::default().labels(&selector);
    let gone = |r: kube::Result<()>| match r {
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        other => other,
    };
    let services: Api<Service> = Api::namespaced(edge.clone(), namespace);
    for s in services.list(&by_label).await? {
        gone(
            services
                .delete(&s.name_any(), &DeleteParams::default())
                .await
                .map(|_| ()),
        )?;
    }
    let deployments: Api<Deployment> = Api::namespaced(edge.clone(), namespace);
    for d in deployments.list(&by_label).await? {
        gone(
            deployments
                .delete(&d.name_any(), &DeleteParams::background())
                .await
                .map(|_| ()),
        )?;
    }
    if dra {
        let templates: Api<ResourceClaimTemplate> = Api::namespaced(edge.clone(), namespace);
        for t in templates.list(&by_label).await? {
            gone(
                templates
                    .delete(&t.name_any(), &DeleteParams::default())
                    .await
                    .map(|_| ()),
            )?;
        }
    }
    Ok(())
}

/// (namespace, Placement) of each of `objects` (this syncer's, by their labels) made for a
/// Placement not in `assigned`.
pub fn orphans<'a, K: kube::Resource + 'a>(
    objects: impl IntoIterator<Item = &'a K>,
    assigned: &BTreeSet<String>,
) -> BTreeSet<(String, String)> {
    objects
        .into_iter()
        .filter_map(|o| {
            let placement = o.meta().labels.as_ref()?.get(PLACEMENT_LABEL)?;
            (!assigned.contains(placement)).then(|| {
                (
                    o.meta().namespace.clone().unwrap_or_default(),
                    placement.clone(),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_objects_of_placements_no_longer_assigned_are_orphans() {
        let deployment = |ns: &str, placement: Option<&str>| -> Deployment {
            let labels = placement.map(|p| json!({"trellis.dev/placement": p}));
            serde_json::from_value(json!({
                "metadata": {"name": "d", "namespace": ns, "labels": labels},
                "spec": {"selector": {}, "template": {}},
            }))
            .expect("deployment")
        };
        let objects = [
            deployment("a", Some("kept")),
            deployment("a", Some("gone")),
            deployment("b", Some("gone")),
            deployment("c", None),
        ];
        let assigned = BTreeSet::from(["kept".to_string()]);
        let got: Vec<(String, String)> = orphans(objects.iter(), &assigned).into_iter().collect();
        assert_eq!(
            got,
            vec![
                ("a".to_string(), "gone".to_string()),
                ("b".to_string(), "gone".to_string())
            ]
        );
        // With nothing assigned everything labelled is an orphan: which is why a pass runs
        // only once the hub's Placements have been listed.
        assert_eq!(orphans(objects.iter(), &BTreeSet::new()).len(), 3);
    }
}
