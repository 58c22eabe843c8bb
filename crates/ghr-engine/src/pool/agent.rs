//! The agent side of a pool machine: authentication by the machine's one-time bootstrap secret, its hello,
//! the long-poll for its assignment (where the runner's JIT config is minted and handed over once), and the
//! timings it reports. The server maps these onto `/agent/v1` (`ghr_api::agent`).
//!
//! Why a bootstrap secret rather than the EC2 instance identity document: it works the same for every
//! provider (local processes have no identity document), it is checked without AWS's signing certificates,
//! and it is spent by the one thing it unlocks. A job that reads it back (EC2 user data stays readable
//! through the metadata service) gets nothing: by the time a job runs, the config was delivered.

use super::PoolSignals;
use super::secret::secret_matches;
use crate::EngineError;
use crate::Ports;
use crate::error::{ErrorChain, StoreContext};
use crate::metrics as m;
use crate::settings::EngineSettings;
use crate::teardown::{Teardown, TeardownCause};
use ghr_core::Timestamp;
use ghr_core::ids::{JobId, MachineId, RunnerName};
use ghr_core::job::{JobEvent, event_kind};
use ghr_core::pool::{MachineState, PoolMachine, PoolTransition};
use ghr_core::ports::{JitRequest, PoolStore, RunnerScope, RunnerUpdate};
use ghr_core::runner::RunnerState;
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;

/// How long an agent's assignment request is held at most (the agent asks again).
pub const DEFAULT_ASSIGNMENT_WAIT: Duration = Duration::from_secs(20);
/// How often a held request re-reads the store (a machine bound by another replica).
const ASSIGNMENT_RECHECK: Duration = Duration::from_millis(500);

/// Why an agent request gets nothing.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Unknown machine or wrong secret (the answer does not say which).
    #[error("the machine credential was refused")]
    Unauthorized,
    /// The machine has nothing more to get: its config was delivered, it was retired, or its runner ended.
    #[error("this machine has nothing more to get: {0}")]
    Gone(&'static str),
    /// A machine launched a moment ago whose record is not written yet: ask again.
    #[error("machine {0} is not known yet; retry in a moment")]
    NotYetKnown(MachineId),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// What a machine's hello gets.
#[derive(Debug, Clone, PartialEq)]
pub struct Welcome {
    pub machine: PoolMachine,
    pub wait: Duration,
}

/// A runner's assignment, its config minted for this machine.
pub struct AssignmentGrant {
    pub runner_name: RunnerName,
    pub labels: Vec<String>,
    pub jit_config: SecretString,
}

/// What an agent reports about its runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentReport {
    RunnerStarted,
    RunnerExited { exit_code: Option<i32> },
}

#[derive(Clone)]
pub struct AgentService {
    ports: Ports,
    pool: Arc<dyn PoolStore>,
    settings: Arc<EngineSettings>,
    teardown: Teardown,
    signals: PoolSignals,
}

impl AgentService {
    pub fn new(
        ports: Ports,
        pool: Arc<dyn PoolStore>,
        settings: Arc<EngineSettings>,
        teardown: Teardown,
        signals: PoolSignals,
    ) -> Self {
        AgentService { ports, pool, settings, teardown, signals }
    }

    async fn authenticate(&self, machine: &str, secret: &str, hello: bool) -> Result<PoolMachine, AgentError> {
        let id = MachineId::new(machine);
        let record = self.pool.pool_get(&id).await.doing("reading a pool machine")?;
        match record {
            Some(record) if secret_matches(secret, &record.secret_hash) => Ok(record),
            // Only a hello may precede the record (the keeper writes it once the launch returned).
            None if hello && machine.starts_with("pool-") => Err(AgentError::NotYetKnown(id)),
            _ => {
                metrics::counter!(m::AGENT_REFUSED, "why" => "unauthorized").increment(1);
                Err(AgentError::Unauthorized)
            }
        }
    }

