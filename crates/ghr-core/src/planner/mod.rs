//! The fleet planner: every decision about demand, supply and the fleet's shape, as pure functions of a
//! snapshot, the settings and the time.
//!
//! The engine's dispatcher and reconciler are executors: each pass reads one snapshot from the store, asks
//! the planner for a plan and applies its actions. The planner owns
//! - **demand and supply** per [`DemandKey`] (tenant, tier, repository scope for personal-account tenants):
//!   queued jobs are demand, runners that have not taken a job yet are supply; runners are fungible within
//!   a key, GitHub decides which runner takes which job;
//! - **the reservation rule** ([`reserve`]): remaining demand and admission, the same function the store's
//!   atomic `runner_reserve` runs inside its transaction, so the guard and the plan never disagree;
//! - **dispatch** ([`dispatch`]): classification and entitlement, coverage by supply, fairness
//!   (round-robin across tenants from a cursor, FIFO within a tenant) and launch backoff as "retry after";
//! - **backoff** ([`backoff`]): the per-(tenant, tier) launch backoff state and its delays;
//! - **the fleet** ([`fleet`]): tenant teardown, orphan and vanished instances, crashed launches,
//!   registration and bootstrap timeout, finished runners' teardown, surplus idle runners, maximum runtime;
//! - **GitHub checks** ([`checks`]): which stale jobs and busy runners to ask GitHub about, which
//!   registrations are ghosts.
//!
//! Nothing here does IO or reads a clock: `now` is an argument.

pub mod backoff;
pub mod checks;
pub mod dispatch;
pub mod fleet;
pub mod reserve;

#[cfg(test)]
mod dispatch_tests;
#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod fleet_tests;

use crate::Timestamp;
use crate::ids::{InstallationId, TierName};
use crate::runner::Runner;
use crate::tenant::{OrgType, Tenant};
use std::time::Duration;

pub use backoff::{Backoff, BackoffKey, LaunchBackoff, backoff_delay};
pub use dispatch::{DispatchPlan, DispatchSettings, DispatchSnapshot, PlannedReservation, TenantLoad, plan_dispatch};
pub use fleet::{FleetAction, FleetSettings, FleetSnapshot, plan_fleet};
pub use reserve::{ReserveCounts, ReserveDecision, decide_reservation, has_headroom, remaining_demand};

/// The unit of demand and supply: (tenant, tier, repository scope for personal-account tenants).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DemandKey {
    pub installation_id: InstallationId,
    pub tier: TierName,
    /// `owner/name` for personal-account tenants, whose runners are registered per repository.
    pub scope_repo: Option<String>,
}

impl DemandKey {
    /// The key a runner supplies.
    pub fn of_runner(runner: &Runner) -> Self {
        Self {
            installation_id: runner.installation_id,
            tier: runner.tier.clone(),
            scope_repo: runner.scope_repo.clone(),
        }
    }

    /// The key of a job of `tenant` on `tier` in `repository`.
    pub fn of_job(
        installation_id: InstallationId,
        tier: TierName,
        org_type: Option<OrgType>,
        repository: &str,
    ) -> Self {
        Self { installation_id, tier, scope_repo: repository_scope(org_type, repository) }
    }
}

/// The repository scope of a job: its repository for a personal-account tenant, none for an organisation.
pub fn repository_scope(org_type: Option<OrgType>, repository: &str) -> Option<String> {
    (org_type == Some(OrgType::User)).then(|| repository.to_owned())
}

/// The org type of a tenant, if it is known.
pub fn org_type_of(tenant: Option<&Tenant>) -> Option<OrgType> {
    tenant.map(|t| t.org_type)
}

/// Whether `t` is at least `age` before `now` (false when `t` is unknown).
pub fn older_than(t: Option<Timestamp>, now: Timestamp, age: Duration) -> bool {
    match (t, chrono::Duration::from_std(age)) {
        (Some(t), Ok(age)) => now - t >= age,
        _ => false,
    }
}

/// `now + delay`, saturating far in the future.
pub fn after(now: Timestamp, delay: Duration) -> Timestamp {
    chrono::Duration::from_std(delay).ok().and_then(|d| now.checked_add_signed(d)).unwrap_or(Timestamp::MAX_UTC)
}
