//! What placement decides for one deployment: an outcome whose reason string is the one the API's
//! conditions use, a message for people, the assignments that should exist afterwards, and the
//! booking ids the controller writes into the changed `Placement` objects.
//!
//! A decision never removes running replicas because something failed: on every failure the
//! assignments keep what runs (only a scale-down, or replicas moved elsewhere, take any away).

use std::collections::BTreeMap;
use std::fmt;

use crate::deployment::{Assignments, Deployment};

/// Why a deployment is (or is not) where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Every wanted replica has a target.
    Scheduled,
    /// No target (or not enough of them, within `maxTargets`) can take the added replicas.
    NoTargetFits,
    /// The eligible targets have enough free GPUs in total, but not enough on single nodes: a
    /// replica needs all its GPUs on one node.
    InsufficientContiguousGpus,
    /// The tenant's quota (with what it may borrow) cannot cover the added replicas; retried when
    /// quota frees.
    QuotaExceeded,
    /// The deployment's workspace is not a tenant of the pool.
    NotAllowed,
    /// The pool does not exist.
    PoolNotFound,
    /// The pool has no such class.
    ClassNotFound,
    /// Replicas had to leave a target (lost, evicted, deselected) and not all found room
    /// elsewhere; those that did not stay where they were, and the caller deletes nothing of them.
    NoAlternativeCapacity,
}

impl Outcome {
    /// The condition reason the API uses.
    pub fn reason(self) -> &'static str {
        match self {
            Outcome::Scheduled => "Scheduled",
            Outcome::NoTargetFits => "NoTargetFits",
            Outcome::InsufficientContiguousGpus => "InsufficientContiguousGPUs",
            Outcome::QuotaExceeded => "QuotaExceeded",
            Outcome::NotAllowed => "NotAllowed",
            Outcome::PoolNotFound => "PoolNotFound",
            Outcome::ClassNotFound => "ClassNotFound",
            Outcome::NoAlternativeCapacity => "NoAlternativeCapacity",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// The decision for one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub uid: String,
    pub outcome: Outcome,
    /// For the deployment's status: why it is not scheduled, or what moved; empty otherwise.
    pub message: String,
    /// Where its replicas should run afterwards (targets with zero replicas are left out).
    pub assignments: Assignments,
    /// For each target whose replica count changed and stays above zero: the booking id to write
    /// into that `Placement`'s spec, which the target's syncer echoes back in its inventory once
    /// its free-GPU reading accounts for it (see [`crate::Ledger`]).
    pub bookings: BTreeMap<String, u64>,
    /// The pool's tenant entry (workspace path) whose quota it uses, when resolved.
    pub tenant: Option<String>,
    /// GPUs it holds of that quota after this decision.
    pub quota_gpus: u64,
    /// Of the GPUs newly reserved by this decision, those beyond the tenant's nominal quota.
    pub borrowed_gpus: u64,
}

impl Decision {
    /// A decision that changes nothing: what runs stays.
    pub(crate) fn unchanged(d: &Deployment, outcome: Outcome, message: String) -> Self {
        Self {
            uid: d.uid.clone(),
            outcome,
            message,
            assignments: d
                .existing
                .iter()
                .filter(|(_, s)| s.replicas > 0)
                .map(|(t, s)| (t.clone(), s.clone()))
                .collect(),
            bookings: BTreeMap::new(),
            tenant: None,
            quota_gpus: 0,
            borrowed_gpus: 0,
        }
    }

    /// Replicas over all targets.
    pub fn replicas(&self) -> u64 {
        self.assignments
            .values()
            .map(|s| u64::from(s.replicas))
            .sum()
    }
}
