//! The pool keeper: executes the pool plan (`ghr_core::pool::plan_pool`) — launches tenant-neutral machines
//! up to each tier's target, retires those that never booted, idled too long, died or whose runner ended.
//!
//! Singleton work like the reconciler: `ghr serve` runs its loop only while holding the reconciler lease, so
//! two replicas never both top a pool up. A pass is safe to repeat; a crash between a launch and its record
//! leaves an instance no machine owns, which the fleet's orphan rule terminates after the grace.

use super::secret::{new_machine_id, new_secret};
use crate::EngineError;
use crate::Ports;
use crate::error::{ErrorChain, StoreContext};
use crate::lease::Role;
use crate::metrics as m;
use crate::settings::EngineSettings;
use crate::teardown::{Teardown, TeardownCause};
use ghr_core::Timestamp;
use ghr_core::ids::{InstanceId, MachineId, TierName};
use ghr_core::pool::{
    MachineState, PoolAction, PoolFilter, PoolMachine, PoolSettings, PoolSnapshot, PoolTransition, RetireReason,
    plan_pool,
};
use ghr_core::ports::{AgentBootstrap, PoolLaunchRequest, PoolStore};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

/// How often the keeper passes when nothing wakes it.
pub const POOL_TICK: Duration = Duration::from_secs(5);
/// How often retired machines are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Retired machines are kept this long (usage reports read them), then pruned.
pub const POOL_RETENTION: Duration = Duration::from_secs(35 * 86_400);

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolReport {
    pub launched: u32,
    pub launch_failures: u32,
    pub retired: u32,
    /// Tiers whose launches wait for a backoff to end.
    pub backing_off: Vec<TierName>,
}

/// Consecutive launch failures of a tier and when launching may resume.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    failures: u32,
    until: Timestamp,
}

pub struct PoolKeeper {
    ports: Ports,
    pool: Arc<dyn PoolStore>,
    teardown: Teardown,
    settings: Arc<EngineSettings>,
    agent_url: String,
    backoff: Mutex<BTreeMap<TierName, Backoff>>,
    /// Woken after a machine was claimed (refill at once) or retired.
    wake: Arc<Notify>,
}

impl PoolKeeper {
    pub fn new(
        ports: Ports,
        pool: Arc<dyn PoolStore>,
        teardown: Teardown,
        settings: Arc<EngineSettings>,
        agent_url: String,
        wake: Arc<Notify>,
    ) -> Self {
        PoolKeeper { ports, pool, teardown, settings, agent_url, backoff: Mutex::default(), wake }
    }

    pub fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Passes while this replica leads (`role`), on every wake-up and every [`POOL_TICK`], until `stop`.
    pub async fn run(self: Arc<Self>, mut role: watch::Receiver<Role>, stop: CancellationToken) {
        let mut last_prune: Option<tokio::time::Instant> = None;
        loop {
            if !role.borrow_and_update().is_leader() {
                tokio::select! {
                    changed = role.changed() => if changed.is_err() { break } else { continue },
                    () = stop.cancelled() => break,
                }
            }
            match self.pass().await {
                Ok(report) if report.launched + report.launch_failures + report.retired > 0 => {
                    tracing::info!(%report, "pool keeper pass");
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(error = %ErrorChain(&error), "pool keeper pass failed; retrying"),
            }
            if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                last_prune = Some(tokio::time::Instant::now());
                self.prune().await;
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(POOL_TICK) => {}
                () = stop.cancelled() => break,
            }
        }
    }

