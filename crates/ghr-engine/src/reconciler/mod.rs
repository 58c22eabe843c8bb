//! The reconciler: a periodic, idempotent repair pass. Each pass reports what it did.
//!
//! An executor of the planner: a pass lists the provider's instances and reads one snapshot of the fleet
//! from the store (live runners, their tenants, demand of keys with unbound runners, stale jobs), asks
//! [`ghr_core::planner::plan_fleet`] and [`ghr_core::planner::checks`] what to do, and does it.
//!
//! Rules (each safe to run again):
//! - instance with no live runner record, older than the orphan grace → terminate;
//! - live runner whose instance vanished → terminated (slot freed); `requested` with no instance past the
//!   grace (a crashed launch) → failed;
//! - runner launched but not registered within the bootstrap timeout → terminate (its demand comes back);
//!   registered runners are marked idle;
//! - runner whose job completed but whose teardown failed → teardown retried;
//! - runner past the maximum runtime → terminate;
//! - deleted tenant → terminate everything; suspended tenant with `on_suspend = terminate` → the same;
//! - GitHub registrations of ours, offline, with no live runner → delete;
//! - job queued longer than the stale threshold → ask GitHub; record its real status if it moved on;
//! - missed webhooks: redeliver the App's failed deliveries that never reached us, reading back to where the
//!   last scan stopped; poll active tenants for queued jobs no webhook announced (see [`recovery`]);
//! - retention (at most hourly): forget deliveries and completed jobs older than `store.retention_days`.
//!
//! All of it is singleton work: among replicas sharing a store, [`Reconciler::run`] passes only while this
//! replica holds the reconciler lease (see [`crate::lease`]). [`Reconciler::pass`] itself does not look at the
//! lease (the simulation steps it directly).

mod fleet;
mod github;
pub mod recovery;

use crate::Ports;
use crate::error::EngineError;
use crate::launch::LaunchesInFlight;
use crate::lease::{LeaseKeeper, Role};
use crate::metrics as m;
use crate::settings::EngineSettings;
use crate::teardown::Teardown;
use crate::wake::DispatchWake;
use ghr_core::Timestamp;
use ghr_core::ids::JobId;
use ghr_core::planner::{older_than, plan_fleet};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

/// What one reconciler pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    pub orphans_terminated: usize,
    pub vanished_released: usize,
    pub stale_requests_failed: usize,
    /// Instances of launches that died before recording them, adopted by their name tag.
    pub launches_adopted: usize,
    pub registered: usize,
    pub bootstrap_timeouts: usize,
    /// Runners whose job completed but whose first teardown failed, terminated now.
    pub finished_torn_down: usize,
    pub max_runtime_terminated: usize,
    pub tenant_teardowns: usize,
    pub ghost_registrations_deleted: usize,
    pub stale_jobs_resolved: usize,
    pub redeliveries_requested: usize,
    /// Queued jobs found by the queued-jobs poll that no webhook had announced.
    pub queued_jobs_found: usize,
    /// Old webhook deliveries and completed jobs pruned (retention).
    pub pruned_records: usize,
    /// Running counters the store keeps beside its records (live runners per tenant) found drifted and fixed.
    pub counts_repaired: usize,
    /// Rules that could not run this pass (they run again next pass).
    pub errors: Vec<String>,
}

impl ReconcileReport {
    fn count(&self, action: &'static str, n: usize) {
        if n > 0 {
            metrics::counter!(m::RECONCILER_ACTIONS, "action" => action).increment(n as u64);
        }
    }

    fn publish(&self) {
        self.count("orphan_terminated", self.orphans_terminated);
        self.count("vanished_released", self.vanished_released);
        self.count("stale_request_failed", self.stale_requests_failed);
        self.count("launch_adopted", self.launches_adopted);
        self.count("registered", self.registered);
        self.count("bootstrap_timeout", self.bootstrap_timeouts);
        self.count("finished_torn_down", self.finished_torn_down);
        self.count("max_runtime", self.max_runtime_terminated);
        self.count("tenant_teardown", self.tenant_teardowns);
        self.count("ghost_registration_deleted", self.ghost_registrations_deleted);
        self.count("stale_job_resolved", self.stale_jobs_resolved);
        self.count("redelivery_requested", self.redeliveries_requested);
        self.count("queued_job_found", self.queued_jobs_found);
        self.count("pruned_records", self.pruned_records);
        self.count("count_repaired", self.counts_repaired);
    }

