//! Executing the fleet plan: tenant teardown, orphan and vanished instances, crashed launches, registration
//! and bootstrap timeout, finished runners' teardown, maximum runtime, surplus idle runners. The decisions
//! are the planner's ([`ghr_core::planner::fleet`]); this file only carries them out.

use super::{ReconcileReport, Reconciler};
use crate::error::{EngineError, ErrorChain, StoreContext};
use crate::teardown::TeardownCause;
use ghr_core::Timestamp;
use ghr_core::ids::{InstallationId, RunnerName};
use ghr_core::job::{Job, JobStatus};
use ghr_core::planner::fleet::{
    FleetAction, FleetRecords, FleetSettings, FleetSnapshot, JobCursor, StaleQuery, TenantTeardown,
};
use ghr_core::ports::RunnerUpdate;
use ghr_core::runner::{Runner, RunnerState};
use std::collections::HashMap;
use std::sync::PoisonError;

/// Stale jobs of each walk (queued, in progress) read per reconciler pass: a pass costs the same with 50 or
/// 50,000 jobs waiting, and each stale job is read once per walk (GitHub is asked about at most
/// `STALE_JOBS_PER_PASS` of them per pass, least recently asked first).
pub const STALE_JOBS_PAGE: u32 = 200;

impl Reconciler {
    /// The fleet as the planner sees it: the provider's instances (listed first, so an instance a launch
    /// records meanwhile is its runner's by then), the launches under way, then the store's records.
    pub(super) async fn fleet_snapshot(
        &self,
        now: Timestamp,
        report: &mut ReconcileReport,
    ) -> Result<FleetSnapshot, EngineError> {
        let instances = match self.ports.provider.list().await {
            Ok(instances) => Some(instances),
            Err(source) => {
                let error = EngineError::Provider { doing: "listing instances", source };
                self.note("instances_vs_records", Err(error), report);
                None
            }
        };
        let in_flight = self.in_flight.names();
        let before = now - chrono::Duration::from_std(self.settings.stale_job_after).unwrap_or(chrono::Duration::MAX);
        let (queued_after, in_progress_after) = *self.stale_walk.lock().unwrap_or_else(PoisonError::into_inner);
        let query = StaleQuery { before, queued_after, in_progress_after, limit: STALE_JOBS_PAGE };
        let records = self.ports.store.fleet_records(query).await.doing("reading the fleet")?;
        // Each walk moves on past the page it read, and starts over once a page comes back short.
        let next = |status: JobStatus| {
            let page: Vec<&Job> = records.stale_jobs.iter().filter(|j| j.status == status).collect();
            (page.len() >= STALE_JOBS_PAGE as usize).then(|| page.last().map(|j| JobCursor::of(j))).flatten()
        };
        *self.stale_walk.lock().unwrap_or_else(PoisonError::into_inner) =
            (next(JobStatus::Queued), next(JobStatus::InProgress));
        // Read after the instances: a pool machine launched meanwhile is protected, one retired meanwhile is not.
        let pool_instances = match &self.ports.pool {
            Some(pool) => ghr_core::pool::pool_instances(
                &pool.pool_list(ghr_core::pool::PoolFilter::default()).await.doing("listing pool machines")?,
            ),
            None => Default::default(),
        };
        Ok(FleetSnapshot { records, instances, in_flight, pool_instances })
    }

    pub(super) fn fleet_settings(&self) -> FleetSettings {
        FleetSettings {
            orphan_grace: self.settings.orphan_grace,
            bootstrap_timeout: self.settings.bootstrap_timeout,
            max_runtime: self.settings.max_runtime,
            terminate_suspended: self.settings.on_suspend == ghr_config::OnSuspend::Terminate,
        }
    }

    /// Carry out the plan's actions; one action's failure is reported and the others still run.
    pub(super) async fn apply_fleet(
        &self,
        actions: Vec<FleetAction>,
        records: &FleetRecords,
        now: Timestamp,
        report: &mut ReconcileReport,
    ) {
        let runners: HashMap<&RunnerName, &Runner> = records.live.iter().map(|r| (&r.name, r)).collect();
        for action in actions {
            let rule = rule_of(&action);
            let result = self.apply(action, &runners, now, report).await;
            self.note(rule, result, report);
        }
    }

