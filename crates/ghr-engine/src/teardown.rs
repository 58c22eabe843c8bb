//! Teardown: terminating runners (job completed, tenant gone, reconciler findings) and freeing their slots.
//!
//! Requests arrive through a [`TeardownHandle`] (from webhook intake, which must answer fast) and are
//! carried out by [`Teardown::run`]; the reconciler calls [`Teardown::terminate_runner`] directly.
//! A runner's slot is freed only once its instance is gone: if the provider fails, the runner stays live
//! and the reconciler tries again. A runner whose launch has not recorded an instance yet cannot be
//! terminated: it is marked `finished` (slot held) and the launch terminates the instance as soon as it
//! records it (or the reconciler does, if the launch died).
//!
//! ghr's own choices to remove a runner that never reported a job (surplus idle, bootstrap timeout) first
//! delete its GitHub registration: GitHub refuses that (422) for a runner running a job, which is then
//! kept and marked busy — a runner is never killed under a customer's job on a guess.

use crate::Ports;
use crate::error::{EngineError, ErrorChain, StoreContext};
use crate::metrics as m;
use crate::wake::DispatchWake;
use ghr_core::ids::{InstallationId, RunnerName};
use ghr_core::ports::{GithubError, RunnerFilter, RunnerScope, RunnerUpdate};
use ghr_core::runner::{Runner, RunnerState};
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// Terminations carried out at once by the worker.
const TEARDOWN_PARALLELISM: usize = 16;

/// Why a runner is being terminated (a metrics label and a log field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeardownCause {
    JobCompleted,
    TenantDeleted,
    TenantSuspended,
    BootstrapTimeout,
    MaxRuntime,
    Orphan,
    Operator,
    Shutdown,
    /// A pooled runner whose config could not be minted when its machine asked for it.
    LaunchFailed,
}

impl TeardownCause {
    /// Causes where ghr chooses to remove a runner that may, unknown to ghr, have taken a job: GitHub is
    /// asked first (registration delete), and a busy runner is kept.
    pub fn is_discretionary(self) -> bool {
        matches!(self, TeardownCause::Orphan | TeardownCause::BootstrapTimeout)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TeardownCause::JobCompleted => "job_completed",
            TeardownCause::TenantDeleted => "tenant_deleted",
            TeardownCause::TenantSuspended => "tenant_suspended",
            TeardownCause::BootstrapTimeout => "bootstrap_timeout",
            TeardownCause::MaxRuntime => "max_runtime",
            TeardownCause::Orphan => "orphan",
            TeardownCause::Operator => "operator",
            TeardownCause::Shutdown => "shutdown",
            TeardownCause::LaunchFailed => "launch_failed",
        }
    }

    /// Every cause, for parsing names back ([`TeardownCause::from_name`]).
    pub const ALL: [TeardownCause; 9] = [
        TeardownCause::JobCompleted,
        TeardownCause::TenantDeleted,
        TeardownCause::TenantSuspended,
        TeardownCause::BootstrapTimeout,
        TeardownCause::MaxRuntime,
        TeardownCause::Orphan,
        TeardownCause::Operator,
        TeardownCause::Shutdown,
        TeardownCause::LaunchFailed,
    ];

    /// The cause [`TeardownCause::as_str`] names (work items carried between processes).
    pub fn from_name(name: &str) -> Option<TeardownCause> {
        Self::ALL.into_iter().find(|cause| cause.as_str() == name)
    }
}

/// One queued teardown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TeardownRequest {
    Runner(RunnerName, TeardownCause),
    Tenant(InstallationId, TeardownCause),
}

/// Cheap handle to queue teardown work without waiting for it.
#[derive(Clone)]
pub struct TeardownHandle {
    tx: mpsc::UnboundedSender<TeardownRequest>,
}

impl TeardownHandle {
    pub fn runner(&self, name: RunnerName, cause: TeardownCause) {
        if self.tx.send(TeardownRequest::Runner(name.clone(), cause)).is_err() {
            tracing::warn!(runner = %name, "teardown worker stopped; the reconciler will terminate the runner");
        }
    }

    pub fn tenant(&self, id: InstallationId, cause: TeardownCause) {
        if self.tx.send(TeardownRequest::Tenant(id, cause)).is_err() {
            tracing::warn!(installation_id = %id, "teardown worker stopped; the reconciler will finish the teardown");
        }
    }
}

/// Receiving end of the teardown queue; give it to [`Teardown::run`].
pub struct TeardownQueue {
    rx: mpsc::UnboundedReceiver<TeardownRequest>,
}

