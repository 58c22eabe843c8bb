//! Entitlement: which tiers a tenant's plan lets it run.

use crate::ids::TierName;
use crate::tier::TierCatalog;
use serde::{Deserialize, Serialize};

/// How a tenant's plan (its `tier`) limits the tiers its jobs may use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TierAccess {
    /// Tiers up to and including the plan, in catalog order (default).
    #[default]
    UpToPlan,
    /// Any tier of the catalog.
    Any,
}

/// Whether a tenant on `plan` may run a job on `job_tier`.
///
/// A plan that is not in the catalog (the operator removed the tier) entitles nothing under
/// `up_to_plan`; the job waits with `tier_not_entitled` until the tenant is moved to a known tier.
pub fn is_entitled(catalog: &TierCatalog, access: TierAccess, plan: &TierName, job_tier: &TierName) -> bool {
    match access {
        TierAccess::Any => catalog.get(job_tier).is_some(),
        TierAccess::UpToPlan => match (catalog.rank(plan), catalog.rank(job_tier)) {
            (Some(plan_rank), Some(job_rank)) => job_rank <= plan_rank,
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_modes() {
        let catalog = TierCatalog::seed_default();
        let table = [
            (TierAccess::UpToPlan, "small", "small", true),
            (TierAccess::UpToPlan, "small", "medium", false),
            (TierAccess::UpToPlan, "small", "large", false),
            (TierAccess::UpToPlan, "medium", "small", true),
            (TierAccess::UpToPlan, "medium", "large", false),
            (TierAccess::UpToPlan, "large", "small", true),
            (TierAccess::UpToPlan, "large", "large", true),
            (TierAccess::UpToPlan, "retired", "small", false),
            (TierAccess::Any, "small", "large", true),
            (TierAccess::Any, "retired", "medium", true),
            (TierAccess::Any, "small", "huge", false),
        ];
        for (access, plan, job, expected) in table {
            assert_eq!(
                is_entitled(&catalog, access, &plan.into(), &job.into()),
                expected,
                "{access:?} plan={plan} job={job}"
            );
        }
    }
}
