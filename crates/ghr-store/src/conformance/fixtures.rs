//! Builders and assertions shared by the conformance contracts.

use chrono::Duration;
use ghr_core::Timestamp;
use ghr_core::ids::{AccountId, InstallationId, JobId, OrgName, RunnerName, TierName};
use ghr_core::job::{JobObservation, JobStatus};
use ghr_core::ports::{Reservation, ReserveRequest, RunnerUpdate, Store};
use ghr_core::runner::{Runner, RunnerState};
use ghr_core::tenant::{NewTenant, OrgType, Tenant, TenantMetadata, TenantStatus};
use std::fmt::Display;

/// Deployment name used in runner names minted by the contracts.
pub const ENVIRONMENT: &str = "conformance";

/// 2026-01-01T00:00:00Z: every contract's clock starts here (whole seconds; stores keep milliseconds).
const EPOCH_SECS: i64 = 1_767_225_600;

/// The contracts' clock: `secs` seconds after the fixed epoch.
pub fn at(secs: i64) -> Timestamp {
    let epoch = chrono::DateTime::from_timestamp(EPOCH_SECS, 0)
        .unwrap_or_else(|| panic!("conformance epoch {EPOCH_SECS} is not representable"));
    epoch + Duration::seconds(secs)
}

/// Unwrap a store result, or fail the contract saying which call failed.
pub fn ok<T, E: Display>(result: Result<T, E>, call: &str) -> T {
    result.unwrap_or_else(|err| panic!("{call} failed: {err}"))
}

/// Insist that a lookup found a record.
pub trait Found<T> {
    fn found(self, call: &str) -> T;
}

impl<T> Found<T> for Option<T> {
    fn found(self, call: &str) -> T {
        self.unwrap_or_else(|| panic!("{call}: expected a record, got None"))
    }
}

pub fn new_tenant(id: u64, org: &str, status: TenantStatus, plan: &str, max_runners: u32) -> NewTenant {
    NewTenant {
        installation_id: InstallationId(id),
        org_name: OrgName::from(org),
        org_type: OrgType::Organization,
        status,
        tier: TierName::from(plan),
        max_runners,
        metadata: TenantMetadata {
            github_account_id: Some(AccountId(id + 1_000)),
            sender_login: Some(format!("{org}-admin")),
            sender_id: Some(AccountId(id + 2_000)),
        },
    }
}

/// Create an active organisation tenant on the `small` plan.
pub async fn active_tenant(store: &dyn Store, id: u64, max_runners: u32) -> Tenant {
    let tenant = new_tenant(id, &format!("org-{id}"), TenantStatus::Active, "small", max_runners);
    ok(store.tenant_create(tenant, at(0)).await, "tenant_create").0
}

/// A `queued` observation of a job on `repo` matched to `tier`.
pub fn queued(job: u64, installation: u64, repo: &str, tier: Option<&str>, secs: i64) -> JobObservation {
    JobObservation {
        job_id: JobId(job),
        installation_id: InstallationId(installation),
        repository: repo.to_owned(),
        labels: vec!["self-hosted".to_owned(), tier.unwrap_or("ubuntu-latest").to_owned()],
        tier: tier.map(TierName::from),
        status: JobStatus::Queued,
        conclusion: None,
        runner_name: None,
        queued_at: Some(at(secs)),
        started_at: None,
        completed_at: None,
        observed_at: at(secs),
    }
}

/// The same job seen `in_progress` on `runner`.
pub fn in_progress(base: &JobObservation, runner: &str, secs: i64) -> JobObservation {
    JobObservation {
        status: JobStatus::InProgress,
        runner_name: Some(RunnerName::from(runner)),
        started_at: Some(at(secs)),
        observed_at: at(secs),
        ..base.clone()
    }
}

/// The same job seen `completed` with `conclusion`.
pub fn completed(base: &JobObservation, conclusion: &str, secs: i64) -> JobObservation {
    JobObservation {
        status: JobStatus::Completed,
        conclusion: Some(conclusion.to_owned()),
        completed_at: Some(at(secs)),
        observed_at: at(secs),
        ..base.clone()
    }
}

/// Record queued jobs `first..first+count` of an installation on one tier and repository.
pub async fn queue_jobs(store: &dyn Store, installation: u64, tier: &str, repo: &str, first: u64, count: u64) {
    for job in first..first + count {
        let observation = queued(job, installation, repo, Some(tier), job as i64);
        ok(store.job_observe(observation).await, "job_observe");
    }
}

pub fn reserve_request(installation: u64, tier: &str, secs: i64) -> ReserveRequest {
    ReserveRequest {
        installation_id: InstallationId(installation),
        tier: TierName::from(tier),
        scope_repo: None,
        intended_job: None,
        global_cap: None,
        environment: ENVIRONMENT.to_owned(),
        now: at(secs),
    }
}

/// Reserve and insist on a new runner.
pub async fn expect_reserved(store: &dyn Store, request: ReserveRequest) -> Runner {
    let what = format!("reservation for installation {} tier {}", request.installation_id, request.tier);
    match ok(store.runner_reserve(request).await, "runner_reserve") {
        Reservation::Reserved(runner) => *runner,
        other => panic!("{what}: expected Reserved, got {other:?}"),
    }
}

/// Reserve and insist on a given non-reservation outcome.
pub async fn expect_outcome(store: &dyn Store, request: ReserveRequest, expected: Reservation, why: &str) {
    let got = ok(store.runner_reserve(request).await, "runner_reserve");
    assert_eq!(got, expected, "{why}");
}

/// Move a runner to `state` at `secs`, insisting that the store knows it.
pub async fn set_state(store: &dyn Store, name: &RunnerName, state: RunnerState, secs: i64) -> Runner {
    ok(store.runner_update(name, RunnerUpdate::state(state, at(secs))).await, "runner_update").found("runner_update")
}

/// Walk a runner through a lifecycle path, insisting that each step is applied.
pub async fn walk(store: &dyn Store, name: &RunnerName, steps: &[(RunnerState, i64)]) -> Runner {
    let mut last = None;
    for &(state, secs) in steps {
        let runner = set_state(store, name, state, secs).await;
        assert_eq!(runner.state, state, "runner {name} should have moved to {state}");
        last = Some(runner);
    }
    last.unwrap_or_else(|| panic!("walk of runner {name} needs at least one step"))
}
