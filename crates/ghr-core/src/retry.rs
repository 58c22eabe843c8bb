//! The one retry policy for calls that fail transiently (GitHub, the store, providers): its parameters as
//! named constants and the [`backon`] backoff they describe. Pure data: nothing here sleeps.
//!
//! How adapters use it:
//!
//! - **GitHub client** (`ghr-github`): `policy.backoff()` drives `backon::Retryable::retry` around one
//!   request; 5xx answers, transport failures and rate limits are retried, and a rate limit's own wait
//!   (`Retry-After`, `x-ratelimit-reset`) replaces the computed delay when it is at most
//!   [`RetryPolicy::max_delay`] (a longer wait goes back to the caller at once, as
//!   [`crate::ports::GithubError::RateLimited`], for the engine to reschedule).
//! - **Store** (for the engine engineer wiring it): wrap one store operation, not a transaction's parts,
//!   with `policy.backoff()` and retry only what the backend reports as transient (SQLite `BUSY`/`LOCKED`,
//!   a dropped connection); a [`crate::ports::StoreError::Corrupt`] is never retried.
//! - **Providers**: retry `terminate` and `list` (idempotent) on throttling and transport failures; retry
//!   `launch` only when the provider can prove nothing was started (e.g. EC2 with the same client token),
//!   since the engine already retries launches with its own backoff per job.
//!
//! Every caller takes the policy from configuration (defaults below) rather than inventing its own numbers,
//! so operators tune one thing. Loops that repeat whole passes (the dispatcher's per-job backoff, the
//! reconciler's interval) are scheduling, not retries, and stay separate.

use backon::ExponentialBuilder;
use std::time::Duration;

/// Delay before the first retry; each further retry doubles it ([`RETRY_FACTOR`]).
pub const DEFAULT_RETRY_BASE_DELAY: Duration = Duration::from_millis(500);
/// Longest computed delay between two attempts, and the longest server-requested wait honoured.
pub const DEFAULT_RETRY_MAX_DELAY: Duration = Duration::from_secs(60);
/// Retries after the first attempt (so at most `1 + DEFAULT_RETRY_ATTEMPTS` calls).
pub const DEFAULT_RETRY_ATTEMPTS: u32 = 3;
/// Whether each delay is stretched by a random share of itself (up to double), so that many callers that
/// failed together (one GitHub outage, every tenant) do not retry in lockstep.
pub const DEFAULT_RETRY_JITTER: bool = true;
/// Growth of the delay from one retry to the next.
pub const RETRY_FACTOR: f32 = 2.0;

/// How often and how patiently to retry a call that failed transiently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before the first retry.
    pub base_delay: Duration,
    /// Cap on the computed delay, and on a server-requested wait that is honoured.
    pub max_delay: Duration,
    /// Retries after the first attempt; 0 disables retrying.
    pub max_retries: u32,
    /// Add a random share (0..100 %) of each delay to it.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl RetryPolicy {
    /// The documented defaults.
    pub const DEFAULT: RetryPolicy = RetryPolicy {
        base_delay: DEFAULT_RETRY_BASE_DELAY,
        max_delay: DEFAULT_RETRY_MAX_DELAY,
        max_retries: DEFAULT_RETRY_ATTEMPTS,
        jitter: DEFAULT_RETRY_JITTER,
    };

    /// The backoff this policy describes: exponential from `base_delay` by [`RETRY_FACTOR`], capped at
    /// `max_delay`, `max_retries` delays long, jittered when `jitter` is set.
    pub fn backoff(&self) -> ExponentialBuilder {
        let builder = ExponentialBuilder::new()
            .with_min_delay(self.base_delay)
            .with_max_delay(self.max_delay.max(self.base_delay))
            .with_factor(RETRY_FACTOR)
            .with_max_times(usize::try_from(self.max_retries).unwrap_or(usize::MAX));
        if self.jitter { builder.with_jitter() } else { builder }
    }

    /// The delay before retry `retry` (0-based) without jitter, or None when the policy allows no more.
    pub fn delay(&self, retry: u32) -> Option<Duration> {
        if retry >= self.max_retries {
            return None;
        }
        let factor = (RETRY_FACTOR as u32).saturating_pow(retry);
        Some(self.base_delay.saturating_mul(factor).min(self.max_delay.max(self.base_delay)))
    }

    /// Whether a wait the server asked for (`Retry-After`) is short enough to wait for here.
    pub fn honours_wait(&self, wait: Duration) -> bool {
        wait <= self.max_delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backon::BackoffBuilder;

    fn policy(jitter: bool) -> RetryPolicy {
        RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
            max_retries: 4,
            jitter,
        }
    }

    #[test]
    fn delays_double_up_to_the_cap_and_stop_after_the_attempts() {
        let want: Vec<u128> = vec![100, 200, 350, 350];
        // backon computes in f32: compare whole milliseconds.
        let built: Vec<u128> = policy(false).backoff().build().map(|delay| delay.as_micros().div_ceil(1000)).collect();
        assert_eq!(built, want);
        let pure: Vec<u128> = (0..6).map_while(|retry| policy(false).delay(retry)).map(|d| d.as_millis()).collect();
        assert_eq!(pure, want);
    }

    #[test]
    fn jitter_stretches_each_delay_by_at_most_itself() {
        let plain: Vec<Duration> = policy(false).backoff().build().collect();
        let jittered: Vec<Duration> = policy(true).backoff().build().collect();
        assert_eq!(jittered.len(), plain.len());
        for (jittered, plain) in jittered.iter().zip(&plain) {
            assert!(jittered >= plain && *jittered <= *plain * 2, "{jittered:?} vs {plain:?}");
        }
    }

    #[test]
    fn zero_retries_means_no_delay_at_all() {
        let none = RetryPolicy { max_retries: 0, ..RetryPolicy::DEFAULT };
        assert_eq!(none.backoff().build().next(), None);
        assert_eq!(none.delay(0), None);
    }

    #[test]
    fn defaults_are_the_named_constants() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.base_delay, DEFAULT_RETRY_BASE_DELAY);
        assert_eq!(policy.max_delay, DEFAULT_RETRY_MAX_DELAY);
        assert_eq!(policy.max_retries, DEFAULT_RETRY_ATTEMPTS);
        assert!(policy.jitter);
        assert!(policy.honours_wait(DEFAULT_RETRY_MAX_DELAY));
        assert!(!policy.honours_wait(DEFAULT_RETRY_MAX_DELAY + Duration::from_secs(1)));
    }
}