    /// Whether the pass changed anything.
    pub fn acted(&self) -> bool {
        self.orphans_terminated
            + self.vanished_released
            + self.stale_requests_failed
            + self.launches_adopted
            + self.bootstrap_timeouts
            + self.finished_torn_down
            + self.max_runtime_terminated
            + self.tenant_teardowns
            + self.ghost_registrations_deleted
            + self.stale_jobs_resolved
            + self.redeliveries_requested
            + self.queued_jobs_found
            + self.counts_repaired
            > 0
    }
}

pub struct Reconciler {
    ports: Ports,
    settings: Arc<EngineSettings>,
    teardown: Teardown,
    dispatcher_wake: Arc<DispatchWake>,
    wake: Arc<Notify>,
    /// This replica's hold on the reconciler lease: [`Reconciler::run`] passes only while it leads.
    lease: Arc<LeaseKeeper>,
    /// Passes run by this process.
    passes: AtomicU64,
    /// Launches under way in this process: never released as "did not complete".
    in_flight: LaunchesInFlight,
    /// When each job was last checked against GitHub (stale queued and in-progress jobs), so each is asked
    /// about at most once per `stale_job_after`.
    job_checks: Mutex<HashMap<JobId, Timestamp>>,
    /// When each tenant was last polled for queued jobs.
    polled: Mutex<HashMap<ghr_core::ids::InstallationId, Timestamp>>,
    /// Where the walk over registration scopes looking for ghosts stands (the last scope listed).
    ghost_walk: Mutex<Option<(ghr_core::ids::InstallationId, ghr_core::ports::RunnerScope)>>,
    /// Where the walks over stale queued and in-progress jobs stand (the last job each read).
    stale_walk: Mutex<(Option<ghr_core::planner::fleet::JobCursor>, Option<ghr_core::planner::fleet::JobCursor>)>,
    /// Where the queued-jobs poll's walk over active tenants stands (the last tenant examined).
    poll_cursor: Mutex<Option<ghr_core::ids::InstallationId>>,
    /// Failed delivery attempts whose redelivery this process already requested.
    redelivered: Mutex<HashSet<u64>>,
    last: Mutex<Option<(Timestamp, ReconcileReport)>>,
    /// When retention last ran (it runs at most every [`RETENTION_EVERY`]).
    last_prune: Mutex<Option<Timestamp>>,
}

/// How often the retention rule runs.
pub const RETENTION_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

impl Reconciler {
    pub fn new(
        ports: Ports,
        settings: Arc<EngineSettings>,
        teardown: Teardown,
        dispatcher_wake: Arc<DispatchWake>,
        wake: Arc<Notify>,
        in_flight: LaunchesInFlight,
    ) -> Arc<Self> {
        let lease = Arc::new(LeaseKeeper::new(
            ports.store.clone(),
            ports.clock.clone(),
            settings.replica_id.clone(),
            settings.lease_ttl,
        ));
        Arc::new(Self {
            ports,
            settings,
            teardown,
            dispatcher_wake,
            wake,
            lease,
            passes: AtomicU64::new(0),
            in_flight,
            job_checks: Mutex::new(HashMap::new()),
            polled: Mutex::new(HashMap::new()),
            poll_cursor: Mutex::new(None),
            stale_walk: Mutex::new((None, None)),
            ghost_walk: Mutex::new(None),
            redelivered: Mutex::new(HashSet::new()),
            last: Mutex::new(None),
            last_prune: Mutex::new(None),
        })
    }

