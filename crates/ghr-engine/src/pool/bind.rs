//! Late binding: a reserved runner takes a ready pool machine instead of a cold launch.
//!
//! The slot was reserved by the store's atomic `runner_reserve` before this runs, so limits hold at binding
//! exactly as for a cold launch, and the tenant's time starts at its runner record. The claim is the store's
//! (`PoolStore::pool_claim`: one machine, one runner, ever); the machine is then tagged with the tenant
//! (`Provider::bind`) and the runner recorded on its instance. Its JIT config is minted only when the
//! machine's agent asks for it ([`super::agent`]), so it never travels through user data, disk or the store.

use super::PoolSignals;
use crate::error::ErrorChain;
use crate::launch::{LaunchOutcome, Launcher, PendingLaunch};
use crate::metrics as m;
use crate::teardown::TeardownCause;
use ghr_core::job::event_kind;
use ghr_core::pool::{MachineState, PoolMachine, PoolTransition};
use ghr_core::ports::{BindRequest, RunnerUpdate};
use ghr_core::reason::Reason;
use ghr_core::runner::{LaunchRecorded, RunnerState};

/// Why a bound machine was given up and the runner launched cold instead.
const BIND_FAILED: &str = "bind_failed";

impl Launcher {
    /// Serve `pending` from its tier's warm pool. `Err(pending)` hands it back for a cold launch: the tier has
    /// no pool, no machine is ready, or binding failed (the machine is retired).
    pub(crate) async fn launch_from_pool(
        &self,
        pending: PendingLaunch,
        signals: &PoolSignals,
    ) -> Result<LaunchOutcome, PendingLaunch> {
        let (Some(pool), true) = (&self.ports.pool, self.settings.pools.contains_key(&pending.runner.tier)) else {
            return Err(pending);
        };
        let runner = &pending.runner;
        let tier = runner.tier.to_string();
        let now = self.ports.clock.now();
        let machine = match pool.pool_claim(&runner.tier, &runner.name, now).await {
            Ok(Some(machine)) => machine,
            Ok(None) => {
                metrics::counter!(m::POOL_CLAIMS, "tier" => tier, "outcome" => "miss").increment(1);
                return Err(pending);
            }
            Err(error) => {
                tracing::warn!(runner = %runner.name, error = %ErrorChain(&error), "could not claim a pool machine; launching cold");
                return Err(pending);
            }
        };
        signals.refill.notify_one();
        let Some(instance) = machine.instance_id.clone() else {
            // Records are written after the launch returned, so a ready machine always has its instance.
            self.give_up(&machine, "bound machine has no instance").await;
            return Err(pending);
        };
        let bind = BindRequest {
            runner_name: runner.name.clone(),
            installation_id: runner.installation_id,
            org_name: pending.tenant.org_name.clone(),
            tenant_tier: runner.tenant_tier.clone(),
        };
        if let Err(error) = self.ports.provider.bind(&instance, &bind).await {
            tracing::warn!(runner = %runner.name, machine = %machine.id, %instance, error = %ErrorChain(&error), "could not tag a pool machine for its tenant; launching cold");
            self.give_up(&machine, &format!("{BIND_FAILED}: {}", ErrorChain(&error))).await;
            return Err(pending);
        }
        metrics::counter!(m::POOL_CLAIMS, "tier" => tier.clone(), "outcome" => "hit").increment(1);
        let update =
            RunnerUpdate { instance_id: Some(instance.clone()), ..RunnerUpdate::state(RunnerState::Launching, now) };
        let recorded = match self.ports.store.runner_update(&runner.name, update).await {
            Ok(Some(recorded)) => recorded,
            Ok(None) => {
                tracing::error!(runner = %runner.name, "runner record vanished during binding; retiring its machine");
                self.give_up(&machine, "runner vanished").await;
                return Ok(LaunchOutcome::Failed(Reason::ProviderError));
            }
            Err(error) => {
                // The machine is bound to this runner in the pool store; the reconciler adopts the instance by
                // its runner-name tag (applied by the bind) or releases the slot once it is gone.
                metrics::counter!(m::LAUNCH_FAILURES, "stage" => "store").increment(1);
                tracing::error!(runner = %runner.name, %instance, error = %ErrorChain(&error), "could not record a bound runner; the reconciler adopts it");
                signals.bound.notify_waiters();
                return Ok(LaunchOutcome::Launched);
            }
        };
        signals.bound.notify_waiters();
        match LaunchRecorded::after(recorded.state) {
            LaunchRecorded::Running => {
                metrics::counter!(m::RUNNERS_LAUNCHED, "tier" => tier).increment(1);
                if let Some(received) = pending.job_received_at {
                    metrics::histogram!(m::QUEUED_TO_LAUNCHED).record(self.seconds_since(received));
                }
                tracing::info!(runner = %runner.name, installation_id = %runner.installation_id, machine = %machine.id, %instance, "runner bound to a warm pool machine");
                self.note(
                    runner.intended_job,
                    event_kind::POOL_BOUND,
                    format!("{} on {} ({})", runner.name, instance, machine.id),
                )
                .await;
                Ok(LaunchOutcome::Launched)
            }
            LaunchRecorded::TearDown => {
                if let Err(error) = self.teardown.terminate_runner(&runner.name, TeardownCause::JobCompleted).await {
                    tracing::warn!(runner = %runner.name, error = %ErrorChain(&error), "teardown failed; the reconciler retries");
                }
                Ok(LaunchOutcome::Launched)
            }
            LaunchRecorded::Undo => {
                tracing::info!(runner = %runner.name, state = %recorded.state, "runner was released during binding; retiring its machine");
                self.give_up(&machine, "runner released during binding").await;
                Ok(LaunchOutcome::Failed(Reason::TenantDeleted))
            }
        }
    }

    /// Retire a bound machine that will not serve its runner, and terminate its instance.
    async fn give_up(&self, machine: &PoolMachine, why: &str) {
        let Some(pool) = &self.ports.pool else { return };
        let transition = PoolTransition::retire(self.ports.clock.now(), why);
        if let Err(error) = pool.pool_transition(&machine.id, &[MachineState::Bound], transition).await {
            tracing::warn!(machine = %machine.id, error = %ErrorChain(&error), "could not retire a pool machine; the pool keeper will");
        }
        if let Some(instance) = &machine.instance_id
            && let Err(error) = self.ports.provider.terminate(instance).await
        {
            tracing::warn!(machine = %machine.id, %instance, error = %ErrorChain(&error), "could not terminate; the orphan rule will");
        }
    }
}
