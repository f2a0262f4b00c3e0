//! One placement pass over a snapshot of pools, targets and deployments: the order of the steps and
//! the per-deployment decision that ties quota, filter, capacity, assignment and the ledger together.
//!
//! Order of a pass ([`place`]):
//! 1. The ledger releases holds the targets' inventories now account for.
//! 2. The free-GPU view is built: reported histograms minus outstanding holds.
//! 3. Every deployment's running replicas are charged to its tenant's quota (up to its wanted
//!    count: a scale-down frees quota at once).
//! 4. Deployments are served one by one in creation order. Each keeps the running replicas that
//!    may stay; shrinks, or reserves quota for its added replicas and looks for room for them
//!    (all or nothing); moves replicas that must leave a target (as many as find room); and books
//!    what it added in the ledger and the view, so the next deployment sees those GPUs taken.
//!
//! Serving in creation order means an older deployment is never starved by newer ones, for quota
//! and capacity alike; a deployment that does not fit takes nothing, so younger ones may still
//! fit in what is left (no head-of-line blocking).

use std::collections::{BTreeMap, HashMap};

use crate::assign::{self, Slot};
use crate::capacity::{replicas_that_fit, Availability};
use crate::decision::{Decision, Outcome};
use crate::deployment::{creation_order, Assignments, Deployment, Share};
use crate::filter::{self, Rejection, Scope};
use crate::inventory::ProductId;
use crate::ledger::Ledger;
use crate::pool::GpuPool;
use crate::quota::{Admitted, QuotaBook, QuotaRef};
use crate::target::{HealthPolicy, Target};

/// Everything one pass decides over, as the controller read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Seconds since the Unix epoch.
    pub now: i64,
    pub health: HealthPolicy,
    pub pools: Vec<GpuPool>,
    pub targets: Vec<Target>,
    pub deployments: Vec<Deployment>,
    /// Quota in use by deployments this snapshot leaves out: a pass over only the deployments
    /// that changed charges the others here, as a whole pass would charge their running
    /// replicas.
    pub charged: Vec<Charge>,
}

/// GPUs of a pool's class in use by a tenant's deployment that the pass does not decide on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Charge {
    /// The pool's name, as [`Deployment::pool`] names it.
    pub pool: String,
    pub class: String,
    /// The tenant's workspace, as [`Deployment::workspace`].
    pub workspace: String,
    pub gpus: u64,
}

/// Decides every deployment of the snapshot, in creation order, and books what it adds in the
/// ledger. Returns one decision per deployment, in that order.
pub fn place(snapshot: &Snapshot, ledger: &mut Ledger) -> Vec<Decision> {
    let world = World::new(snapshot);
    world.catch_up(ledger);
    let mut quotas = QuotaBook::new(&snapshot.pools);
    for charge in &snapshot.charged {
        if let Ok(at) = world.quota_ref(&charge.pool, &charge.class, &charge.workspace) {
            quotas.charge(at, charge.gpus);
        }
    }
    let order = world.in_creation_order();
    let resolved: Vec<Result<QuotaRef, (Outcome, String)>> =
        order.iter().map(|d| world.resolve(d)).collect();
    for (d, r) in order.iter().zip(&resolved) {
        if let Ok(at) = r {
            let running = d.existing_replicas().min(u64::from(d.replicas));
            quotas.charge(*at, running * u64::from(d.gpus_per_replica.get()));
        }
    }
    let avail = Availability::project(&snapshot.targets, ledger);
    let mut engine = Engine {
        world: &world,
        avail,
        quotas,
        ledger,
    };
    order
        .into_iter()
        .zip(resolved)
        .map(|(d, r)| match r {
            Ok(at) => engine.decide(d, at, Mode::Place),
            Err((outcome, message)) => Decision::unchanged(d, outcome, message),
        })
        .collect()
}

/// The snapshot with its name indexes (the first of a repeated name wins).
pub(crate) struct World<'s> {
    pub snap: &'s Snapshot,
    targets: HashMap<&'s str, usize>,
    /// Whether each target is the first of its name (the others are ignored).
    first: Vec<bool>,
    pools: HashMap<&'s str, usize>,
}

impl<'s> World<'s> {
    pub(crate) fn new(snap: &'s Snapshot) -> Self {
        let mut targets = HashMap::with_capacity(snap.targets.len());
        let mut first = vec![false; snap.targets.len()];
        for (i, t) in snap.targets.iter().enumerate() {
            targets.entry(t.name.as_str()).or_insert_with(|| {
                first[i] = true;
                i
            });
        }
        let mut pools = HashMap::with_capacity(snap.pools.len());
        for (i, p) in snap.pools.iter().enumerate() {
            pools.entry(p.name.as_str()).or_insert(i);
        }
        Self {
            snap,
            targets,
            first,
            pools,
        }
    }

    fn target(&self, name: &str) -> Option<(usize, &'s Target)> {
        let i = *self.targets.get(name)?;
        Some((i, &self.snap.targets[i]))
    }

    /// Step 1: release the holds each target's inventory accounts for.
    pub(crate) fn catch_up(&self, ledger: &mut Ledger) {
        for (name, &i) in &self.targets {
            if let Some(inventory) = &self.snap.targets[i].inventory {
                ledger.reconcile(name, &inventory.accounted);
            }
        }
    }

