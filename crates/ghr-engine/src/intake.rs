//! Webhook intake: applies a verified, parsed event to the store.
//!
//! Fast by design (store writes only): GitHub gives up after 10 s. Slow work — launching and terminating
//! runners — is signalled to the dispatcher and the teardown worker, which run after the answer.
//! Idempotent: a redelivery (same `X-GitHub-Delivery`) changes nothing, and job status only moves forward,
//! so duplicate or out-of-order deliveries are harmless. The delivery is recorded together with (or after)
//! what it did, so a failure leaves it unrecorded and a redelivery can still apply it.
//!
//! `workflow_job` deliveries (the hot path) and deliveries that are only recorded go through group commit
//! ([`crate::group_commit`]): deduplication, the job, its timeline, its runner binding and the delivery
//! record in one transaction shared with concurrent deliveries. Installation events (rare: onboarding,
//! suspension, renames) take the tenant service's own writes.

use crate::error::{EngineError, StoreContext};
use crate::group_commit::GroupCommit;
use crate::metrics as m;
use crate::settings::EngineSettings;
use crate::teardown::{TeardownCause, TeardownHandle};
use crate::tenants::{Onboarded, TenantService};
use crate::wake::DispatchWake;
use ghr_core::clock::Clock;
use ghr_core::event::{InstallationAction, WebhookEvent, WorkflowJob, WorkflowJobAction};
use ghr_core::ids::{InstallationId, RunnerName};
use ghr_core::intake::{JobIntake, JobIntakeChange, JobIntakeOutcome, RunnerBinding};
use ghr_core::job::{JobChange, JobObservation, JobStatus};
use ghr_core::labels::match_tier;
use ghr_core::ports::{DeliveryRecord, Store};
use ghr_core::reason::Reason;
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
    batches: Arc<GroupCommit>,
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
        let batches = Arc::new(GroupCommit::new(store.clone()));
        Self { store, clock, settings, tenants, dispatcher_wake, reconciler_wake, teardown, batches }
    }

    /// Apply one delivery. Errors are the system's (store); the caller answers 5xx and the delivery stays
    /// unrecorded so that a redelivery applies it.
    pub async fn handle(&self, delivery: DeliveryRecord, event: WebhookEvent) -> Result<IntakeOutcome, EngineError> {
        let event_name = delivery.event.clone();
        let outcome = match event {
            WebhookEvent::WorkflowJob { action, installation_id, job } => {
                self.handle_job(delivery, action, installation_id, job).await?
            }
            WebhookEvent::Ping => self.record_only(delivery, "ping").await?,
            WebhookEvent::Ignored { .. } => self.record_only(delivery, "event type not used").await?,
            tenant_event @ (WebhookEvent::Installation { .. } | WebhookEvent::InstallationTargetRenamed { .. }) => {
                self.handle_tenant_event(&delivery, tenant_event).await?
            }
        };
        let label = match outcome {
            IntakeOutcome::Duplicate => "duplicate",
            IntakeOutcome::Ignored(_) => "ignored",
            IntakeOutcome::Applied(_) => "applied",
        };
        metrics::counter!(m::WEBHOOK_EVENTS, "event" => event_name, "outcome" => label).increment(1);
        Ok(outcome)
    }

    /// Installation events: check the id, apply through the tenant service, then record the delivery.
    async fn handle_tenant_event(
        &self,
        delivery: &DeliveryRecord,
        event: WebhookEvent,
    ) -> Result<IntakeOutcome, EngineError> {
        if self.store.delivery_seen(&delivery.delivery_id).await.doing("checking a delivery id")? {
            return Ok(IntakeOutcome::Duplicate);
        }
        let outcome = self.apply(event).await?;
        self.store.delivery_record(delivery).await.doing("recording a delivery")?;
        Ok(outcome)
    }

    /// A delivery that changes nothing but is recorded (so a redelivery is recognised), in a shared batch.
    async fn record_only(&self, delivery: DeliveryRecord, why: &'static str) -> Result<IntakeOutcome, EngineError> {
        match self.batches.submit(JobIntake { delivery, job: None }).await.doing("recording a delivery")? {
            JobIntakeOutcome::Duplicate => Ok(IntakeOutcome::Duplicate),
            JobIntakeOutcome::Recorded { .. } => Ok(IntakeOutcome::Ignored(why)),
        }
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
            // Routed by `handle`; never reach here.
            WebhookEvent::WorkflowJob { .. } | WebhookEvent::Ping | WebhookEvent::Ignored { .. } => {
                Ok(IntakeOutcome::Ignored("event type not used"))
            }
        }
    }

    /// A `workflow_job` delivery: one member of the next intake batch, then the wake-ups its change calls for.
    async fn handle_job(
        &self,
        delivery: DeliveryRecord,
        action: WorkflowJobAction,
        installation_id: Option<InstallationId>,
        job: WorkflowJob,
    ) -> Result<IntakeOutcome, EngineError> {
        let Some(installation_id) = installation_id else {
            return self.record_only(delivery, "workflow_job without installation").await;
        };
        let status = match action {
            WorkflowJobAction::Queued | WorkflowJobAction::Waiting => JobStatus::Queued,
            WorkflowJobAction::InProgress => JobStatus::InProgress,
            WorkflowJobAction::Completed => JobStatus::Completed,
            WorkflowJobAction::Other(_) => return self.record_only(delivery, "workflow_job action not used").await,
        };
        let now = self.clock.now();
        let tier = match_tier(&self.settings.catalog, &job.labels).map(|t| t.name.clone());
        let runner_name = job.runner_name.filter(|n| !n.is_empty()).map(RunnerName::new);
        let (job_id, created_at, started_at) = (job.id, job.created_at, job.started_at);
        let observation = JobObservation {
            job_id,
            installation_id,
            repository: job.repository,
            labels: job.labels,
            tier: tier.clone(),
            status,
            conclusion: job.conclusion,
            runner_name: runner_name.clone(),
            queued_at: created_at,
            // GitHub fills `started_at` on queued jobs too; a job has started only once it is in progress.
            started_at: (status >= JobStatus::InProgress).then(|| started_at.unwrap_or(now)),
            completed_at: job.completed_at.or((status == JobStatus::Completed).then_some(now)),
            observed_at: now,
        };
        let change = JobIntakeChange {
            observation,
            // Not ours: say so on the job itself, so `jobs?reason=no_matching_tier` finds it.
            initial_wait_reason: (tier.is_none() && status == JobStatus::Queued).then_some(Reason::NoMatchingTier),
            // GitHub may report this before the launch recorded the runner: binding a `requested` runner is
            // legal, and the launch keeps the binding when it records the instance.
            runner: runner_name.clone().and_then(|name| RunnerBinding::for_status(name, status)),
        };
        let (change, runner) = match self.batches.submit(JobIntake { delivery, job: Some(change) }).await {
            Ok(JobIntakeOutcome::Duplicate) => return Ok(IntakeOutcome::Duplicate),
            Ok(JobIntakeOutcome::Recorded { change, runner, .. }) => (change, runner),
            Err(error) => return Err(error).doing("recording a workflow job"),
        };
        match change {
            None | Some(JobChange::Unchanged) => return Ok(IntakeOutcome::Ignored("job state already recorded")),
            Some(JobChange::Created) => {
                let tier_label = tier.as_ref().map(|t| t.to_string()).unwrap_or_else(|| "none".into());
                metrics::counter!(m::JOBS_RECEIVED, "tier" => tier_label).increment(1);
            }
            Some(JobChange::Advanced { .. }) => {}
        }
        metrics::counter!(m::JOB_TRANSITIONS, "status" => status.as_str()).increment(1);
        // Only jobs that ran on ghr's runners: GitHub-hosted jobs of tenant orgs are not ours to time or tear down.
        let ours = runner.is_some();
        match status {
            JobStatus::Queued => {
                if let Some(tier) = tier {
                    self.dispatcher_wake.tenant_tier(installation_id, tier);
                }
            }
            JobStatus::InProgress => {
                if ours && let Some(queued) = created_at {
                    let started = started_at.unwrap_or(now);
                    let seconds = (started - queued).num_milliseconds().max(0) as f64 / 1000.0;
                    metrics::histogram!(m::QUEUED_TO_IN_PROGRESS).record(seconds);
                }
            }
            JobStatus::Completed => {
                if ours && let Some(name) = runner_name {
                    self.teardown.runner(name, TeardownCause::JobCompleted);
                }
                // A completed job frees nothing by itself, but a job completing without a runner (cancelled)
                // changes demand: let the dispatcher recount this tenant.
                self.dispatcher_wake.tenant(installation_id);
            }
        }
        Ok(IntakeOutcome::Applied(status.as_str()))
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
