//! From a placement [`Decision`] to Placement objects: the complete set of Placements one
//! ModelDeployment should have (what to write), and the ones to delete now.
//!
//! Naming: a Placement is named `<tenant cluster id>-<namespace>-<name>-<hash>`, where the
//! hash is ten hex digits of FNV-1a over the cluster id, namespace, name and uid of the
//! deployment, and the readable part is cut so the whole fits 63 characters (a label value:
//! the syncer labels what it renders with it). The hash keeps names apart that the readable
//! part alone would join (`ml-a` + `b` and `ml` + `a-b`) and gives a deployment recreated
//! under the same name new Placements. A deployment has one Placement per target; each lives
//! in namespace `target-<target name>` of the target's provider workspace, labelled with the
//! target, the tenant cluster and the deployment uid.
//!
//! The spec is the deployment's model, runtime and per-replica resources, with the GPU class
//! resolved to the product the engine chose on that target (a MIG share renders its product
//! only: the API's classes select whole GPUs today).
//!
//! Bookings: a Placement whose replicas the decision changed gets the decision's booking id;
//! an unchanged one keeps the id it has, so its syncer's `accounted` report still matches.
//!
//! Removal, the failover rule: a Placement the decision no longer wants is *obsolete*.
//! - With `failover.purgeMode: Directly` it is deleted at once.
//! - With `Gracefully` it is deleted once every Placement the deployment keeps is
//!   `Available` with all its replicas ready, or once `gracePeriodSeconds` have passed since
//!   it became obsolete. Until then it is kept running as it is, marked
//!   `trellis.dev/retiring-since: <time>` (so the grace period survives controller restarts,
//!   and the next snapshot no longer counts it as where the deployment runs). A scale-down
//!   whose remaining Placements are all ready therefore deletes at once.
//! - When the decision is `NoAlternativeCapacity`, nothing is deleted and nothing starts
//!   retiring: replicas that could not move stay, and so does everything else.
//! - When the decision could not resolve the deployment (no pool, class or tenant entry, or
//!   a spec the snapshot refused: no tenant in the decision), its Placements are kept exactly
//!   as they are; a spec that cannot be placed is not rendered either.
//!
//! A reduction of replicas on a kept target is written at once (a lost target's syncer only
//! sees it when it is back, by which time the moved replicas run elsewhere).

use std::collections::{BTreeMap, BTreeSet};

use trellis_apis::compute::placement::{
    conditions as placement_conditions, target_namespace, ORIGIN_CLUSTER_LABEL, ORIGIN_UID_LABEL,
    RETIRING_SINCE_ANNOTATION, SYNC_TARGET_LABEL,
};
use trellis_apis::compute::{
    Placement, PlacementGPU, PlacementOrigin, PlacementResources, PlacementSpec,
};
use trellis_apis::serving::{ModelDeployment, PurgeMode};
use trellis_placement::{Decision, Outcome, Share};

use super::keys::split_key;
use super::snapshot::is_retiring;
use super::time::{parse_rfc3339, rfc3339};

/// The longest Placement name: a label value.
pub const NAME_MAX: usize = 63;
/// Hex digits of the hash that ends every Placement name.
const HASH_LEN: usize = 10;

/// The deployment a plan is for, with the workspace it lives in.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The tenant workspace's path, e.g. `root:acme:ml`.
    pub workspace: &'a str,
    /// The tenant workspace's logical cluster id.
    pub cluster: &'a str,
    pub deployment: &'a ModelDeployment,
}

/// Where a Placement is: provider workspace, target namespace, name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PlacementRef {
    pub workspace: String,
    pub namespace: String,
    pub name: String,
}

impl PlacementRef {
    /// The reference of a Placement read from `workspace`.
    pub fn of(workspace: &str, placement: &Placement) -> Self {
        Self {
            workspace: workspace.to_string(),
            namespace: placement.metadata.namespace.clone().unwrap_or_default(),
            name: placement.metadata.name.clone().unwrap_or_default(),
        }
    }
}

/// One Placement as it should be.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// The provider workspace it lives in.
    pub workspace: String,
    /// Name, namespace, labels, annotations and spec, nothing else: apply it with the
    /// controller's field manager (server-side apply), which also drops a retiring
    /// annotation the object no longer carries.
    pub placement: Placement,
    /// Whether it differs from the Placement as read (or none exists): only these need
    /// writing.
    pub changed: bool,
    /// An obsolete Placement kept running until its replacements are available.
    pub retiring: bool,
}

impl Desired {
    pub fn reference(&self) -> PlacementRef {
        PlacementRef::of(&self.workspace, &self.placement)
    }
}