impl TeardownQueue {
    /// The next queued request, if any, without waiting (step-wise use: the deterministic simulation).
    pub fn try_next(&mut self) -> Option<TeardownRequest> {
        self.rx.try_recv().ok()
    }
}

pub fn channel() -> (TeardownHandle, TeardownQueue) {
    let (tx, rx) = mpsc::unbounded_channel();
    (TeardownHandle { tx }, TeardownQueue { rx })
}

#[derive(Clone)]
pub struct Teardown {
    ports: Ports,
    /// Woken after a slot is freed, so a waiting job gets it at once.
    dispatcher_wake: Arc<DispatchWake>,
}

impl Teardown {
    pub fn new(ports: Ports, dispatcher_wake: Arc<DispatchWake>) -> Self {
        Self { ports, dispatcher_wake }
    }

    /// Terminate one runner's instance and free its slot. Returns false when it was not live.
    pub async fn terminate_runner(&self, name: &RunnerName, cause: TeardownCause) -> Result<bool, EngineError> {
        let Some(runner) = self.ports.store.runner_get(name).await.doing("reading a runner")? else {
            return Ok(false);
        };
        if !runner.state.is_live() {
            return Ok(false);
        }
        self.terminate(&runner, cause).await
    }

    async fn terminate(&self, runner: &Runner, cause: TeardownCause) -> Result<bool, EngineError> {
        let now = self.ports.clock.now();
        let Some(instance) = &runner.instance_id else {
            // The launch has not recorded an instance yet (or died before it could): hold the slot as
            // `finished`; the launch, or the reconciler, terminates the instance once it is known.
            if runner.state != RunnerState::Finished {
                let update = RunnerUpdate::state(RunnerState::Finished, now);
                self.ports.store.runner_update(&runner.name, update).await.doing("marking a runner for teardown")?;
                tracing::info!(runner = %runner.name, cause = cause.as_str(), "teardown deferred until the launch records the instance");
            }
            return Ok(false);
        };
        let unbound = runner.job_id.is_none() && runner.state != RunnerState::Busy;
        if cause.is_discretionary() && unbound && !self.release_registration(runner).await? {
            return Ok(false);
        }
        let result = self.ports.provider.terminate(instance).await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!(m::PROVIDER_CALLS, "provider" => self.ports.provider.name(), "call" => "terminate", "outcome" => outcome)
            .increment(1);
        result.map_err(|source| EngineError::Provider { doing: "terminating an instance", source })?;
        // A runner that never ran a job keeps its GitHub registration; remove it while the App can.
        if unbound
            && !cause.is_discretionary()
            && cause != TeardownCause::TenantDeleted
            && let Some(github_id) = runner.github_runner_id
        {
            let scope = self.scope_of(runner).await?;
            if let Some(scope) = scope
                && let Err(error) = self.ports.github.delete_runner(runner.installation_id, &scope, github_id).await
            {
                tracing::warn!(runner = %runner.name, error = %ErrorChain(&error), "could not delete the runner's registration; the reconciler retries");
            }
        }
        let update = RunnerUpdate::state(RunnerState::Terminated, self.ports.clock.now());
        self.ports.store.runner_update(&runner.name, update).await.doing("marking a runner terminated")?;
        metrics::counter!(m::RUNNERS_TERMINATED, "cause" => cause.as_str()).increment(1);
        self.dispatcher_wake.tenant(runner.installation_id);
        tracing::info!(runner = %runner.name, installation_id = %runner.installation_id, cause = cause.as_str(), "runner terminated");
        Ok(true)
    }

    /// Delete the registration of a runner ghr wants gone before touching its instance. Returns false when
    /// the runner must stay: GitHub says it is running a job (422; it is marked busy) or GitHub could not be
    /// asked (the next pass asks again).
    async fn release_registration(&self, runner: &Runner) -> Result<bool, EngineError> {
        let Some(scope) = self.scope_of(runner).await? else {
            // The tenant is gone: GitHub no longer lets the App manage its runners.
            return Ok(true);
        };
        let github_id = match runner.github_runner_id {
            Some(id) => id,
            // A launch that died before recording its registration (the instance was adopted by name): find
            // the registration by name, or it never registered and cannot be running a job.
            None => match self.registration_by_name(runner, &scope).await {
                Ok(Some(id)) => id,
                Ok(None) => return Ok(true),
                Err(error) => {
                    tracing::warn!(runner = %runner.name, error = %ErrorChain(&error), "could not look the registration up; keeping the runner until GitHub answers");
                    return Ok(false);
                }
            },
        };
        match self.ports.github.delete_runner(runner.installation_id, &scope, github_id).await {
            Ok(()) => Ok(true),
            Err(GithubError::Unprocessable(message)) => {
                tracing::warn!(runner = %runner.name, %message, "GitHub says the runner is running a job; keeping it");
                let update = RunnerUpdate::state(RunnerState::Busy, self.ports.clock.now());
                self.ports.store.runner_update(&runner.name, update).await.doing("marking a runner busy")?;
                Ok(false)
            }
            Err(error) => {
                tracing::warn!(runner = %runner.name, error = %ErrorChain(&error), "could not delete the registration; keeping the runner until GitHub answers");
                Ok(false)
            }
        }
    }