    /// Forget machines retired longer than [`POOL_RETENTION`] ago.
    async fn prune(&self) {
        let before =
            self.ports.clock.now() - chrono::Duration::from_std(POOL_RETENTION).unwrap_or(chrono::Duration::MAX);
        match self.pool.pool_prune(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "old pool machine records pruned"),
            Err(error) => tracing::warn!(error = %ErrorChain(&error), "could not prune pool machines"),
        }
    }

    fn plan_settings(&self) -> PoolSettings {
        PoolSettings { pools: self.settings.pools.clone(), orphan_grace: self.settings.orphan_grace }
    }

    /// One pass: read machines, instances and the runners of bound machines, plan, apply.
    pub async fn pass(&self) -> Result<PoolReport, EngineError> {
        let now = self.ports.clock.now();
        let machines = self.pool.pool_list(PoolFilter::default()).await.doing("listing pool machines")?;
        let instances = match self.ports.provider.list().await {
            Ok(instances) => Some(instances),
            Err(error) => {
                tracing::warn!(error = %ErrorChain(&error), "could not list instances; pool machines are judged next pass");
                None
            }
        };
        let mut live_runners = BTreeSet::new();
        for name in machines.iter().filter(|m| !m.state.is_pooled()).filter_map(|m| m.runner_name.as_ref()) {
            let runner = self.ports.store.runner_get(name).await.doing("reading a pool machine's runner")?;
            if runner.is_some_and(|r| r.state.is_live()) {
                live_runners.insert(name.clone());
            }
        }
        record_gauges(&machines);
        let snapshot = PoolSnapshot { machines, instances, live_runners };
        let mut report = PoolReport::default();
        for action in plan_pool(&snapshot, &self.plan_settings(), now) {
            match action {
                PoolAction::Retire { machine, instance, reason } => {
                    let seen = snapshot.machines.iter().find(|m| m.id == machine);
                    let state = seen.map(|m| m.state);
                    if self.retire(&machine, state, instance.as_ref(), reason.code()).await? {
                        report.retired += 1;
                        if reason == RetireReason::DeliveryTimeout
                            && let Some(runner) = seen.and_then(|m| m.runner_name.as_ref())
                        {
                            // Its job gets another machine once the slot is free.
                            tracing::warn!(%machine, %runner, "a bound pool machine never fetched its config; tearing its runner down");
                            if let Err(error) =
                                self.teardown.terminate_runner(runner, TeardownCause::LaunchFailed).await
                            {
                                tracing::warn!(%runner, error = %ErrorChain(&error), "teardown failed; the reconciler retries");
                            }
                        }
                    }
                }
                PoolAction::Launch { tier, count } => self.launch(&tier, count, &mut report).await,
            }
        }
        Ok(report)
    }

    /// Retire a machine seen in `state` (only if it still is: a claim may have won meanwhile), then terminate
    /// its instance. Whether this call retired it.
    pub async fn retire(
        &self,
        machine: &MachineId,
        state: Option<MachineState>,
        instance: Option<&InstanceId>,
        reason: &str,
    ) -> Result<bool, EngineError> {
        let from: Vec<MachineState> = state.into_iter().collect();
        let transition = PoolTransition::retire(self.ports.clock.now(), reason);
        let Some(retired) =
            self.pool.pool_transition(machine, &from, transition).await.doing("retiring a pool machine")?
        else {
            return Ok(false);
        };
        metrics::counter!(m::POOL_RETIRED, "tier" => retired.tier.to_string(), "reason" => reason.to_owned())
            .increment(1);
        tracing::info!(machine = %machine, reason, "pool machine retired");
        if let Some(instance) = instance {
            // A bound machine's instance belongs to its runner, whose teardown terminated it.
            if let Err(error) = self.ports.provider.terminate(instance).await {
                tracing::warn!(machine = %machine, %instance, error = %ErrorChain(&error), "could not terminate a retired pool machine; the orphan rule will");
            }
        }
        Ok(true)
    }

    async fn launch(&self, tier: &TierName, count: u32, report: &mut PoolReport) {
        let now = self.ports.clock.now();
        if self.backoff.lock().unwrap_or_else(PoisonError::into_inner).get(tier).is_some_and(|b| b.until > now) {
            report.backing_off.push(tier.clone());
            return;
        }
        let mut launches = tokio::task::JoinSet::new();
        for _ in 0..count {
            let keeper = self.clone_parts();
            let tier = tier.clone();
            launches.spawn(async move { keeper.launch_one(&tier).await });
        }
        let mut failed = false;
        while let Some(result) = launches.join_next().await {
            match result {
                Ok(Ok(())) => report.launched += 1,
                Ok(Err(())) | Err(_) => {
                    report.launch_failures += 1;
                    failed = true;
                }
            }
        }
        let mut backoff = self.backoff.lock().unwrap_or_else(PoisonError::into_inner);
        if failed {
            let failures = backoff.get(tier).map_or(1, |b| b.failures.saturating_add(1));
            let delay =
                ghr_core::planner::backoff::backoff_delay(self.settings.retry_base, self.settings.retry_max, failures);
            backoff.insert(tier.clone(), Backoff { failures, until: ghr_core::planner::after(now, delay) });
        } else {
            backoff.remove(tier);
        }
    }

    fn clone_parts(&self) -> LaunchParts {
        LaunchParts {
            ports: self.ports.clone(),
            pool: self.pool.clone(),
            settings: self.settings.clone(),
            agent_url: self.agent_url.clone(),
        }
    }
}

