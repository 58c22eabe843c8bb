//! Launch backoff per (tenant, tier): a failed launch makes the key wait, doubling up to a maximum; a
//! successful one clears it. The state lives with the dispatcher and enters each plan in its snapshot; the
//! plan says which keys wait and until when.

use super::after;
use crate::Timestamp;
use crate::ids::{InstallationId, TierName};
use crate::reason::Reason;
use std::collections::BTreeMap;
use std::time::Duration;

/// The key launches back off on.
pub type BackoffKey = (InstallationId, TierName);

/// One key's backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Consecutive failed launches.
    pub failures: u32,
    /// No launch for the key before this.
    pub until: Timestamp,
    /// Why the last launch failed (the waiting jobs' reason).
    pub reason: Reason,
}

/// The backoff state of every key that failed last.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchBackoff {
    pub keys: BTreeMap<BackoffKey, Backoff>,
}

impl LaunchBackoff {
    /// Why launches of `key` wait at `now`, and until when; None when they may go ahead.
    pub fn waiting(&self, key: &BackoffKey, now: Timestamp) -> Option<Backoff> {
        self.keys.get(key).copied().filter(|b| b.until > now)
    }

    /// A launch of `key` succeeded: it no longer backs off.
    pub fn succeeded(&mut self, key: &BackoffKey) {
        self.keys.remove(key);
    }

    /// A launch of `key` failed at `now`: back off one step further. Returns the delay.
    pub fn failed(
        &mut self,
        key: BackoffKey,
        reason: Reason,
        now: Timestamp,
        base: Duration,
        max: Duration,
    ) -> Duration {
        let failures = self.keys.get(&key).map_or(0, |b| b.failures) + 1;
        let delay = backoff_delay(base, max, failures);
        self.keys.insert(key, Backoff { failures, until: after(now, delay), reason });
        delay
    }
}

/// Exponential backoff: `base * 2^(failures-1)`, at most `max`.
pub fn backoff_delay(base: Duration, max: Duration, failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    base.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let s = Duration::from_secs;
        let table = [(1, s(2)), (2, s(4)), (3, s(8)), (5, s(32)), (6, s(60)), (40, s(60))];
        for (failures, expected) in table {
            assert_eq!(backoff_delay(s(2), s(60), failures), expected, "failures={failures}");
        }
    }

    #[test]
    fn failures_extend_and_success_clears() {
        let s = Duration::from_secs;
        let now = Timestamp::UNIX_EPOCH;
        let key: BackoffKey = (InstallationId(1), "small".into());
        let mut state = LaunchBackoff::default();
        assert_eq!(state.failed(key.clone(), Reason::ProviderError, now, s(2), s(60)), s(2));
        assert_eq!(state.failed(key.clone(), Reason::GithubError, now, s(2), s(60)), s(4));
        let waiting = state.waiting(&key, now).expect("the key backs off");
        assert_eq!((waiting.failures, waiting.until, waiting.reason), (2, after(now, s(4)), Reason::GithubError));
        assert_eq!(state.waiting(&key, after(now, s(4))), None, "the backoff ends at its `until`");
        state.succeeded(&key);
        assert_eq!(state.waiting(&key, now), None);
        assert_eq!(state.failed(key, Reason::ProviderError, now, s(2), s(60)), s(2), "a success resets the count");
    }
}
