//! How a deployment's replicas are shared out among targets, given for each target the replicas it
//! already runs (`kept`) and how many more it can take (`free`, counted node by node by
//! `capacity.rs`). Pure arithmetic on small slices; the caller books the result.
//!
//! Growing ([`grow`]) never moves running replicas; it only adds.
//! - **BinPack** uses as few targets as it can. Targets already running the deployment are filled
//!   first (most room first), then new ones: if one target can take everything left, the one with
//!   the least room that still can (best fit, keeping big targets whole for big deployments);
//!   otherwise the one with the most room, and repeat. Taking the largest while nothing fits
//!   alone needs the fewest targets, and the final best-fit step does not add one.
//! - **Spread** shares out in proportion to each target's capacity for the deployment (`kept +
//!   free`), by Sainte-Laguë: one replica at a time to the target with the highest `capacity /
//!   (2 × replicas + 1)`, never past its room. The targets taking part are chosen before any
//!   replica is given (those already running it, then the roomiest up to `maxTargets`), so adding
//!   replicas never takes any away from a target: the method is house-monotone.
//!
//! Shrinking ([`shrink`]) removes from the least-preferred targets: for BinPack the smallest shares
//! first (emptying whole targets), for Spread the replica Sainte-Laguë would have given last.
//! Ties break on capacity, then target name, so every decision is deterministic.

use std::cmp::Ordering;

use crate::deployment::Strategy;

/// One target as the assignment sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot<'a> {
    pub name: &'a str,
    /// Replicas of the deployment running there and staying.
    pub kept: u64,
    /// Replicas more it can take now.
    pub free: u64,
}

impl Slot<'_> {
    /// Its capacity for the deployment: what runs plus what fits.
    fn weight(&self) -> u64 {
        self.kept.saturating_add(self.free)
    }
}