/// What the controller writes for one deployment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Every Placement the deployment should have, in target order.
    pub apply: Vec<Desired>,
    /// Placements to delete now.
    pub delete: Vec<PlacementRef>,
    /// When the earliest retiring Placement's grace period runs out: look again then.
    pub requeue_at: Option<i64>,
}

impl Plan {
    /// The Placements that need writing.
    pub fn writes(&self) -> impl Iterator<Item = &Desired> {
        self.apply.iter().filter(|d| d.changed)
    }
}

/// The Placement name of a deployment (see the module notes).
pub fn placement_name(cluster: &str, namespace: &str, name: &str, uid: &str) -> String {
    let hash = fnv1a64(&[cluster, namespace, name, uid]);
    let suffix = format!("{:0width$x}", hash >> (64 - 4 * HASH_LEN), width = HASH_LEN);
    let readable = format!("{cluster}-{namespace}-{name}");
    let budget = NAME_MAX - 1 - HASH_LEN;
    let cut = readable
        .char_indices()
        .nth(budget)
        .map_or(readable.as_str(), |(i, _)| &readable[..i]);
    let prefix = cut.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if prefix.is_empty() {
        suffix
    } else {
        format!("{prefix}-{suffix}")
    }
}

/// FNV-1a, 64 bits, over the parts with a NUL between them: stable across Rust releases and
/// processes, unlike the standard library's hasher.
fn fnv1a64(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        let separator: &[u8] = if i == 0 { &[] } else { &[0] };
        for byte in separator.iter().chain(part.as_bytes()) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

/// The plan for one deployment: its decision rendered against `previous`, the Placements of
/// this deployment as read (others are ignored), at `now`.
pub fn render(
    origin: &Origin<'_>,
    decision: &Decision,
    previous: &[(&str, &Placement)],
    now: i64,
) -> Plan {
    let md = origin.deployment;
    let uid = md.metadata.uid.as_deref().unwrap_or_default();
    let current: BTreeMap<PlacementRef, &Placement> = previous
        .iter()
        .filter(|(_, p)| p.spec.origin.uid == uid && p.metadata.deletion_timestamp.is_none())
        .map(|(ws, p)| (PlacementRef::of(ws, p), *p))
        .collect();
    let mut plan = Plan::default();

    if decision.tenant.is_none() {
        // Unresolved or refused: everything stays exactly as it is.
        plan.apply = current
            .iter()
            .map(|(at, p)| Desired {
                workspace: at.workspace.clone(),
                placement: clean_copy(p, None),
                changed: false,
                retiring: is_retiring(p),
            })
            .collect();
        return plan;
    }

    let name = placement_name(
        origin.cluster,
        md.metadata.namespace.as_deref().unwrap_or_default(),
        md.metadata.name.as_deref().unwrap_or_default(),
        uid,
    );
    for (key, share) in &decision.assignments {
        let Some((workspace, target)) = split_key(key) else {
            continue;
        };
        let at = PlacementRef {
            workspace: workspace.to_string(),
            namespace: target_namespace(target),
            name: name.clone(),
        };
        let existing = current.get(&at).copied();
        let booking = decision
            .bookings
            .get(key)
            .map(|b| i64::try_from(*b).unwrap_or(i64::MAX))
            .or(existing.map(|p| p.spec.booking))
            .unwrap_or(0);
        let mut placement = Placement::new(&name, spec_for(origin, share, booking));
        placement.metadata.namespace = Some(at.namespace.clone());
        placement.metadata.labels = Some(BTreeMap::from([
            (SYNC_TARGET_LABEL.to_string(), target.to_string()),
            (ORIGIN_CLUSTER_LABEL.to_string(), origin.cluster.to_string()),
            (ORIGIN_UID_LABEL.to_string(), uid.to_string()),
        ]));
        let changed = existing.is_none_or(|e| differs(e, &placement));
        plan.apply.push(Desired {
            workspace: at.workspace,
            placement,
            changed,
            retiring: false,
        });
    }

    let wanted: BTreeSet<PlacementRef> = plan.apply.iter().map(Desired::reference).collect();
    let replacements_ready = plan.apply.iter().all(|d| {
        current
            .get(&d.reference())
            .is_some_and(|p| ready_for(p, &d.placement))
    });
    let failover = &md.spec.failover;
    for (at, p) in &current {
        if wanted.contains(at) {
            continue;
        }
        if decision.outcome == Outcome::NoAlternativeCapacity {
            plan.apply.push(Desired {
                workspace: at.workspace.clone(),
                placement: clean_copy(p, None),
                changed: false,
                retiring: is_retiring(p),
            });
            continue;
        }
        let since = retiring_since(p).unwrap_or(now);
        let deadline = since.saturating_add(failover.grace_period_seconds.max(0));
        let gone =
            failover.purge_mode == PurgeMode::Directly || replacements_ready || now >= deadline;
        if gone {
            plan.delete.push(at.clone());
            continue;
        }
        plan.apply.push(Desired {
            workspace: at.workspace.clone(),
            placement: clean_copy(p, Some(since)),
            changed: !is_retiring(p),
            retiring: true,
        });
        plan.requeue_at = Some(plan.requeue_at.map_or(deadline, |r| r.min(deadline)));
    }
    plan
}

/// Every Placement of a deployment that is being deleted: all of them go at once.
pub fn teardown(previous: &[(&str, &Placement)]) -> Vec<PlacementRef> {
    previous
        .iter()
        .filter(|(_, p)| p.metadata.deletion_timestamp.is_none())
        .map(|(ws, p)| PlacementRef::of(ws, p))
        .collect()
}

/// Placements whose deployment no longer exists: `live` holds the uids of every
/// ModelDeployment in every tenant workspace.
pub fn orphans(placements: &[(&str, &Placement)], live: &BTreeSet<&str>) -> Vec<PlacementRef> {
    placements
        .iter()
        .filter(|(_, p)| p.metadata.deletion_timestamp.is_none())
        .filter(|(_, p)| !live.contains(p.spec.origin.uid.as_str()))
        .map(|(ws, p)| PlacementRef::of(ws, p))
        .collect()
}

fn spec_for(origin: &Origin<'_>, share: &Share, booking: i64) -> PlacementSpec {
    let md = origin.deployment;
    PlacementSpec {
        origin: PlacementOrigin {
            workspace: origin.workspace.to_string(),
            cluster: origin.cluster.to_string(),
            namespace: md.metadata.namespace.clone().unwrap_or_default(),
            name: md.metadata.name.clone().unwrap_or_default(),
            uid: md.metadata.uid.clone().unwrap_or_default(),
            generation: md.metadata.generation.unwrap_or(0),
        },
        model: md.spec.model.clone(),
        runtime: md.spec.runtime.clone(),
        resources: PlacementResources {
            gpu: PlacementGPU {
                product_name: share.product.product.clone(),
                count: md.spec.resources.gpu.count,
            },
            cpu: md.spec.resources.cpu.clone(),
            memory: md.spec.resources.memory.clone(),
        },
        replicas: i32::try_from(share.replicas).unwrap_or(i32::MAX),
        booking,
    }
}

/// Whether the Placement as read needs writing to become `wanted`.
fn differs(current: &Placement, wanted: &Placement) -> bool {
    let labels = current.metadata.labels.clone().unwrap_or_default();
    current.spec != wanted.spec
        || wanted
            .metadata
            .labels
            .iter()
            .flatten()
            .any(|(k, v)| labels.get(k) != Some(v))
        || is_retiring(current)
}

/// Whether a Placement as read serves all the replicas `wanted` asks of it.
fn ready_for(current: &Placement, wanted: &Placement) -> bool {
    current.status.as_ref().is_some_and(|s| {
        s.ready_replicas >= wanted.spec.replicas
            && s.conditions
                .iter()
                .any(|c| c.type_ == placement_conditions::AVAILABLE && c.status == "True")
    })
}

/// When a Placement started retiring, from its annotation.
pub fn retiring_since(placement: &Placement) -> Option<i64> {
    placement
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RETIRING_SINCE_ANNOTATION))
        .and_then(|t| parse_rfc3339(t))
}