    /// The GitHub id of the registration named like `runner` in `scope`, recorded on the runner when found.
    pub(crate) async fn registration_by_name(
        &self,
        runner: &Runner,
        scope: &RunnerScope,
    ) -> Result<Option<ghr_core::ids::GithubRunnerId>, GithubError> {
        let registrations = self.ports.github.list_runners(runner.installation_id, scope).await?;
        let Some(found) = registrations.into_iter().find(|r| r.name == runner.name.as_str()) else {
            return Ok(None);
        };
        let update = RunnerUpdate {
            github_runner_id: Some(found.id),
            ..RunnerUpdate::state(runner.state, self.ports.clock.now())
        };
        if let Err(error) = self.ports.store.runner_update(&runner.name, update).await {
            tracing::warn!(runner = %runner.name, error = %ErrorChain(&error), "could not record a registration found by name");
        }
        Ok(Some(found.id))
    }

    /// Where a runner is registered on GitHub (None when the tenant is gone from the store).
    pub(crate) async fn scope_of(&self, runner: &Runner) -> Result<Option<RunnerScope>, EngineError> {
        if let Some(repo) = &runner.scope_repo {
            return Ok(Some(RunnerScope::Repo(repo.clone())));
        }
        let tenant = self.ports.store.tenant_get(runner.installation_id).await.doing("reading a tenant")?;
        Ok(tenant.map(|t| RunnerScope::Org(t.org_name)))
    }

    /// Terminate every live runner of a tenant. Returns how many were terminated; failures are logged and
    /// left to the reconciler.
    pub async fn terminate_tenant(&self, id: InstallationId, cause: TeardownCause) -> Result<usize, EngineError> {
        let filter = RunnerFilter {
            installation_id: Some(id),
            tier: None,
            states: RunnerState::LIVE.to_vec(),
            ..RunnerFilter::default()
        };
        let runners = self.ports.store.runner_list(filter).await.doing("listing a tenant's runners")?;
        let mut done = 0;
        for runner in runners {
            match self.terminate(&runner, cause).await {
                Ok(true) => done += 1,
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(runner = %runner.name, error = %error, "teardown failed; the reconciler retries")
                }
            }
        }
        Ok(done)
    }

    /// Carry out one request; failures are logged and left to the reconciler.
    pub async fn carry_out(&self, request: TeardownRequest) {
        match request {
            TeardownRequest::Runner(name, cause) => {
                if let Err(error) = self.terminate_runner(&name, cause).await {
                    tracing::warn!(runner = %name, error = %ErrorChain(&error), "teardown failed; the reconciler retries");
                }
            }
            TeardownRequest::Tenant(id, cause) => {
                if let Err(error) = self.terminate_tenant(id, cause).await {
                    tracing::warn!(installation_id = %id, error = %ErrorChain(&error), "tenant teardown failed; the reconciler retries");
                }
            }
        }
    }

    /// Carry out queued requests until the handle side closes or `stop` fires.
    pub async fn run(self, mut queue: TeardownQueue, stop: CancellationToken) {
        let permits = Arc::new(Semaphore::new(TEARDOWN_PARALLELISM));
        loop {
            let request = tokio::select! {
                request = queue.rx.recv() => match request { Some(r) => r, None => break },
                () = stop.cancelled() => break,
            };
            let Ok(permit) = permits.clone().acquire_owned().await else { break };
            let this = self.clone();
            tokio::spawn(async move {
                let _permit = permit;
                this.carry_out(request).await;
            });
        }
        // Let in-flight terminations finish.
        let _ = permits.acquire_many(TEARDOWN_PARALLELISM as u32).await;
    }
}