    async fn apply(
        &self,
        action: FleetAction,
        runners: &HashMap<&RunnerName, &Runner>,
        now: Timestamp,
        report: &mut ReconcileReport,
    ) -> Result<(), EngineError> {
        let tenant_of = |name: &RunnerName| runners.get(name).map(|r| r.installation_id);
        match action {
            FleetAction::TearDownTenant { installation_id, why } => {
                let cause = match why {
                    TenantTeardown::Deleted => TeardownCause::TenantDeleted,
                    TenantTeardown::Suspended => TeardownCause::TenantSuspended,
                };
                report.tenant_teardowns += self.teardown.terminate_tenant(installation_id, cause).await?;
            }
            FleetAction::TerminateOrphan { instance, runner } => {
                tracing::warn!(%instance, ?runner, "terminating an instance with no live runner record");
                self.ports
                    .provider
                    .terminate(&instance)
                    .await
                    .map_err(|source| EngineError::Provider { doing: "terminating an orphan instance", source })?;
                report.orphans_terminated += 1;
            }
            FleetAction::ReleaseVanished { runner, instance } => {
                tracing::info!(%runner, %instance, "instance vanished; releasing the runner's slot");
                let update = RunnerUpdate {
                    last_error: Some("instance vanished".into()),
                    ..RunnerUpdate::state(RunnerState::Terminated, now)
                };
                self.ports.store.runner_update(&runner, update).await.doing("releasing a vanished runner")?;
                report.vanished_released += 1;
                self.slot_freed(tenant_of(&runner));
            }
            FleetAction::AdoptInstance { runner, instance, launched_at } => {
                tracing::info!(%runner, %instance, "adopting the instance of an unrecorded launch");
                let update = RunnerUpdate {
                    instance_id: Some(instance),
                    ..RunnerUpdate::state(RunnerState::Launching, launched_at.unwrap_or(now))
                };
                self.ports.store.runner_update(&runner, update).await.doing("adopting an instance")?;
                report.launches_adopted += 1;
            }
            FleetAction::ReleaseUnlaunched { runner, to, error } => {
                if self.in_flight.contains(&runner) {
                    // Its launch started since the snapshot: it records the instance itself.
                    return Ok(());
                }
                tracing::warn!(%runner, to = %to, "{error}; releasing the slot");
                let update = RunnerUpdate { last_error: Some(error.into()), ..RunnerUpdate::state(to, now) };
                self.ports.store.runner_update(&runner, update).await.doing("releasing an unlaunched runner")?;
                report.stale_requests_failed += 1;
                self.slot_freed(tenant_of(&runner));
            }
            FleetAction::RetryTeardown { runner } => {
                // Their teardown failed earlier (throttled provider, ghr restarted mid-teardown): retry it, or
                // they would hold their slot until the instance powers itself off or max_runtime passes.
                match self.teardown.terminate_runner(&runner, TeardownCause::JobCompleted).await {
                    Ok(true) => report.finished_torn_down += 1,
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(%runner, error = %ErrorChain(&error), "teardown retry failed; next pass tries again")
                    }
                }
            }
            FleetAction::MaxRuntime { runner } => {
                if self.teardown.terminate_runner(&runner, TeardownCause::MaxRuntime).await? {
                    report.max_runtime_terminated += 1;
                }
            }
            FleetAction::CheckRegistration { runner, bootstrap_expired } => {
                if let Some(record) = runners.get(&runner) {
                    self.check_registration(record, bootstrap_expired, now, report).await?;
                }
            }
            FleetAction::TerminateSurplus { runner } => {
                if self.teardown.terminate_runner(&runner, TeardownCause::Orphan).await? {
                    report.orphans_terminated += 1;
                }
            }
        }
        Ok(())
    }

    /// A launching runner: registered (online or busy at GitHub) → idle; not registered past the bootstrap
    /// timeout → terminated (its demand comes back).
    async fn check_registration(
        &self,
        runner: &Runner,
        bootstrap_expired: bool,
        now: Timestamp,
        report: &mut ReconcileReport,
    ) -> Result<(), EngineError> {
        let scope = self.teardown.scope_of(runner).await?;
        let github_id = match (runner.github_runner_id, &scope) {
            // An adopted instance (its launch died before recording the registration): look it up by name.
            (None, Some(scope)) => self.teardown.registration_by_name(runner, scope).await.unwrap_or_else(|error| {
                tracing::debug!(runner = %runner.name, error = %ErrorChain(&error), "could not look a registration up");
                None
            }),
            (id, _) => id,
        };
        let registered = match (github_id, scope) {
            (Some(id), Some(scope)) => match self.ports.github.get_runner(runner.installation_id, &scope, id).await {
                Ok(found) => found.is_some_and(|r| r.online || r.busy),
                Err(error) => {
                    tracing::debug!(runner = %runner.name, error = %error, "could not check a runner's registration");
                    false
                }
            },
            _ => false,
        };
        if registered {
            let update = RunnerUpdate::state(RunnerState::Idle, now);
            self.ports.store.runner_update(&runner.name, update).await.doing("marking a runner registered")?;
            report.registered += 1;
        } else if bootstrap_expired
            && self.teardown.terminate_runner(&runner.name, TeardownCause::BootstrapTimeout).await?
        {
            report.bootstrap_timeouts += 1;
        }
        Ok(())
    }

    /// A slot was freed outside teardown (which marks its own): the tenant's waiting jobs may start.
    fn slot_freed(&self, tenant: Option<InstallationId>) {
        match tenant {
            Some(tenant) => self.dispatcher_wake.tenant(tenant),
            None => self.dispatcher_wake.notify_one(),
        }
    }
}

/// The rule an action belongs to, for error reports.
fn rule_of(action: &FleetAction) -> &'static str {
    match action {
        FleetAction::TearDownTenant { .. } => "tenant_teardowns",
        FleetAction::TerminateOrphan { .. }
        | FleetAction::ReleaseVanished { .. }
        | FleetAction::AdoptInstance { .. }
        | FleetAction::ReleaseUnlaunched { .. } => "instances_vs_records",
        FleetAction::RetryTeardown { .. }
        | FleetAction::MaxRuntime { .. }
        | FleetAction::CheckRegistration { .. }
        | FleetAction::TerminateSurplus { .. } => "registration_and_timeouts",
    }
}
