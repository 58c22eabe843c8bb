//! The dispatcher: turns jobs waiting for a runner into runner launches, fairly and within limits.
//!
//! An executor of the planner ([`ghr_core::planner::dispatch`]): one pass reads one snapshot of demand and
//! supply from the store, asks the planner for a plan (wait reasons, jobs covered by runners on their way,
//! runners to reserve in round-robin order, keys backing off and until when) and applies it:
//! - wait reasons are written only where they change;
//! - each planned runner is reserved with the store's atomic `runner_reserve`, which re-checks the same rule
//!   against the counts at that instant, so concurrent passes, processes and restarts never exceed a limit;
//!   a refusal there ends that tenant's reservations this pass (the global cap, everyone's);
//! - reserved runners are launched (as tasks, or handed to the caller).
//!
//! **Work follows what changed.** A pass plans only for the tenants marked on its [`DispatchWake`] (a job
//! queued or completed, a slot freed, a launch failed, a backoff ended); a full pass runs at start, on a slow
//! safety tick (every [`FULL_PASS_EVERY_TICKS`] ticks), when a change's tenants are unknown, and while the
//! global cap holds jobs back (a freed slot then belongs to whoever is next in the round). The store reads
//! only the queues of tenants with headroom; of the others only jobs without a reason yet.

use crate::Ports;
use crate::error::{EngineError, StoreContext};
use crate::launch::{LaunchOutcome, Launcher, LaunchesInFlight, PendingLaunch};
use crate::metrics as m;
use crate::pool::PoolSignals;
use crate::settings::EngineSettings;
use crate::teardown::Teardown;
use crate::wake::{DispatchWake, PassScope};
use ghr_core::Timestamp;
use ghr_core::ids::{InstallationId, JobId};
use ghr_core::job::{JobEvent, event_kind};
use ghr_core::planner::dispatch::{DispatchPlan, DispatchSettings, DispatchSnapshot, PlannedReservation};
use ghr_core::planner::{DemandKey, LaunchBackoff, older_than, plan_dispatch};
use ghr_core::ports::{DemandQuery, Reservation, ReserveRequest};
use ghr_core::reason::Reason;
use ghr_core::runner::Runner;
use ghr_core::tenant::Tenant;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use ghr_core::planner::backoff_delay;

/// A full pass runs at least every this many dispatch ticks (the safety net for a lost mark, and for
/// changes made by another process on the same database).
pub const FULL_PASS_EVERY_TICKS: u32 = 12;

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

#[derive(Default)]
struct State {
    /// The tenant served last; the next round starts after it.
    cursor: Option<InstallationId>,
    backoff: LaunchBackoff,
    /// Tenants with launches backing off, and when to plan for them again.
    retry_after: BTreeMap<InstallationId, Timestamp>,
    /// When the last full pass succeeded.
    last_full: Option<Timestamp>,
    /// The last pass left jobs waiting for the global cap.
    global_cap_hit: bool,
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
    wake: Arc<DispatchWake>,
    teardown: Teardown,
    in_flight: LaunchesInFlight,
    pool_signals: PoolSignals,
    state: Mutex<State>,
    launches: Arc<Semaphore>,
    tasks: TaskTracker,
    /// Serialises passes within this process (other processes are serialised by the store).
    pass_lock: tokio::sync::Mutex<()>,
}

