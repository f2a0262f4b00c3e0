//! Tenant quota admission, after Kueue's cohorts: each pool is one cohort, and per class every
//! tenant has a nominal quota, a borrowing limit and a lending limit.
//!
//! Model. A tenant's nominal quota splits into a *guaranteed* part (`nominal - lendingLimit`) that
//! only it may use, and a *lendable* part that goes into the pool's shared pot; with no lending
//! limit all of it is lendable. Usage up to the guaranteed part is always admitted. Beyond it a
//! tenant draws from the shared pot (first its own lendable part, then others'), and two bounds
//! hold: the pool's draws on the pot never exceed the pot (so no lender gives more than its lending
//! limit), and the tenant's usage beyond its nominal quota never exceeds its borrowing limit.
//!
//! There is no preemption yet: a lender whose lendable part is borrowed gets it back only as
//! borrowers shrink, which is exactly why a lending limit exists. Running replicas are charged
//! first ([`QuotaBook::charge`], never refused: GPUs in use are never invisible), and additions are
//! then reserved one deployment at a time in creation order ([`QuotaBook::try_reserve`]).
//! A tenant with no quota entry for a class may use none of it. Amounts are GPUs (or MIG slices).

use std::fmt;

use crate::pool::GpuPool;

/// Indices of a deployment's pool, class and tenant entry in the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QuotaRef {
    pub pool: usize,
    pub class: usize,
    pub tenant: usize,
}

/// Usage against quota, for every pool, class and tenant of one placement pass.
#[derive(Debug, Clone)]
pub(crate) struct QuotaBook {
    /// `[pool][class][tenant]`, in snapshot order.
    entries: Vec<Vec<Vec<Entry>>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    nominal: u64,
    borrowing_limit: Option<u64>,
    /// `min(lendingLimit, nominal)`.
    lendable: u64,
    usage: u64,
}

impl Entry {
    fn guaranteed(&self) -> u64 {
        self.nominal - self.lendable
    }

    /// What this usage draws on the shared pot.
    fn draw(&self, usage: u64) -> u64 {
        usage.saturating_sub(self.guaranteed())
    }
}

/// An admitted reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Admitted {
    /// GPUs of it beyond the tenant's nominal quota.
    pub borrowed: u64,
}

/// A refused reservation, with the numbers a person needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub asked: u64,
    pub headroom: u64,
    pub usage: u64,
    pub nominal: u64,
    pub borrowing_limit: Option<u64>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "needs {} more GPUs but only {} are available (in use {}, nominal quota {}, ",
            self.asked, self.headroom, self.usage, self.nominal
        )?;
        match self.borrowing_limit {
            Some(limit) => write!(f, "borrowing limit {limit})"),
            None => f.write_str("no borrowing limit)"),
        }
    }
}

