//! The fleet plan: what the reconciler does to runners and instances, from one snapshot.
//!
//! Each live runner gets at most one action per pass, the first that applies:
//! 1. its tenant is deleted (or unknown), or suspended under `on_suspend = "terminate"` → the tenant is torn
//!    down (every runner of it);
//! 2. its instance vanished (listed by the provider no more, launched longer than the orphan grace ago) →
//!    released; no instance recorded: a launch under way in this process is left alone, an instance
//!    carrying its name is adopted, and past the orphan grace with neither, the slot is released (`failed`
//!    if it never left `requested`, `terminated` otherwise);
//! 3. `finished` (its teardown failed earlier) → teardown retried;
//! 4. running longer than the maximum runtime → terminated;
//! 5. `launching` → its registration is checked (registered → idle; not registered past the bootstrap
//!    timeout → terminated);
//! 6. idle beyond the demand of its key, registered longer than the orphan grace ago → terminated
//!    (surplus: the oldest unbound runners cover the demand, the newest go first).
//!
//! Instances no live runner owns, launched longer than the orphan grace ago, are terminated (orphans).

use super::{DemandKey, older_than};
use crate::Timestamp;
use crate::ids::{InstallationId, InstanceId, JobId, RunnerName};
use crate::job::Job;
use crate::ports::Instance;
use crate::runner::{Runner, RunnerState};
use crate::tenant::{Tenant, TenantStatus};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

/// Where a walk over stale jobs stands: the last job read, in `(received_at, job_id)` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct JobCursor {
    pub received_at: Timestamp,
    pub job_id: JobId,
}

impl JobCursor {
    pub fn of(job: &Job) -> Self {
        Self { received_at: job.received_at, job_id: job.job_id }
    }
}

/// Which stale jobs a fleet read returns: the next page of each walk (queued, in progress), so a pass costs
/// the same with 50 or 50,000 jobs waiting; every stale job is read once per walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaleQuery {
    /// Jobs queued at or before this instant, or in progress since then, are stale.
    pub before: Timestamp,
    /// The walk over stale queued jobs continues after this one (from the oldest when `None`).
    pub queued_after: Option<JobCursor>,
    /// The walk over stale in-progress jobs continues after this one (from the oldest when `None`).
    pub in_progress_after: Option<JobCursor>,
    /// At most this many jobs of each walk.
    pub limit: u32,
}

impl StaleQuery {
    /// Every stale job at once (tests, small fleets).
    pub fn all(before: Timestamp) -> Self {
        Self { before, queued_after: None, in_progress_after: None, limit: u32::MAX }
    }
}

/// What the store knows about the fleet, read at one instant at the start of a reconciler pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetRecords {
    /// Every live runner.
    pub live: Vec<Runner>,
    /// The tenants of the live runners and of the stale jobs (absent: no tenant record).
    pub tenants: BTreeMap<InstallationId, Tenant>,
    /// Queued jobs matched to a tier, per key, for the tenants with unbound runners.
    pub demand: BTreeMap<DemandKey, u32>,
    /// Jobs queued before, or in progress (matched to a tier) since before, the stale threshold: the next page
    /// of each walk of the [`StaleQuery`], queued ones first, each in `(received_at, job_id)` order.
    pub stale_jobs: Vec<Job>,
}

/// Everything one fleet plan is made from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetSnapshot {
    pub records: FleetRecords,
    /// The provider's instances; None when they could not be listed (the instance rules wait a pass).
    pub instances: Option<Vec<Instance>>,
    /// Runners whose launch is under way in this process.
    pub in_flight: BTreeSet<RunnerName>,
    /// Instances of pool machines not retired: the pool keeper owns them, never the orphan rule.
    pub pool_instances: BTreeSet<InstanceId>,
}

/// The settings a fleet plan depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetSettings {
    pub orphan_grace: Duration,
    pub bootstrap_timeout: Duration,
    pub max_runtime: Duration,
    /// `on_suspend = "terminate"`: a suspended tenant keeps no runner.
    pub terminate_suspended: bool,
}

/// Why a whole tenant is torn down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantTeardown {
    Deleted,
    Suspended,
}

/// One thing the reconciler does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FleetAction {
    TearDownTenant { installation_id: InstallationId, why: TenantTeardown },
    TerminateOrphan { instance: InstanceId, runner: Option<RunnerName> },
    ReleaseVanished { runner: RunnerName, instance: InstanceId },
    AdoptInstance { runner: RunnerName, instance: InstanceId, launched_at: Option<Timestamp> },
    ReleaseUnlaunched { runner: RunnerName, to: RunnerState, error: &'static str },
    RetryTeardown { runner: RunnerName },
    MaxRuntime { runner: RunnerName },
    CheckRegistration { runner: RunnerName, bootstrap_expired: bool },
    TerminateSurplus { runner: RunnerName },
}

/// Why a `requested` runner with no instance is released.
pub const NEVER_LAUNCHED: &str = "launch did not complete (process restarted?)";
/// Why a runner past `requested` with no recorded instance is released.
pub const NEVER_RECORDED: &str = "launch was never recorded and no instance runs under its name";

