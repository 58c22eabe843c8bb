//! Which jobs, runners and registrations the reconciler asks GitHub about, and which registrations are
//! ghosts to delete.

use super::older_than;
use crate::Timestamp;
use crate::ids::{GithubRunnerId, InstallationId, JobId, RUNNER_NAME_PREFIX};
use crate::job::{Job, JobStatus};
use crate::ports::{GithubRunner, RunnerScope};
use crate::runner::{Runner, RunnerState};
use crate::tenant::{Tenant, TenantStatus};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

/// Jobs checked against GitHub per pass at most, to bound API use.
pub const STALE_JOBS_PER_PASS: usize = 50;

/// Whether a job of ours (matched to a tier) has been queued (since first sight), or in progress (since it
/// started), for at least `stale`.
pub fn is_stale(job: &Job, now: Timestamp, stale: Duration) -> bool {
    match job.status {
        JobStatus::Queued => job.tier.is_some() && older_than(Some(job.received_at), now, stale),
        JobStatus::InProgress => job.tier.is_some() && older_than(job.started_at.or(Some(job.updated_at)), now, stale),
        JobStatus::Completed => false,
    }
}

/// The stale jobs to ask GitHub about this pass: stale, of an active tenant, not asked about within
/// `stale`, least recently asked first, at most `limit`.
pub fn stale_job_checks<'j>(
    jobs: &'j [Job],
    tenants: &BTreeMap<InstallationId, Tenant>,
    last_checked: &HashMap<JobId, Timestamp>,
    stale: Duration,
    now: Timestamp,
    limit: usize,
) -> Vec<&'j Job> {
    let active = |id: &InstallationId| tenants.get(id).is_some_and(|t| t.status == TenantStatus::Active);
    let mut due: Vec<&Job> = jobs
        .iter()
        .filter(|j| is_stale(j, now, stale) && active(&j.installation_id))
        .filter(|j| last_checked.get(&j.job_id).is_none_or(|at| older_than(Some(*at), now, stale)))
        .collect();
    due.sort_by_key(|j| last_checked.get(&j.job_id).copied());
    due.truncate(limit);
    due
}

/// The queued-jobs poll of one reconciler pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollPlan {
    /// Tenants to poll now, least recently polled first.
    pub poll: Vec<InstallationId>,
    /// Tenants due but skipped: their installation has fewer than `rate_floor` requests left.
    pub low_rate_limit: Vec<InstallationId>,
}

/// Which active tenants to poll for queued jobs: those not polled within `every`, least recently polled
/// (never polled first, then by installation), at most `per_pass` considered; a tenant whose remaining rate
/// limit is below `rate_floor` is skipped (and keeps its turn).
pub fn queued_poll_due(
    active: &[InstallationId],
    polled: &HashMap<InstallationId, Timestamp>,
    remaining: &BTreeMap<InstallationId, u64>,
    every: Duration,
    now: Timestamp,
    per_pass: usize,
    rate_floor: u64,
) -> PollPlan {
    let mut due: Vec<(Option<Timestamp>, InstallationId)> = active
        .iter()
        .map(|id| (polled.get(id).copied(), *id))
        .filter(|(last, _)| last.is_none_or(|at| older_than(Some(at), now, every)))
        .collect();
    due.sort();
    let mut plan = PollPlan::default();
    for (_, id) in due.into_iter().take(per_pass) {
        if remaining.get(&id).is_some_and(|left| *left < rate_floor) {
            plan.low_rate_limit.push(id);
        } else {
            plan.poll.push(id);
        }
    }
    plan
}

/// Busy runners whose job ghr never learnt (GitHub refused to delete them as busy), busy for at least
/// `stale`: ask GitHub whether their registration still runs.
pub fn busy_runner_checks(live: &[Runner], now: Timestamp, stale: Duration) -> Vec<&Runner> {
    live.iter()
        .filter(|r| r.state == RunnerState::Busy && r.job_id.is_none() && older_than(r.job_started_at, now, stale))
        .collect()
}

/// Registration scopes whose ghosts are looked for per reconciler pass: one GitHub listing each, so a pass
/// costs the same with 10 or 10,000 tenants running; every scope is visited once per walk.
pub const GHOST_SCOPES_PER_PASS: usize = 50;

/// Where the live runners of active tenants are registered (GitHub answers 403 for a suspended
/// installation; pending and deleted ones have nothing to clean), each once, in (installation, scope) order.
pub fn registration_scopes(
    live: &[Runner],
    tenants: &BTreeMap<InstallationId, Tenant>,
) -> Vec<(InstallationId, RunnerScope)> {
    let mut scopes: BTreeSet<(InstallationId, RunnerScope)> = BTreeSet::new();
    for runner in live {
        let Some(tenant) = tenants.get(&runner.installation_id).filter(|t| t.status == TenantStatus::Active) else {
            continue;
        };
        let scope = match &runner.scope_repo {
            Some(repo) => RunnerScope::Repo(repo.clone()),
            None => RunnerScope::Org(tenant.org_name.clone()),
        };
        scopes.insert((runner.installation_id, scope));
    }
    scopes.into_iter().collect()
}

/// The next page of a walk over sorted, distinct `items`: up to `limit` after `after` (from the first when
/// `None`), wrapping to the first items when the end is reached, never repeating one within a page.
pub fn next_page<T: Ord + Clone>(items: &[T], after: Option<&T>, limit: usize) -> Vec<T> {
    let start = after.map_or(0, |cursor| items.partition_point(|item| item <= cursor));
    items.iter().cycle().skip(start).take(limit.min(items.len())).cloned().collect()
}

/// Registrations named like this deployment's runners, offline and not busy, that no live runner owns.
pub fn ghost_registrations(registrations: &[GithubRunner], live: &[Runner], environment: &str) -> Vec<GithubRunnerId> {
    let prefix = format!("{RUNNER_NAME_PREFIX}-{environment}-");
    let live_names: HashSet<&str> = live.iter().map(|r| r.name.as_str()).collect();
    registrations
        .iter()
        .filter(|r| r.name.starts_with(&prefix) && !r.online && !r.busy && !live_names.contains(r.name.as_str()))
        .map(|r| r.id)
        .collect()
}