    pub(crate) fn in_creation_order(&self) -> Vec<&'s Deployment> {
        let mut order: Vec<&Deployment> = self.snap.deployments.iter().collect();
        order.sort_by(|a, b| creation_order(a, b));
        order
    }

    /// The deployment's pool, class and tenant entry, or why it has none.
    pub(crate) fn resolve(&self, d: &Deployment) -> Result<QuotaRef, (Outcome, String)> {
        self.quota_ref(&d.pool, &d.class, &d.workspace)
    }

    /// The quota entry of a workspace for a pool's class, or why it has none.
    fn quota_ref(
        &self,
        pool: &str,
        class: &str,
        workspace: &str,
    ) -> Result<QuotaRef, (Outcome, String)> {
        let Some(&index) = self.pools.get(pool) else {
            return Err((
                Outcome::PoolNotFound,
                format!("GPU pool {pool:?} does not exist"),
            ));
        };
        let p = &self.snap.pools[index];
        let Some((class_index, _)) = p.class(class) else {
            return Err((
                Outcome::ClassNotFound,
                format!("GPU pool {:?} has no class {class:?}", p.name),
            ));
        };
        let Some(tenant) = p.tenant_for(workspace) else {
            return Err((
                Outcome::NotAllowed,
                format!(
                    "workspace {workspace} is not a tenant of GPU pool {:?}",
                    p.name
                ),
            ));
        };
        Ok(QuotaRef {
            pool: index,
            class: class_index,
            tenant,
        })
    }
}

/// What a decision may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode<'a> {
    /// Everything: keep, shrink, grow, move.
    Place,
    /// Only move the replicas on the lost target; no quota, no scaling.
    FailOver { lost: &'a str },
}

/// Where a slot's replicas are booked.
struct Where<'a> {
    /// `None` for a kept share on a target the snapshot no longer has.
    target: Option<usize>,
    /// The product's index in the target's inventory, when listed.
    product: Option<usize>,
    id: &'a ProductId,
}

/// The targets one deployment could use.
struct Candidates<'a> {
    slots: Vec<Slot<'a>>,
    places: Vec<Where<'a>>,
    /// Targets that passed the filter.
    eligible: usize,
    /// Free GPUs of the class on those targets, summed over nodes (for messages).
    free_gpus: u64,
}

/// Decides deployments one at a time against a shared view of free GPUs and quota.
pub(crate) struct Engine<'w, 's, 'l> {
    pub world: &'w World<'s>,
    pub avail: Availability,
    pub quotas: QuotaBook,
    pub ledger: &'l mut Ledger,
}

