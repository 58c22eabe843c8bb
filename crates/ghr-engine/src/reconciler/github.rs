//! Reconciler rules that ask GitHub: ghost registrations, stale queued and running jobs, missed webhooks.

use super::fleet::scopes_of;
use super::{ReconcileReport, Reconciler, older_than};
use crate::error::{EngineError, ErrorChain, StoreContext};
use crate::teardown::TeardownCause;
use ghr_core::Timestamp;
use ghr_core::ids::{InstallationId, RUNNER_NAME_PREFIX, RunnerName};
use ghr_core::job::{Job, JobChange, JobEvent, JobObservation, JobStatus, event_kind};
use ghr_core::ports::{JobFilter, RunnerUpdate};
use ghr_core::runner::RunnerState;
use ghr_core::tenant::TenantStatus;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Queued jobs checked against GitHub per pass, to bound API use.
const STALE_JOBS_PER_PASS: usize = 50;

impl Reconciler {
    /// Delete offline registrations named like ours that no live runner owns, in the scopes of tenants that
    /// currently have runners. (GitHub itself removes offline ephemeral runners after a day; this is faster.)
    pub(super) async fn ghost_registrations(
        &self,
        _now: Timestamp,
        report: &mut ReconcileReport,
    ) -> Result<(), EngineError> {
        let live = self.live_runners().await?;
        if live.is_empty() {
            return Ok(());
        }
        let live_names: HashSet<&str> = live.iter().map(|r| r.name.as_str()).collect();
        let mut orgs = HashMap::new();
        for installation in live.iter().map(|r| r.installation_id).collect::<HashSet<_>>() {
            // GitHub answers 403 for a suspended installation; pending and deleted ones have nothing to clean.
            if let Some(tenant) = self.ports.store.tenant_get(installation).await.doing("reading a tenant")?
                && tenant.status == TenantStatus::Active
            {
                orgs.insert(installation, tenant.org_name.to_string());
            }
        }
        let prefix = format!("{RUNNER_NAME_PREFIX}-{}-", self.settings.environment);
        for (installation, scope) in scopes_of(&live, &orgs) {
            // One tenant's failure must not stop the rule for the others.
            let registrations = match self.ports.github.list_runners(installation, &scope).await {
                Ok(registrations) => registrations,
                Err(error) => {
                    tracing::warn!(%installation, error = %error, "could not list runner registrations; retrying next pass");
                    continue;
                }
            };
            for registration in registrations {
                if !registration.name.starts_with(&prefix)
                    || registration.online
                    || registration.busy
                    || live_names.contains(registration.name.as_str())
                {
                    continue;
                }
                match self.ports.github.delete_runner(installation, &scope, registration.id).await {
                    Ok(()) => report.ghost_registrations_deleted += 1,
                    Err(error) => {
                        tracing::warn!(runner = %registration.name, error = %error, "could not delete a ghost registration")
                    }
                }
            }
        }
        Ok(())
    }

    /// Jobs queued or running for long: ask GitHub where they are, and record it when a webhook was lost.
    /// A job found completed tears its runner down. Busy runners whose job ghr never learnt (GitHub refused
    /// to delete their registration) are checked too. Each job is asked about at most once per
    /// `stale_job_after`, and at most [`STALE_JOBS_PER_PASS`] per pass, to bound API use.
    pub(super) async fn stale_jobs(&self, now: Timestamp, report: &mut ReconcileReport) -> Result<(), EngineError> {
        let stale = self.settings.stale_job_after;
        let queued = self.ports.store.job_list_wanting_runner().await.doing("listing queued jobs")?;
        let filter = JobFilter { status: Some(JobStatus::InProgress), ..JobFilter::default() };
        let running = self.ports.store.job_list(filter).await.doing("listing running jobs")?;
        let mut candidates: Vec<Job> = queued
            .into_iter()
            .filter(|j| older_than(Some(j.received_at), now, stale))
            .chain(
                running
                    .into_iter()
                    .filter(|j| j.tier.is_some() && older_than(j.started_at.or(Some(j.updated_at)), now, stale)),
            )
            .collect();
        {
            let checks = self.job_checks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            candidates.retain(|j| checks.get(&j.job_id).is_none_or(|at| older_than(Some(*at), now, stale)));
            // Least recently checked first, so every stale job gets its turn.
            candidates.sort_by_key(|j| checks.get(&j.job_id).copied());
        }
        let mut active: BTreeMap<InstallationId, bool> = BTreeMap::new();
        let mut checked = 0;
        for job in candidates {
            if checked >= STALE_JOBS_PER_PASS {
                break;
            }
            if let Entry::Vacant(slot) = active.entry(job.installation_id) {
                let tenant = self.ports.store.tenant_get(job.installation_id).await.doing("reading a tenant")?;
                slot.insert(tenant.is_some_and(|t| t.status == TenantStatus::Active));
            }
            if !active[&job.installation_id] {
                continue;
            }
            checked += 1;
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
        self.busy_runners_without_job(now, report).await
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
    async fn busy_runners_without_job(&self, now: Timestamp, report: &mut ReconcileReport) -> Result<(), EngineError> {
        let live = self.live_runners().await?;
        let stale = self.settings.stale_job_after;
        for runner in live
            .iter()
            .filter(|r| r.state == RunnerState::Busy && r.job_id.is_none() && older_than(r.job_started_at, now, stale))
        {
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
