//! Reconciler rules about instances and runner records: orphans, vanished instances, crashed launches,
//! registration, bootstrap timeout, surplus idle runners, maximum runtime, tenant teardown.

use super::{ReconcileReport, Reconciler, older_than};
use crate::error::{EngineError, StoreContext};
use crate::teardown::TeardownCause;
use ghr_config::OnSuspend;
use ghr_core::Timestamp;
use ghr_core::ids::{InstallationId, RunnerName, TierName};
use ghr_core::ports::{RunnerFilter, RunnerScope, RunnerUpdate};
use ghr_core::runner::{Runner, RunnerState};
use ghr_core::tenant::{OrgType, TenantStatus};
use std::collections::HashMap;
use std::collections::hash_map::Entry;

impl Reconciler {
    /// Deleted tenants (and suspended ones under `on_suspend = "terminate"`) keep no runner.
    pub(super) async fn tenant_teardowns(&self, report: &mut ReconcileReport) -> Result<(), EngineError> {
        let counts = self.ports.store.runner_live_counts().await.doing("counting live runners")?;
        for (installation, live) in counts {
            if live == 0 {
                continue;
            }
            let status = self.ports.store.tenant_get(installation).await.doing("reading a tenant")?.map(|t| t.status);
            let cause = match status {
                None | Some(TenantStatus::Deleted) => TeardownCause::TenantDeleted,
                Some(TenantStatus::Suspended) if self.settings.on_suspend == OnSuspend::Terminate => {
                    TeardownCause::TenantSuspended
                }
                _ => continue,
            };
            report.tenant_teardowns += self.teardown.terminate_tenant(installation, cause).await?;
        }
        Ok(())
    }

    /// Compare what the provider runs with what the store believes.
    pub(super) async fn instances_vs_records(
        &self,
        now: Timestamp,
        report: &mut ReconcileReport,
    ) -> Result<(), EngineError> {
        let instances = self
            .ports
            .provider
            .list()
            .await
            .map_err(|source| EngineError::Provider { doing: "listing instances", source })?;
        let live = self.live_runners().await?;
        let by_name: HashMap<&RunnerName, &Runner> = live.iter().map(|r| (&r.name, r)).collect();
        let grace = self.settings.orphan_grace;

        for instance in &instances {
            let owner = instance.runner_name.as_ref().and_then(|name| by_name.get(name));
            let owned = owner.is_some_and(|r| r.instance_id.as_ref().is_none_or(|id| *id == instance.id));
            if owned || !(instance.launched_at.is_none() || older_than(instance.launched_at, now, grace)) {
                continue;
            }
            tracing::warn!(instance = %instance.id, runner = ?instance.runner_name, "terminating an instance with no live runner record");
            self.ports
                .provider
                .terminate(&instance.id)
                .await
                .map_err(|source| EngineError::Provider { doing: "terminating an orphan instance", source })?;
            report.orphans_terminated += 1;
        }

        let running: std::collections::HashSet<_> = instances.iter().map(|i| &i.id).collect();
        for runner in &live {
            match &runner.instance_id {
                Some(instance) if !running.contains(instance) && older_than(runner.launched_at, now, grace) => {
                    tracing::info!(runner = %runner.name, %instance, "instance vanished; releasing the runner's slot");
                    let update = RunnerUpdate {
                        last_error: Some("instance vanished".into()),
                        ..RunnerUpdate::state(RunnerState::Terminated, now)
                    };
                    self.ports.store.runner_update(&runner.name, update).await.doing("releasing a vanished runner")?;
                    report.vanished_released += 1;
                }
                Some(_) => {}
                None => self.launch_without_instance(runner, &instances, now, report).await?,
            }
        }
        Ok(())
    }