/// The Placement's own fields only (for an apply), retiring since `since` when given.
fn clean_copy(placement: &Placement, since: Option<i64>) -> Placement {
    let mut copy = Placement::new(
        placement.metadata.name.as_deref().unwrap_or_default(),
        placement.spec.clone(),
    );
    copy.metadata.namespace = placement.metadata.namespace.clone();
    copy.metadata.labels = placement.metadata.labels.clone();
    let retiring = since.or_else(|| retiring_since(placement));
    if let Some(since) = retiring {
        copy.metadata.annotations = Some(BTreeMap::from([(
            RETIRING_SINCE_ANNOTATION.to_string(),
            rfc3339(since),
        )]));
    }
    copy
}

#[cfg(test)]
mod tests {
    use trellis_placement::{Assignments, ProductId};

    use super::*;
    use crate::fleet::fixtures::*;

    fn share(replicas: u32) -> Share {
        Share {
            product: ProductId::whole("NVIDIA H200"),
            replicas,
        }
    }

    fn decision(outcome: Outcome, on: &[(&str, u32)], bookings: &[(&str, u64)]) -> Decision {
        let key = |t: &str| format!("{PROVIDER}/{t}");
        Decision {
            uid: "uid-llama".into(),
            outcome,
            message: String::new(),
            assignments: on
                .iter()
                .map(|(t, r)| (key(t), share(*r)))
                .collect::<Assignments>(),
            bookings: bookings.iter().map(|(t, b)| (key(t), *b)).collect(),
            tenant: Some("root:acme".into()),
            quota_gpus: 0,
            borrowed_gpus: 0,
        }
    }