fn replicas_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl<'s> Engine<'_, 's, '_> {
    pub(crate) fn decide(&mut self, d: &'s Deployment, at: QuotaRef, mode: Mode<'_>) -> Decision {
        let snap = self.world.snap;
        let pool = &snap.pools[at.pool];
        let class = &pool.classes[at.class];
        let scope = Scope {
            now: snap.now,
            health: &snap.health,
            pool,
            class,
            deployment: d,
        };
        let gpus = d.gpus_per_replica.get();
        let max_targets = d.max_targets.map_or(usize::MAX, |m| m.get() as usize);

        // Running replicas: which stay, which must leave.
        let mut kept: Vec<(&'s str, &'s Share)> = Vec::new();
        let mut displaced: Vec<(&'s str, &'s Share, Rejection)> = Vec::new();
        for (name, share) in &d.existing {
            if share.replicas == 0 {
                continue;
            }
            let verdict = match mode {
                Mode::FailOver { lost } if name == lost => Err(Rejection::Lost),
                Mode::FailOver { .. } => Ok(()),
                Mode::Place => match self.world.target(name) {
                    None => Err(Rejection::Gone),
                    Some((_, t)) => filter::keep_running(&scope, t, &share.product),
                },
            };
            match verdict {
                Ok(()) => kept.push((name.as_str(), share)),
                Err(why) => displaced.push((name.as_str(), share, why)),
            }
        }
        if mode == Mode::Place && kept.len() > max_targets {
            // maxTargets was lowered: the largest shares stay.
            kept.sort_by(|a, b| b.1.replicas.cmp(&a.1.replicas).then_with(|| a.0.cmp(b.0)));
            for (name, share) in kept.split_off(max_targets) {
                displaced.push((name, share, Rejection::OverMaxTargets));
            }
        }
        let kept_total: u64 = kept.iter().map(|(_, s)| u64::from(s.replicas)).sum();
        let displaced_total: u64 = displaced
            .iter()
            .map(|(_, s, _)| u64::from(s.replicas))
            .sum();
        let lost = match mode {
            Mode::FailOver { lost } => Some(lost),
            Mode::Place => None,
        };
        let skip = |name: &str| lost == Some(name) || displaced.iter().any(|(n, _, _)| *n == name);
        let cands = self.candidates(&scope, &kept, &skip);

        let desired = match mode {
            Mode::Place => u64::from(d.replicas),
            Mode::FailOver { .. } => {
                kept_total + displaced_total.min(u64::from(d.replicas).saturating_sub(kept_total))
            }
        };
        let mut adds = vec![0; cands.slots.len()];
        let mut removes = vec![0; cands.slots.len()];
        let mut outcome = Outcome::Scheduled;
        let mut message = String::new();
        let mut borrowed_gpus = 0;
        let mut movers = 0;
        let mut unmoved = 0;
        if desired <= kept_total {
            removes = assign::shrink(d.strategy, &cands.slots, kept_total - desired);
        } else {
            let need = desired - kept_total;
            movers = displaced_total.min(need);
            let increment_gpus = (need - movers) * u64::from(gpus);
            let failure = match self.reserve(at, increment_gpus) {
                Err(refusal) => Some((
                    Outcome::QuotaExceeded,
                    format!(
                        "tenant {} {} of class {:?} in GPU pool {:?}",
                        pool.tenants[at.tenant].workspace, refusal, class.name, pool.name
                    ),
                )),
                Ok(admitted) => {
                    let plan = assign::grow(d.strategy, &cands.slots, need, max_targets);
                    if plan.iter().sum::<u64>() == need {
                        adds = plan;
                        borrowed_gpus = admitted.borrowed;
                        None
                    } else {
                        self.quotas.release(at, increment_gpus);
                        Some(self.explain_shortfall(&scope, &cands, need, max_targets, &skip))
                    }
                }
            };
            if let Some((why, text)) = failure {
                // What must leave still leaves where it can; the increase waits.
                if movers > 0 {
                    adds = assign::grow(d.strategy, &cands.slots, movers, max_targets);
                    unmoved = movers - adds.iter().sum::<u64>();
                }
                if unmoved > 0 {
                    outcome = Outcome::NoAlternativeCapacity;
                    message = format!(
                        "{unmoved} of {movers} replica(s) that must leave {} stay there: {text}",
                        describe_displaced(&displaced)
                    );
                } else {
                    outcome = why;
                    message = text;
                }
            }
        }
        if movers > 0 && unmoved == 0 {
            let moved = format!(
                "moved {movers} replica(s) off {}",
                describe_displaced(&displaced)
            );
            message = if message.is_empty() {
                moved
            } else {
                format!("{moved}; {message}")
            };
        }

        // Book what was added, shrink what was removed.
        let mut assignments = Assignments::new();
        let mut bookings = BTreeMap::new();
        for (i, slot) in cands.slots.iter().enumerate() {
            let place = &cands.places[i];
            let mut replicas = slot.kept;
            if adds[i] > 0 {
                let taken = match (place.target, place.product) {
                    (Some(t), Some(p)) => self.avail.take(t, p, gpus, replicas_u32(adds[i])),
                    _ => 0,
                };
                // The plan never exceeds `replicas_that_fit`, so everything is taken.
                debug_assert_eq!(u64::from(taken), adds[i]);
                if taken > 0 {
                    let booking = self
                        .ledger
                        .book(d.key(slot.name), place.id.clone(), gpus, taken);
                    bookings.insert(slot.name.to_string(), booking);
                }
                replicas += u64::from(taken);
            } else if removes[i] > 0 {
                self.ledger
                    .shrink(&d.key(slot.name), replicas_u32(removes[i]));
                replicas -= removes[i];
                if replicas > 0 {
                    bookings.insert(slot.name.to_string(), self.ledger.stamp());
                }
            }
            if replicas > 0 {
                assignments.insert(
                    slot.name.to_string(),
                    Share {
                        product: place.id.clone(),
                        replicas: replicas_u32(replicas),
                    },
                );
            }
        }
        // Replicas that had to leave and found no room stay where they are; the rest are gone.
        let mut stay = unmoved;
        for (name, share, _) in &displaced {
            let keep = u64::from(share.replicas).min(stay);
            stay -= keep;
            if keep < u64::from(share.replicas) {
                self.ledger
                    .shrink(&d.key(name), share.replicas - replicas_u32(keep));
                if keep > 0 {
                    bookings.insert(name.to_string(), self.ledger.stamp());
                }
            }
            if keep > 0 {
                assignments.insert(
                    name.to_string(),
                    Share {
                        product: share.product.clone(),
                        replicas: replicas_u32(keep),
                    },
                );
            }
        }

        let decision = Decision {
            uid: d.uid.clone(),
            outcome,
            message,
            assignments,
            bookings,
            tenant: Some(pool.tenants[at.tenant].workspace.clone()),
            quota_gpus: 0,
            borrowed_gpus,
        };
        Decision {
            quota_gpus: decision.replicas() * u64::from(gpus),
            ..decision
        }
    }

    fn reserve(&mut self, at: QuotaRef, gpus: u64) -> Result<Admitted, crate::quota::Refusal> {
        if gpus == 0 {
            return Ok(Admitted { borrowed: 0 });
        }
        self.quotas.try_reserve(at, gpus)
    }

    /// Every target that could hold the deployment's replicas, with its room for more.
    fn candidates(
        &self,
        scope: &Scope<'_>,
        kept: &[(&'s str, &'s Share)],
        skip: &dyn Fn(&str) -> bool,
    ) -> Candidates<'s> {
        let snap = self.world.snap;
        let gpus = scope.deployment.gpus_per_replica.get();
        let mut c = Candidates {
            slots: Vec::new(),
            places: Vec::new(),
            eligible: 0,
            free_gpus: 0,
        };
        let mut seen_kept = 0;
        for (i, t) in snap.targets.iter().enumerate() {
            if !self.world.first[i] || skip(&t.name) {
                continue;
            }
            let admitted = filter::admit_new(scope, t).ok();
            if let Some(inventory) = admitted {
                c.eligible += 1;
                c.free_gpus += inventory
                    .products
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| scope.class.matches(&p.product))
                    .filter_map(|(p, _)| self.avail.free(i, p))
                    .map(|h| h.free_gpus())
                    .sum::<u64>();
            }
            if let Some((_, share)) = kept.iter().find(|(name, _)| *name == t.name) {
                seen_kept += 1;
                let product = t
                    .inventory
                    .as_ref()
                    .and_then(|inv| inv.product(&share.product))
                    .map(|(p, _)| p);
                let free = match (admitted, product) {
                    (Some(_), Some(p)) => self
                        .avail
                        .free(i, p)
                        .map_or(0, |h| replicas_that_fit(h, gpus)),
                    _ => 0,
                };
                c.slots.push(Slot {
                    name: &t.name,
                    kept: u64::from(share.replicas),
                    free,
                });
                c.places.push(Where {
                    target: Some(i),
                    product,
                    id: &share.product,
                });
            } else if let Some(inventory) = admitted {
                // A new target: the class's product with the most room there.
                let best = inventory
                    .products
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| scope.class.matches(&p.product))
                    .map(|(p, entry)| {
                        let fit = self
                            .avail
                            .free(i, p)
                            .map_or(0, |h| replicas_that_fit(h, gpus));
                        (p, &entry.product.id, fit)
                    })
                    .max_by(|a, b| a.2.cmp(&b.2).then_with(|| b.1.cmp(a.1)));
                if let Some((p, id, fit)) = best.filter(|b| b.2 > 0) {
                    c.slots.push(Slot {
                        name: &t.name,
                        kept: 0,
                        free: fit,
                    });
                    c.places.push(Where {
                        target: Some(i),
                        product: Some(p),
                        id,
                    });
                }
            }
        }
        if seen_kept < kept.len() {
            // Kept shares on targets the snapshot lacks (failover keeps them untouched).
            for (name, share) in kept {
                if !c.slots.iter().any(|s| s.name == *name) {
                    c.slots.push(Slot {
                        name,
                        kept: u64::from(share.replicas),
                        free: 0,
                    });
                    c.places.push(Where {
                        target: None,
                        product: None,
                        id: &share.product,
                    });
                }
            }
        }
        c
    }

    /// Why `need` more replicas found no room, in the API's terms.
    fn explain_shortfall(
        &self,
        scope: &Scope<'_>,
        cands: &Candidates<'_>,
        need: u64,
        max_targets: usize,
        skip: &dyn Fn(&str) -> bool,
    ) -> (Outcome, String) {
        let snap = self.world.snap;
        let gpus = u64::from(scope.deployment.gpus_per_replica.get());
        let wanted = format!("{need} more replica(s) of {gpus} GPU(s)");
        let considered: Vec<&Target> = snap
            .targets
            .iter()
            .enumerate()
            .filter(|(i, t)| self.world.first[*i] && !skip(&t.name))
            .map(|(_, t)| t)
            .collect();
        let passed_over = filter::summarize(
            considered
                .iter()
                .filter_map(|t| filter::admit_new(scope, t).err()),
        );
        if cands.eligible == 0 {
            return (
                Outcome::NoTargetFits,
                format!(
                    "0/{} targets can take {wanted}: {passed_over}",
                    considered.len()
                ),
            );
        }
        let room: u64 = cands.slots.iter().map(|s| s.free).sum();
        let (outcome, text) = if room >= need {
            (
                Outcome::NoTargetFits,
                format!("{wanted} would need more than maxTargets={max_targets} targets"),
            )
        } else if cands.free_gpus >= need * gpus {
            (
                Outcome::InsufficientContiguousGpus,
                format!(
                    "{} GPUs are free on {} eligible target(s), but nodes with {gpus} free have \
                     room for only {room} of {wanted}",
                    cands.free_gpus, cands.eligible
                ),
            )
        } else {
            (
                Outcome::NoTargetFits,
                format!(
                    "{} eligible target(s) have {} GPUs free, {wanted} need {}",
                    cands.eligible,
                    cands.free_gpus,
                    need * gpus
                ),
            )
        };
        if passed_over.is_empty() {
            (outcome, text)
        } else {
            (outcome, format!("{text}; passed over: {passed_over}"))
        }
    }
}