impl QuotaBook {
    pub(crate) fn new(pools: &[GpuPool]) -> Self {
        let entries = pools
            .iter()
            .map(|pool| {
                pool.classes
                    .iter()
                    .map(|class| {
                        pool.tenants
                            .iter()
                            .map(|tenant| {
                                tenant
                                    .quotas
                                    .iter()
                                    .find(|q| q.class == class.name)
                                    .map(|q| {
                                        let nominal = u64::from(q.nominal_quota);
                                        Entry {
                                            nominal,
                                            borrowing_limit: q.borrowing_limit.map(u64::from),
                                            lendable: q
                                                .lending_limit
                                                .map_or(nominal, |l| u64::from(l).min(nominal)),
                                            usage: 0,
                                        }
                                    })
                                    .unwrap_or(Entry {
                                        borrowing_limit: Some(0),
                                        ..Entry::default()
                                    })
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        Self { entries }
    }

    fn class(&mut self, at: QuotaRef) -> Option<&mut Vec<Entry>> {
        self.entries.get_mut(at.pool)?.get_mut(at.class)
    }

    /// Charges GPUs already in use, without checking.
    pub(crate) fn charge(&mut self, at: QuotaRef, gpus: u64) {
        if let Some(e) = self.class(at).and_then(|c| c.get_mut(at.tenant)) {
            e.usage = e.usage.saturating_add(gpus);
        }
    }

    /// Gives back a reservation.
    pub(crate) fn release(&mut self, at: QuotaRef, gpus: u64) {
        if let Some(e) = self.class(at).and_then(|c| c.get_mut(at.tenant)) {
            e.usage = e.usage.saturating_sub(gpus);
        }
    }

    /// The most the tenant could add now.
    fn headroom(class: &[Entry], tenant: usize) -> u64 {
        let Some(me) = class.get(tenant) else {
            return 0;
        };
        let pot: u64 = class.iter().map(|e| e.lendable).sum();
        let others_draw: u64 = class
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != tenant)
            .map(|(_, e)| e.draw(e.usage))
            .sum();
        let by_pot = me.guaranteed() + pot.saturating_sub(others_draw);
        let by_borrowing = me
            .borrowing_limit
            .map_or(u64::MAX, |b| me.nominal.saturating_add(b));
        by_pot.min(by_borrowing).saturating_sub(me.usage)
    }

    /// Reserves `gpus` more for the tenant, or says why not.
    pub(crate) fn try_reserve(&mut self, at: QuotaRef, gpus: u64) -> Result<Admitted, Refusal> {
        let Some(class) = self.class(at) else {
            return Err(Refusal {
                asked: gpus,
                headroom: 0,
                usage: 0,
                nominal: 0,
                borrowing_limit: Some(0),
            });
        };
        let headroom = Self::headroom(class, at.tenant);
        let Some(me) = class.get_mut(at.tenant) else {
            return Err(Refusal {
                asked: gpus,
                headroom: 0,
                usage: 0,
                nominal: 0,
                borrowing_limit: Some(0),
            });
        };
        if gpus > headroom {
            return Err(Refusal {
                asked: gpus,
                headroom,
                usage: me.usage,
                nominal: me.nominal,
                borrowing_limit: me.borrowing_limit,
            });
        }
        let borrowed_before = me.usage.saturating_sub(me.nominal);
        me.usage += gpus;
        Ok(Admitted {
            borrowed: me.usage.saturating_sub(me.nominal) - borrowed_before,
        })
    }

    #[cfg(test)]
    pub(crate) fn usage(&self, at: QuotaRef) -> u64 {
        self.entries[at.pool][at.class][at.tenant].usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::{GpuClass, Quota, Tenant};

    fn pool(tenants: &[(&str, u32, Option<u32>, Option<u32>)]) -> GpuPool {
        GpuPool {
            name: "h200-eu".into(),
            classes: vec![GpuClass {
                name: "h200".into(),
                product: Some("NVIDIA H200".into()),
                ..GpuClass::default()
            }],
            tenants: tenants
                .iter()
                .map(|(ws, nominal, borrow, lend)| Tenant {
                    workspace: ws.to_string(),
                    weight: 1,
                    quotas: vec![Quota {
                        class: "h200".into(),
                        nominal_quota: *nominal,
                        borrowing_limit: *borrow,
                        lending_limit: *lend,
                    }],
                })
                .collect(),
            ..GpuPool::default()
        }
    }

    fn at(tenant: usize) -> QuotaRef {
        QuotaRef {
            pool: 0,
            class: 0,
            tenant,
        }
    }

    #[test]
    fn nominal_quota_first_then_borrowing_up_to_the_limit() {
        let pools = [pool(&[
            ("root:acme", 16, Some(8), None),
            ("root:beta", 32, None, None),
        ])];
        let mut book = QuotaBook::new(&pools);
        assert_eq!(book.try_reserve(at(0), 16), Ok(Admitted { borrowed: 0 }));
        assert_eq!(book.try_reserve(at(0), 8), Ok(Admitted { borrowed: 8 }));
        let refused = book.try_reserve(at(0), 1).unwrap_err();
        assert_eq!((refused.headroom, refused.usage), (0, 24));
        assert!(
            refused.to_string().contains("borrowing limit 8"),
            "{refused}"
        );
        // beta lent 8 of its 32: it can use 24 now, the rest when acme shrinks.
        assert_eq!(book.try_reserve(at(1), 25).unwrap_err().headroom, 24);
        assert!(book.try_reserve(at(1), 24).is_ok());
        book.release(at(0), 8);
        assert!(book.try_reserve(at(1), 8).is_ok());
        assert_eq!(book.usage(at(1)), 32);
    }

    #[test]
    fn lending_limit_bounds_what_a_lender_gives_and_guarantees_the_rest() {
        // beta lends at most 4 of its 16; acme may borrow without a limit of its own.
        let pools = [pool(&[
            ("root:acme", 8, None, Some(0)),
            ("root:beta", 16, None, Some(4)),
        ])];
        let mut book = QuotaBook::new(&pools);
        assert_eq!(book.try_reserve(at(0), 13).unwrap_err().headroom, 12);
        assert_eq!(book.try_reserve(at(0), 12), Ok(Admitted { borrowed: 4 }));
        // beta's guaranteed 12 stay its own.
        assert!(book.try_reserve(at(1), 12).is_ok());
        assert_eq!(book.try_reserve(at(1), 1).unwrap_err().headroom, 0);
    }

    #[test]
    fn no_entry_means_no_quota_and_forced_charges_count() {
        let mut p = pool(&[("root:acme", 8, None, None)]);
        p.tenants.push(Tenant {
            workspace: "root:beta".into(),
            weight: 1,
            quotas: Vec::new(),
        });
        let pools = [p];
        let mut book = QuotaBook::new(&pools);
        assert_eq!(book.try_reserve(at(1), 1).unwrap_err().headroom, 0);
        // Running replicas are charged even beyond quota; nothing more is admitted then.
        book.charge(at(0), 10);
        assert_eq!(book.try_reserve(at(0), 1).unwrap_err().headroom, 0);
        assert_eq!(book.usage(at(0)), 10);
    }
}
