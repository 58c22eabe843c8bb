//! How long an invocation's work may run: Lambda kills a function at its deadline, and a batch killed mid-way is
//! failed *whole* and delivered again — which would defeat the partial batch response and, repeated, dead-letter
//! messages that are not poison. So every consumer stops starting work, and abandons work that hangs (a store or
//! cloud API that does not answer), early enough to re-send what is left as delayed messages and answer in time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// Kept back from the deadline for queueing the retries and answering (an SQS call may take its 8 s timeout).
pub const ANSWER_MARGIN: Duration = Duration::from_secs(10);
/// The least a consumer gets even from a short timeout (then half of it).
pub const MIN_BUDGET: Duration = Duration::from_secs(2);

/// The instant by which an invocation's work must be over.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    until: Instant,
}

impl Budget {
    /// The budget of an invocation whose Lambda deadline is `deadline_ms` (epoch milliseconds, as the Runtime API
    /// gives it): the time left minus [`ANSWER_MARGIN`], or half the time left when that is less than
    /// [`MIN_BUDGET`].
    pub fn from_deadline_ms(deadline_ms: u64) -> Budget {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let left = Duration::from_millis(u64::try_from(u128::from(deadline_ms).saturating_sub(now_ms)).unwrap_or(0));
        Budget::of(left)
    }

    /// A budget for `left` of remaining invocation time.
    pub fn of(left: Duration) -> Budget {
        let work = left.saturating_sub(ANSWER_MARGIN);
        let work = if work < MIN_BUDGET { left / 2 } else { work };
        Budget { until: Instant::now() + work }
    }

    /// The instant work must be over.
    pub fn until(self) -> Instant {
        self.until
    }

    /// Whether no time is left to start more work.
    pub fn spent(self) -> bool {
        Instant::now() >= self.until
    }

    /// Run `work` if time is left, abandoning it at the budget's end; either way the error says why.
    pub async fn run<T>(self, work: impl Future<Output = Result<T, String>>) -> Result<T, String> {
        if self.spent() {
            return Err("no time left in this invocation".into());
        }
        tokio::time::timeout_at(self.until, work)
            .await
            .unwrap_or_else(|_| Err("it outlived the invocation's budget (a store or API that does not answer)".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_is_kept_unless_the_invocation_is_short_then_half_is_used() {
        let long = Budget::of(Duration::from_secs(60));
        let left = long.until() - Instant::now();
        assert!(left <= Duration::from_secs(50) && left > Duration::from_secs(49), "{left:?}");
        let short = Budget::of(Duration::from_secs(8));
        let left = short.until() - Instant::now();
        assert!(left <= Duration::from_secs(4) && left > Duration::from_secs(3), "{left:?}");
        assert!(Budget::of(Duration::ZERO).spent());
        let past = Budget::from_deadline_ms(1_000);
        assert!(past.spent(), "a deadline already passed leaves nothing");
    }
}
