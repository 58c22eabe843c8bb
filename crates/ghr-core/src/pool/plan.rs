//! The pool plan: which machines to launch and which to retire, from one snapshot. Pure.

use super::{MachineState, PoolMachine, WarmPool};
use crate::Timestamp;
use crate::ids::{InstanceId, MachineId, RunnerName, TierName};
use crate::planner::older_than;
use crate::ports::Instance;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

/// At most this many machines are launched per tier and pass, so a pool that keeps failing to start does
/// not hammer the provider (the next pass launches the rest).
pub const MAX_POOL_LAUNCHES_PER_PASS: u32 = 20;

/// A bound machine whose agent has not fetched its runner's config this long after binding is given up (its
/// agent died, or its instance was lost before anyone noticed): the runner is torn down and its job gets
/// another machine, instead of waiting for the runner's whole bootstrap timeout. A live agent long-polls and
/// fetches within a second of binding.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything one pool plan is made from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolSnapshot {
    /// Every machine not retired.
    pub machines: Vec<PoolMachine>,
    /// The provider's instances; None when they could not be listed (the instance rule waits a pass).
    pub instances: Option<Vec<Instance>>,
    /// The runners of bound and delivered machines that are still live.
    pub live_runners: BTreeSet<RunnerName>,
}

/// The settings a pool plan depends on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolSettings {
    pub pools: BTreeMap<TierName, WarmPool>,
    /// How long a launched instance may be missing from the provider's list before it counts as gone.
    pub orphan_grace: Duration,
}

/// Why a machine leaves the pool for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetireReason {
    /// Its agent never said hello within the tier's `boot_timeout`.
    BootTimeout,
    /// Ready but unclaimed for the tier's `max_idle`: replaced by a fresh machine.
    IdleTooLong,
    /// More machines than the pool's size (the schedule lowered it).
    Surplus,
    /// The provider no longer lists its instance (died, reclaimed): replaced.
    InstanceGone,
    /// Its tier has no pool any more.
    PoolRemoved,
    /// Bound machine whose runner ended: nothing more to do with it.
    RunnerDone,
    /// Bound, but its agent never fetched the config within [`DELIVERY_TIMEOUT`]: its runner is torn down too.
    DeliveryTimeout,
}

impl RetireReason {
    pub fn code(self) -> &'static str {
        match self {
            RetireReason::BootTimeout => "boot_timeout",
            RetireReason::IdleTooLong => "idle_too_long",
            RetireReason::Surplus => "surplus",
            RetireReason::InstanceGone => "instance_gone",
            RetireReason::PoolRemoved => "pool_removed",
            RetireReason::RunnerDone => "runner_done",
            RetireReason::DeliveryTimeout => "delivery_timeout",
        }
    }
}

/// One thing the pool keeper does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolAction {
    /// Start `count` new machines of `tier`.
    Launch { tier: TierName, count: u32 },
    /// Retire a machine (terminating its instance, when it has one and it still runs).
    Retire { machine: MachineId, instance: Option<InstanceId>, reason: RetireReason },
}

/// Plan one pass of the pool keeper at `now`: retire what must go, then top every pool up to its target.
pub fn plan_pool(snapshot: &PoolSnapshot, settings: &PoolSettings, now: Timestamp) -> Vec<PoolAction> {
    let mut actions = Vec::new();
    let mut retired: HashSet<&MachineId> = HashSet::new();
    for machine in &snapshot.machines {
        if let Some(reason) = retire_reason(machine, snapshot, settings, now) {
            retired.insert(&machine.id);
            actions.push(retire(machine, reason));
        }
    }
    for (tier, pool) in &settings.pools {
        let mut available: Vec<&PoolMachine> = snapshot
            .machines
            .iter()
            .filter(|m| m.tier == *tier && m.state.is_pooled() && !retired.contains(&m.id))
            .collect();
        let target = pool.target(now) as usize;
        if available.len() > target {
            // Ready machines first (oldest first: nearest to being recycled anyway), then starting ones.
            available.sort_by_key(|m| (m.state != MachineState::Ready, m.ready_at.unwrap_or(m.created_at)));
            for machine in &available[..available.len() - target] {
                actions.push(retire(machine, RetireReason::Surplus));
            }
        } else if available.len() < target {
            let count = ((target - available.len()) as u32).min(MAX_POOL_LAUNCHES_PER_PASS);
            actions.push(PoolAction::Launch { tier: tier.clone(), count });
        }
    }
    actions
}

fn retire(machine: &PoolMachine, reason: RetireReason) -> PoolAction {
    PoolAction::Retire { machine: machine.id.clone(), instance: machine.instance_id.clone(), reason }
}

fn retire_reason(
    machine: &PoolMachine,
    snapshot: &PoolSnapshot,
    settings: &PoolSettings,
    now: Timestamp,
) -> Option<RetireReason> {
    match machine.state {
        MachineState::Retired => None,
        MachineState::Bound | MachineState::Delivered => {
            let live = machine.runner_name.as_ref().is_some_and(|r| snapshot.live_runners.contains(r));
            if !live {
                Some(RetireReason::RunnerDone)
            } else if machine.state == MachineState::Bound && older_than(machine.bound_at, now, DELIVERY_TIMEOUT) {
                Some(RetireReason::DeliveryTimeout)
            } else {
                None
            }
        }
        MachineState::Starting | MachineState::Ready => {
            let Some(pool) = settings.pools.get(&machine.tier) else {
                return Some(RetireReason::PoolRemoved);
            };
            if let (Some(instance), Some(instances)) = (&machine.instance_id, &snapshot.instances)
                && !instances.iter().any(|i| i.id == *instance)
                && older_than(Some(machine.created_at), now, settings.orphan_grace)
            {
                return Some(RetireReason::InstanceGone);
            }
            match machine.state {
                MachineState::Starting if older_than(Some(machine.created_at), now, pool.boot_timeout) => {
                    Some(RetireReason::BootTimeout)
                }
                MachineState::Ready if older_than(machine.ready_at, now, pool.max_idle) => {
                    Some(RetireReason::IdleTooLong)
                }
                _ => None,
            }
        }
    }
}

/// Instances the pool owns (machines not retired): the fleet's orphan rule leaves them alone.
pub fn pool_instances(machines: &[PoolMachine]) -> BTreeSet<InstanceId> {
    machines.iter().filter(|m| m.state != MachineState::Retired).filter_map(|m| m.instance_id.clone()).collect()
}
