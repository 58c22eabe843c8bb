//! Reason codes: why a job waits, was refused or failed. One enum shared by the API, CLI, metrics and logs.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a job is not (yet) running on one of our runners.
///
/// The snake_case string of each variant is a stable public contract: it appears in the admin API,
/// `ghr jobs show`, metrics labels and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The job's labels fit no configured tier (for example `ubuntu-latest`): not ours to serve.
    NoMatchingTier,
    /// A tier fits, but the tenant's plan does not include it.
    TierNotEntitled,
    /// The tenant already runs `max_runners` runners across all tiers.
    TenantAtLimit,
    /// The deployment-wide cap on live runners is reached.
    GlobalCap,
    /// The tenant is suspended (installation suspended, or by an operator).
    TenantSuspended,
    /// The tenant awaits operator approval (`onboarding = "approval"`).
    TenantPending,
    /// The tenant uninstalled the App; its jobs are dropped.
    TenantDeleted,
    /// No tenant is known for the job's installation.
    UnknownTenant,
    /// The runner provider failed to launch (capacity, quota, API error); retried with backoff.
    ProviderError,
    /// GitHub refused or failed a call needed to start a runner (JIT config); retried with backoff.
    GithubError,
    /// GitHub no longer reports the job as queued (cancelled, or served elsewhere).
    NoLongerQueued,
}

impl Reason {
    /// Every reason, in a stable order (used for metrics and docs).
    pub const ALL: [Reason; 11] = [
        Reason::NoMatchingTier,
        Reason::TierNotEntitled,
        Reason::TenantAtLimit,
        Reason::GlobalCap,
        Reason::TenantSuspended,
        Reason::TenantPending,
        Reason::TenantDeleted,
        Reason::UnknownTenant,
        Reason::ProviderError,
        Reason::GithubError,
        Reason::NoLongerQueued,
    ];

    /// The stable snake_case code.
    pub fn code(self) -> &'static str {
        match self {
            Reason::NoMatchingTier => "no_matching_tier",
            Reason::TierNotEntitled => "tier_not_entitled",
            Reason::TenantAtLimit => "tenant_at_limit",
            Reason::GlobalCap => "global_cap",
            Reason::TenantSuspended => "tenant_suspended",
            Reason::TenantPending => "tenant_pending",
            Reason::TenantDeleted => "tenant_deleted",
            Reason::UnknownTenant => "unknown_tenant",
            Reason::ProviderError => "provider_error",
            Reason::GithubError => "github_error",
            Reason::NoLongerQueued => "no_longer_queued",
        }
    }

    /// Parse a stable code back into a reason.
    pub fn from_code(code: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|reason| reason.code() == code)
    }

    /// A one-line explanation for operators, saying what would unblock the job.
    pub fn explain(self) -> &'static str {
        match self {
            Reason::NoMatchingTier => "the job's runs-on labels fit no configured tier; it is not for ghr",
            Reason::TierNotEntitled => "the tenant's plan does not include this tier; upgrade the tenant's tier",
            Reason::TenantAtLimit => "the tenant runs max_runners runners; the job starts when one finishes",
            Reason::GlobalCap => "the deployment-wide runner cap is reached; the job starts when a slot frees",
            Reason::TenantSuspended => "the tenant is suspended; resume it to serve the job",
            Reason::TenantPending => "the tenant awaits approval; run `ghr tenants approve`",
            Reason::TenantDeleted => "the tenant uninstalled the App; the job will not be served",
            Reason::UnknownTenant => "no tenant for this installation; the installation event may have been missed",
            Reason::ProviderError => "launching a runner failed; ghr retries with backoff",
            Reason::GithubError => {
                "a GitHub call to register a runner failed (see the runner's last error); ghr retries with backoff"
            }
            Reason::NoLongerQueued => "GitHub no longer reports the job as queued",
        }
    }

    /// Whether the job can still be served by ghr once the condition clears.
    pub fn is_waiting(self) -> bool {
        !matches!(self, Reason::NoMatchingTier | Reason::TenantDeleted | Reason::NoLongerQueued)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_match_serde() {
        for reason in Reason::ALL {
            assert_eq!(Reason::from_code(reason.code()), Some(reason));
            let json = serde_json::to_string(&reason).unwrap();
            assert_eq!(json, format!("\"{}\"", reason.code()));
        }
        assert_eq!(Reason::from_code("nope"), None);
    }
}
