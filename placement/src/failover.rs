//! Failover as a pure function: when the caller declares a target lost (its grace period is over,
//! or the platform team drained it), the replicas there are re-placed on other targets, and nothing
//! else changes: no quota is charged (the replicas already hold it), no scaling happens, and the
//! deployment's other targets keep what they run.
//!
//! The move is best effort, replica by replica: as many as find room move, the others stay
//! assigned to the lost target and the outcome is `NoAlternativeCapacity`. The caller deletes a
//! lost target's copy only once its replacement is available, and never deletes what did not move,
//! so a deployment with nowhere to go is `Degraded`, never emptied.
//!
//! A regular [`crate::place`] pass does the same for replicas that must leave on their own terms
//! (a target gone from the snapshot, an untolerated `NoExecute` taint past its
//! `tolerationSeconds`, a selector that no longer matches, a cluster that could not schedule
//! them).

use crate::capacity::Availability;
use crate::decision::Decision;
use crate::ledger::Ledger;
use crate::place::{Engine, Mode, Snapshot, World};
use crate::quota::QuotaBook;

/// Re-places the replicas every deployment runs on `lost`, elsewhere, in creation order, booking
/// the new replicas in the ledger. Returns a decision for each deployment that had replicas there.
pub fn fail_over(snapshot: &Snapshot, lost: &str, ledger: &mut Ledger) -> Vec<Decision> {
    let world = World::new(snapshot);
    world.catch_up(ledger);
    let avail = Availability::project(&snapshot.targets, ledger);
    let mut engine = Engine {
        world: &world,
        avail,
        quotas: QuotaBook::new(&snapshot.pools),
        ledger,
    };
    world
        .in_creation_order()
        .into_iter()
        .filter(|d| d.existing.get(lost).is_some_and(|s| s.replicas > 0))
        .map(|d| match world.resolve(d) {
            Ok(at) => engine.decide(d, at, Mode::FailOver { lost }),
            Err((outcome, message)) => Decision::unchanged(d, outcome, message),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Outcome;
    use crate::deployment::Strategy::BinPack;
    use crate::fixtures::*;

    fn running(uid: &str, created: i64, on: &[(&str, u32)]) -> crate::deployment::Deployment {
        let total = on.iter().map(|(_, r)| r).sum();
        let mut d = deployment(uid, 8, total, BinPack, created);
        d.existing = shares(on);
        d
    }

    #[test]
    fn replicas_of_a_lost_target_move_elsewhere_and_others_stay() {
        let snap = snapshot(
            vec![
                target("eu-1", &[(0, 4)]),
                target("eu-2", &[(0, 2), (8, 1)]),
                target("eu-3", &[(8, 3)]),
            ],
            vec![
                running("a", 0, &[("eu-1", 2), ("eu-2", 2)]),
                running("b", 1, &[("eu-2", 1)]),
            ],
        );
        let mut ledger = Ledger::new();
        let decisions = fail_over(&snap, "eu-1", &mut ledger);
        assert_eq!(decisions.len(), 1, "only deployments on the lost target");
        assert_eq!(decisions[0].outcome, Outcome::Scheduled);
        // BinPack grows where it runs first (eu-2 has one node free), then eu-3.
        assert_eq!(
            counts(&decisions[0].assignments),
            vec![("eu-2", 3), ("eu-3", 1)]
        );
        assert_eq!(ledger.overcommit(&snap.targets), 0);
        assert_eq!(decisions[0].quota_gpus, 32);
    }

    #[test]
    fn with_no_alternative_nothing_is_taken_away() {
        let snap = snapshot(
            vec![target("eu-1", &[(0, 4)]), target("eu-2", &[(4, 4)])],
            vec![running("a", 0, &[("eu-1", 2)])],
        );
        let mut ledger = Ledger::new();
        let decisions = fail_over(&snap, "eu-1", &mut ledger);
        assert_eq!(decisions[0].outcome, Outcome::NoAlternativeCapacity);
        assert_eq!(decisions[0].outcome.reason(), "NoAlternativeCapacity");
        assert_eq!(counts(&decisions[0].assignments), vec![("eu-1", 2)]);
        assert_eq!(
            decisions[0].message,
            "2 of 2 replica(s) that must leave eu-1 (lost) stay there: 16 GPUs are free on 1 \
             eligible target(s), but nodes with 8 free have room for only 0 of 2 more replica(s) \
             of 8 GPU(s)"
        );
        assert_eq!(ledger.holds().count(), 0);

        // Room for one: one moves, one stays.
        let snap = snapshot(
            vec![target("eu-1", &[(0, 4)]), target("eu-2", &[(8, 1)])],
            vec![running("a", 0, &[("eu-1", 2)])],
        );
        let decisions = fail_over(&snap, "eu-1", &mut Ledger::new());
        assert_eq!(decisions[0].outcome, Outcome::NoAlternativeCapacity);
        assert_eq!(
            counts(&decisions[0].assignments),
            vec![("eu-1", 1), ("eu-2", 1)]
        );
    }

    #[test]
    fn older_deployments_fail_over_first() {
        let snap = snapshot(
            vec![target("eu-1", &[(0, 4)]), target("eu-2", &[(8, 1)])],
            vec![
                running("young", 5, &[("eu-1", 1)]),
                running("old", 1, &[("eu-1", 1)]),
            ],
        );
        let decisions = fail_over(&snap, "eu-1", &mut Ledger::new());
        let got: Vec<_> = decisions
            .iter()
            .map(|d| (d.uid.as_str(), d.outcome))
            .collect();
        assert_eq!(
            got,
            vec![
                ("old", Outcome::Scheduled),
                ("young", Outcome::NoAlternativeCapacity)
            ]
        );
    }
}
