//! Admission: may a job get a runner now? Pure decisions; the store runs them inside its transaction.

use crate::entitlement::{TierAccess, is_entitled};
use crate::labels::match_tier;
use crate::reason::Reason;
use crate::tenant::{Tenant, TenantStatus};
use crate::tier::{Tier, TierCatalog};

/// Live-runner counts and limits seen atomically by the store when a slot is requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionInput {
    pub tenant_status: TenantStatus,
    /// The tenant's concurrent-runner limit across all tiers.
    pub max_runners: u32,
    /// The tenant's live runners across all tiers (reserved, launching, idle or busy).
    pub tenant_live: u32,
    /// Deployment-wide cap on live runners, if configured.
    pub global_cap: Option<u32>,
    /// Live runners of every tenant.
    pub global_live: u32,
}

/// The outcome of an admission check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Reserve a runner slot.
    Admit,
    /// The job waits; it is never dropped for lack of capacity.
    Wait(Reason),
}

/// Decide whether one more runner may start for a tenant.
pub fn admit(input: AdmissionInput) -> Admission {
    if let Some(reason) = status_reason(input.tenant_status) {
        return Admission::Wait(reason);
    }
    if input.tenant_live >= input.max_runners {
        return Admission::Wait(Reason::TenantAtLimit);
    }
    if let Some(cap) = input.global_cap
        && input.global_live >= cap
    {
        return Admission::Wait(Reason::GlobalCap);
    }
    Admission::Admit
}

/// Why a tenant in this status gets no new runner, if it does not.
pub fn status_reason(status: TenantStatus) -> Option<Reason> {
    match status {
        TenantStatus::Active => None,
        TenantStatus::Pending => Some(Reason::TenantPending),
        TenantStatus::Suspended => Some(Reason::TenantSuspended),
        TenantStatus::Deleted => Some(Reason::TenantDeleted),
    }
}

/// Which tier serves a job of this tenant, or why none does right now.
///
/// Checked in order: labels (`no_matching_tier`: not ours), tenant known and its status, entitlement.
pub fn classify<'c, S: AsRef<str>>(
    catalog: &'c TierCatalog,
    access: TierAccess,
    tenant: Option<&Tenant>,
    job_labels: &[S],
) -> Result<&'c Tier, Reason> {
    let tier = match_tier(catalog, job_labels).ok_or(Reason::NoMatchingTier)?;
    let tenant = tenant.ok_or(Reason::UnknownTenant)?;
    if let Some(reason) = status_reason(tenant.status) {
        return Err(reason);
    }
    if !is_entitled(catalog, access, &tenant.tier, &tier.name) {
        return Err(Reason::TierNotEntitled);
    }
    Ok(tier)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::InstallationId;
    use crate::tenant::{OrgType, TenantMetadata};

    fn input(status: TenantStatus, max: u32, live: u32, cap: Option<u32>, global: u32) -> AdmissionInput {
        AdmissionInput {
            tenant_status: status,
            max_runners: max,
            tenant_live: live,
            global_cap: cap,
            global_live: global,
        }
    }

    #[test]
    fn admission_table() {
        use Admission::*;
        use TenantStatus::*;
        let table = [
            (input(Active, 3, 0, None, 0), Admit),
            (input(Active, 3, 2, None, 50), Admit),
            // At the limit: live runners are counted across all tiers by the caller.
            (input(Active, 3, 3, None, 3), Wait(Reason::TenantAtLimit)),
            (input(Active, 3, 4, None, 4), Wait(Reason::TenantAtLimit)),
            (input(Active, 3, 1, Some(10), 10), Wait(Reason::GlobalCap)),
            (input(Active, 3, 1, Some(10), 9), Admit),
            // The tenant limit is reported before the global cap.
            (input(Active, 3, 3, Some(3), 3), Wait(Reason::TenantAtLimit)),
            (input(Suspended, 3, 0, None, 0), Wait(Reason::TenantSuspended)),
            (input(Pending, 3, 0, None, 0), Wait(Reason::TenantPending)),
            (input(Deleted, 3, 0, None, 0), Wait(Reason::TenantDeleted)),
        ];
        for (case, expected) in table {
            assert_eq!(admit(case), expected, "{case:?}");
        }
    }

    #[test]
    fn limit_counts_runners_across_tiers() {
        // A tenant with max 3 running one small and two large runners cannot start a medium one.
        let live_by_tier = [("small", 1u32), ("large", 2)];
        let tenant_live = live_by_tier.iter().map(|(_, n)| n).sum();
        assert_eq!(admit(input(TenantStatus::Active, 3, tenant_live, None, 3)), Admission::Wait(Reason::TenantAtLimit));
        assert_eq!(admit(input(TenantStatus::Active, 4, tenant_live, None, 3)), Admission::Admit);
    }

    fn tenant(plan: &str, status: TenantStatus) -> Tenant {
        let now = chrono::DateTime::UNIX_EPOCH;
        Tenant {
            installation_id: InstallationId(1),
            org_name: "acme".into(),
            org_type: OrgType::Organization,
            status,
            tier: plan.into(),
            max_runners: 2,
            created_at: now,
            updated_at: now,
            metadata: TenantMetadata::default(),
        }
    }

    #[test]
    fn classification_table() {
        let catalog = TierCatalog::seed_default();
        let small = tenant("small", TenantStatus::Active);
        let large = tenant("large", TenantStatus::Active);
        let suspended = tenant("large", TenantStatus::Suspended);
        type Case<'a> = (Option<&'a Tenant>, TierAccess, &'a [&'a str], Result<&'a str, Reason>);
        let table: Vec<Case> = vec![
            (Some(&small), TierAccess::UpToPlan, &["self-hosted", "small"], Ok("small")),
            (Some(&small), TierAccess::UpToPlan, &["self-hosted", "large"], Err(Reason::TierNotEntitled)),
            (Some(&small), TierAccess::Any, &["self-hosted", "large"], Ok("large")),
            (Some(&large), TierAccess::UpToPlan, &["self-hosted", "medium"], Ok("medium")),
            (Some(&large), TierAccess::UpToPlan, &["ubuntu-latest"], Err(Reason::NoMatchingTier)),
            (None, TierAccess::UpToPlan, &["ubuntu-latest"], Err(Reason::NoMatchingTier)),
            (None, TierAccess::UpToPlan, &["self-hosted"], Err(Reason::UnknownTenant)),
            (Some(&suspended), TierAccess::UpToPlan, &["self-hosted"], Err(Reason::TenantSuspended)),
        ];
        for (tenant, access, labels, expected) in table {
            let got = classify(&catalog, access, tenant, labels).map(|t| t.name.as_str());
            assert_eq!(got, expected, "{labels:?} {access:?}");
        }
    }
}
