//! Webhook intake: applies a verified, parsed event to the store.
//!
//! Fast by design (store writes only): GitHub gives up after 10 s. Slow work — launching and terminating
//! runners — is signalled to the dispatcher and the teardown worker, which run after the answer.
//! Idempotent: a redelivery (same `X-GitHub-Delivery`) changes nothing, and job status only moves forward,
//! so duplicate or out-of-order deliveries are harmless. The delivery is recorded *after* it was applied,
//! so a failure leaves it unrecorded and a redelivery can still apply it.

use crate::error::{EngineError, StoreContext};
use crate::metrics as m;
use crate::settings::EngineSettings;
use crate::teardown::{TeardownCause, TeardownHandle};
use crate::tenants::{Onboarded, TenantService};
use crate::wake::DispatchWake;
use ghr_core::clock::Clock;
use ghr_core::event::{InstallationAction, WebhookEvent, WorkflowJob, WorkflowJobAction};
use ghr_core::ids::{InstallationId, RunnerName};
use ghr_core::job::{JobChange, JobObservation, JobStatus};
use ghr_core::labels::match_tier;
use ghr_core::ports::{DeliveryRecord, RunnerUpdate, Store};
use ghr_core::runner::RunnerState;
use std::sync::Arc;
use tokio::sync::Notify;

