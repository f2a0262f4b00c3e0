//! The revision a shard restored from a backup continues from (the `restore` module says why),
//! and what a restore reports: pure, so that the backends that carry out a restore need nothing
//! of `restore`, which opens them.

/// The least a restored shard's revision jumps beyond the backup's.
pub const RESTORE_GAP: u64 = 1_000_000_000;

/// The revision a shard restored from a backup at `backup_revision` continues from, when the
/// wall clock reads `now_micros` microseconds since the Unix epoch.
pub fn restored_revision(backup_revision: u64, now_micros: u64) -> u64 {
    backup_revision.saturating_add(RESTORE_GAP).max(now_micros)
}

/// What a restore did (`mark_restored`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restored {
    /// The revision the backup held (the shard's revision before the jump).
    pub backup_revision: u64,
    /// The revision the shard continues from; everything before it is compacted.
    pub revision: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const YEAR_MICROS: u64 = 365 * 24 * 3600 * 1_000_000;

    #[test]
    fn a_young_shard_jumps_to_the_clock() {
        let now = 56 * YEAR_MICROS;
        assert_eq!(restored_revision(1234, now), now);
    }

    #[test]
    fn a_shard_ahead_of_the_clock_jumps_by_the_gap() {
        assert_eq!(restored_revision(5, 10), 5 + RESTORE_GAP);
        let ahead = 60 * YEAR_MICROS;
        assert_eq!(
            restored_revision(ahead, 56 * YEAR_MICROS),
            ahead + RESTORE_GAP
        );
        assert_eq!(restored_revision(u64::MAX - 1, 0), u64::MAX);
    }

    #[test]
    fn the_same_backup_restored_twice_issues_no_revision_twice() {
        // Restored at t1, the first copy takes 10 million writes; the same backup restored a
        // minute later starts beyond all of them.
        let t1 = 56 * YEAR_MICROS;
        let first = restored_revision(500, t1);
        let first_reached = first + 10_000_000;
        let second = restored_revision(500, t1 + 60_000_000);
        assert!(second > first_reached);
    }

    #[test]
    fn revisions_stay_exact_in_json_numbers_for_centuries() {
        assert!(restored_revision(1 << 40, 200 * YEAR_MICROS + 56 * YEAR_MICROS) < 1 << 53);
    }
}