/// `eu-3 (untolerated taint trellis.dev/unreachable:NoExecute)`, for messages.
fn describe_displaced(displaced: &[(&str, &Share, Rejection)]) -> String {
    displaced
        .iter()
        .map(|(name, _, why)| format!("{name} ({why})"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::Strategy::{BinPack, Spread};
    use crate::fixtures::*;
    use crate::inventory::FreeByNode;
    use crate::placement_key::PlacementKey;
    use crate::taint::{Taint, TaintEffect, Toleration};
    use std::num::NonZeroU32;

    fn outcomes(decisions: &[Decision]) -> Vec<(&str, Outcome)> {
        decisions
            .iter()
            .map(|d| (d.uid.as_str(), d.outcome))
            .collect()
    }

    /// The next pass's input: each deployment now runs what was decided.
    fn feed_back(snap: &mut Snapshot, decisions: &[Decision]) {
        for d in &mut snap.deployments {
            if let Some(decision) = decisions.iter().find(|x| x.uid == d.uid) {
                d.existing = decision.assignments.clone();
            }
        }
    }

    #[test]
    fn bin_pack_puts_a_deployment_on_one_target_and_books_it() {
        let snap = snapshot(
            vec![
                target("eu-1", &[(8, 50)]),
                target("eu-2", &[(8, 10), (0, 40)]),
            ],
            vec![deployment("a", 8, 3, BinPack, 0)],
        );
        let mut ledger = Ledger::new();
        let decisions = place(&snap, &mut ledger);
        assert_eq!(outcomes(&decisions), vec![("a", Outcome::Scheduled)]);
        // Both fit three 8-GPU replicas; best fit picks the tighter eu-2.
        assert_eq!(counts(&decisions[0].assignments), vec![("eu-2", 3)]);
        assert_eq!(decisions[0].quota_gpus, 24);
        assert_eq!(decisions[0].tenant.as_deref(), Some("root:acme"));
        let booking = decisions[0].bookings["eu-2"];
        let holds: Vec<_> = ledger.holds().collect();
        assert_eq!(holds.len(), 1);
        assert_eq!(
            (
                holds[0].booking,
                holds[0].replicas,
                holds[0].gpus_per_replica
            ),
            (booking, 3, 8)
        );
        assert_eq!(ledger.overcommit(&snap.targets), 0);
    }

    #[test]
    fn a_replica_needs_all_its_gpus_on_one_node() {
        // Fifty nodes with one free GPU each: 50 GPUs free, no room for a 4-GPU replica.
        let scattered = snapshot(
            vec![target("eu-1", &[(1, 50)])],
            vec![deployment("a", 4, 1, BinPack, 0)],
        );
        let decisions = place(&scattered, &mut Ledger::new());
        assert_eq!(decisions[0].outcome, Outcome::InsufficientContiguousGpus);
        assert_eq!(decisions[0].outcome.reason(), "InsufficientContiguousGPUs");
        assert!(
            decisions[0].message.contains("50 GPUs are free"),
            "{}",
            decisions[0].message
        );
        assert!(decisions[0].assignments.is_empty());

        // Not enough even in total: NoTargetFits.
        let small = snapshot(
            vec![target("eu-1", &[(1, 3)])],
            vec![deployment("a", 4, 1, BinPack, 0)],
        );
        let decisions = place(&small, &mut Ledger::new());
        assert_eq!(decisions[0].outcome, Outcome::NoTargetFits);

        // One node with four free is enough.
        let one = snapshot(
            vec![target("eu-1", &[(1, 49), (4, 1)])],
            vec![deployment("a", 4, 1, BinPack, 0)],
        );
        assert_eq!(
            place(&one, &mut Ledger::new())[0].outcome,
            Outcome::Scheduled
        );
    }

    #[test]
    fn tenants_creating_at_once_never_share_a_gpu() {
        // Two whole nodes free; three tenants each want one 8-GPU replica.
        let mut beta = deployment("b", 8, 1, BinPack, 2);
        beta.workspace = "root:beta".into();
        let mut snap = snapshot(
            vec![target("eu-1", &[(8, 2), (2, 48)])],
            vec![
                deployment("c", 8, 1, BinPack, 3),
                beta,
                deployment("a", 8, 1, BinPack, 1),
            ],
        );
        let mut ledger = Ledger::new();
        let decisions = place(&snap, &mut ledger);
        // The oldest two get the two nodes; the youngest finds none.
        assert_eq!(
            outcomes(&decisions),
            vec![
                ("a", Outcome::Scheduled),
                ("b", Outcome::Scheduled),
                ("c", Outcome::InsufficientContiguousGpus)
            ]
        );
        assert_eq!(ledger.overcommit(&snap.targets), 0);

        // Another pass before the syncer reports: the holds still count.
        feed_back(&mut snap, &decisions);
        snap.deployments.push(deployment("d", 8, 1, BinPack, 4));
        let again = place(&snap, &mut ledger);
        assert_eq!(again[2].outcome, Outcome::InsufficientContiguousGpus);
        assert_eq!(again[3].outcome, Outcome::InsufficientContiguousGpus);
        assert_eq!(ledger.holds().count(), 2);

        // The syncer reports both replicas bound: holds go, the reading shows the nodes used.
        if let Some(inv) = snap.targets[0].inventory.as_mut() {
            inv.products[0].free_by_node = FreeByNode::from_buckets([(0, 2), (2, 48)]).unwrap();
            inv.accounted = BTreeMap::from([
                (
                    PlacementKey::new("a", "eu-1"),
                    decisions[0].bookings["eu-1"],
                ),
                (
                    PlacementKey::new("b", "eu-1"),
                    decisions[1].bookings["eu-1"],
                ),
            ]);
        }
        let settled = place(&snap, &mut ledger);
        assert_eq!(ledger.holds().count(), 0);
        assert_eq!(settled[2].outcome, Outcome::InsufficientContiguousGpus);
        assert_eq!(ledger.overcommit(&snap.targets), 0);
    }

    #[test]
    fn a_target_without_a_fresh_inventory_is_never_assumed_to_have_room() {
        let mut silent = target("eu-1", &[(8, 50)]);
        silent.inventory = None;
        let mut stale = target("eu-2", &[(8, 50)]);
        if let Some(inv) = stale.inventory.as_mut() {
            inv.observed_at = NOW - 3_600;
        }
        let snap = snapshot(vec![silent, stale], vec![deployment("a", 1, 1, BinPack, 0)]);
        let decisions = place(&snap, &mut Ledger::new());
        assert_eq!(decisions[0].outcome, Outcome::NoTargetFits);
        assert_eq!(
            decisions[0].message,
            "0/2 targets can take 1 more replica(s) of 1 GPU(s): 1 no GPU inventory reported, 1 GPU inventory stale"
        );
    }

    #[test]
    fn quota_comes_first_in_creation_order() {
        let mut snap = snapshot(
            vec![target("eu-1", &[(8, 50)])],
            vec![
                deployment("young", 8, 1, BinPack, 2),
                deployment("old", 8, 2, BinPack, 1),
            ],
        );
        snap.pools = vec![pool(&[("root:acme", 16)])];
        let mut ledger = Ledger::new();
        let decisions = place(&snap, &mut ledger);
        assert_eq!(
            outcomes(&decisions),
            vec![
                ("old", Outcome::Scheduled),
                ("young", Outcome::QuotaExceeded)
            ]
        );
        assert!(
            decisions[1]
                .message
                .contains("needs 8 more GPUs but only 0 are available"),
            "{}",
            decisions[1].message
        );
        // Nothing placed, nothing booked for the refused one.
        assert!(decisions[1].assignments.is_empty() && decisions[1].bookings.is_empty());
        assert!(ledger.holds().all(|h| h.key.deployment_uid == "old"));

        // The old one scales down to one: the young one fits in the quota it frees.
        feed_back(&mut snap, &decisions);
        snap.deployments[1].replicas = 1;
        let decisions = place(&snap, &mut ledger);
        assert_eq!(
            outcomes(&decisions),
            vec![("old", Outcome::Scheduled), ("young", Outcome::Scheduled)]
        );
    }

    #[test]
    fn borrowing_shows_in_the_decision() {
        let mut snap = snapshot(
            vec![target("eu-1", &[(8, 50)])],
            vec![deployment("a", 8, 3, BinPack, 0)],
        );
        snap.pools = vec![pool(&[("root:acme", 16), ("root:beta", 16)])];
        let decisions = place(&snap, &mut Ledger::new());
        assert_eq!(decisions[0].outcome, Outcome::Scheduled);
        assert_eq!(
            (decisions[0].quota_gpus, decisions[0].borrowed_gpus),
            (24, 8)
        );
        snap.pools[0].tenants[0].quotas[0].borrowing_limit = Some(4);
        assert_eq!(
            place(&snap, &mut Ledger::new())[0].outcome,
            Outcome::QuotaExceeded
        );
    }

    #[test]
    fn pools_classes_and_tenants_must_resolve() {
        let mut stranger = deployment("s", 1, 1, BinPack, 0);
        stranger.workspace = "root:gamma".into();
        let mut no_pool = deployment("p", 1, 1, BinPack, 1);
        no_pool.pool = "h100-us".into();
        let mut no_class = deployment("c", 1, 1, BinPack, 2);
        no_class.class = "b200".into();
        let snap = snapshot(
            vec![target("eu-1", &[(8, 50)])],
            vec![stranger, no_pool, no_class],
        );
        let mut ledger = Ledger::new();
        let decisions = place(&snap, &mut ledger);
        assert_eq!(
            outcomes(&decisions),
            vec![
                ("s", Outcome::NotAllowed),
                ("p", Outcome::PoolNotFound),
                ("c", Outcome::ClassNotFound)
            ]
        );
        assert_eq!(
            decisions[0].message,
            "workspace root:gamma is not a tenant of GPU pool \"h200-eu\""
        );
        assert_eq!(ledger.holds().count(), 0);
    }

    #[test]
    fn rescaling_adds_on_top_and_removes_from_the_least_preferred() {
        let mut snap = snapshot(
            vec![
                target("eu-1", &[(8, 4)]),
                target("eu-2", &[(8, 2)]),
                target("eu-3", &[(8, 1)]),
            ],
            vec![deployment("a", 8, 6, BinPack, 0)],
        );
        let mut ledger = Ledger::new();
        let first = place(&snap, &mut ledger);
        assert_eq!(
            counts(&first[0].assignments),
            vec![("eu-1", 4), ("eu-2", 2)]
        );

        // Up to 7: the running six stay, one more goes where it fits.
        feed_back(&mut snap, &first);
        snap.deployments[0].replicas = 7;
        let up = place(&snap, &mut ledger);
        assert_eq!(
            counts(&up[0].assignments),
            vec![("eu-1", 4), ("eu-2", 2), ("eu-3", 1)]
        );
        assert_eq!(up[0].bookings.keys().collect::<Vec<_>>(), vec!["eu-3"]);

        // Down to 4: BinPack empties the smallest shares first.
        feed_back(&mut snap, &up);
        snap.deployments[0].replicas = 4;
        let down = place(&snap, &mut ledger);
        assert_eq!(counts(&down[0].assignments), vec![("eu-1", 4)]);
        assert_eq!(ledger.held_gpus("eu-2") + ledger.held_gpus("eu-3"), 0);
        assert_eq!(ledger.held_gpus("eu-1"), 32);

        // To zero: nothing left, nothing held.
        feed_back(&mut snap, &down);
        snap.deployments[0].replicas = 0;
        let zero = place(&snap, &mut ledger);
        assert!(zero[0].assignments.is_empty());
        assert_eq!(zero[0].outcome, Outcome::Scheduled);
        assert_eq!(ledger.holds().count(), 0);
    }

    #[test]
    fn unrelated_changes_never_move_running_replicas() {
        let mut snap = snapshot(
            vec![target("eu-1", &[(8, 4)]), target("eu-2", &[(8, 40)])],
            vec![deployment("a", 4, 2, Spread, 0)],
        );
        let mut ledger = Ledger::new();
        let first = place(&snap, &mut ledger);
        feed_back(&mut snap, &first);
        // eu-1 is cordoned, loses its heartbeat, gets a NoSchedule taint; a new target appears;
        // another tenant arrives.
        snap.targets[0].unschedulable = true;
        snap.targets[0].last_heartbeat = NOW - 600;
        snap.targets[0]
            .taints
            .push(Taint::new("maintenance", "", TaintEffect::NoSchedule));
        snap.targets.push(target("eu-3", &[(8, 50)]));
        snap.deployments.push(deployment("b", 1, 3, Spread, 1));
        let second = place(&snap, &mut ledger);
        assert_eq!(second[0].assignments, first[0].assignments);
        assert!(second[0].bookings.is_empty());
        assert_eq!(second[0].outcome, Outcome::Scheduled);
    }

    #[test]
    fn spread_follows_capacity_and_max_targets() {
        let targets = vec![
            target("eu-1", &[(8, 30)]),
            target("eu-2", &[(8, 20)]),
            target("eu-3", &[(8, 10)]),
        ];
        let snap = snapshot(targets.clone(), vec![deployment("a", 8, 6, Spread, 0)]);
        let decisions = place(&snap, &mut Ledger::new());
        assert_eq!(
            counts(&decisions[0].assignments),
            vec![("eu-1", 3), ("eu-2", 2), ("eu-3", 1)]
        );
        let mut two = deployment("a", 8, 6, Spread, 0);
        two.max_targets = NonZeroU32::new(2);
        let snap = snapshot(targets.clone(), vec![two]);
        let decisions = place(&snap, &mut Ledger::new());
        assert_eq!(
            counts(&decisions[0].assignments),
            vec![("eu-1", 4), ("eu-2", 2)]
        );

        let mut one = deployment("a", 8, 40, BinPack, 0);
        one.max_targets = NonZeroU32::new(1);
        let decisions = place(&snapshot(targets, vec![one]), &mut Ledger::new());
        assert_eq!(decisions[0].outcome, Outcome::NoTargetFits);
        assert!(
            decisions[0].message.contains("maxTargets=1"),
            "{}",
            decisions[0].message
        );
    }

    #[test]
    fn evicted_replicas_move_once_their_toleration_runs_out() {
        let unreachable = Taint {
            time_added: Some(NOW - 400),
            ..Taint::new("trellis.dev/unreachable", "", TaintEffect::NoExecute)
        };
        let mut lost = target("eu-1", &[(0, 4)]);
        lost.ready = false;
        lost.taints.push(unreachable);
        let mut d = deployment("a", 8, 2, BinPack, 0);
        d.existing = shares(&[("eu-1", 2)]);
        d.tolerations.push(Toleration {
            toleration_seconds: Some(300),
            ..Toleration::exists("trellis.dev/unreachable")
        });
        let mut ledger = Ledger::new();

        // Nowhere to go: nothing moves, nothing is deleted.
        let full = snapshot(
            vec![lost.clone(), target("eu-2", &[(8, 1)])],
            vec![d.clone()],
        );
        let decisions = place(&full, &mut ledger);
        assert_eq!(decisions[0].outcome, Outcome::NoAlternativeCapacity);
        assert_eq!(
            counts(&decisions[0].assignments),
            vec![("eu-1", 1), ("eu-2", 1)]
        );
        assert!(
            decisions[0]
                .message
                .starts_with("1 of 2 replica(s) that must leave eu-1"),
            "{}",
            decisions[0].message
        );

        // With room, both move.
        let roomy = snapshot(
            vec![lost.clone(), target("eu-2", &[(8, 5)])],
            vec![d.clone()],
        );
        let decisions = place(&roomy, &mut Ledger::new());
        assert_eq!(decisions[0].outcome, Outcome::Scheduled);
        assert_eq!(counts(&decisions[0].assignments), vec![("eu-2", 2)]);
        assert!(decisions[0]
            .message
            .starts_with("moved 2 replica(s) off eu-1"));

        // Within the grace period they stay.
        d.tolerations[0].toleration_seconds = Some(3_600);
        let decisions = place(
            &snapshot(vec![lost, target("eu-2", &[(8, 5)])], vec![d]),
            &mut Ledger::new(),
        );
        assert_eq!(counts(&decisions[0].assignments), vec![("eu-1", 2)]);
    }

    #[test]
    fn replicas_a_cluster_could_not_schedule_move_and_none_go_back() {
        let mut d = deployment("a", 8, 2, BinPack, 0);
        d.existing = shares(&[("eu-1", 2)]);
        d.refused_by.insert("eu-1".into());
        // Room elsewhere: both leave eu-1, though it reports room for them.
        let roomy = snapshot(
            vec![target("eu-1", &[(8, 4)]), target("eu-2", &[(8, 2)])],
            vec![d.clone()],
        );
        let decisions = place(&roomy, &mut Ledger::new());
        assert_eq!(decisions[0].outcome, Outcome::Scheduled);
        assert_eq!(counts(&decisions[0].assignments), vec![("eu-2", 2)]);
        // Nowhere else: they stay where they are, and the deployment says why.
        let alone = snapshot(vec![target("eu-1", &[(8, 4)])], vec![d.clone()]);
        let decisions = place(&alone, &mut Ledger::new());
        assert_eq!(decisions[0].outcome, Outcome::NoAlternativeCapacity);
        assert_eq!(counts(&decisions[0].assignments), vec![("eu-1", 2)]);
        // A new deployment refused by eu-1 is never placed there.
        let mut fresh = deployment("b", 8, 1, BinPack, 1);
        fresh.refused_by.insert("eu-1".into());
        let decisions = place(
            &snapshot(vec![target("eu-1", &[(8, 4)])], vec![fresh]),
            &mut Ledger::new(),
        );
        assert_ne!(decisions[0].outcome, Outcome::Scheduled);
        assert!(decisions[0].assignments.is_empty());
    }

    #[test]
    fn a_selector_that_no_longer_matches_moves_replicas_and_a_child_tenant_has_its_own_quota() {
        let mut east = target("us-1", &[(8, 4)]);
        east.labels.insert("region".into(), "us-east".into());
        let mut d = deployment("a", 8, 2, BinPack, 0);
        d.existing = shares(&[("eu-1", 2)]);
        d.target_selector = crate::selector::LabelSelector::labels([("region", "us-east")]);
        let mut snap = snapshot(vec![target("eu-1", &[(0, 4)]), east], vec![d]);
        // root:acme:ml is listed on its own, with room for exactly these two replicas.
        snap.pools[0].tenants.push(crate::pool::Tenant {
            workspace: "root:acme:ml".into(),
            weight: 1,
            quotas: vec![crate::pool::Quota {
                class: "h200".into(),
                nominal_quota: 16,
                lending_limit: Some(0),
                borrowing_limit: Some(0),
            }],
        });
        let decisions = place(&snap, &mut Ledger::new());
        assert_eq!(decisions[0].outcome, Outcome::Scheduled);
        assert_eq!(counts(&decisions[0].assignments), vec![("us-1", 2)]);
        assert_eq!(decisions[0].tenant.as_deref(), Some("root:acme:ml"));
        assert!(decisions[0]
            .message
            .contains("eu-1 (not selected by the deployment)"));

        // A third replica exceeds the child's own quota, whatever its parent has.
        snap.deployments[0].replicas = 3;
        snap.deployments[0].existing = decisions[0].assignments.clone();
        let more = place(&snap, &mut Ledger::new());
        assert_eq!(more[0].outcome, Outcome::QuotaExceeded);
        assert_eq!(counts(&more[0].assignments), vec![("us-1", 2)]);
    }

    #[test]
    fn mig_classes_place_on_slices() {
        let mut t = target("eu-1", &[(8, 1)]);
        if let Some(inv) = t.inventory.as_mut() {
            inv.products.push(crate::inventory::ProductInventory {
                product: crate::inventory::GpuProduct {
                    id: ProductId::mig(H200, "1g.18gb"),
                    memory_mib: 16_384,
                    architecture: Some("Hopper".into()),
                },
                free_by_node: FreeByNode::from_buckets([(7, 2)]).unwrap(),
            });
        }
        let mut snap = snapshot(vec![t], vec![deployment("a", 1, 3, BinPack, 0)]);
        snap.pools[0].classes.push(crate::pool::GpuClass {
            name: "h200-1g".into(),
            product: Some(H200.into()),
            partition: Some("1g.18gb".into()),
            ..Default::default()
        });
        for tenant in &mut snap.pools[0].tenants {
            tenant.quotas.push(crate::pool::Quota {
                class: "h200-1g".into(),
                nominal_quota: 14,
                ..Default::default()
            });
        }
        snap.deployments[0].class = "h200-1g".into();
        let decisions = place(&snap, &mut Ledger::new());
        assert_eq!(decisions[0].outcome, Outcome::Scheduled);
        assert_eq!(
            decisions[0].assignments["eu-1"].product,
            ProductId::mig(H200, "1g.18gb")
        );
    }
}