    /// A live runner whose launch never recorded an instance: the launch is under way (leave it), died after
    /// starting one (adopt the instance by its name tag, so its slot is held until it is gone), or died
    /// before (release the slot once no launch can still be running, after the orphan grace).
    async fn launch_without_instance(
        &self,
        runner: &Runner,
        instances: &[ghr_core::ports::Instance],
        now: Timestamp,
        report: &mut ReconcileReport,
    ) -> Result<(), EngineError> {
        if self.in_flight.contains(&runner.name) {
            return Ok(());
        }
        let started = instances.iter().find(|i| i.runner_name.as_ref() == Some(&runner.name));
        if let Some(instance) = started {
            tracing::info!(runner = %runner.name, instance = %instance.id, state = %runner.state, "adopting the instance of an unrecorded launch");
            let update = RunnerUpdate {
                instance_id: Some(instance.id.clone()),
                ..RunnerUpdate::state(RunnerState::Launching, instance.launched_at.unwrap_or(now))
            };
            self.ports.store.runner_update(&runner.name, update).await.doing("adopting an instance")?;
            report.launches_adopted += 1;
            return Ok(());
        }
        if !older_than(Some(runner.created_at), now, self.settings.orphan_grace) {
            return Ok(());
        }
        // Nothing runs under this name: `requested` never launched (failed); a runner GitHub saw busy or
        // finished has exited since (terminated).
        let (state, error) = match runner.state {
            RunnerState::Requested => (RunnerState::Failed, "launch did not complete (process restarted?)"),
            _ => (RunnerState::Terminated, "launch was never recorded and no instance runs under its name"),
        };
        tracing::warn!(runner = %runner.name, from = %runner.state, to = %state, "{error}; releasing the slot");
        let update = RunnerUpdate { last_error: Some(error.into()), ..RunnerUpdate::state(state, now) };
        self.ports.store.runner_update(&runner.name, update).await.doing("releasing an unlaunched runner")?;
        report.stale_requests_failed += 1;
        Ok(())
    }