/// What applying a delivery did (for the HTTP answer and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntakeOutcome {
    /// Seen before: nothing changed.
    Duplicate,
    Applied(&'static str),
    Ignored(&'static str),
}

#[derive(Clone)]
pub struct Intake {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: Arc<EngineSettings>,
    tenants: TenantService,
    dispatcher_wake: Arc<DispatchWake>,
    reconciler_wake: Arc<Notify>,
    teardown: TeardownHandle,
}

impl Intake {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        settings: Arc<EngineSettings>,
        dispatcher_wake: Arc<DispatchWake>,
        reconciler_wake: Arc<Notify>,
        teardown: TeardownHandle,
    ) -> Self {
        let tenants = TenantService::new(store.clone(), settings.clone()).with_clock(clock.clone());
        Self { store, clock, settings, tenants, dispatcher_wake, reconciler_wake, teardown }
    }

    /// Apply one delivery. Errors are the system's (store); the caller answers 5xx and the delivery stays
    /// unrecorded so that a redelivery applies it.
    pub async fn handle(&self, delivery: DeliveryRecord, event: WebhookEvent) -> Result<IntakeOutcome, EngineError> {
        if self.store.delivery_seen(&delivery.delivery_id).await.doing("checking a delivery id")? {
            metrics::counter!(m::WEBHOOK_EVENTS, "event" => delivery.event.clone(), "outcome" => "duplicate")
                .increment(1);
            return Ok(IntakeOutcome::Duplicate);
        }
        let outcome = self.apply(event).await?;
        self.store.delivery_record(&delivery).await.doing("recording a delivery")?;
        metrics::counter!(m::WEBHOOK_EVENTS, "event" => delivery.event.clone(), "outcome" => if matches!(outcome, IntakeOutcome::Ignored(_)) { "ignored" } else { "applied" }).increment(1);
        Ok(outcome)
    }

    async fn apply(&self, event: WebhookEvent) -> Result<IntakeOutcome, EngineError> {
        match event {
            WebhookEvent::Installation { action, installation_id, account, sender } => match action {
                InstallationAction::Created => {
                    match self.tenants.onboard(installation_id, &account, sender.as_ref(), None).await? {
                        Onboarded::Created(t) => {
                            tracing::info!(installation_id = %t.installation_id, org = %t.org_name, status = %t.status, "tenant onboarded")
                        }
                        Onboarded::Reinstalled(t) => {
                            tracing::info!(installation_id = %t.installation_id, org = %t.org_name, "tenant reinstalled")
                        }
                        Onboarded::AlreadyKnown(_) => return Ok(IntakeOutcome::Ignored("tenant already exists")),
                    }
                    self.dispatcher_wake.tenant(installation_id);
                    Ok(IntakeOutcome::Applied("tenant created"))
                }
                InstallationAction::Deleted => {
                    self.tenants.mark_deleted(installation_id).await?;
                    tracing::info!(%installation_id, "tenant uninstalled; tearing down its runners");
                    self.teardown.tenant(installation_id, TeardownCause::TenantDeleted);
                    self.reconciler_wake.notify_one();
                    self.dispatcher_wake.tenant(installation_id);
                    Ok(IntakeOutcome::Applied("tenant deleted"))
                }
                InstallationAction::Suspend => {
                    if !applied(self.tenants.suspend(installation_id).await)? {
                        return Ok(IntakeOutcome::Ignored("no such tenant, or it cannot be suspended"));
                    }
                    if self.settings.on_suspend == ghr_config::OnSuspend::Terminate {
                        self.teardown.tenant(installation_id, TeardownCause::TenantSuspended);
                    }
                    // Its waiting jobs now wait for the suspension.
                    self.dispatcher_wake.tenant(installation_id);
                    Ok(IntakeOutcome::Applied("tenant suspended"))
                }
                InstallationAction::Unsuspend => {
                    if !applied(self.tenants.resume(installation_id).await)? {
                        return Ok(IntakeOutcome::Ignored("no such tenant, or it cannot be resumed"));
                    }
                    self.dispatcher_wake.tenant(installation_id);
                    Ok(IntakeOutcome::Applied("tenant resumed"))
                }
                InstallationAction::NewPermissionsAccepted | InstallationAction::Other(_) => {
                    Ok(IntakeOutcome::Ignored("installation action needs no change"))
                }
            },
            WebhookEvent::InstallationTargetRenamed { installation_id, new_login } => {
                match self.tenants.rename(installation_id, new_login).await? {
                    Some(_) => Ok(IntakeOutcome::Applied("tenant renamed")),
                    None => Ok(IntakeOutcome::Ignored("no such tenant")),
                }
            }
            WebhookEvent::WorkflowJob { action, installation_id, job } => {
                let Some(installation_id) = installation_id else {
                    return Ok(IntakeOutcome::Ignored("workflow_job without installation"));
                };
                self.apply_job(action, installation_id, job).await
            }
            WebhookEvent::Ping => Ok(IntakeOutcome::Ignored("ping")),
            WebhookEvent::Ignored { .. } => Ok(IntakeOutcome::Ignored("event type not used")),
        }
    }

    async fn apply_job(
        &self,
        action: WorkflowJobAction,
        installation_id: InstallationId,
        job: WorkflowJob,
    ) -> Result<IntakeOutcome, EngineError> {
        let status = match action {
            WorkflowJobAction::Queued | WorkflowJobAction::Waiting => JobStatus::Queued,
            WorkflowJobAction::InProgress => JobStatus::InProgress,
            WorkflowJobAction::Completed => JobStatus::Completed,
            WorkflowJobAction::Other(_) => return Ok(IntakeOutcome::Ignored("workflow_job action not used")),
        };
        let now = self.clock.now();
        let tier = match_tier(&self.settings.catalog, &job.labels).map(|t| t.name.clone());
        let runner_name = job.runner_name.clone().filter(|n| !n.is_empty()).map(RunnerName::new);
        let observation = JobObservation {
            job_id: job.id,
            installation_id,
            repository: job.repository.clone(),
            labels: job.labels.clone(),
            tier: tier.clone(),
            status,
            conclusion: job.conclusion.clone(),
            runner_name: runner_name.clone(),
            queued_at: job.created_at,
            // GitHub fills `started_at` on queued jobs too; a job has started only once it is in progress.
            started_at: (status >= JobStatus::InProgress).then(|| job.started_at.unwrap_or(now)),
            completed_at: job.completed_at.or((status == JobStatus::Completed).then_some(now)),
            observed_at: now,
        };
        let change = self.store.job_observe(observation).await.doing("recording a workflow job")?;
        if change == JobChange::Unchanged {
            return Ok(IntakeOutcome::Ignored("job state already recorded"));
        }
        if change == JobChange::Created {
            let tier_label = tier.as_ref().map(|t| t.to_string()).unwrap_or_else(|| "none".into());
            metrics::counter!(m::JOBS_RECEIVED, "tier" => tier_label).increment(1);
            // Not ours: say so on the job itself, so `jobs?reason=no_matching_tier` finds it.
            if tier.is_none() && status == JobStatus::Queued {
                self.store
                    .job_set_wait_reason(job.id, Some(ghr_core::reason::Reason::NoMatchingTier), now)
                    .await
                    .doing("recording that no tier matches a job")?;
            }
        }
        metrics::counter!(m::JOB_TRANSITIONS, "status" => status.as_str()).increment(1);
        match status {
            JobStatus::Queued => {
                if tier.is_some() {
                    self.dispatcher_wake.tenant(installation_id);
                }
            }
            JobStatus::InProgress => {
                // GitHub may report this before the launch recorded the runner: binding a `requested` runner is
                // legal, and the launch keeps the binding when it records the instance.
                if let Some(name) = &runner_name
                    && self.mark_runner(name, RunnerState::Busy, job.id, now).await?
                    && let Some(queued) = job.created_at
                {
                    // Only jobs that ran on ghr's runners: GitHub-hosted jobs of tenant orgs are not ours to time.
                    let started = job.started_at.unwrap_or(now);
                    let seconds = (started - queued).num_milliseconds().max(0) as f64 / 1000.0;
                    metrics::histogram!(m::QUEUED_TO_IN_PROGRESS).record(seconds);
                }
            }
            JobStatus::Completed => {
                if let Some(name) = &runner_name
                    && self.mark_runner(name, RunnerState::Finished, job.id, now).await?
                {
                    self.teardown.runner(name.clone(), TeardownCause::JobCompleted);
                }
                // A completed job frees nothing by itself, but a job completing without a runner (cancelled)
                // changes demand: let the dispatcher recount this tenant.
                self.dispatcher_wake.tenant(installation_id);
            }
        }
        Ok(IntakeOutcome::Applied(status.as_str()))
    }

    /// Bind a job to one of our runners. Returns false when the runner is not ours (GitHub-hosted, or
    /// another system's) — GitHub, not ghr, decides which runner takes which job.
    async fn mark_runner(
        &self,
        name: &RunnerName,
        state: RunnerState,
        job: ghr_core::ids::JobId,
        at: ghr_core::Timestamp,
    ) -> Result<bool, EngineError> {
        let update = RunnerUpdate { job_id: Some(job), ..RunnerUpdate::state(state, at) };
        Ok(self.store.runner_update(name, update).await.doing("binding a job to its runner")?.is_some())
    }
}

/// An event for an installation we never saw, or a transition the tenant's status forbids (a deleted tenant
/// is not resumed), changes nothing: log it and report it as not applied.
fn applied(result: Result<ghr_core::tenant::Tenant, EngineError>) -> Result<bool, EngineError> {
    match result {
        Ok(_) => Ok(true),
        Err(error @ (EngineError::UnknownTenant(_) | EngineError::InvalidTransition { .. })) => {
            tracing::warn!(error = %error, "installation event ignored");
            Ok(false)
        }
        Err(other) => Err(other),
    }
}
