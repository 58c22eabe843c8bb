//! Launching one reserved runner: mint its JIT config, start it through the provider, record it.
//!
//! The launch is three steps ([`Launcher::mint`], [`Launcher::start`], [`Launcher::record`]) so that the
//! deterministic simulation can interleave GitHub's events and other loops between them; production runs
//! them back to back ([`Launcher::launch`]).
//!
//! GitHub's events may overtake a launch: the runner can take its job (and even finish it) before the launch
//! is recorded. Recording therefore never undoes what GitHub reported; it records the instance and then does
//! what the runner's state asks ([`LaunchRecorded`]): nothing, tear the instance down (job already completed),
//! or undo (runner released meanwhile). A slot is freed only once the instance is known gone.
//!
//! Any failure before an instance exists releases the slot (runner `failed`) and removes the registration.
//! The JIT config exists only in memory on its way to the provider.

use crate::Ports;
use crate::error::ErrorChain;
use crate::metrics as m;
use crate::pool::PoolSignals;
use crate::settings::EngineSettings;
use crate::teardown::{Teardown, TeardownCause};
use ghr_core::Timestamp;
use ghr_core::ids::{GithubRunnerId, InstanceId, JobId, RunnerName};
use ghr_core::job::{JobEvent, event_kind};
use ghr_core::ports::{Instance, JitConfig, JitRequest, LaunchRequest, RunnerScope, RunnerUpdate};
use ghr_core::reason::Reason;
use ghr_core::runner::{LaunchRecorded, Runner, RunnerState};
use ghr_core::tenant::Tenant;
use ghr_core::tier::Tier;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

/// How a launch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchOutcome {
    Launched,
    /// The slot was released (or is being released with its instance); the job keeps waiting with this reason.
    Failed(Reason),
}

/// Runners whose launch is under way in this process. The reconciler never releases one of these for
/// "launch did not complete": only a launch that died (a restart) leaves a runner without an instance.
#[derive(Clone, Default)]
pub struct LaunchesInFlight {
    names: Arc<Mutex<HashSet<RunnerName>>>,
}

impl LaunchesInFlight {
    /// Mark a launch as under way until the returned guard is dropped.
    pub fn enter(&self, name: &RunnerName) -> InFlightGuard {
        self.names.lock().unwrap_or_else(PoisonError::into_inner).insert(name.clone());
        InFlightGuard { set: self.clone(), name: name.clone() }
    }

    pub fn contains(&self, name: &RunnerName) -> bool {
        self.names.lock().unwrap_or_else(PoisonError::into_inner).contains(name)
    }

    /// The runners whose launch is under way now.
    pub fn names(&self) -> std::collections::BTreeSet<RunnerName> {
        self.names.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect()
    }
}

/// Keeps a runner in [`LaunchesInFlight`] while alive.
pub struct InFlightGuard {
    set: LaunchesInFlight,
    name: RunnerName,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.set.names.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.name);
    }
}

/// A reserved runner about to be launched.
pub struct PendingLaunch {
    pub runner: Runner,
    pub(crate) tenant: Tenant,
    pub(crate) job_received_at: Option<Timestamp>,
    _in_flight: InFlightGuard,
}

impl PendingLaunch {
    pub fn new(
        runner: Runner,
        tenant: Tenant,
        job_received_at: Option<Timestamp>,
        in_flight: &LaunchesInFlight,
    ) -> Self {
        let guard = in_flight.enter(&runner.name);
        Self { runner, tenant, job_received_at, _in_flight: guard }
    }
}

/// A launch whose JIT config was minted.
pub struct MintedLaunch {
    pending: PendingLaunch,
    tier: Tier,
    scope: RunnerScope,
    jit: JitConfig,
}

impl MintedLaunch {
    pub fn runner(&self) -> &Runner {
        &self.pending.runner
    }
}

/// A launch whose instance the provider started.
pub struct StartedLaunch {
    pending: PendingLaunch,
    tier: Tier,
    scope: RunnerScope,
    github_id: GithubRunnerId,
    instance: Instance,
}

impl StartedLaunch {
    pub fn runner(&self) -> &Runner {
        &self.pending.runner
    }
}

#[derive(Clone)]
pub struct Launcher {
    pub ports: Ports,
    pub settings: Arc<EngineSettings>,
    pub teardown: Teardown,
    /// Wakes pool machines' held requests after a binding, and the pool keeper after a claim.
    pub pool_signals: PoolSignals,
}

