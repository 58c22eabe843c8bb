//! Failure injection: failed and rate-limited REST answers, slow answers, dropped webhooks, refused App
//! JWTs and revoked installation tokens.

use super::GithubEmulator;
use axum::http::StatusCode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

/// What the next REST answer should be replaced with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Injected {
    Fail(StatusCode),
    RateLimited { retry_after_secs: u64 },
}

pub(crate) struct Faults {
    fail_remaining: u32,
    fail_status: StatusCode,
    rate_limit_remaining: u32,
    retry_after_secs: u64,
    pub(crate) latency: Duration,
    drop_rate: f64,
    drop_remaining: u32,
    /// App JWTs still to refuse with a 401, however valid (key rotation, clock skew on GitHub's side).
    pub(crate) jwt_refusals_remaining: u32,
    rng: StdRng,
}

impl Faults {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            fail_remaining: 0,
            fail_status: StatusCode::INTERNAL_SERVER_ERROR,
            rate_limit_remaining: 0,
            retry_after_secs: 0,
            latency: Duration::ZERO,
            drop_rate: 0.0,
            drop_remaining: 0,
            jwt_refusals_remaining: 0,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Consume one injected REST fault, if any is pending. Rate limits go first.
    pub(crate) fn take_rest_fault(&mut self) -> Option<Injected> {
        if self.rate_limit_remaining > 0 {
            self.rate_limit_remaining -= 1;
            return Some(Injected::RateLimited { retry_after_secs: self.retry_after_secs });
        }
        if self.fail_remaining > 0 {
            self.fail_remaining -= 1;
            return Some(Injected::Fail(self.fail_status));
        }
        None
    }

    /// Whether the next webhook delivery is withheld. Deterministic for a given seed and call order.
    pub(crate) fn take_webhook_drop(&mut self) -> bool {
        if self.drop_remaining > 0 {
            self.drop_remaining -= 1;
            return true;
        }
        self.drop_rate > 0.0 && self.rng.random_bool(self.drop_rate)
    }
}

impl GithubEmulator {
    /// Answer the next `count` REST calls (any route, token requests included) with `status`.
    pub fn fail_next(&self, count: u32, status: StatusCode) {
        let mut state = self.shared().lock();
        state.faults.fail_remaining = count;
        state.faults.fail_status = status;
    }

    /// Answer the next `count` REST calls with 429, `Retry-After: retry_after_secs` and GitHub's
    /// secondary-rate-limit message. Served before pending [`fail_next`](Self::fail_next) faults.
    pub fn rate_limit_next(&self, count: u32, retry_after_secs: u64) {
        let mut state = self.shared().lock();
        state.faults.rate_limit_remaining = count;
        state.faults.retry_after_secs = retry_after_secs;
    }

    /// Delay every REST answer by `latency` (zero turns it off).
    pub fn set_latency(&self, latency: Duration) {
        self.shared().lock().faults.latency = latency;
    }

    /// Withhold each future webhook with probability `rate` (clamped to 0..=1; drawn from the
    /// configured seed). A withheld delivery is recorded as failed, so a redelivery recovers it.
    pub fn drop_webhooks(&self, rate: f64) {
        let rate = if rate.is_finite() { rate.clamp(0.0, 1.0) } else { 0.0 };
        self.shared().lock().faults.drop_rate = rate;
    }

    /// Withhold the next `count` webhooks (recorded as failed, never sent).
    pub fn drop_next_webhooks(&self, count: u32) {
        self.shared().lock().faults.drop_remaining = count;
    }

    /// Refuse the next `count` App JWTs with 401, however valid (as GitHub does after a key rotation or
    /// with a clock far off); counted in [`Counters::refused_jwts`](super::Counters::refused_jwts).
    pub fn refuse_next_app_jwts(&self, count: u32) {
        self.shared().lock().faults.jwt_refusals_remaining = count;
    }

    /// Revoke every installation token of `installation` before it expires (as `DELETE /installation/token`
    /// or a permission change does): calls made with them get 401 `Bad credentials`. Returns how many.
    pub fn revoke_installation_tokens(&self, installation: ghr_core::ids::InstallationId) -> usize {
        let mut state = self.shared().lock();
        let before = state.tokens.len();
        state.tokens.retain(|_, token| token.installation_id != installation.0);
        before - state.tokens.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_faults_are_consumed_in_order() {
        let mut faults = Faults::new(1);
        faults.fail_remaining = 1;
        faults.fail_status = StatusCode::BAD_GATEWAY;
        faults.rate_limit_remaining = 1;
        faults.retry_after_secs = 7;
        assert_eq!(faults.take_rest_fault(), Some(Injected::RateLimited { retry_after_secs: 7 }));
        assert_eq!(faults.take_rest_fault(), Some(Injected::Fail(StatusCode::BAD_GATEWAY)));
        assert_eq!(faults.take_rest_fault(), None);
    }

    #[test]
    fn webhook_drops_are_deterministic_per_seed() {
        let draw = |seed| {
            let mut faults = Faults::new(seed);
            faults.drop_rate = 0.5;
            (0..64).map(|_| faults.take_webhook_drop()).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let drops = draw(7).into_iter().filter(|dropped| *dropped).count();
        assert!((10..54).contains(&drops), "about half are dropped, got {drops}");
    }
}