/// Plan one reconciler pass over the fleet at `now`.
pub fn plan_fleet(snapshot: &FleetSnapshot, settings: &FleetSettings, now: Timestamp) -> Vec<FleetAction> {
    let records = &snapshot.records;
    let mut actions = Vec::new();
    let torn_down = tenant_teardowns(records, settings, &mut actions);
    if let Some(instances) = &snapshot.instances {
        orphans(&records.live, instances, &snapshot.pool_instances, settings, now, &mut actions);
    }
    let mut decided: HashSet<&RunnerName> = HashSet::new();
    for runner in records.live.iter().filter(|r| !torn_down.contains(&r.installation_id)) {
        if let Some(action) = runner_action(runner, snapshot, settings, now) {
            let terminal = !matches!(action, FleetAction::CheckRegistration { bootstrap_expired: false, .. });
            if terminal {
                decided.insert(&runner.name);
            }
            actions.push(action);
        }
    }
    let candidates =
        records.live.iter().filter(|r| !torn_down.contains(&r.installation_id) && !decided.contains(&r.name));
    surplus(candidates, &records.demand, settings, now, &mut actions);
    actions
}

fn tenant_teardowns(
    records: &FleetRecords,
    settings: &FleetSettings,
    actions: &mut Vec<FleetAction>,
) -> BTreeSet<InstallationId> {
    let with_runners: BTreeSet<InstallationId> = records.live.iter().map(|r| r.installation_id).collect();
    let mut torn_down = BTreeSet::new();
    for installation_id in with_runners {
        let why = match records.tenants.get(&installation_id).map(|t| t.status) {
            None | Some(TenantStatus::Deleted) => TenantTeardown::Deleted,
            Some(TenantStatus::Suspended) if settings.terminate_suspended => TenantTeardown::Suspended,
            _ => continue,
        };
        torn_down.insert(installation_id);
        actions.push(FleetAction::TearDownTenant { installation_id, why });
    }
    torn_down
}

fn orphans(
    live: &[Runner],
    instances: &[Instance],
    pool_instances: &BTreeSet<InstanceId>,
    settings: &FleetSettings,
    now: Timestamp,
    actions: &mut Vec<FleetAction>,
) {
    let by_name: HashMap<&RunnerName, &Runner> = live.iter().map(|r| (&r.name, r)).collect();
    for instance in instances.iter().filter(|i| !pool_instances.contains(&i.id)) {
        let owner = instance.runner_name.as_ref().and_then(|name| by_name.get(name));
        let owned = owner.is_some_and(|r| r.instance_id.as_ref().is_none_or(|id| *id == instance.id));
        let young = instance.launched_at.is_some() && !older_than(instance.launched_at, now, settings.orphan_grace);
        if !owned && !young {
            actions.push(FleetAction::TerminateOrphan {
                instance: instance.id.clone(),
                runner: instance.runner_name.clone(),
            });
        }
    }
}

fn runner_action(
    runner: &Runner,
    snapshot: &FleetSnapshot,
    settings: &FleetSettings,
    now: Timestamp,
) -> Option<FleetAction> {
    if let Some(instances) = &snapshot.instances
        && let Some(action) = instance_action(runner, instances, &snapshot.in_flight, settings, now)
    {
        return Some(action);
    }
    let name = runner.name.clone();
    if runner.state == RunnerState::Finished {
        return Some(FleetAction::RetryTeardown { runner: name });
    }
    if older_than(runner.launched_at.or(Some(runner.created_at)), now, settings.max_runtime) {
        return Some(FleetAction::MaxRuntime { runner: name });
    }
    if runner.state == RunnerState::Launching {
        let bootstrap_expired = older_than(runner.launched_at, now, settings.bootstrap_timeout);
        return Some(FleetAction::CheckRegistration { runner: name, bootstrap_expired });
    }
    None
}

/// Rule 2: the runner's instance against the provider's list.
fn instance_action(
    runner: &Runner,
    instances: &[Instance],
    in_flight: &BTreeSet<RunnerName>,
    settings: &FleetSettings,
    now: Timestamp,
) -> Option<FleetAction> {
    let grace = settings.orphan_grace;
    match &runner.instance_id {
        Some(instance) => {
            let vanished = !instances.iter().any(|i| i.id == *instance) && older_than(runner.launched_at, now, grace);
            vanished.then(|| FleetAction::ReleaseVanished { runner: runner.name.clone(), instance: instance.clone() })
        }
        None if in_flight.contains(&runner.name) => None,
        None => {
            if let Some(started) = instances.iter().find(|i| i.runner_name.as_ref() == Some(&runner.name)) {
                return Some(FleetAction::AdoptInstance {
                    runner: runner.name.clone(),
                    instance: started.id.clone(),
                    launched_at: started.launched_at,
                });
            }
            if !older_than(Some(runner.created_at), now, grace) {
                return None;
            }
            let (to, error) = match runner.state {
                RunnerState::Requested => (RunnerState::Failed, NEVER_LAUNCHED),
                _ => (RunnerState::Terminated, NEVER_RECORDED),
            };
            Some(FleetAction::ReleaseUnlaunched { runner: runner.name.clone(), to, error })
        }
    }
}

/// Rule 6: keep as many unbound runners per key as there are queued jobs (the oldest), terminate idle
/// ones beyond that once registered longer than the orphan grace ago.
fn surplus<'r>(
    candidates: impl Iterator<Item = &'r Runner>,
    demand: &BTreeMap<DemandKey, u32>,
    settings: &FleetSettings,
    now: Timestamp,
    actions: &mut Vec<FleetAction>,
) {
    let mut unbound: Vec<&Runner> = candidates.filter(|r| r.state.is_unbound()).collect();
    unbound.sort_by_key(|r| (r.created_at, r.seq));
    let mut wanted = demand.clone();
    for runner in unbound {
        if let Some(left) = wanted.get_mut(&DemandKey::of_runner(runner)).filter(|n| **n > 0) {
            *left -= 1;
            continue;
        }
        let since = runner.registered_at.or(runner.launched_at);
        if runner.state == RunnerState::Idle && older_than(since, now, settings.orphan_grace) {
            actions.push(FleetAction::TerminateSurplus { runner: runner.name.clone() });
        }
    }
}