    fn origin(md: &ModelDeployment) -> Origin<'_> {
        Origin {
            workspace: TENANT,
            cluster: CLUSTER,
            deployment: md,
        }
    }

    fn pairs(placements: &[Placement]) -> Vec<(&str, &Placement)> {
        placements.iter().map(|p| (PROVIDER, p)).collect()
    }

    #[test]
    fn names_are_readable_unique_and_fit_a_label() {
        let name = placement_name(CLUSTER, "ml", "llama", "uid-llama");
        assert!(name.starts_with("2cynbfy2m0wtjqcs-ml-llama-"), "{name}");
        assert_eq!(name.len(), "2cynbfy2m0wtjqcs-ml-llama-".len() + HASH_LEN);
        assert_eq!(name, placement_name(CLUSTER, "ml", "llama", "uid-llama"));
        // The readable parts alone would collide; the hash keeps them apart.
        assert_ne!(
            placement_name(CLUSTER, "ml-a", "b", "u1"),
            placement_name(CLUSTER, "ml", "a-b", "u1")
        );
        // Recreated under the same name: a new uid, new Placements.
        assert_ne!(name, placement_name(CLUSTER, "ml", "llama", "uid-other"));
        let long = placement_name(CLUSTER, "inference-production", &"x".repeat(200), "u");
        assert_eq!(long.len(), NAME_MAX);
        let cut_at_dash = placement_name(CLUSTER, "a", &format!("{}-b", "y".repeat(33)), "u");
        assert!(!cut_at_dash.contains("--"), "{cut_at_dash}");
        assert!(long.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }

    #[test]
    fn a_decision_renders_one_placement_per_target() {
        let md = llama(3, 2);
        let origin = origin(&md);
        let d = decision(
            Outcome::Scheduled,
            &[("eu-1", 2), ("eu-2", 1)],
            &[("eu-1", 11), ("eu-2", 12)],
        );
        let plan = render(&origin, &d, &[], NOW);
        assert!(plan.delete.is_empty() && plan.requeue_at.is_none());
        assert_eq!(plan.writes().count(), 2);
        let first = &plan.apply[0];
        assert_eq!(first.workspace, PROVIDER);
        let p = &first.placement;
        assert_eq!(p.metadata.namespace.as_deref(), Some("target-eu-1"));
        assert_eq!(
            p.api_version.as_deref(),
            Some("compute.trellis.dev/v1alpha1")
        );
        let labels = p.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels[SYNC_TARGET_LABEL], "eu-1");
        assert_eq!(labels[ORIGIN_CLUSTER_LABEL], CLUSTER);
        assert_eq!(labels[ORIGIN_UID_LABEL], "uid-llama");
        assert_eq!(
            p.spec.origin,
            PlacementOrigin {
                workspace: TENANT.into(),
                cluster: CLUSTER.into(),
                namespace: "ml".into(),
                name: "llama".into(),
                uid: "uid-llama".into(),
                generation: 1,
            }
        );
        assert_eq!(p.spec.resources.gpu.product_name, "NVIDIA H200");
        assert_eq!(p.spec.resources.gpu.count, 2);
        assert_eq!(p.spec.model.uri, md.spec.model.uri);
        assert_eq!(p.spec.runtime.image, "vllm/vllm-openai:v0.9.1");
        assert_eq!((p.spec.replicas, p.spec.booking), (2, 11));
        assert_eq!(plan.apply[1].placement.spec.booking, 12);
    }

    #[test]
    fn unchanged_placements_keep_their_booking_and_need_no_write() {
        let md = llama(2, 2);
        let origin = origin(&md);
        let first = render(
            &origin,
            &decision(Outcome::Scheduled, &[("eu-1", 2)], &[("eu-1", 5)]),
            &[],
            NOW,
        );
        let stored: Vec<Placement> = first.apply.iter().map(|d| d.placement.clone()).collect();
        let again = render(
            &origin,
            &decision(Outcome::Scheduled, &[("eu-1", 2)], &[]),
            &pairs(&stored),
            NOW + 30,
        );
        assert_eq!(again.writes().count(), 0);
        assert_eq!(again.apply[0].placement.spec.booking, 5);
        assert!(again.delete.is_empty());
    }

    #[test]
    fn an_obsolete_placement_waits_for_its_replacement_unless_directly() {
        let mut md = llama(2, 2);
        let old = placement_on("eu-1", "uid-llama", 2, 3);
        let moved = decision(Outcome::Scheduled, &[("eu-2", 2)], &[("eu-2", 9)]);
        // Gracefully: kept, marked retiring, looked at again when the grace period ends.
        let plan = render(
            &origin(&md),
            &moved,
            &pairs(std::slice::from_ref(&old)),
            NOW,
        );
        assert!(plan.delete.is_empty());
        let retiring = &plan.apply[1];
        assert!(retiring.retiring && retiring.changed);
        assert_eq!(retiring_since(&retiring.placement), Some(NOW));
        assert_eq!(retiring.placement.spec, old.spec, "kept as it runs");
        assert_eq!(plan.requeue_at, Some(NOW + 600));

        // The replacement exists but is not ready: still waiting, no new write.
        let mut new = plan.apply[0].placement.clone();
        let old_retiring = retiring.placement.clone();
        let plan = render(
            &origin(&md),
            &decision(Outcome::Scheduled, &[("eu-2", 2)], &[]),
            &pairs(&[old_retiring.clone(), new.clone()]),
            NOW + 60,
        );
        assert!(plan.delete.is_empty() && plan.writes().count() == 0);

        // Available with both replicas ready: the old one goes.
        new.status = Some(available(2));
        let plan = render(
            &origin(&md),
            &decision(Outcome::Scheduled, &[("eu-2", 2)], &[]),
            &pairs(&[old_retiring.clone(), new.clone()]),
            NOW + 90,
        );
        assert_eq!(plan.delete, vec![PlacementRef::of(PROVIDER, &old)]);

        // Never available: the grace period ends it.
        new.status = None;
        let late = render(
            &origin(&md),
            &decision(Outcome::Scheduled, &[("eu-2", 2)], &[]),
            &pairs(&[old_retiring, new]),
            NOW + 600,
        );
        assert_eq!(late.delete.len(), 1);

        // Directly: at once.
        md.spec.failover.purge_mode = PurgeMode::Directly;
        let plan = render(
            &origin(&md),
            &moved,
            &pairs(std::slice::from_ref(&old)),
            NOW,
        );
        assert_eq!(plan.delete, vec![PlacementRef::of(PROVIDER, &old)]);
    }

    #[test]
    fn no_alternative_capacity_and_unresolved_decisions_remove_nothing() {
        let md = llama(3, 2);
        let origin = origin(&md);
        let on_1 = placement_on("eu-1", "uid-llama", 2, 3);
        let on_3 = placement_on("eu-3", "uid-llama", 1, 4);
        let stuck = decision(
            Outcome::NoAlternativeCapacity,
            &[("eu-1", 2), ("eu-2", 1)],
            &[("eu-2", 9)],
        );
        let plan = render(&origin, &stuck, &pairs(&[on_1.clone(), on_3.clone()]), NOW);
        assert!(plan.delete.is_empty());
        let kept: Vec<(&str, bool)> = plan
            .apply
            .iter()
            .map(|d| {
                (
                    d.placement
                        .metadata
                        .namespace
                        .as_deref()
                        .unwrap_or_default(),
                    d.retiring,
                )
            })
            .collect();
        assert_eq!(
            kept,
            vec![
                ("target-eu-1", false),
                ("target-eu-2", false),
                ("target-eu-3", false)
            ]
        );

        let mut unresolved = decision(Outcome::PoolNotFound, &[("eu-1", 2)], &[]);
        unresolved.tenant = None;
        let plan = render(&origin, &unresolved, &pairs(&[on_1, on_3]), NOW);
        assert!(plan.delete.is_empty() && plan.writes().count() == 0);
        assert_eq!(plan.apply.len(), 2);
    }

    #[test]
    fn teardown_and_orphans_name_what_to_delete() {
        let mine = placement_on("eu-1", "uid-llama", 1, 1);
        let stray = placement_on("eu-2", "uid-deleted", 1, 1);
        let stored = [mine.clone(), stray.clone()];
        let all = pairs(&stored);
        assert_eq!(teardown(&all[..1]), vec![PlacementRef::of(PROVIDER, &mine)]);
        let live = BTreeSet::from(["uid-llama"]);
        assert_eq!(
            orphans(&all, &live),
            vec![PlacementRef::of(PROVIDER, &stray)]
        );
    }
}
