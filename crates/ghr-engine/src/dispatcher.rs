//! The dispatcher: turns jobs waiting for a runner into runner launches, fairly and within limits.
//!
//! One pass:
//! 1. classify every queued job of ours (tier, tenant status, entitlement); record why a job cannot start;
//! 2. jobs already covered by an unbound runner of the same (tenant, tier[, repo]) wait for it — runners
//!    are fungible, GitHub decides which runner takes which job;
//! 3. the rest are served **round-robin across tenants, FIFO within a tenant**: each round gives every
//!    tenant at most one reservation, so a tenant at its limit never delays another tenant's job;
//! 4. each reservation is the store's atomic `runner_reserve` (limit, global cap and remaining demand checked
//!    in one transaction), so concurrent passes, processes and restarts never exceed a limit.
//!
//! A job that cannot start keeps waiting with a reason and is served when the condition clears; launch
//! failures back off per (tenant, tier).

use crate::Ports;
use crate::error::{EngineError, StoreContext};
use crate::launch::{LaunchOutcome, Launcher, LaunchesInFlight, PendingLaunch};
use crate::metrics as m;
use crate::settings::EngineSettings;
use crate::teardown::Teardown;
use ghr_core::Timestamp;
use ghr_core::admission::classify;
use ghr_core::ids::{InstallationId, TierName};
use ghr_core::job::{Job, JobEvent, event_kind};
use ghr_core::ports::{Reservation, ReserveRequest, RunnerFilter};
use ghr_core::reason::Reason;
use ghr_core::runner::{Runner, RunnerState};
use ghr_core::tenant::{OrgType, Tenant};
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// (tenant, tier, repository scope for personal-account tenants): the unit of demand and supply.
type DemandKey = (InstallationId, TierName, Option<String>);

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Runners reserved and handed to launch tasks.
    pub reserved: usize,
    /// Jobs covered by a runner already on its way.
    pub covered: usize,
    /// Jobs that could not get a runner, by reason.
    pub waiting: BTreeMap<Reason, usize>,
}

#[derive(Debug, Clone, Copy)]
struct Backoff {
    failures: u32,
    until: Timestamp,
    reason: Reason,
}

#[derive(Default)]
struct State {
    /// The tenant served last; the next round starts after it.
    cursor: Option<InstallationId>,
    backoff: HashMap<(InstallationId, TierName), Backoff>,
}

/// Where a pass puts the launches it reserved.
enum LaunchSink<'a> {
    /// Run each launch as a task of this dispatcher (production).
    Spawn,
    /// Hand them to the caller, who runs the launch steps itself (the deterministic simulation).
    Collect(&'a mut Vec<PendingLaunch>),
}

pub struct Dispatcher {
    ports: Ports,
    settings: Arc<EngineSettings>,
    wake: Arc<Notify>,
    teardown: Teardown,
    in_flight: LaunchesInFlight,
    state: Mutex<State>,
    launches: Arc<Semaphore>,
    tasks: TaskTracker,
    /// Serialises passes within this process (other processes are serialised by the store).
    pass_lock: tokio::sync::Mutex<()>,
}

impl Dispatcher {
    pub fn new(ports: Ports, settings: Arc<EngineSettings>, wake: Arc<Notify>, teardown: Teardown) -> Arc<Self> {
        let launches = Arc::new(Semaphore::new(settings.max_parallel_launches));
        Arc::new(Self {
            ports,
            settings,
            wake,
            teardown,
            in_flight: LaunchesInFlight::default(),
            state: Mutex::new(State::default()),
            launches,
            tasks: TaskTracker::new(),
            pass_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Run passes on every wake-up and every tick until `stop`; then wait for launches in flight.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            if let Err(error) = self.pass().await {
                tracing::error!(error = %crate::error::ErrorChain(&error), "dispatcher pass failed; retrying on the next tick");
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.settings.dispatch_tick) => {}
                () = stop.cancelled() => break,
            }
        }
        self.drain().await;
    }

    /// Wait until every launch in flight has finished (graceful shutdown, tests).
    pub async fn drain(&self) {
        self.tasks.close();
        self.tasks.wait().await;
        self.tasks.reopen();
    }

    /// The launches under way in this process (the reconciler must not release them).
    pub fn launches_in_flight(&self) -> LaunchesInFlight {
        self.in_flight.clone()
    }

    /// A launcher sharing this dispatcher's ports, settings and teardown.
    pub fn launcher(&self) -> Launcher {
        Launcher { ports: self.ports.clone(), settings: self.settings.clone(), teardown: self.teardown.clone() }
    }

    /// One dispatch pass; reserved runners are launched by tasks of this dispatcher.
    pub async fn pass(self: &Arc<Self>) -> Result<PassReport, EngineError> {
        self.pass_into(LaunchSink::Spawn).await
    }

