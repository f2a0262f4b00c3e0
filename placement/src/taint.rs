//! Taints on targets and a deployment's tolerations, with Kubernetes' matching rules: a toleration
//! matches a taint when its effect is empty or equal, and its key is empty with `Exists` (tolerates
//! every key) or equal, with `Exists` (any value) or `Equal` (that value).
//!
//! Two questions are asked, as the kubelet and scheduler ask them for pods:
//! - may *new* replicas go to a target: every `NoSchedule` and `NoExecute` taint must be tolerated
//!   ([`first_untolerated`]); `PreferNoSchedule` is a preference and is ignored here;
//! - may *running* replicas stay: every `NoExecute` taint must be tolerated, and not past the
//!   shortest `tolerationSeconds` among the matching tolerations, counted from the taint's
//!   `timeAdded` ([`evicting`]). This is how a target that stopped heartbeating (tainted
//!   `NoExecute` by the health controller) hands its replicas to failover after a grace period.

use std::fmt;

/// A taint's effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

impl fmt::Display for TaintEffect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        })
    }
}

/// A taint on a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: TaintEffect,
    /// When the taint was added, in seconds since the Unix epoch; `None` counts as "now", so a
    /// `tolerationSeconds` never runs out on it (except zero or less, which evicts at once).
    pub time_added: Option<i64>,
}

/// How a toleration compares values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TolerationOperator {
    /// Any value (and, with no key, any key).
    Exists,
    /// Exactly this value.
    Equal(String),
}

/// A deployment's toleration of taints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toleration {
    /// `None` with [`TolerationOperator::Exists`] tolerates every key; `None` with `Equal`
    /// tolerates nothing (the API server rejects it).
    pub key: Option<String>,
    pub operator: TolerationOperator,
    /// `None` matches every effect.
    pub effect: Option<TaintEffect>,
    /// For `NoExecute`: how long running replicas may stay after the taint was added.
    pub toleration_seconds: Option<i64>,
}

impl Taint {
    pub fn new(key: impl Into<String>, value: impl Into<String>, effect: TaintEffect) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
            effect,
            time_added: None,
        }
    }
}

impl Toleration {
    /// Tolerates every taint with this key, whatever its value and effect.
    pub fn exists(key: impl Into<String>) -> Self {
        Self {
            key: Some(key.into()),
            operator: TolerationOperator::Exists,
            effect: None,
            toleration_seconds: None,
        }
    }

    /// Whether this toleration matches the taint (ignoring `tolerationSeconds`).
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if self.effect.is_some_and(|e| e != taint.effect) {
            return false;
        }
        match (&self.key, &self.operator) {
            (None, TolerationOperator::Exists) => true,
            (None, TolerationOperator::Equal(_)) => false,
            (Some(key), operator) => {
                *key == taint.key
                    && match operator {
                        TolerationOperator::Exists => true,
                        TolerationOperator::Equal(value) => *value == taint.value,
                    }
            }
        }
    }
}

/// The first taint that keeps new replicas off a target, if any.
pub fn first_untolerated<'t>(taints: &'t [Taint], tolerations: &[Toleration]) -> Option<&'t Taint> {
    taints.iter().find(|taint| {
        taint.effect != TaintEffect::PreferNoSchedule
            && !tolerations.iter().any(|t| t.tolerates(taint))
    })
}

