//! Whether a Postgres shard is reachable: after failing for a whole retry window, operations
//! try once instead of retrying, so requests to a shard that is down get their 503 at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

/// Since when operations have failed to reach Postgres (none while they succeed).
#[derive(Default)]
pub(super) struct Reachability {
    /// Nanoseconds after `EPOCH` of the first failure in a row; 0 while reachable.
    failing_since: AtomicU64,
}

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

impl Reachability {
    pub(super) fn failed(&self) {
        let now = EPOCH.elapsed().as_nanos().max(1) as u64;
        let _ = self
            .failing_since
            .compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire);
    }

    pub(super) fn reached(&self) {
        // Read first: the common case (reachable) writes nothing.
        if self.failing_since.load(Ordering::Acquire) != 0 {
            self.failing_since.store(0, Ordering::Release);
        }
    }

    /// Unreachable for longer than a read's retry window.
    pub(super) fn down(&self) -> bool {
        self.down_for(super::READ_RETRY_FOR)
    }

    fn down_for(&self, window: Duration) -> bool {
        let since = self.failing_since.load(Ordering::Acquire);
        since != 0 && EPOCH.elapsed().saturating_sub(Duration::from_nanos(since)) >= window
    }
}

#[cfg(test)]
mod reachability_tests {
    use super::*;

    #[test]
    fn down_only_after_failing_for_a_whole_window_and_up_at_the_first_success() {
        let r = Reachability::default();
        assert!(!r.down_for(Duration::ZERO));
        r.failed();
        assert!(!r.down_for(Duration::from_secs(3600)));
        std::thread::sleep(Duration::from_millis(5));
        r.failed();
        assert!(
            r.down_for(Duration::from_millis(5)),
            "measured from the first failure"
        );
        r.reached();
        assert!(!r.down_for(Duration::ZERO));
    }
}