    /// One dispatch pass that hands the reserved launches to the caller instead of starting them. The caller
    /// runs the [`Launcher`] steps and reports each outcome with [`Dispatcher::launch_finished`].
    pub async fn pass_collecting(self: &Arc<Self>) -> Result<(PassReport, Vec<PendingLaunch>), EngineError> {
        let mut launches = Vec::new();
        let report = self.pass_into(LaunchSink::Collect(&mut launches)).await?;
        Ok((report, launches))
    }

    async fn pass_into(self: &Arc<Self>, mut sink: LaunchSink<'_>) -> Result<PassReport, EngineError> {
        let _serial = self.pass_lock.lock().await;
        let store = &self.ports.store;
        let jobs = store.job_list_wanting_runner().await.doing("listing jobs that want a runner")?;
        let unbound = store
            .runner_list(RunnerFilter { states: RunnerState::UNBOUND.to_vec(), ..RunnerFilter::default() })
            .await
            .doing("listing unbound runners")?;
        let mut supply: HashMap<DemandKey, usize> = HashMap::new();
        for runner in &unbound {
            *supply.entry((runner.installation_id, runner.tier.clone(), runner.scope_repo.clone())).or_default() += 1;
        }

        let mut report = PassReport::default();
        let mut tenants: HashMap<InstallationId, Option<Tenant>> = HashMap::new();
        let mut queues: BTreeMap<InstallationId, VecDeque<(Job, DemandKey)>> = BTreeMap::new();
        for job in jobs {
            if let Entry::Vacant(slot) = tenants.entry(job.installation_id) {
                slot.insert(store.tenant_get(job.installation_id).await.doing("reading a tenant")?);
            }
            let tenant = tenants.get(&job.installation_id).and_then(Option::as_ref);
            let tier = match classify(&self.settings.catalog, self.settings.tier_access, tenant, &job.labels) {
                Ok(tier) => tier.name.clone(),
                Err(reason) => {
                    self.set_reason(&job, Some(reason), &mut report).await?;
                    continue;
                }
            };
            let scope = tenant.filter(|t| t.org_type == OrgType::User).map(|_| job.repository.clone());
            let key = (job.installation_id, tier, scope);
            if let Some(available) = supply.get_mut(&key).filter(|n| **n > 0) {
                *available -= 1;
                self.set_reason(&job, None, &mut report).await?;
                report.covered += 1;
                continue;
            }
            queues.entry(job.installation_id).or_default().push_back((job, key));
        }

        let order = self.round_robin_order(queues.keys().copied().collect());
        'rounds: while queues.values().any(|q| !q.is_empty()) {
            for installation in &order {
                let Some(queue) = queues.get_mut(installation) else { continue };
                let Some((job, key)) = queue.front().cloned() else { continue };
                if let Some(reason) = self.backoff_reason(&key) {
                    let (blocked, rest): (VecDeque<_>, VecDeque<_>) = queue.drain(..).partition(|(_, k)| *k == key);
                    *queue = rest;
                    for (job, _) in blocked {
                        self.set_reason(&job, Some(reason), &mut report).await?;
                    }
                    continue;
                }
                let permit = match sink {
                    LaunchSink::Spawn => match self.launches.clone().acquire_owned().await {
                        Ok(permit) => Some(permit),
                        Err(_) => break 'rounds,
                    },
                    LaunchSink::Collect(_) => None,
                };
                let request = ReserveRequest {
                    installation_id: key.0,
                    tier: key.1.clone(),
                    scope_repo: key.2.clone(),
                    intended_job: Some(job.job_id),
                    global_cap: self.settings.global_max_runners,
                    environment: self.settings.environment.clone(),
                    now: self.ports.clock.now(),
                };
                match store.runner_reserve(request).await.doing("reserving a runner slot")? {
                    Reservation::Reserved(runner) => {
                        queue.pop_front();
                        self.set_reason(&job, None, &mut report).await?;
                        report.reserved += 1;
                        let detail = format!("{} ({})", runner.name, runner.tier);
                        let event = JobEvent {
                            job_id: job.job_id,
                            at: self.ports.clock.now(),
                            kind: event_kind::RUNNER_REQUESTED.into(),
                            detail,
                        };
                        store.job_event_append(event).await.doing("appending to a job timeline")?;
                        self.state.lock().map(|mut s| s.cursor = Some(*installation)).ok();
                        let Some(tenant) = tenants.get(installation).cloned().flatten() else { continue };
                        let pending = PendingLaunch::new(*runner, tenant, Some(job.received_at), &self.in_flight);
                        match (&mut sink, permit) {
                            (LaunchSink::Collect(launches), _) => launches.push(pending),
                            (LaunchSink::Spawn, Some(permit)) => self.spawn_launch(pending, permit),
                            // A spawning pass always holds a permit here; never leave a reserved runner unlaunched
                            // silently (the reconciler releases it after the orphan grace).
                            (LaunchSink::Spawn, None) => {
                                tracing::error!(runner = %pending.runner.name, "reserved runner has no launch permit; the reconciler releases it")
                            }
                        }
                    }
                    Reservation::NoDemand => {
                        // Runners started by another dispatcher already cover this demand.
                        let (covered, rest): (VecDeque<_>, VecDeque<_>) = queue.drain(..).partition(|(_, k)| *k == key);
                        *queue = rest;
                        for (job, _) in covered {
                            self.set_reason(&job, None, &mut report).await?;
                            report.covered += 1;
                        }
                    }
                    Reservation::Refused(Reason::GlobalCap) => {
                        metrics::counter!(m::ADMISSION_REFUSED, "reason" => Reason::GlobalCap.code()).increment(1);
                        for (job, _) in queues.values_mut().flat_map(|q| q.drain(..)) {
                            self.set_reason(&job, Some(Reason::GlobalCap), &mut report).await?;
                        }
                        break 'rounds;
                    }
                    Reservation::Refused(reason) => {
                        // Tenant-wide: at its limit, suspended, pending, deleted or unknown.
                        metrics::counter!(m::ADMISSION_REFUSED, "reason" => reason.code()).increment(1);
                        for (job, _) in queue.drain(..) {
                            self.set_reason(&job, Some(reason), &mut report).await?;
                        }
                    }
                }
            }
        }
        self.publish_waiting(&report);
        Ok(report)
    }

    /// Tenants in installation order, starting after the one served last.
    fn round_robin_order(&self, mut tenants: Vec<InstallationId>) -> Vec<InstallationId> {
        let cursor = self.state.lock().ok().and_then(|s| s.cursor);
        if let Some(cursor) = cursor {
            let split = tenants.iter().position(|t| *t > cursor).unwrap_or(tenants.len());
            tenants.rotate_left(split);
        }
        tenants
    }

    fn backoff_reason(&self, key: &DemandKey) -> Option<Reason> {
        let state = self.state.lock().ok()?;
        let backoff = state.backoff.get(&(key.0, key.1.clone()))?;
        (backoff.until > self.ports.clock.now()).then_some(backoff.reason)
    }

    /// Record how a launch ended: a failure backs off its (tenant, tier); returns the backoff delay.
    pub fn launch_finished(&self, runner: &Runner, outcome: &LaunchOutcome) -> Option<Duration> {
        let mut state = self.state.lock().ok()?;
        let slot = (runner.installation_id, runner.tier.clone());
        match outcome {
            LaunchOutcome::Launched => {
                state.backoff.remove(&slot);
                None
            }
            LaunchOutcome::Failed(reason) => {
                let failures = state.backoff.get(&slot).map_or(0, |b| b.failures) + 1;
                let delay = backoff_delay(self.settings.retry_base, self.settings.retry_max, failures);
                let until = self.ports.clock.now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
                state.backoff.insert(slot, Backoff { failures, until, reason: *reason });
                Some(delay)
            }
        }
    }

    fn spawn_launch(self: &Arc<Self>, pending: PendingLaunch, permit: tokio::sync::OwnedSemaphorePermit) {
        let launcher = self.launcher();
        let this = Arc::clone(self);
        self.tasks.spawn(async move {
            let runner = pending.runner.clone();
            let outcome = launcher.launch(pending).await;
            drop(permit);
            if let Some(delay) = this.launch_finished(&runner, &outcome) {
                // Try again once the backoff has passed.
                let wake = this.wake.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    wake.notify_one();
                });
            }
        });
    }

    async fn set_reason(&self, job: &Job, reason: Option<Reason>, report: &mut PassReport) -> Result<(), EngineError> {
        if let Some(reason) = reason {
            *report.waiting.entry(reason).or_default() += 1;
        }
        if job.wait_reason != reason {
            self.ports
                .store
                .job_set_wait_reason(job.job_id, reason, self.ports.clock.now())
                .await
                .doing("recording why a job waits")?;
        }
        Ok(())
    }

    fn publish_waiting(&self, report: &PassReport) {
        for reason in Reason::ALL.into_iter().filter(|r| r.is_waiting()) {
            let count = report.waiting.get(&reason).copied().unwrap_or(0);
            metrics::gauge!(m::JOBS_WAITING, "reason" => reason.code()).set(count as f64);
        }
        metrics::gauge!(m::JOBS_WAITING, "reason" => "starting").set(report.covered as f64);
    }
}

/// Exponential backoff: `base * 2^(failures-1)`, at most `max`.
pub fn backoff_delay(base: Duration, max: Duration, failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    base.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let s = Duration::from_secs;
        let table = [(1, s(2)), (2, s(4)), (3, s(8)), (5, s(32)), (6, s(60)), (40, s(60))];
        for (failures, expected) in table {
            assert_eq!(backoff_delay(s(2), s(60), failures), expected, "failures={failures}");
        }
    }
}