/// What one machine's launch needs, owned (launches run concurrently).
struct LaunchParts {
    ports: Ports,
    pool: Arc<dyn PoolStore>,
    settings: Arc<EngineSettings>,
    agent_url: String,
}

impl LaunchParts {
    /// Launch one machine and record it. The record follows the launch (its agent's hello waits for it), so
    /// a store failure terminates the instance and a crash in between leaves an orphan for the reconciler.
    async fn launch_one(&self, tier_name: &TierName) -> Result<(), ()> {
        let tier_label = tier_name.to_string();
        let Some(tier) = self.settings.catalog.get(tier_name) else {
            tracing::warn!(tier = %tier_name, "a warm pool names a tier that is not configured");
            return Err(());
        };
        let machine = new_machine_id(tier_name);
        let (secret, secret_hash) = new_secret();
        let request = PoolLaunchRequest {
            tier: tier_name.clone(),
            instance_types: tier.instance_types.clone(),
            runner_architecture: tier.runner_architecture.clone(),
            agent: AgentBootstrap { server_url: self.agent_url.clone(), machine: machine.clone(), secret },
        };
        let provider = self.ports.provider.name();
        let instance = match self.ports.provider.launch_pool(request).await {
            Ok(instance) => instance,
            Err(error) => {
                metrics::counter!(m::POOL_LAUNCHES, "tier" => tier_label, "outcome" => "error").increment(1);
                metrics::counter!(m::PROVIDER_CALLS, "provider" => provider, "call" => "launch_pool", "outcome" => "error").increment(1);
                tracing::warn!(tier = %tier_name, error = %ErrorChain(&error), "could not launch a pool machine");
                return Err(());
            }
        };
        metrics::counter!(m::PROVIDER_CALLS, "provider" => provider, "call" => "launch_pool", "outcome" => "ok")
            .increment(1);
        let mut record = PoolMachine::new(machine.clone(), tier_name.clone(), secret_hash, self.ports.clock.now());
        record.instance_id = Some(instance.id.clone());
        if let Err(error) = self.pool.pool_insert(&record).await {
            tracing::error!(machine = %machine, instance = %instance.id, error = %ErrorChain(&error), "could not record a pool machine; terminating it");
            if let Err(error) = self.ports.provider.terminate(&instance.id).await {
                tracing::warn!(instance = %instance.id, error = %ErrorChain(&error), "could not terminate; the orphan rule will");
            }
            metrics::counter!(m::POOL_LAUNCHES, "tier" => tier_label, "outcome" => "error").increment(1);
            return Err(());
        }
        metrics::counter!(m::POOL_LAUNCHES, "tier" => tier_label, "outcome" => "ok").increment(1);
        tracing::info!(machine = %machine, instance = %instance.id, tier = %tier_name, "pool machine launched");
        Ok(())
    }
}

fn record_gauges(machines: &[PoolMachine]) {
    let mut counts: BTreeMap<(TierName, MachineState), u32> = BTreeMap::new();
    for machine in machines {
        *counts.entry((machine.tier.clone(), machine.state)).or_default() += 1;
    }
    let tiers: BTreeSet<TierName> = machines.iter().map(|m| m.tier.clone()).collect();
    for tier in tiers {
        for state in [MachineState::Starting, MachineState::Ready, MachineState::Bound, MachineState::Delivered] {
            let n = counts.get(&(tier.clone(), state)).copied().unwrap_or(0);
            metrics::gauge!(m::POOL_MACHINES, "tier" => tier.to_string(), "state" => state.as_str()).set(f64::from(n));
        }
    }
}

/// Keep a pass's retire reasons and ids readable in logs.
impl std::fmt::Display for PoolReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "launched {}, failed {}, retired {}", self.launched, self.launch_failures, self.retired)
    }
}