    /// Launching runners: registered → idle; not registered in time → terminate. Finished runners → their
    /// teardown retried. Idle runners beyond the demand of their (tenant, tier) → terminate. Any runner past
    /// the maximum runtime → terminate.
    pub(super) async fn registration_and_timeouts(
        &self,
        now: Timestamp,
        report: &mut ReconcileReport,
    ) -> Result<(), EngineError> {
        let live = self.live_runners().await?;
        for runner in live.iter().filter(|r| r.state == RunnerState::Launching) {
            let scope = self.teardown.scope_of(runner).await?;
            let github_id = match (runner.github_runner_id, &scope) {
                // An adopted instance (its launch died before recording the registration): look it up by name.
                (None, Some(scope)) => self.teardown.registration_by_name(runner, scope).await.unwrap_or_else(|error| {
                    tracing::debug!(runner = %runner.name, error = %crate::error::ErrorChain(&error), "could not look a registration up");
                    None
                }),
                (id, _) => id,
            };
            let registered = match (github_id, scope) {
                (Some(id), Some(scope)) => {
                    match self.ports.github.get_runner(runner.installation_id, &scope, id).await {
                        Ok(found) => found.is_some_and(|r| r.online || r.busy),
                        Err(error) => {
                            tracing::debug!(runner = %runner.name, error = %error, "could not check a runner's registration");
                            false
                        }
                    }
                }
                _ => false,
            };
            if registered {
                let update = RunnerUpdate::state(RunnerState::Idle, now);
                self.ports.store.runner_update(&runner.name, update).await.doing("marking a runner registered")?;
                report.registered += 1;
            } else if older_than(runner.launched_at, now, self.settings.bootstrap_timeout)
                && self.teardown.terminate_runner(&runner.name, TeardownCause::BootstrapTimeout).await?
            {
                report.bootstrap_timeouts += 1;
            }
        }
        // Finished runners whose teardown failed (throttled provider, ghr restarted mid-teardown): retry it,
        // or they would hold their slot until the instance powers itself off or max_runtime passes.
        for runner in live.iter().filter(|r| r.state == RunnerState::Finished) {
            match self.teardown.terminate_runner(&runner.name, TeardownCause::JobCompleted).await {
                Ok(true) => report.finished_torn_down += 1,
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(runner = %runner.name, error = %crate::error::ErrorChain(&error), "teardown retry failed; next pass tries again")
                }
            }
        }
        report.orphans_terminated += self.surplus_idle(now).await?;
        for runner in self.live_runners().await? {
            let started = runner.launched_at.or(Some(runner.created_at));
            if older_than(started, now, self.settings.max_runtime)
                && self.teardown.terminate_runner(&runner.name, TeardownCause::MaxRuntime).await?
            {
                report.max_runtime_terminated += 1;
            }
        }
        Ok(())
    }

    /// Idle runners whose jobs went away (cancelled, or taken by another runner) hold a slot and cost money:
    /// keep as many unbound runners per (tenant, tier[, repo]) as there are queued jobs, terminate the rest
    /// once they are older than the orphan grace.
    async fn surplus_idle(&self, now: Timestamp) -> Result<usize, EngineError> {
        type Key = (InstallationId, TierName, Option<String>);
        let jobs = self.ports.store.job_list_wanting_runner().await.doing("listing queued jobs")?;
        let mut demand: HashMap<Key, usize> = HashMap::new();
        let mut user_tenants: HashMap<InstallationId, bool> = HashMap::new();
        for job in &jobs {
            let Some(tier) = job.tier.clone() else { continue };
            if let Entry::Vacant(slot) = user_tenants.entry(job.installation_id) {
                let tenant = self.ports.store.tenant_get(job.installation_id).await.doing("reading a tenant")?;
                slot.insert(tenant.is_some_and(|t| t.org_type == OrgType::User));
            }
            let scope = user_tenants[&job.installation_id].then(|| job.repository.clone());
            *demand.entry((job.installation_id, tier, scope)).or_default() += 1;
        }
        let mut unbound: Vec<Runner> =
            self.live_runners().await?.into_iter().filter(|r| r.state.is_unbound()).collect();
        // Keep the oldest (closest to ready); terminate the newest surplus first.
        unbound.sort_by_key(|r| r.created_at);
        let mut terminated = 0;
        for runner in unbound {
            let key = (runner.installation_id, runner.tier.clone(), runner.scope_repo.clone());
            let wanted = demand.entry(key).or_default();
            if *wanted > 0 {
                *wanted -= 1;
                continue;
            }
            let since = runner.registered_at.or(runner.launched_at);
            if runner.state == RunnerState::Idle
                && older_than(since, now, self.settings.orphan_grace)
                && self.teardown.terminate_runner(&runner.name, TeardownCause::Orphan).await?
            {
                terminated += 1;
            }
        }
        Ok(terminated)
    }

    pub(super) async fn live_runners(&self) -> Result<Vec<Runner>, EngineError> {
        let filter = RunnerFilter { states: RunnerState::LIVE.to_vec(), ..RunnerFilter::default() };
        self.ports.store.runner_list(filter).await.doing("listing live runners")
    }
}

/// Where the runners of a live runner list are registered, per tenant (used by the ghost rule).
pub(super) fn scopes_of(
    runners: &[Runner],
    orgs: &HashMap<InstallationId, String>,
) -> Vec<(InstallationId, RunnerScope)> {
    let mut scopes: Vec<(InstallationId, RunnerScope)> = Vec::new();
    for runner in runners {
        let scope = match &runner.scope_repo {
            Some(repo) => RunnerScope::Repo(repo.clone()),
            None => match orgs.get(&runner.installation_id) {
                Some(org) => RunnerScope::Org(org.as_str().into()),
                None => continue,
            },
        };
        if !scopes.iter().any(|(id, s)| *id == runner.installation_id && *s == scope) {
            scopes.push((runner.installation_id, scope));
        }
    }
    scopes
}