/// The first `NoExecute` taint that evicts running replicas at `now`, if any.
pub fn evicting<'t>(
    taints: &'t [Taint],
    tolerations: &[Toleration],
    now: i64,
) -> Option<&'t Taint> {
    taints
        .iter()
        .filter(|taint| taint.effect == TaintEffect::NoExecute)
        .find(|taint| {
            let mut matching = tolerations.iter().filter(|t| t.tolerates(taint)).peekable();
            if matching.peek().is_none() {
                return true;
            }
            // As Kubernetes: the shortest limit among matching tolerations that set one; if
            // none sets one, the replicas stay for good.
            match matching.filter_map(|t| t.toleration_seconds).min() {
                None => false,
                Some(seconds) => {
                    let since = taint.time_added.unwrap_or(now);
                    now >= since.saturating_add(seconds.max(0))
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNREACHABLE: &str = "trellis.dev/unreachable";

    fn unreachable_since(t: i64) -> Taint {
        Taint {
            time_added: Some(t),
            ..Taint::new(UNREACHABLE, "", TaintEffect::NoExecute)
        }
    }

    #[test]
    fn toleration_matching_follows_kubernetes() {
        let gpu = Taint::new("nvidia.com/gpu", "present", TaintEffect::NoSchedule);
        assert!(Toleration::exists("nvidia.com/gpu").tolerates(&gpu));
        let equal = |v: &str, effect| Toleration {
            key: Some("nvidia.com/gpu".into()),
            operator: TolerationOperator::Equal(v.into()),
            effect,
            toleration_seconds: None,
        };
        assert!(equal("present", None).tolerates(&gpu));
        assert!(equal("present", Some(TaintEffect::NoSchedule)).tolerates(&gpu));
        assert!(!equal("present", Some(TaintEffect::NoExecute)).tolerates(&gpu));
        assert!(!equal("absent", None).tolerates(&gpu));
        let everything = Toleration {
            key: None,
            operator: TolerationOperator::Exists,
            effect: None,
            toleration_seconds: None,
        };
        assert!(everything.tolerates(&gpu));
        let keyless_equal = Toleration {
            operator: TolerationOperator::Equal("present".into()),
            ..everything
        };
        assert!(!keyless_equal.tolerates(&gpu));
    }

    #[test]
    fn new_replicas_need_noschedule_and_noexecute_tolerated() {
        let taints = vec![
            Taint::new("maintenance", "", TaintEffect::PreferNoSchedule),
            Taint::new("dedicated", "acme", TaintEffect::NoSchedule),
        ];
        assert_eq!(
            first_untolerated(&taints, &[]).map(|t| t.key.as_str()),
            Some("dedicated")
        );
        assert_eq!(
            first_untolerated(&taints, &[Toleration::exists("dedicated")]),
            None
        );
    }

    #[test]
    fn running_replicas_leave_after_toleration_seconds() {
        let taints = vec![
            Taint::new("dedicated", "acme", TaintEffect::NoSchedule),
            unreachable_since(1_000),
        ];
        // NoSchedule never evicts; an untolerated NoExecute does at once.
        assert!(evicting(&taints[..1], &[], 5_000).is_none());
        assert!(evicting(&taints, &[], 1_000).is_some());
        // Tolerated for 300 s: stays until 1300, leaves from then on.
        let grace = Toleration {
            toleration_seconds: Some(300),
            ..Toleration::exists(UNREACHABLE)
        };
        assert!(evicting(&taints, std::slice::from_ref(&grace), 1_299).is_none());
        assert!(evicting(&taints, std::slice::from_ref(&grace), 1_300).is_some());
        // Another matching toleration without seconds does not lift the shortest limit.
        let forever = Toleration::exists(UNREACHABLE);
        assert!(evicting(&taints, &[grace, forever.clone()], 1_300).is_some());
        // Only tolerations without seconds: stays for good.
        assert!(evicting(&taints, &[forever], i64::MAX).is_none());
    }

    #[test]
    fn taint_without_time_added_keeps_a_positive_grace() {
        let taint = Taint::new(UNREACHABLE, "", TaintEffect::NoExecute);
        let grace = Toleration {
            toleration_seconds: Some(60),
            ..Toleration::exists(UNREACHABLE)
        };
        assert!(evicting(std::slice::from_ref(&taint), &[grace], 10).is_none());
        let zero = Toleration {
            toleration_seconds: Some(0),
            ..Toleration::exists(UNREACHABLE)
        };
        assert!(evicting(&[taint], &[zero], 10).is_some());
    }
}