/// Replicas to add per slot (same order), at most `want` in total, on at most `max_targets`
/// targets counting those with kept replicas. The sum falls short of `want` only when the slots
/// cannot hold it.
pub(crate) fn grow(
    strategy: Strategy,
    slots: &[Slot<'_>],
    want: u64,
    max_targets: usize,
) -> Vec<u64> {
    match strategy {
        Strategy::BinPack => bin_pack(slots, want, max_targets),
        Strategy::Spread => spread(slots, want, max_targets),
    }
}

/// Replicas to remove per slot (same order), `min(remove, Σ kept)` in total.
pub(crate) fn shrink(strategy: Strategy, slots: &[Slot<'_>], remove: u64) -> Vec<u64> {
    match strategy {
        Strategy::BinPack => shrink_bin_pack(slots, remove),
        Strategy::Spread => shrink_spread(slots, remove),
    }
}

/// Order of preference among targets with room: most room first, then by name.
fn roomiest_first(slots: &[Slot<'_>], a: usize, b: usize) -> Ordering {
    slots[b]
        .free
        .cmp(&slots[a].free)
        .then_with(|| slots[a].name.cmp(slots[b].name))
}

fn bin_pack(slots: &[Slot<'_>], want: u64, max_targets: usize) -> Vec<u64> {
    let mut adds = vec![0; slots.len()];
    let mut left = want;
    let mut running: Vec<usize> = (0..slots.len()).filter(|&i| slots[i].kept > 0).collect();
    running.sort_by(|&a, &b| roomiest_first(slots, a, b));
    let mut used = running.len();
    for i in running {
        let take = slots[i].free.min(left);
        adds[i] = take;
        left -= take;
    }
    let mut fresh: Vec<usize> = (0..slots.len())
        .filter(|&i| slots[i].kept == 0 && slots[i].free > 0)
        .collect();
    fresh.sort_by(|&a, &b| roomiest_first(slots, a, b));
    while left > 0 && used < max_targets && !fresh.is_empty() {
        // `fresh` runs from most to least room: the best fit is the last one that can take
        // everything left, and among equals the first by name.
        let pick = match fresh.iter().rposition(|&i| slots[i].free >= left) {
            Some(last) => {
                let room = slots[fresh[last]].free;
                fresh
                    .iter()
                    .position(|&i| slots[i].free == room)
                    .unwrap_or(last)
            }
            None => 0,
        };
        let i = fresh.remove(pick);
        let take = slots[i].free.min(left);
        adds[i] = take;
        left -= take;
        used += 1;
    }
    adds
}

/// Whether slot `a` (at `seats_a` replicas) has the higher Sainte-Laguë priority
/// `weight / (2 × seats + 1)` than `b`, ties to the larger weight, then the smaller name.
fn ahead(slots: &[Slot<'_>], a: usize, seats_a: u64, b: usize, seats_b: u64) -> bool {
    let (wa, wb) = (u128::from(slots[a].weight()), u128::from(slots[b].weight()));
    let lhs = wa * (2 * u128::from(seats_b) + 1);
    let rhs = wb * (2 * u128::from(seats_a) + 1);
    lhs.cmp(&rhs)
        .then(wa.cmp(&wb))
        .then_with(|| slots[b].name.cmp(slots[a].name))
        == Ordering::Greater
}

fn spread(slots: &[Slot<'_>], want: u64, max_targets: usize) -> Vec<u64> {
    let mut adds = vec![0; slots.len()];
    let mut chosen: Vec<usize> = (0..slots.len()).filter(|&i| slots[i].kept > 0).collect();
    let mut fresh: Vec<usize> = (0..slots.len())
        .filter(|&i| slots[i].kept == 0 && slots[i].free > 0)
        .collect();
    fresh.sort_by(|&a, &b| roomiest_first(slots, a, b));
    fresh.truncate(max_targets.saturating_sub(chosen.len()));
    chosen.extend(fresh);
    for _ in 0..want {
        let mut best: Option<usize> = None;
        for &i in &chosen {
            if adds[i] >= slots[i].free {
                continue;
            }
            let better = match best {
                None => true,
                Some(b) => ahead(
                    slots,
                    i,
                    slots[i].kept + adds[i],
                    b,
                    slots[b].kept + adds[b],
                ),
            };
            if better {
                best = Some(i);
            }
        }
        match best {
            Some(i) => adds[i] += 1,
            None => break,
        }
    }
    adds
}

fn shrink_bin_pack(slots: &[Slot<'_>], remove: u64) -> Vec<u64> {
    let mut removes = vec![0; slots.len()];
    let mut order: Vec<usize> = (0..slots.len()).filter(|&i| slots[i].kept > 0).collect();
    order.sort_by(|&a, &b| {
        (slots[a].kept, slots[a].weight())
            .cmp(&(slots[b].kept, slots[b].weight()))
            .then_with(|| slots[b].name.cmp(slots[a].name))
    });
    let mut left = remove;
    for i in order {
        let cut = slots[i].kept.min(left);
        removes[i] = cut;
        left -= cut;
    }
    removes
}

fn shrink_spread(slots: &[Slot<'_>], remove: u64) -> Vec<u64> {
    let mut removes = vec![0; slots.len()];
    for _ in 0..remove {
        // The replica with the lowest priority `weight / (2 × seats − 1)`, i.e. the one the
        // method gave last; ties to the smaller weight, then the larger name.
        let mut worst: Option<usize> = None;
        for (i, slot) in slots.iter().enumerate() {
            let seats = slot.kept - removes[i];
            if seats == 0 {
                continue;
            }
            let worse = match worst {
                None => true,
                Some(w) => {
                    let seats_w = slots[w].kept - removes[w];
                    // priority(i) < priority(w)  ⇔  w is ahead of i, at one seat fewer each.
                    ahead(slots, w, seats_w - 1, i, seats - 1)
                }
            };
            if worse {
                worst = Some(i);
            }
        }
        match worst {
            Some(i) => removes[i] += 1,
            None => break,
        }
    }
    removes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots<'a>(spec: &[(&'a str, u64, u64)]) -> Vec<Slot<'a>> {
        spec.iter()
            .map(|&(name, kept, free)| Slot { name, kept, free })
            .collect()
    }

    #[test]
    fn bin_pack_fills_one_target_when_one_fits_choosing_the_tightest() {
        let s = slots(&[("a", 0, 10), ("b", 0, 4), ("c", 0, 3), ("d", 0, 4)]);
        // Four fit on b or d (tightest); b by name.
        assert_eq!(grow(Strategy::BinPack, &s, 4, usize::MAX), vec![0, 4, 0, 0]);
        // Twelve need two targets: the largest, then the tightest fit for the last two.
        assert_eq!(
            grow(Strategy::BinPack, &s, 12, usize::MAX),
            vec![10, 0, 2, 0]
        );
        // maxTargets=1 cannot hold twelve: falls short.
        assert_eq!(grow(Strategy::BinPack, &s, 12, 1).iter().sum::<u64>(), 10);
    }

    #[test]
    fn bin_pack_grows_where_it_already_runs() {
        let s = slots(&[("a", 0, 10), ("b", 2, 1), ("c", 1, 5)]);
        // Running targets first, roomiest first: c takes 5, b takes 1, then a the rest.
        assert_eq!(grow(Strategy::BinPack, &s, 8, usize::MAX), vec![2, 1, 5]);
        // With maxTargets = 2 the third target is out.
        assert_eq!(grow(Strategy::BinPack, &s, 8, 2), vec![0, 1, 5]);
    }

    #[test]
    fn spread_is_proportional_to_capacity() {
        let s = slots(&[("a", 0, 30), ("b", 0, 20), ("c", 0, 10)]);
        assert_eq!(grow(Strategy::Spread, &s, 6, usize::MAX), vec![3, 2, 1]);
        assert_eq!(grow(Strategy::Spread, &s, 1, usize::MAX), vec![1, 0, 0]);
        // Two targets at most: the two roomiest.
        assert_eq!(grow(Strategy::Spread, &s, 5, 2), vec![3, 2, 0]);
        // Room caps a target; the rest goes elsewhere.
        let tight = slots(&[("a", 0, 1), ("b", 0, 1), ("c", 0, 4)]);
        assert_eq!(grow(Strategy::Spread, &tight, 5, usize::MAX), vec![1, 1, 3]);
        assert_eq!(grow(Strategy::Spread, &tight, 6, usize::MAX), vec![1, 1, 4]);
        assert_eq!(grow(Strategy::Spread, &tight, 7, usize::MAX), vec![1, 1, 4]);
    }

    #[test]
    fn spread_is_house_monotone_over_a_range() {
        let s = slots(&[
            ("a", 0, 7),
            ("b", 0, 13),
            ("c", 0, 2),
            ("d", 0, 29),
            ("e", 0, 5),
        ]);
        let mut before = vec![0; s.len()];
        for want in 1..=56 {
            let now = grow(Strategy::Spread, &s, want, 4);
            assert!(
                now.iter().zip(&before).all(|(n, b)| n >= b),
                "{want}: {before:?} → {now:?}"
            );
            before = now;
        }
    }

    #[test]
    fn spread_continues_from_running_replicas() {
        // a already runs 3 of its capacity 4+3=7, b none of 7: b gets the next ones.
        let s = slots(&[("a", 3, 4), ("b", 0, 7)]);
        assert_eq!(grow(Strategy::Spread, &s, 3, usize::MAX), vec![0, 3]);
    }

    #[test]
    fn shrink_removes_from_the_least_preferred() {
        let s = slots(&[("a", 5, 0), ("b", 1, 9), ("c", 2, 0)]);
        // BinPack empties the smallest shares first: b, then c.
        assert_eq!(shrink(Strategy::BinPack, &s, 2), vec![0, 1, 1]);
        assert_eq!(shrink(Strategy::BinPack, &s, 99), vec![5, 1, 2]);
        // Spread removes the replica it would have given last: it gave a, b, a, c, b, a.
        let t = slots(&[("a", 3, 27), ("b", 2, 18), ("c", 1, 9)]);
        assert_eq!(shrink(Strategy::Spread, &t, 1), vec![1, 0, 0]);
        assert_eq!(shrink(Strategy::Spread, &t, 3), vec![1, 1, 1]);
    }

    #[test]
    fn spread_shrink_then_grow_returns_to_the_same_shares() {
        let base = slots(&[("a", 0, 30), ("b", 0, 20), ("c", 0, 10)]);
        let six = grow(Strategy::Spread, &base, 6, usize::MAX);
        let running: Vec<Slot<'_>> = base
            .iter()
            .zip(&six)
            .map(|(s, &n)| Slot {
                kept: n,
                free: s.free - n,
                ..*s
            })
            .collect();
        let cut = shrink(Strategy::Spread, &running, 2);
        let four = grow(Strategy::Spread, &base, 4, usize::MAX);
        let after: Vec<u64> = six.iter().zip(&cut).map(|(a, c)| a - c).collect();
        assert_eq!(after, four);
    }
}