impl Launcher {
    /// A ready warm-pool machine of the runner's tier when there is one ([`crate::pool`]), else all three
    /// steps of a cold launch, back to back.
    pub async fn launch(&self, pending: PendingLaunch) -> LaunchOutcome {
        let pending = match self.launch_from_pool(pending, &self.pool_signals.clone()).await {
            Ok(outcome) => return outcome,
            Err(pending) => pending,
        };
        let minted = match self.mint(pending).await {
            Ok(minted) => minted,
            Err(outcome) => return outcome,
        };
        let started = match self.start(minted).await {
            Ok(started) => started,
            Err(outcome) => return outcome,
        };
        self.record(started).await
    }

    /// Step 1: mint the single-use JIT config.
    pub async fn mint(&self, pending: PendingLaunch) -> Result<MintedLaunch, LaunchOutcome> {
        let runner = &pending.runner;
        let Some(tier) = self.settings.catalog.get(&runner.tier).cloned() else {
            let message = format!("tier {} is no longer configured", runner.tier);
            return Err(self.fail(runner, Reason::NoMatchingTier, "config", message).await);
        };
        let scope = match &runner.scope_repo {
            Some(repo) => RunnerScope::Repo(repo.clone()),
            None => RunnerScope::Org(pending.tenant.org_name.clone()),
        };
        let request = JitRequest {
            installation_id: runner.installation_id,
            scope: scope.clone(),
            name: runner.name.clone(),
            labels: tier.labels.clone(),
            runner_group: self.settings.runner_group.clone(),
        };
        match self.ports.github.create_jit_config(&request).await {
            Ok(jit) => {
                if let Some(received) = pending.job_received_at {
                    metrics::histogram!(m::DISPATCH_OVERHEAD).record(self.seconds_since(received));
                }
                Ok(MintedLaunch { pending, tier, scope, jit })
            }
            Err(error) => {
                metrics::counter!(m::LAUNCH_FAILURES, "stage" => "jit").increment(1);
                let message = ErrorChain(&error).to_string();
                Err(self.fail(runner, Reason::GithubError, "jit", message).await)
            }
        }
    }

    /// Step 2: start the instance. On failure the registration is deleted and the slot released.
    pub async fn start(&self, minted: MintedLaunch) -> Result<StartedLaunch, LaunchOutcome> {
        let MintedLaunch { pending, tier, scope, jit } = minted;
        let runner = &pending.runner;
        let launch = LaunchRequest {
            runner_name: runner.name.clone(),
            installation_id: runner.installation_id,
            org_name: pending.tenant.org_name.clone(),
            tenant_tier: runner.tenant_tier.clone(),
            tier: tier.name.clone(),
            instance_types: tier.instance_types.clone(),
            runner_architecture: tier.runner_architecture.clone(),
            labels: tier.labels.clone(),
            jit_config: jit.encoded_jit_config,
        };
        let provider = self.ports.provider.name();
        match self.ports.provider.launch(launch).await {
            Ok(instance) => {
                metrics::counter!(m::PROVIDER_CALLS, "provider" => provider, "call" => "launch", "outcome" => "ok")
                    .increment(1);
                if let Some(received) = pending.job_received_at {
                    metrics::histogram!(m::QUEUED_TO_LAUNCHED).record(self.seconds_since(received));
                }
                Ok(StartedLaunch { pending, tier, scope, github_id: jit.runner_id, instance })
            }
            Err(error) => {
                metrics::counter!(m::PROVIDER_CALLS, "provider" => provider, "call" => "launch", "outcome" => "error")
                    .increment(1);
                metrics::counter!(m::LAUNCH_FAILURES, "stage" => "provider").increment(1);
                let message = ErrorChain(&error).to_string();
                self.delete_registration(runner, &scope, jit.runner_id).await;
                Err(self.fail(runner, Reason::ProviderError, "provider", message).await)
            }
        }
    }

