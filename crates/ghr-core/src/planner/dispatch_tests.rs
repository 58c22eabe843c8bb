//! Table tests of the dispatch plan: one row per rule the dispatcher applies.

use super::backoff::{Backoff, LaunchBackoff};
use super::dispatch::{DemandSnapshot, DispatchSettings, DispatchSnapshot, TenantLoad, plan_dispatch};
use super::fixtures::*;
use super::{DemandKey, after};
use crate::entitlement::TierAccess;
use crate::ids::{InstallationId, JobId};
use crate::job::Job;
use crate::reason::Reason;
use crate::tenant::{Tenant, TenantStatus};
use crate::tier::TierCatalog;
use std::collections::BTreeMap;
use std::time::Duration;

/// One row: the snapshot, then what the plan must say.
struct Case {
    name: &'static str,
    tenants: Vec<(Tenant, u32)>,
    jobs: Vec<Job>,
    unbound: Vec<(DemandKey, u32)>,
    global_live: u32,
    global_cap: Option<u32>,
    access: TierAccess,
    backoff: Vec<((u64, &'static str), Backoff)>,
    cursor: Option<u64>,
    /// Jobs given a runner, in order.
    reserved: Vec<u64>,
    /// Reason changes, sorted by job.
    reasons: Vec<(u64, Option<Reason>)>,
    covered: usize,
    retry_after: Vec<(u64, i64)>,
}

impl Default for Case {
    fn default() -> Self {
        Self {
            name: "",
            tenants: Vec::new(),
            jobs: Vec::new(),
            unbound: Vec::new(),
            global_live: 0,
            global_cap: None,
            access: TierAccess::UpToPlan,
            backoff: Vec::new(),
            cursor: None,
            reserved: Vec::new(),
            reasons: Vec::new(),
            covered: 0,
            retry_after: Vec::new(),
        }
    }
}

fn key(installation: u64, tier: &str, repo: Option<&str>) -> DemandKey {
    DemandKey { installation_id: InstallationId(installation), tier: tier.into(), scope_repo: repo.map(Into::into) }
}

fn backoff_until(secs: i64, reason: Reason) -> Backoff {
    Backoff { failures: 1, until: after(now(), Duration::from_secs(secs as u64)), reason }
}

fn expired_backoff() -> Backoff {
    Backoff { failures: 3, until: ago(1), reason: Reason::ProviderError }
}

fn cases() -> Vec<Case> {
    use Reason::*;
    vec![
        Case {
            name: "a job of an unknown installation waits as unknown_tenant",
            jobs: vec![job(1, 9, "small", 1)],
            reasons: vec![(1, Some(UnknownTenant))],
            ..Case::default()
        },
        Case {
            name: "suspended, pending and deleted tenants get no runner",
            tenants: vec![
                (with_status(tenant(1, "large", 5), TenantStatus::Suspended), 0),
                (with_status(tenant(2, "large", 5), TenantStatus::Pending), 0),
                (with_status(tenant(3, "large", 5), TenantStatus::Deleted), 0),
            ],
            jobs: vec![job(1, 1, "small", 1), job(2, 2, "small", 2), job(3, 3, "small", 3)],
            reasons: vec![(1, Some(TenantSuspended)), (2, Some(TenantPending)), (3, Some(TenantDeleted))],
            ..Case::default()
        },
        Case {
            name: "a tier above the plan is not entitled under up_to_plan, and is under any",
            tenants: vec![(tenant(1, "small", 5), 0)],
            jobs: vec![job(1, 1, "large", 1)],
            reasons: vec![(1, Some(TierNotEntitled))],
            ..Case::default()
        },
        Case {
            name: "tier_access = any serves any tier",
            tenants: vec![(tenant(1, "small", 5), 0)],
            jobs: vec![job(1, 1, "large", 1)],
            access: TierAccess::Any,
            reserved: vec![1],
            ..Case::default()
        },
        Case {
            name: "an unbound runner covers the oldest job of its key; the next gets a runner",
            tenants: vec![(tenant(1, "large", 5), 1)],
            jobs: vec![waiting(job(1, 1, "small", 1), TenantAtLimit), job(2, 1, "small", 2), job(3, 1, "medium", 3)],
            unbound: vec![(key(1, "small", None), 1)],
            reserved: vec![2, 3],
            reasons: vec![(1, None)],
            covered: 1,
            ..Case::default()
        },
        Case {
            name: "personal accounts count demand per repository",
            tenants: vec![(personal(tenant(1, "large", 5)), 1)],
            jobs: vec![in_repo(job(1, 1, "small", 1), "me/a"), in_repo(job(2, 1, "small", 2), "me/b")],
            unbound: vec![(key(1, "small", Some("me/b")), 1)],
            reserved: vec![1],
            covered: 1,
            ..Case::default()
        },
        Case {
            name: "round-robin across tenants, FIFO within each",
            tenants: vec![(tenant(1, "large", 5), 0), (tenant(2, "large", 5), 0)],
            jobs: vec![job(1, 1, "small", 1), job(2, 1, "small", 2), job(3, 1, "small", 3), job(4, 2, "small", 4)],
            reserved: vec![1, 4, 2, 3],
            ..Case::default()
        },
        Case {
            name: "the round starts after the tenant served last",
            tenants: vec![(tenant(1, "large", 5), 0), (tenant(2, "large", 5), 0), (tenant(3, "large", 5), 0)],
            jobs: vec![job(1, 1, "small", 1), job(2, 2, "small", 2), job(3, 3, "small", 3)],
            cursor: Some(2),
            reserved: vec![3, 1, 2],
            ..Case::default()
        },
        Case {
            name: "the limit spans tiers: live runners of any tier count; the rest wait at the limit",
            tenants: vec![(tenant(1, "large", 3), 2)],
            jobs: vec![job(1, 1, "small", 1), job(2, 1, "medium", 2), job(3, 1, "large", 3)],
            reserved: vec![1],
            reasons: vec![(2, Some(TenantAtLimit)), (3, Some(TenantAtLimit))],
            ..Case::default()
        },
        Case {
            name: "a tenant at its limit does not delay another tenant",
            tenants: vec![(tenant(1, "large", 1), 1), (tenant(2, "large", 2), 0)],
            jobs: vec![job(1, 1, "small", 1), job(2, 1, "small", 2), job(3, 2, "small", 3)],
            reserved: vec![3],
            reasons: vec![(1, Some(TenantAtLimit)), (2, Some(TenantAtLimit))],
            ..Case::default()
        },
        Case {
            name: "the global cap stops the plan for every tenant",
            tenants: vec![(tenant(1, "large", 5), 1), (tenant(2, "large", 5), 1)],
            jobs: vec![job(1, 1, "small", 1), job(2, 1, "small", 2), job(3, 2, "small", 3), job(4, 2, "small", 4)],
            global_live: 2,
            global_cap: Some(3),
            reserved: vec![1],
            reasons: vec![(2, Some(GlobalCap)), (3, Some(GlobalCap)), (4, Some(GlobalCap))],
            ..Case::default()
        },
        Case {
            name: "a tier backing off waits until its retry time; the tenant's other tiers go ahead",
            tenants: vec![(tenant(1, "large", 5), 0)],
            jobs: vec![job(1, 1, "small", 1), job(2, 1, "medium", 2), job(3, 1, "small", 3)],
            backoff: vec![((1, "small"), backoff_until(30, ProviderError))],
            reserved: vec![2],
            reasons: vec![(1, Some(ProviderError)), (3, Some(ProviderError))],
            retry_after: vec![(1, 86_400 + 30)],
            ..Case::default()
        },
        Case {
            name: "an expired backoff no longer holds launches back",
            tenants: vec![(tenant(1, "large", 5), 0)],
            jobs: vec![waiting(job(1, 1, "small", 1), ProviderError)],
            backoff: vec![((1, "small"), expired_backoff())],
            reserved: vec![1],
            ..Case::default()
        },
        Case {
            name: "a reason already recorded is not written again",
            tenants: vec![(tenant(1, "large", 1), 1)],
            jobs: vec![waiting(job(1, 1, "small", 1), TenantAtLimit), job(2, 1, "small", 2)],
            reasons: vec![(2, Some(TenantAtLimit))],
            ..Case::default()
        },
    ]
}

#[test]
fn dispatch_table() {
    let catalog = TierCatalog::seed_default();
    for case in cases() {
        let tenants = case
            .tenants
            .into_iter()
            .map(|(tenant, live)| (tenant.installation_id, TenantLoad { tenant, live }))
            .collect();
        let backoff = LaunchBackoff {
            keys: case.backoff.into_iter().map(|((id, tier), b)| ((InstallationId(id), tier.into()), b)).collect(),
        };
        let snapshot = DispatchSnapshot {
            demand: DemandSnapshot {
                tenants,
                jobs: case.jobs,
                unbound: case.unbound.into_iter().collect(),
                global_live: case.global_live,
                kept_reasons: BTreeMap::new(),
            },
            backoff,
            cursor: case.cursor.map(InstallationId),
        };
        let settings = DispatchSettings { catalog: &catalog, tier_access: case.access, global_cap: case.global_cap };
        let plan = plan_dispatch(&snapshot, &settings, now());
        let reserved: Vec<u64> = plan.reservations.iter().map(|r| r.job_id.0).collect();
        assert_eq!(reserved, case.reserved, "{}: reservations", case.name);
        let mut reasons: Vec<(u64, Option<Reason>)> = plan.reasons.iter().map(|(j, r)| (j.0, *r)).collect();
        reasons.sort();
        assert_eq!(reasons, case.reasons, "{}: reason changes", case.name);
        assert_eq!(plan.covered, case.covered, "{}: covered", case.name);
        let retry: Vec<(u64, i64)> = plan.retry_after.iter().map(|(id, at)| (id.0, at.timestamp())).collect();
        assert_eq!(retry, case.retry_after, "{}: retry after", case.name);
    }
}

#[test]
fn waiting_counts_every_job_that_cannot_start() {
    let catalog = TierCatalog::seed_default();
    let mut tenants = BTreeMap::new();
    tenants.insert(InstallationId(1), TenantLoad { tenant: tenant(1, "small", 1), live: 1 });
    let jobs =
        vec![waiting(job(1, 1, "small", 1), Reason::TenantAtLimit), job(2, 1, "small", 2), job(3, 1, "large", 3)];
    let snapshot = DispatchSnapshot {
        demand: DemandSnapshot {
            tenants,
            jobs,
            unbound: BTreeMap::new(),
            global_live: 1,
            kept_reasons: BTreeMap::new(),
        },
        ..DispatchSnapshot::default()
    };
    let settings = DispatchSettings { catalog: &catalog, tier_access: TierAccess::UpToPlan, global_cap: None };
    let plan = plan_dispatch(&snapshot, &settings, now());
    let expected = BTreeMap::from([(Reason::TenantAtLimit, 2), (Reason::TierNotEntitled, 1)]);
    assert_eq!(plan.waiting, expected);
    assert!(plan.reservations.is_empty());
    // Classification first (in FIFO order), then admission.
    assert_eq!(plan.reasons, vec![(JobId(3), Some(Reason::TierNotEntitled)), (JobId(2), Some(Reason::TenantAtLimit))]);
}