    /// The agent is up: `starting → ready`. Repeating it is harmless until the machine is bound.
    pub async fn hello(&self, machine: &str, secret: &str) -> Result<Welcome, AgentError> {
        let record = self.authenticate(machine, secret, true).await?;
        let now = self.ports.clock.now();
        let record = match record.state {
            MachineState::Starting => {
                let transition = PoolTransition::to(MachineState::Ready, now);
                match self
                    .pool
                    .pool_transition(&record.id, &[MachineState::Starting], transition)
                    .await
                    .doing("marking a pool machine ready")?
                {
                    Some(ready) => {
                        tracing::info!(machine = %ready.id, "pool machine ready");
                        self.signals.refill.notify_one();
                        ready
                    }
                    None => self.reread(&record.id).await?,
                }
            }
            _ => record,
        };
        match record.state {
            MachineState::Ready | MachineState::Bound => Ok(Welcome { machine: record, wait: DEFAULT_ASSIGNMENT_WAIT }),
            _ => Err(self.gone("machine already served or retired")),
        }
    }

    /// Wait up to `wait` for the machine's assignment. `Ok(None)`: nothing yet, ask again.
    pub async fn assignment(
        &self,
        machine: &str,
        secret: &str,
        wait: Duration,
    ) -> Result<Option<AssignmentGrant>, AgentError> {
        let deadline = tokio::time::Instant::now() + wait.min(DEFAULT_ASSIGNMENT_WAIT * 3 / 2);
        loop {
            let bound = self.signals.bound.notified();
            let record = self.authenticate(machine, secret, false).await?;
            match record.state {
                MachineState::Starting | MachineState::Ready => {}
                MachineState::Bound => return self.deliver(record).await.map(Some),
                MachineState::Delivered => return Err(self.gone("config already delivered")),
                MachineState::Retired => return Err(self.gone("machine retired")),
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let pause = (deadline - now).min(ASSIGNMENT_RECHECK);
            let _ = tokio::time::timeout(pause, bound).await;
        }
    }

    /// Hand the bound runner's config over, once: `bound → delivered` first (a second request, or a replay,
    /// finds `delivered` and gets nothing), then mint. A mint that fails tears the runner down so its job
    /// gets another.
    async fn deliver(&self, record: PoolMachine) -> Result<AssignmentGrant, AgentError> {
        let now = self.ports.clock.now();
        let transition = PoolTransition::to(MachineState::Delivered, now);
        let Some(record) = self
            .pool
            .pool_transition(&record.id, &[MachineState::Bound], transition)
            .await
            .doing("delivering to a pool machine")?
        else {
            return Err(self.gone("config already delivered"));
        };
        let Some(name) = record.runner_name.clone() else {
            return Err(self.gone("bound machine names no runner"));
        };
        let runner = self.ports.store.runner_get(&name).await.doing("reading a bound runner")?;
        let Some(runner) = runner.filter(|r| r.state.is_live() && r.state != RunnerState::Finished) else {
            return Err(self.gone("its runner ended before the config was fetched"));
        };
        let tenant =
            self.ports.store.tenant_get(runner.installation_id).await.doing("reading a bound runner's tenant")?;
        let (Some(tenant), Some(tier)) = (tenant, self.settings.catalog.get(&runner.tier).cloned()) else {
            self.abandon(&name, runner.intended_job, "tenant or tier no longer exists").await;
            return Err(self.gone("its tenant or tier no longer exists"));
        };
        let scope = match &runner.scope_repo {
            Some(repo) => RunnerScope::Repo(repo.clone()),
            None => RunnerScope::Org(tenant.org_name.clone()),
        };
        let request = JitRequest {
            installation_id: runner.installation_id,
            scope,
            name: name.clone(),
            labels: tier.labels.clone(),
            runner_group: self.settings.runner_group.clone(),
        };
        let jit = match self.ports.github.create_jit_config(&request).await {
            Ok(jit) => jit,
            Err(error) => {
                metrics::counter!(m::LAUNCH_FAILURES, "stage" => "jit").increment(1);
                let message = format!("jit: {}", ErrorChain(&error));
                self.abandon(&name, runner.intended_job, &message).await;
                return Err(self.gone("its runner's config could not be minted"));
            }
        };
        let update = RunnerUpdate {
            state: None,
            instance_id: None,
            github_runner_id: Some(jit.runner_id),
            job_id: None,
            last_error: None,
            at: now,
        };
        if let Err(error) = self.ports.store.runner_update(&name, update).await {
            // The registration is found by name by the reconciler's registration check.
            tracing::warn!(runner = %name, error = %ErrorChain(&error), "could not record a pooled runner's registration id");
        }
        if let Some(received) = self.job_received_at(runner.intended_job).await {
            metrics::histogram!(m::QUEUED_TO_CONFIG).record(seconds_between(received, now));
        }
        self.note(runner.intended_job, event_kind::CONFIG_DELIVERED, format!("{name} on {}", record.id)).await;
        tracing::info!(runner = %name, machine = %record.id, "runner config delivered to its pool machine");
        Ok(AssignmentGrant { runner_name: name, labels: tier.labels, jit_config: jit.encoded_jit_config })
    }

    /// Timings of a machine that got its assignment. Recorded with the server's clock (the machine's may be off).
    pub async fn report(&self, machine: &str, secret: &str, report: AgentReport) -> Result<(), AgentError> {
        let record = self.authenticate(machine, secret, false).await?;
        if record.state != MachineState::Delivered {
            return Err(self.gone("only a machine that got its config reports"));
        }
        let Some(name) = &record.runner_name else { return Err(self.gone("machine names no runner")) };
        let runner = self.ports.store.runner_get(name).await.doing("reading a pooled runner")?;
        let job = runner.and_then(|r| r.intended_job);
        let now = self.ports.clock.now();
        match report {
            AgentReport::RunnerStarted => {
                if let Some(delivered) = record.delivered_at {
                    metrics::histogram!(m::CONFIG_TO_RUNNER_STARTED).record(seconds_between(delivered, now));
                }
                self.note(job, event_kind::RUNNER_STARTED, format!("{name} on {}", record.id)).await;
            }
            AgentReport::RunnerExited { exit_code } => {
                let code = exit_code.map_or_else(|| "a signal".to_owned(), |c| format!("exit code {c}"));
                self.note(job, event_kind::RUNNER_EXITED, format!("{name} ended with {code}")).await;
            }
        }
        Ok(())
    }

    async fn reread(&self, id: &MachineId) -> Result<PoolMachine, AgentError> {
        self.pool.pool_get(id).await.doing("reading a pool machine")?.ok_or(AgentError::Unauthorized)
    }

    fn gone(&self, why: &'static str) -> AgentError {
        metrics::counter!(m::AGENT_REFUSED, "why" => "gone").increment(1);
        AgentError::Gone(why)
    }

    /// The bound runner cannot run: tear it down (its instance with it) so its job's demand comes back.
    async fn abandon(&self, runner: &RunnerName, job: Option<JobId>, why: &str) {
        tracing::warn!(%runner, error = why, "a pooled runner cannot start; tearing it down");
        self.note(job, event_kind::LAUNCH_FAILED, format!("{runner}: {why}")).await;
        if let Err(error) = self.teardown.terminate_runner(runner, TeardownCause::LaunchFailed).await {
            tracing::warn!(%runner, error = %ErrorChain(&error), "teardown failed; the reconciler retries");
        }
    }

    async fn job_received_at(&self, job: Option<JobId>) -> Option<Timestamp> {
        let job = job?;
        self.ports.store.job_get(job).await.ok().flatten().map(|j| j.received_at)
    }

    async fn note(&self, job: Option<JobId>, kind: &str, detail: String) {
        let Some(job_id) = job else { return };
        let event = JobEvent { job_id, at: self.ports.clock.now(), kind: kind.to_owned(), detail };
        if let Err(error) = self.ports.store.job_event_append(event).await {
            tracing::warn!(job_id = %job_id, error = %ErrorChain(&error), "could not append to a job timeline");
        }
    }
}

fn seconds_between(from: Timestamp, to: Timestamp) -> f64 {
    (to - from).num_milliseconds().max(0) as f64 / 1000.0
}