    /// Step 3: record the instance, then act on what GitHub's events did to the runner meanwhile.
    pub async fn record(&self, started: StartedLaunch) -> LaunchOutcome {
        let StartedLaunch { pending, tier, scope, github_id, instance } = started;
        let runner = &pending.runner;
        let update = RunnerUpdate {
            state: Some(RunnerState::Launching),
            instance_id: Some(instance.id.clone()),
            github_runner_id: Some(github_id),
            job_id: None,
            last_error: None,
            at: self.ports.clock.now(),
        };
        let recorded = match self.ports.store.runner_update(&runner.name, update).await {
            Ok(Some(recorded)) => recorded,
            Ok(None) => {
                tracing::error!(runner = %runner.name, "runner record vanished during launch; terminating its instance");
                self.undo(runner, &scope, &instance.id, github_id).await;
                return LaunchOutcome::Failed(Reason::ProviderError);
            }
            Err(error) => {
                // The instance is running but unrecorded. Keep the slot (the runner stays live without an
                // instance id); the reconciler adopts the instance by its name tag or, once it is gone,
                // releases the slot.
                metrics::counter!(m::LAUNCH_FAILURES, "stage" => "store").increment(1);
                tracing::error!(runner = %runner.name, instance = %instance.id, error = %ErrorChain(&error), "could not record a launched runner; the reconciler adopts it");
                return LaunchOutcome::Launched;
            }
        };
        match LaunchRecorded::after(recorded.state) {
            LaunchRecorded::Running => {
                metrics::counter!(m::RUNNERS_LAUNCHED, "tier" => tier.name.to_string()).increment(1);
                tracing::info!(runner = %runner.name, installation_id = %runner.installation_id, tier = %tier.name, instance = %instance.id, state = %recorded.state, "runner launched");
                self.note(
                    runner.intended_job,
                    event_kind::RUNNER_LAUNCHED,
                    format!("{} on {}", runner.name, instance.id),
                )
                .await;
                LaunchOutcome::Launched
            }
            LaunchRecorded::TearDown => {
                // Its job completed (or a teardown was asked for) while the instance was starting.
                tracing::info!(runner = %runner.name, instance = %instance.id, "runner finished before its launch was recorded; terminating it");
                if let Err(error) = self.teardown.terminate_runner(&runner.name, TeardownCause::JobCompleted).await {
                    tracing::warn!(runner = %runner.name, error = %ErrorChain(&error), "teardown failed; the reconciler retries");
                }
                LaunchOutcome::Launched
            }
            LaunchRecorded::Undo => {
                tracing::info!(runner = %runner.name, state = %recorded.state, "runner was released during launch; terminating its instance");
                self.undo(runner, &scope, &instance.id, github_id).await;
                LaunchOutcome::Failed(Reason::TenantDeleted)
            }
        }
    }

    async fn undo(&self, runner: &Runner, scope: &RunnerScope, instance: &InstanceId, github_id: GithubRunnerId) {
        if let Err(error) = self.ports.provider.terminate(instance).await {
            tracing::warn!(runner = %runner.name, %instance, error = %ErrorChain(&error), "could not terminate; the reconciler will");
        }
        self.delete_registration(runner, scope, github_id).await;
    }

    async fn delete_registration(&self, runner: &Runner, scope: &RunnerScope, github_id: GithubRunnerId) {
        if let Err(error) = self.ports.github.delete_runner(runner.installation_id, scope, github_id).await {
            tracing::warn!(runner = %runner.name, error = %ErrorChain(&error), "could not delete an unused registration; the reconciler will");
        }
    }

    async fn fail(&self, runner: &Runner, reason: Reason, stage: &str, message: String) -> LaunchOutcome {
        tracing::warn!(runner = %runner.name, installation_id = %runner.installation_id, stage, error = %message, "launch failed; the job keeps waiting");
        let update = RunnerUpdate {
            last_error: Some(format!("{stage}: {message}")),
            ..RunnerUpdate::state(RunnerState::Failed, self.ports.clock.now())
        };
        match self.ports.store.runner_update(&runner.name, update).await {
            Ok(Some(after)) if after.state.is_live() => {
                // GitHub reported the runner busy: an instance exists after all. Keep the slot; the reconciler
                // adopts the instance by name or releases the slot once nothing runs.
                tracing::warn!(runner = %runner.name, state = %after.state, "launch reported failure but GitHub saw the runner; keeping its slot");
            }
            Ok(_) => {}
            Err(error) => {
                // The reconciler fails stale `requested` runners, which frees the slot.
                tracing::error!(runner = %runner.name, error = %ErrorChain(&error), "could not release a failed runner's slot");
            }
        }
        self.note(runner.intended_job, event_kind::LAUNCH_FAILED, format!("{reason}: {stage}: {message}")).await;
        LaunchOutcome::Failed(reason)
    }

    pub(crate) async fn note(&self, job: Option<JobId>, kind: &str, detail: String) {
        let Some(job_id) = job else { return };
        let event = JobEvent { job_id, at: self.ports.clock.now(), kind: kind.to_owned(), detail };
        if let Err(error) = self.ports.store.job_event_append(event).await {
            tracing::warn!(job_id = %job_id, error = %ErrorChain(&error), "could not append to a job timeline");
        }
    }

    pub(crate) fn seconds_since(&self, t: Timestamp) -> f64 {
        (self.ports.clock.now() - t).num_milliseconds().max(0) as f64 / 1000.0
    }
}
