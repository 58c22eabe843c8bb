//! A small, settled fleet built through the real paths (signed webhooks from the emulator, the dispatcher,
//! launches and teardown): two tenants, runners in a live and a final state, and jobs in every situation the
//! admin API explains.

use super::{FOREIGN, Harness, LARGE, SMALL, eventually};
use chrono::{Duration, Utc};
use ghr_core::ids::{InstallationId, JobId, RunnerName};
use ghr_core::job::Job;
use ghr_core::ports::RunnerFilter;
use ghr_core::reason::Reason;
use ghr_core::runner::{Runner, RunnerState};

/// Repository of acme's jobs.
pub const ACME_REPO: &str = "app";
/// Repository of beta's jobs.
pub const BETA_REPO: &str = "api";

/// What [`build`] created.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// Active, plan `small`.
    pub acme: InstallationId,
    /// Suspended by the operator.
    pub beta: InstallationId,
    /// acme, `small`: queued, with `live_runner` launching for it.
    pub starting: JobId,
    /// acme, `small`: ran on `gone_runner` and completed.
    pub done: JobId,
    /// beta: waits with `tenant_suspended`.
    pub suspended: JobId,
    /// acme: labels no tier matches.
    pub foreign: JobId,
    /// acme: `large`, beyond its plan; waits with `tier_not_entitled`.
    pub not_entitled: JobId,
    /// acme's runner in state `launching`.
    pub live_runner: RunnerName,
    /// acme's runner that ran `done` (for at least a second) and is `terminated`.
    pub gone_runner: RunnerName,
}

/// Build the fleet and wait until the dispatcher has nothing left to do.
pub async fn build(h: &Harness) -> Fleet {
    let acme = h.install("acme").await;
    let beta = h.install("beta").await;
    h.post(&format!("/api/v1/tenants/{beta}/suspend"), None).await.expect(200);

    let starting = h.queue(acme, ACME_REPO, SMALL).await;
    let live = runner_where(h, acme, "a runner launching for the first job", |r| {
        r.state == RunnerState::Launching && r.intended_job == Some(starting)
    })
    .await;
    let done = h.queue(acme, ACME_REPO, SMALL).await;
    let gone = runner_where(h, acme, "a second runner launching", |r| {
        r.state == RunnerState::Launching && r.name != live.name
    })
    .await;
    // Usage counts whole seconds: let both runners live long enough to be billed before one ends.
    eventually("both runners billed", async || {
        let now = Utc::now();
        let usage = h.store.usage(now - Duration::hours(1), now, now).await.expect("usage");
        usage.iter().any(|row| row.installation_id == acme && row.runners == 2).then_some(())
    })
    .await;
    assert_eq!(h.job_event("in_progress", acme, ACME_REPO, done, Some(gone.name.as_str())).await, 202);
    assert_eq!(h.job_event("completed", acme, ACME_REPO, done, Some(gone.name.as_str())).await, 202);
    runner_where(h, acme, "the second runner torn down", |r| r.name == gone.name && r.state == RunnerState::Terminated)
        .await;

    let suspended = h.queue(beta, BETA_REPO, SMALL).await;
    let foreign = h.queue(acme, ACME_REPO, FOREIGN).await;
    let not_entitled = h.queue(acme, ACME_REPO, LARGE).await;
    job_where(h, suspended, |j| j.wait_reason == Some(Reason::TenantSuspended)).await;
    job_where(h, not_entitled, |j| j.wait_reason == Some(Reason::TierNotEntitled)).await;
    // One more pass waits for any pass in flight and proves the fleet is settled (it changes nothing).
    let report = h.server.dispatcher.pass().await.expect("a dispatcher pass");
    assert_eq!(report.reserved, 0, "the fleet should need no more runners: {report:?}");
    Fleet {
        acme,
        beta,
        starting,
        done,
        suspended,
        foreign,
        not_entitled,
        live_runner: live.name,
        gone_runner: gone.name,
    }
}

/// Wait for a runner of `installation` matching `wanted`.
pub async fn runner_where(
    h: &Harness,
    installation: InstallationId,
    what: &str,
    wanted: impl Fn(&Runner) -> bool,
) -> Runner {
    let filter = RunnerFilter {
        installation_id: Some(installation),
        tier: None,
        states: RunnerState::ALL.to_vec(),
        ..RunnerFilter::default()
    };
    eventually(what, async || {
        let runners = h.store.runner_list(filter.clone()).await.expect("listing runners");
        runners.into_iter().find(|r| wanted(r))
    })
    .await
}

/// Wait until job `id` matches `wanted`.
pub async fn job_where(h: &Harness, id: JobId, wanted: impl Fn(&Job) -> bool) -> Job {
    eventually(&format!("job {id} in the expected state"), async || {
        h.store.job_get(id).await.expect("reading a job").filter(|j| wanted(j))
    })
    .await
}
