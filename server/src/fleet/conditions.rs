//! Status conditions as the hub writes them: a condition's `lastTransitionTime` moves only
//! when its status does, so a reason or message changing under the same status keeps the
//! time a user reads as "since when". Shared by the deployment, pool and target status code
//! of this module.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::time::time_at;

/// A condition to set: its type, whether it holds, why, and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted<'a> {
    pub type_: &'a str,
    pub status: bool,
    pub reason: &'a str,
    pub message: String,
}

impl<'a> Wanted<'a> {
    pub fn new(type_: &'a str, status: bool, reason: &'a str, message: impl Into<String>) -> Self {
        Self {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
}

fn status_word(status: bool) -> &'static str {
    if status {
        "True"
    } else {
        "False"
    }
}

/// The condition `wanted` describes, carrying over the transition time of the `previous`
/// condition of its type when the status is unchanged.
pub fn condition(
    previous: &[Condition],
    wanted: Wanted<'_>,
    generation: Option<i64>,
    now: i64,
) -> Condition {
    let status = status_word(wanted.status);
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == wanted.type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| time_at(now));
    Condition {
        type_: wanted.type_.to_string(),
        status: status.to_string(),
        reason: wanted.reason.to_string(),
        message: wanted.message,
        observed_generation: generation,
        last_transition_time,
    }
}

/// Sets one condition in a list others also write to (a SyncTarget's syncer writes its own),
/// in place, keeping the list's order; whether anything changed.
pub fn set(list: &mut Vec<Condition>, wanted: Wanted<'_>, now: i64) -> bool {
    let new = condition(list, wanted, None, now);
    match list.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) if *old == new => false,
        Some(old) => {
            *old = new;
            true
        }
        None => {
            list.push(new);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::time::seconds;

    const NOW: i64 = 1_750_000_000;

    #[test]
    fn the_transition_time_moves_only_with_the_status() {
        let first = condition(
            &[],
            Wanted::new("Scheduled", false, "NoTargetFits", "0/3 targets"),
            Some(1),
            NOW,
        );
        assert_eq!(seconds(&first.last_transition_time), NOW);
        // Same status, new reason and message: the time stays.
        let later = condition(
            std::slice::from_ref(&first),
            Wanted::new(
                "Scheduled",
                false,
                "InsufficientContiguousGPUs",
                "scattered",
            ),
            Some(2),
            NOW + 60,
        );
        assert_eq!(seconds(&later.last_transition_time), NOW);
        assert_eq!(later.reason, "InsufficientContiguousGPUs");
        assert_eq!(later.observed_generation, Some(2));
        // The status flips: now.
        let flipped = condition(
            &[later],
            Wanted::new("Scheduled", true, "Scheduled", ""),
            Some(2),
            NOW + 120,
        );
        assert_eq!(seconds(&flipped.last_transition_time), NOW + 120);
        assert_eq!(flipped.status, "True");
    }

    #[test]
    fn set_keeps_other_writers_conditions_and_reports_changes() {
        let mut list = vec![condition(
            &[],
            Wanted::new("SyncerReady", true, "Connected", ""),
            None,
            NOW,
        )];
        assert!(set(
            &mut list,
            Wanted::new("HeartbeatHealthy", true, "HeartbeatReceived", ""),
            NOW
        ));
        assert!(!set(
            &mut list,
            Wanted::new("HeartbeatHealthy", true, "HeartbeatReceived", ""),
            NOW + 10
        ));
        let types: Vec<&str> = list.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, vec!["SyncerReady", "HeartbeatHealthy"]);
    }
}
