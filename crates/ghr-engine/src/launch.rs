//! Launching one reserved runner: mint its JIT config, start it through the provider, record it.
//!
//! Any failure releases the slot (runner `failed`) and removes what was created: a registration without an
//! instance is deleted, an instance whose record cannot be written is terminated. The JIT config exists only
//! in memory on its way to the provider.

use crate::Ports;
use crate::error::ErrorChain;
use crate::metrics as m;
use crate::settings::EngineSettings;
use chrono::Utc;
use ghr_core::Timestamp;
use ghr_core::ids::{GithubRunnerId, InstanceId, JobId};
use ghr_core::job::{JobEvent, event_kind};
use ghr_core::ports::{JitRequest, LaunchRequest, RunnerScope, RunnerUpdate};
use ghr_core::reason::Reason;
use ghr_core::runner::{Runner, RunnerState};
use ghr_core::tenant::Tenant;
use std::sync::Arc;

/// How a launch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LaunchOutcome {
    Launched,
    /// The slot was released; the job keeps waiting with this reason.
    Failed(Reason),
}

#[derive(Clone)]
pub(crate) struct Launcher {
    pub ports: Ports,
    pub settings: Arc<EngineSettings>,
}

impl Launcher {
    /// Launch `runner` (state `requested`) for `tenant`. `job_received_at` feeds the overhead histograms.
    pub async fn launch(&self, runner: Runner, tenant: Tenant, job_received_at: Option<Timestamp>) -> LaunchOutcome {
        let Some(tier) = self.settings.catalog.get(&runner.tier).cloned() else {
            let message = format!("tier {} is no longer configured", runner.tier);
            return self.fail(&runner, Reason::NoMatchingTier, "config", message).await;
        };
        let scope = match &runner.scope_repo {
            Some(repo) => RunnerScope::Repo(repo.clone()),
            None => RunnerScope::Org(tenant.org_name.clone()),
        };
        let request = JitRequest {
            installation_id: runner.installation_id,
            scope: scope.clone(),
            name: runner.name.clone(),
            labels: tier.labels.clone(),
            runner_group: self.settings.runner_group.clone(),
        };
        let jit = match self.ports.github.create_jit_config(&request).await {
            Ok(jit) => jit,
            Err(error) => {
                metrics::counter!(m::LAUNCH_FAILURES, "stage" => "jit").increment(1);
                return self.fail(&runner, Reason::GithubError, "jit", error.to_string()).await;
            }
        };
        if let Some(received) = job_received_at {
            metrics::histogram!(m::DISPATCH_OVERHEAD).record(seconds_since(received));
        }
        let launch = LaunchRequest {
            runner_name: runner.name.clone(),
            installation_id: runner.installation_id,
            org_name: tenant.org_name.clone(),
            tenant_tier: runner.tenant_tier.clone(),
            tier: tier.name.clone(),
            instance_types: tier.instance_types.clone(),
            labels: tier.labels.clone(),
            jit_config: jit.encoded_jit_config,
        };
        let provider = self.ports.provider.name();
        let instance = match self.ports.provider.launch(launch).await {
            Ok(instance) => {
                metrics::counter!(m::PROVIDER_CALLS, "provider" => provider, "call" => "launch", "outcome" => "ok")
                    .increment(1);
                instance
            }
            Err(error) => {
                metrics::counter!(m::PROVIDER_CALLS, "provider" => provider, "call" => "launch", "outcome" => "error")
                    .increment(1);
                metrics::counter!(m::LAUNCH_FAILURES, "stage" => "provider").increment(1);
                self.delete_registration(&runner, &scope, jit.runner_id).await;
                return self
                    .fail(&runner, Reason::ProviderError, "provider", ghr_core::error::error_chain(&error))
                    .await;
            }
        };
        if let Some(received) = job_received_at {
            metrics::histogram!(m::QUEUED_TO_LAUNCHED).record(seconds_since(received));
        }
        let update = RunnerUpdate {
            state: Some(RunnerState::Launching),
            instance_id: Some(instance.id.clone()),
            github_runner_id: Some(jit.runner_id),
            job_id: None,
            last_error: None,
            at: Utc::now(),
        };
        match self.ports.store.runner_update(&runner.name, update).await {
            Ok(Some(updated)) if updated.state == RunnerState::Launching => {
                metrics::counter!(m::RUNNERS_LAUNCHED, "tier" => tier.name.to_string()).increment(1);
                tracing::info!(runner = %runner.name, installation_id = %runner.installation_id, tier = %tier.name, instance = %instance.id, "runner launched");
                self.note(
                    runner.intended_job,
                    event_kind::RUNNER_LAUNCHED,
                    format!("{} on {}", runner.name, instance.id),
                )
                .await;
                LaunchOutcome::Launched
            }
            Ok(other) => {
                // Torn down while launching (tenant deleted, reconciler): undo.
                tracing::info!(runner = %runner.name, state = ?other.map(|r| r.state), "runner was torn down during launch; terminating its instance");
                self.undo(&runner, &scope, &instance.id, jit.runner_id).await;
                LaunchOutcome::Failed(Reason::TenantDeleted)
            }
            Err(error) => {
                metrics::counter!(m::LAUNCH_FAILURES, "stage" => "store").increment(1);
                tracing::error!(runner = %runner.name, error = %error, "could not record a launched runner; terminating it");
                self.undo(&runner, &scope, &instance.id, jit.runner_id).await;
                LaunchOutcome::Failed(Reason::ProviderError)
            }
        }
    }

    async fn undo(&self, runner: &Runner, scope: &RunnerScope, instance: &InstanceId, github_id: GithubRunnerId) {
        if let Err(error) = self.ports.provider.terminate(instance).await {
            tracing::warn!(runner = %runner.name, %instance, error = %ghr_core::error::ErrorChain(&error), "could not terminate; the reconciler will");
        }
        self.delete_registration(runner, scope, github_id).await;
    }

    async fn delete_registration(&self, runner: &Runner, scope: &RunnerScope, github_id: GithubRunnerId) {
        if let Err(error) = self.ports.github.delete_runner(runner.installation_id, scope, github_id).await {
            tracing::warn!(runner = %runner.name, error = %error, "could not delete an unused registration; the reconciler will");
        }
    }

    async fn fail(&self, runner: &Runner, reason: Reason, stage: &str, message: String) -> LaunchOutcome {
        tracing::warn!(runner = %runner.name, installation_id = %runner.installation_id, stage, error = %message, "launch failed; the job keeps waiting");
        let update = RunnerUpdate {
            last_error: Some(format!("{stage}: {message}")),
            ..RunnerUpdate::state(RunnerState::Failed, Utc::now())
        };
        if let Err(error) = self.ports.store.runner_update(&runner.name, update).await {
            // The reconciler fails stale `requested` runners, which frees the slot.
            tracing::error!(runner = %runner.name, error = %ErrorChain(&error), "could not release a failed runner's slot");
        }
        self.note(runner.intended_job, event_kind::LAUNCH_FAILED, format!("{reason}: {stage}: {message}")).await;
        LaunchOutcome::Failed(reason)
    }

    async fn note(&self, job: Option<JobId>, kind: &str, detail: String) {
        let Some(job_id) = job else { return };
        let event = JobEvent { job_id, at: Utc::now(), kind: kind.to_owned(), detail };
        if let Err(error) = self.ports.store.job_event_append(event).await {
            tracing::warn!(job_id = %job_id, error = %error, "could not append to a job timeline");
        }
    }
}

fn seconds_since(t: Timestamp) -> f64 {
    (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0
}