impl Dispatcher {
    pub fn new(ports: Ports, settings: Arc<EngineSettings>, wake: Arc<DispatchWake>, teardown: Teardown) -> Arc<Self> {
        let launches = Arc::new(Semaphore::new(settings.max_parallel_launches));
        Arc::new(Self {
            ports,
            settings,
            wake,
            teardown,
            in_flight: LaunchesInFlight::default(),
            pool_signals: PoolSignals::default(),
            state: Mutex::new(State::default()),
            launches,
            tasks: TaskTracker::new(),
            pass_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Run passes on every wake-up and every tick until `stop`; then wait for launches in flight. A tick
    /// with nothing marked and no full pass due reads nothing.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            if let Some(scope) = self.next_scope()
                && let Err(error) = self.pass_scoped(scope, LaunchSink::Spawn).await
            {
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
        Launcher {
            ports: self.ports.clone(),
            settings: self.settings.clone(),
            teardown: self.teardown.clone(),
            pool_signals: self.pool_signals.clone(),
        }
    }

    /// The signals this dispatcher's launches give pool machines' agents and the pool keeper.
    pub fn pool_signals(&self) -> PoolSignals {
        self.pool_signals.clone()
    }

    /// One full dispatch pass (every tenant); reserved runners are launched by tasks of this dispatcher.
    pub async fn pass(self: &Arc<Self>) -> Result<PassReport, EngineError> {
        self.wake.take();
        self.pass_scoped(PassScope::Full, LaunchSink::Spawn).await
    }

    /// One dispatch pass over what changed (a full pass when one is due) that hands the reserved launches to
    /// the caller instead of starting them. The caller runs the [`Launcher`] steps and reports each outcome
    /// with [`Dispatcher::launch_finished`]. Nothing marked and no full pass due: an empty report.
    pub async fn pass_collecting(self: &Arc<Self>) -> Result<(PassReport, Vec<PendingLaunch>), EngineError> {
        let mut launches = Vec::new();
        let report = match self.next_scope() {
            Some(scope) => self.pass_scoped(scope, LaunchSink::Collect(&mut launches)).await?,
            None => PassReport::default(),
        };
        Ok((report, launches))
    }

    /// What the next pass covers: everyone when a full pass is due (or a change's tenants are unknown, or
    /// the global cap held jobs back), otherwise the marked tenants and those whose backoff ended; None when
    /// nothing changed.
    fn next_scope(&self) -> Option<PassScope> {
        let now = self.ports.clock.now();
        let mut dirty = self.wake.take();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let ended: Vec<InstallationId> =
            state.retry_after.iter().filter(|(_, until)| **until <= now).map(|(id, _)| *id).collect();
        for id in ended {
            state.retry_after.remove(&id);
            dirty.tenants.insert(id);
        }
        let full_every = self.settings.dispatch_tick.saturating_mul(FULL_PASS_EVERY_TICKS);
        let full_due = state.last_full.is_none_or(|last| older_than(Some(last), now, full_every));
        if full_due || dirty.all || (state.global_cap_hit && !dirty.tenants.is_empty()) {
            return Some(PassScope::Full);
        }
        (!dirty.tenants.is_empty()).then(|| PassScope::Tenants(dirty.tenants.into_iter().collect()))
    }

    async fn pass_scoped(self: &Arc<Self>, scope: PassScope, sink: LaunchSink<'_>) -> Result<PassReport, EngineError> {
        let result = self.pass_into(&scope, sink).await;
        if result.is_err() {
            self.wake.restore(&scope);
        }
        result
    }

    async fn pass_into(
        self: &Arc<Self>,
        scope: &PassScope,
        mut sink: LaunchSink<'_>,
    ) -> Result<PassReport, EngineError> {
        let _serial = self.pass_lock.lock().await;
        let started = self.ports.clock.now();
        let tenants = match scope {
            PassScope::Full => None,
            PassScope::Tenants(tenants) => Some(tenants.clone()),
        };
        let query = DemandQuery { tenants, global_cap: self.settings.global_max_runners };
        let demand = self.ports.store.demand_snapshot(query).await.doing("reading demand and supply")?;
        let (backoff, cursor) = {
            let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            (state.backoff.clone(), state.cursor)
        };
        let snapshot = DispatchSnapshot { demand, backoff, cursor };
        let settings = DispatchSettings {
            catalog: &self.settings.catalog,
            tier_access: self.settings.tier_access,
            global_cap: self.settings.global_max_runners,
        };
        let plan = plan_dispatch(&snapshot, &settings, started);
        self.remember_retries(&plan);
        if !plan.reasons.is_empty() {
            self.ports
                .store
                .job_set_wait_reasons(plan.reasons.clone(), self.ports.clock.now())
                .await
                .doing("recording why jobs wait")?;
        }
        let mut report = PassReport { reserved: 0, covered: plan.covered, waiting: plan.waiting.clone() };
        self.reserve_planned(&plan, &snapshot, &mut sink, &mut report).await?;
        {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.global_cap_hit = report.waiting.contains_key(&Reason::GlobalCap);
            if *scope == PassScope::Full {
                state.last_full = Some(started);
            }
        }
        Ok(report)
    }

    /// Reserve the planned runners in order. The store's answer is final: a refused tenant gets no more
    /// runners this pass, a key found covered by another dispatcher's runners neither, and the global cap
    /// stops every reservation.
    async fn reserve_planned(
        self: &Arc<Self>,
        plan: &DispatchPlan,
        snapshot: &DispatchSnapshot,
        sink: &mut LaunchSink<'_>,
        report: &mut PassReport,
    ) -> Result<(), EngineError> {
        let mut refused: HashMap<InstallationId, Reason> = HashMap::new();
        let mut covered: HashSet<&DemandKey> = HashSet::new();
        let mut global_cap = false;
        for planned in &plan.reservations {
            let tenant = planned.key.installation_id;
            let held_back = if global_cap { Some(Reason::GlobalCap) } else { refused.get(&tenant).copied() };
            if let Some(reason) = held_back {
                self.settle(planned, Some(reason), report).await?;
                continue;
            }
            if covered.contains(&planned.key) {
                self.settle(planned, None, report).await?;
                continue;
            }
            let permit = match sink {
                LaunchSink::Spawn => match self.launches.clone().acquire_owned().await {
                    Ok(permit) => Some(permit),
                    Err(_) => return Ok(()),
                },
                LaunchSink::Collect(_) => None,
            };
            let request = ReserveRequest {
                installation_id: tenant,
                tier: planned.key.tier.clone(),
                scope_repo: planned.key.scope_repo.clone(),
                intended_job: Some(planned.job_id),
                global_cap: self.settings.global_max_runners,
                environment: self.settings.environment.clone(),
                now: self.ports.clock.now(),
            };
            match self.ports.store.runner_reserve(request).await.doing("reserving a runner slot")? {
                Reservation::Reserved(runner) => {
                    if planned.reason_before.is_some() {
                        self.write_reason(planned.job_id, None).await?;
                    }
                    report.reserved += 1;
                    self.reserved(
                        *runner,
                        planned,
                        snapshot.demand.tenants.get(&tenant).map(|t| &t.tenant),
                        sink,
                        permit,
                    )
                    .await?;
                }
                Reservation::NoDemand => {
                    // Runners started by another dispatcher already cover this demand.
                    covered.insert(&planned.key);
                    self.settle(planned, None, report).await?;
                }
                Reservation::Refused(reason) => {
                    metrics::counter!(m::ADMISSION_REFUSED, "reason" => reason.code()).increment(1);
                    if reason == Reason::GlobalCap {
                        global_cap = true;
                    } else {
                        // Tenant-wide: at its limit, suspended, pending, deleted or unknown.
                        refused.insert(tenant, reason);
                    }
                    self.settle(planned, Some(reason), report).await?;
                }
            }
        }
        Ok(())
    }

    /// A planned job that got no runner of its own: covered (None) or waiting (the reason).
    async fn settle(
        &self,
        planned: &PlannedReservation,
        reason: Option<Reason>,
        report: &mut PassReport,
    ) -> Result<(), EngineError> {
        match reason {
            Some(reason) => *report.waiting.entry(reason).or_default() += 1,
            None => report.covered += 1,
        }
        if planned.reason_before != reason {
            self.write_reason(planned.job_id, reason).await?;
        }
        Ok(())
    }

    /// Launch a reserved runner, then record it on its job's timeline. The launch goes first: it is what the
    /// job waits for, and a timeline write that fails must not leave a reserved slot without its launch.
    async fn reserved(
        self: &Arc<Self>,
        runner: Runner,
        planned: &PlannedReservation,
        tenant: Option<&Tenant>,
        sink: &mut LaunchSink<'_>,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Result<(), EngineError> {
        let event = JobEvent {
            job_id: planned.job_id,
            at: self.ports.clock.now(),
            kind: event_kind::RUNNER_REQUESTED.into(),
            detail: format!("{} ({})", runner.name, runner.tier),
        };
        self.state.lock().unwrap_or_else(PoisonError::into_inner).cursor = Some(runner.installation_id);
        match tenant.cloned() {
            None => {
                tracing::error!(runner = %runner.name, "reserved runner of a tenant missing from the snapshot; the reconciler releases it")
            }
            Some(tenant) => {
                let pending = PendingLaunch::new(runner, tenant, Some(planned.received_at), &self.in_flight);
                match (sink, permit) {
                    (LaunchSink::Collect(launches), _) => launches.push(pending),
                    (LaunchSink::Spawn, Some(permit)) => self.spawn_launch(pending, permit),
                    // A spawning pass always holds a permit here; never leave a reserved runner unlaunched
                    // silently (the reconciler releases it after the orphan grace).
                    (LaunchSink::Spawn, None) => {
                        tracing::error!(runner = %pending.runner.name, "reserved runner has no launch permit; the reconciler releases it")
                    }
                }
            }
        }
        self.ports.store.job_event_append(event).await.doing("appending to a job timeline")?;
        Ok(())
    }

    /// Keep the plan's retry times, so a pass plans for those tenants once their backoff ends.
    fn remember_retries(&self, plan: &DispatchPlan) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        for (tenant, until) in &plan.retry_after {
            let retry = state.retry_after.entry(*tenant).or_insert(*until);
            *retry = (*retry).min(*until);
        }
    }

    /// Record how a launch ended: a failure backs off its (tenant, tier) and marks the tenant (its jobs
    /// wait with the failure's reason, and are planned again when the backoff ends); returns the backoff delay.
    pub fn launch_finished(&self, runner: &Runner, outcome: &LaunchOutcome) -> Option<Duration> {
        let key = (runner.installation_id, runner.tier.clone());
        let now = self.ports.clock.now();
        let delay = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            match outcome {
                LaunchOutcome::Launched => {
                    state.backoff.succeeded(&key);
                    return None;
                }
                LaunchOutcome::Failed(reason) => {
                    let delay =
                        state.backoff.failed(key, *reason, now, self.settings.retry_base, self.settings.retry_max);
                    let until = ghr_core::planner::after(now, delay);
                    let retry = state.retry_after.entry(runner.installation_id).or_insert(until);
                    *retry = (*retry).min(until);
                    delay
                }
            }
        };
        self.wake.tenant(runner.installation_id);
        Some(delay)
    }

    fn spawn_launch(self: &Arc<Self>, pending: PendingLaunch, permit: tokio::sync::OwnedSemaphorePermit) {
        let launcher = self.launcher();
        let this = Arc::clone(self);
        self.tasks.spawn(async move {
            let runner = pending.runner.clone();
            let outcome = launcher.launch(pending).await;
            drop(permit);
            if let Some(delay) = this.launch_finished(&runner, &outcome) {
                // Plan for the tenant again once the backoff has passed.
                let wake = this.wake.clone();
                let tenant = runner.installation_id;
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    wake.tenant(tenant);
                });
            }
        });
    }

    async fn write_reason(&self, job: JobId, reason: Option<Reason>) -> Result<(), EngineError> {
        self.ports
            .store
            .job_set_wait_reason(job, reason, self.ports.clock.now())
            .await
            .doing("recording why a job waits")
    }
}