    /// Keep or wait for the reconciler lease and, while this replica leads, run a pass at once (a new leader
    /// repairs what a restart or a dead leader left before anything waits on it), then every interval and when
    /// woken, until `stop`. A pass under way when the lease is lost is abandoned (its rules are safe to run
    /// again); one under way at `stop` finishes, and only then is the lease given up.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let keeper_stop = CancellationToken::new();
        let keeping = self.lease.run(keeper_stop.clone());
        let working = async {
            self.lead_passes(&stop).await;
            keeper_stop.cancel();
        };
        tokio::join!(keeping, working);
    }

    /// Passes while leader, until `stop`.
    async fn lead_passes(&self, stop: &CancellationToken) {
        let mut role = self.lease.watch();
        loop {
            if !role.borrow_and_update().is_leader() {
                tokio::select! {
                    changed = role.changed() => if changed.is_err() { break } else { continue },
                    () = stop.cancelled() => break,
                }
            }
            tokio::select! {
                report = self.pass(self.ports.clock.now()) => {
                    if report.acted() || !report.errors.is_empty() {
                        tracing::info!(?report, "reconciler pass");
                    }
                }
                () = lost(&mut role) => {
                    tracing::warn!("the reconciler lease was lost during a pass: the pass is abandoned");
                    continue;
                }
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.settings.reconcile_interval) => {}
                () = lost(&mut role) => {}
                () = stop.cancelled() => break,
            }
        }
    }

    /// This replica's hold on the reconciler lease (its id and role).
    pub fn lease(&self) -> &Arc<LeaseKeeper> {
        &self.lease
    }

    /// How many passes this process ran.
    pub fn passes(&self) -> u64 {
        self.passes.load(Ordering::Relaxed)
    }

    /// The last pass's time and report (for the admin API).
    pub fn last_report(&self) -> Option<(Timestamp, ReconcileReport)> {
        self.last.lock().ok().and_then(|l| l.clone())
    }

    /// One pass at `now`. Rule failures are collected in the report, never abort the pass.
    pub async fn pass(&self, now: Timestamp) -> ReconcileReport {
        self.passes.fetch_add(1, Ordering::Relaxed);
        let mut report = ReconcileReport::default();
        let r = self.repair_counts(now, &mut report).await;
        self.note("count_repair", r, &mut report);
        match self.fleet_snapshot(now, &mut report).await {
            Ok(snapshot) => {
                let actions = plan_fleet(&snapshot, &self.fleet_settings(), now);
                self.apply_fleet(actions, &snapshot.records, now, &mut report).await;
                let r = self.ghost_registrations(&snapshot.records, &mut report).await;
                self.note("ghost_registrations", r, &mut report);
                let r = self.stale_jobs(&snapshot.records, now, &mut report).await;
                self.note("stale_jobs", r, &mut report);
            }
            Err(error) => self.note("fleet_snapshot", Err(error), &mut report),
        }
        let r = self.missed_webhooks(now, &mut report).await;
        self.note("missed_webhooks", r, &mut report);
        let r = self.queued_jobs_poll(now, &mut report).await;
        self.note("queued_jobs_poll", r, &mut report);
        let r = self.retention(now, &mut report).await;
        self.note("retention", r, &mut report);
        report.publish();
        if let Ok(mut last) = self.last.lock() {
            *last = Some((now, report.clone()));
        }
        report
    }

    /// Report a rule's failure; it runs again next pass.
    fn note(&self, rule: &str, result: Result<(), EngineError>, report: &mut ReconcileReport) {
        if let Err(error) = result {
            let message = format!("{rule}: {}", crate::error::ErrorChain(&error));
            tracing::warn!(rule, error = %message, "reconciler rule failed; it runs again next pass");
            report.errors.push(message);
        }
    }
}

/// Wait until this replica is no longer leader (at once when it is not).
async fn lost(role: &mut watch::Receiver<Role>) {
    // An error means the keeper is gone: nothing holds the lease for this replica any more.
    let _ = role.wait_for(|role| !role.is_leader()).await;
}

impl Reconciler {
    /// Fix the store's running counters from its records (only stores that keep them apart do anything), so a
    /// drifted live count neither blocks a tenant below its limit nor lets it past it for long.
    async fn repair_counts(&self, now: Timestamp, report: &mut ReconcileReport) -> Result<(), EngineError> {
        let repaired = self
            .ports
            .store
            .repair_counts(now)
            .await
            .map_err(|source| EngineError::Store { doing: "repairing the store's counters", source })?;
        if repaired > 0 {
            tracing::warn!(repaired, "store counters had drifted from their records and were repaired");
        }
        report.counts_repaired += repaired as usize;
        Ok(())
    }

    /// Prune what is older than the retention period, at most every [`RETENTION_EVERY`].
    async fn retention(&self, now: Timestamp, report: &mut ReconcileReport) -> Result<(), EngineError> {
        let Some(retention) = self.settings.retention.and_then(|r| chrono::Duration::from_std(r).ok()) else {
            return Ok(());
        };
        let last = self.last_prune.lock().ok().and_then(|last| *last);
        if last.is_some_and(|last| !older_than(Some(last), now, RETENTION_EVERY)) {
            return Ok(());
        }
        let pruned = self
            .ports
            .store
            .prune(now - retention)
            .await
            .map_err(|source| EngineError::Store { doing: "pruning old records", source })?;
        if let Ok(mut last) = self.last_prune.lock() {
            *last = Some(now);
        }
        report.pruned_records += (pruned.deliveries + pruned.jobs) as usize;
        Ok(())
    }
}
