//! Reconciler rules that ask GitHub: ghost registrations, stale queued and running jobs, missed webhooks.

use super::{ReconcileReport, Reconciler};
use crate::error::{EngineError, ErrorChain, StoreContext};
use crate::teardown::TeardownCause;
use ghr_core::Timestamp;
use ghr_core::ids::{GithubRunnerId, RunnerName};
use ghr_core::job::{Job, JobChange, JobEvent, JobObservation, JobStatus, event_kind};
use ghr_core::planner::checks::{
    GHOST_SCOPES_PER_PASS, STALE_JOBS_PER_PASS, busy_runner_checks, ghost_registrations, next_page,
    registration_scopes, stale_job_checks,
};
use ghr_core::planner::fleet::FleetRecords;
use ghr_core::ports::{GithubRunner, RunnerUpdate};
use ghr_core::runner::RunnerState;

impl Reconciler {
    /// Delete offline registrations named like ours that no live runner owns, in the scopes of active
    /// tenants that currently have runners, [`GHOST_SCOPES_PER_PASS`] scopes per pass in a walk. (GitHub
    /// itself removes offline ephemeral runners after a day; this is faster.)
    pub(super) async fn ghost_registrations(
        &self,
        records: &FleetRecords,
        report: &mut ReconcileReport,
    ) -> Result<(), EngineError> {
        let scopes = registration_scopes(&records.live, &records.tenants);
        let page = {
            let mut cursor = self.ghost_walk.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let page = next_page(&scopes, cursor.as_ref(), GHOST_SCOPES_PER_PASS);
            *cursor = page.last().cloned();
            page
        };
        for (installation, scope) in page {
            // One tenant's failure must not stop the rule for the others.
            let registrations = match self.ports.github.list_runners(installation, &scope).await {
                Ok(registrations) => registrations,
                Err(error) => {
                    tracing::warn!(%installation, error = %error, "could not list runner registrations; retrying next pass");
                    continue;
                }
            };
            for id in ghost_registrations(&registrations, &records.live, &self.settings.environment) {
                if self.reserved_since_the_snapshot(&registrations, id).await {
                    continue;
                }
                match self.ports.github.delete_runner(installation, &scope, id).await {
                    Ok(()) => report.ghost_registrations_deleted += 1,
                    Err(error) => {
                        tracing::warn!(registration = %id, error = %error, "could not delete a ghost registration")
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether the registration `id` belongs to a live runner after all: the fleet snapshot was read before the
    /// registrations were listed, and a runner reserved since then (by another replica, or a launch of this one)
    /// has its registration minted before it is recorded. Deleting that registration would strand the runner
    /// before it connects; when the store cannot tell, the registration is kept for a later pass.
    async fn reserved_since_the_snapshot(&self, registrations: &[GithubRunner], id: GithubRunnerId) -> bool {
        let Some(registration) = registrations.iter().find(|r| r.id == id) else { return false };
        match self.ports.store.runner_get(&RunnerName::new(registration.name.clone())).await {
            Ok(runner) => runner.is_some_and(|r| r.state.is_live()),
            Err(error) => {
                tracing::warn!(registration = %id, error = %error, "could not re-check a ghost registration; keeping it");
                true
            }
        }
    }

    /// Jobs queued or running for long: ask GitHub where they are, and record it when a webhook was lost.
    /// A job found completed tears its runner down. Busy runners whose job ghr never learnt (GitHub refused
    /// to delete their registration) are checked too. Which jobs and runners are the planner's
    /// ([`ghr_core::planner::checks`]): each job at most once per `stale_job_after`, at most
    /// [`STALE_JOBS_PER_PASS`] per pass, to bound API use.
    pub(super) async fn stale_jobs(
        &self,
        records: &FleetRecords,
        now: Timestamp,
        report: &mut ReconcileReport,
    ) -> Result<(), EngineError> {
        let stale = self.settings.stale_job_after;
        let due: Vec<Job> = {
            let checks = self.job_checks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            stale_job_checks(&records.stale_jobs, &records.tenants, &checks, stale, now, STALE_JOBS_PER_PASS)
                .into_iter()
                .cloned()
                .collect()
        };
        for job in due {
            self.job_checks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(job.job_id, now);
            let found = match self.ports.github.get_job(job.installation_id, &job.repository, job.job_id).await {
                Ok(found) => found,
                Err(error) => {
                    tracing::debug!(job_id = %job.job_id, error = %ErrorChain(&error), "could not check a stale job");
                    continue;
                }
            };
            let (status, conclusion, runner_name) = match found {
                Some(github) if github.status == job.status => continue,
                Some(github) => (github.status, github.conclusion, github.runner_name),
                None => (JobStatus::Completed, Some("not_found".to_owned()), None),
            };
            if self.record_github_status(&job, status, conclusion, runner_name, now).await? {
                report.stale_jobs_resolved += 1;
            }
        }
        self.busy_runners_without_job(records, now, report).await
    }

    /// Record what GitHub reports of a job ghr missed a webhook for; a completed job's runner is torn down.
    async fn record_github_status(
        &self,
        job: &Job,
        status: JobStatus,
        conclusion: Option<String>,
        runner_name: Option<String>,
        now: Timestamp,
    ) -> Result<bool, EngineError> {
        let runner_name = runner_name.filter(|n| !n.is_empty()).map(RunnerName::new).or(job.runner_name.clone());
        let observation = JobObservation {
            job_id: job.job_id,
            installation_id: job.installation_id,
            repository: job.repository.clone(),
            labels: job.labels.clone(),
            tier: job.tier.clone(),
            status,
            conclusion: conclusion.clone(),
            runner_name: runner_name.clone(),
            queued_at: job.queued_at,
            started_at: (status >= JobStatus::InProgress).then_some(job.started_at.unwrap_or(now)),
            completed_at: (status == JobStatus::Completed).then_some(now),
            observed_at: now,
        };
        if self.ports.store.job_observe(observation).await.doing("recording a stale job's status")?
            == JobChange::Unchanged
        {
            return Ok(false);
        }
        let detail = format!("GitHub reports {status}{}", conclusion.map(|c| format!(" ({c})")).unwrap_or_default());
        let kind =
            if job.status == JobStatus::Queued { event_kind::NO_LONGER_QUEUED } else { event_kind::STATUS_FROM_API };
        let event = JobEvent { job_id: job.job_id, at: now, kind: kind.into(), detail };
        self.ports.store.job_event_append(event).await.doing("appending to a job timeline")?;
        // The job left the queue (or its runner is known): the tenant's demand changed.
        self.dispatcher_wake.tenant(job.installation_id);
        if let Some(name) = runner_name {
            let state = if status == JobStatus::Completed { RunnerState::Finished } else { RunnerState::Busy };
            let update = RunnerUpdate { job_id: Some(job.job_id), ..RunnerUpdate::state(state, now) };
            let bound = self.ports.store.runner_update(&name, update).await.doing("binding a job to its runner")?;
            if status == JobStatus::Completed && bound.is_some() {
                self.teardown.terminate_runner(&name, TeardownCause::JobCompleted).await?;
            }
        }
        Ok(true)
    }

    /// Busy runners whose job ghr does not know (GitHub refused to delete them as busy) and that have been
    /// busy for long: once GitHub no longer has the registration (an ephemeral runner is removed after its
    /// job) or reports it neither online nor busy, the job is over: tear the runner down.
    async fn busy_runners_without_job(
        &self,
        records: &FleetRecords,
        now: Timestamp,
        report: &mut ReconcileReport,
    ) -> Result<(), EngineError> {
        for runner in busy_runner_checks(&records.live, now, self.settings.stale_job_after) {
            let (Some(id), Some(scope)) = (runner.github_runner_id, self.teardown.scope_of(runner).await?) else {
                continue;
            };
            match self.ports.github.get_runner(runner.installation_id, &scope, id).await {
                Ok(Some(registration)) if registration.busy || registration.online => {}
                Ok(_) => {
                    if self.teardown.terminate_runner(&runner.name, TeardownCause::JobCompleted).await? {
                        report.stale_jobs_resolved += 1;
                    }
                }
                Err(error) => {
                    tracing::debug!(runner = %runner.name, error = %ErrorChain(&error), "could not check a busy runner")
                }
            }
        }
        Ok(())
    }
}
