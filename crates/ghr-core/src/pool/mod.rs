//! Warm pools: tenant-neutral machines per tier, started ahead of demand and bound to a tenant only when
//! one of its jobs needs a runner (late binding).
//!
//! A pool machine runs `ghr-agent`, which proves its identity with a one-time bootstrap secret and waits for
//! an assignment. Its lifecycle ([`MachineState`]) only moves forward:
//!
//! ```text
//! starting ──hello──► ready ──claim──► bound ──config fetched──► delivered
//!     └────────────────┴─────────────────┴────────────────────────┴──► retired
//! ```
//!
//! A machine serves one runner of one tenant and is never reused: `bound` names the runner, and the agent's
//! secret fetches that runner's config once (`delivered`); afterwards it fetches nothing. Idle pool time is
//! the operator's cost ([`pool_idle_seconds`]); a tenant's usage starts at binding, where its runner record
//! (and its slot) starts.

mod plan;
mod schedule;

#[cfg(test)]
mod plan_tests;

pub use plan::*;
pub use schedule::*;

use crate::Timestamp;
use crate::ids::{InstanceId, MachineId, RunnerName, TierName};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a pool machine is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineState {
    /// Launched (or being launched); its agent has not said hello yet.
    Starting,
    /// Its agent said hello and waits for an assignment. Only these can be claimed.
    Ready,
    /// Claimed for one runner of one tenant; its agent has not fetched the runner's config yet.
    Bound,
    /// Its agent fetched the config: its secret fetches nothing more.
    Delivered,
    /// Gone or going: terminated (or to be terminated) and never used again.
    Retired,
}

impl MachineState {
    pub const ALL: [MachineState; 5] = [
        MachineState::Starting,
        MachineState::Ready,
        MachineState::Bound,
        MachineState::Delivered,
        MachineState::Retired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MachineState::Starting => "starting",
            MachineState::Ready => "ready",
            MachineState::Bound => "bound",
            MachineState::Delivered => "delivered",
            MachineState::Retired => "retired",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }

    /// Not yet bound: the machine belongs to the pool (and its cost to the operator).
    pub fn is_pooled(self) -> bool {
        matches!(self, MachineState::Starting | MachineState::Ready)
    }

    /// Whether the lifecycle allows `self → to` (forward only; retiring is always allowed but once).
    pub fn can_become(self, to: MachineState) -> bool {
        use MachineState::*;
        matches!(
            (self, to),
            (Starting, Ready) | (Ready, Bound) | (Bound, Delivered) | (Starting | Ready | Bound | Delivered, Retired)
        )
    }
}

impl std::fmt::Display for MachineState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One pool machine as the store keeps it. The bootstrap secret itself is never stored: only its SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolMachine {
    pub id: MachineId,
    pub tier: TierName,
    pub state: MachineState,
    /// The provider's instance, once the launch returned.
    pub instance_id: Option<InstanceId>,
    /// Lower-case hex SHA-256 of the agent's bootstrap secret.
    pub secret_hash: String,
    /// The runner it was bound to (set by the claim).
    pub runner_name: Option<RunnerName>,
    pub created_at: Timestamp,
    pub ready_at: Option<Timestamp>,
    pub bound_at: Option<Timestamp>,
    pub delivered_at: Option<Timestamp>,
    pub retired_at: Option<Timestamp>,
    /// Why it was retired (a [`RetireReason`] code, or what failed).
    pub retire_reason: Option<String>,
}

impl PoolMachine {
    /// A machine about to be launched.
    pub fn new(id: MachineId, tier: TierName, secret_hash: String, now: Timestamp) -> Self {
        PoolMachine {
            id,
            tier,
            state: MachineState::Starting,
            instance_id: None,
            secret_hash,
            runner_name: None,
            created_at: now,
            ready_at: None,
            bound_at: None,
            delivered_at: None,
            retired_at: None,
            retire_reason: None,
        }
    }

    /// When it stopped being the operator's: bound to a tenant, or retired before that.
    pub fn pool_end(&self) -> Option<Timestamp> {
        self.bound_at.or(self.retired_at)
    }
}

/// A state change asked of the store: applied only if the machine is in one of the expected states.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolTransition {
    pub to: MachineState,
    pub at: Timestamp,
    /// Recorded when given (the launch's instance).
    pub instance_id: Option<InstanceId>,
    /// With `to = Retired`: why.
    pub reason: Option<String>,
}

impl PoolTransition {
    pub fn to(to: MachineState, at: Timestamp) -> Self {
        PoolTransition { to, at, instance_id: None, reason: None }
    }

    pub fn retire(at: Timestamp, reason: impl Into<String>) -> Self {
        PoolTransition { to: MachineState::Retired, at, instance_id: None, reason: Some(reason.into()) }
    }
}

/// Which machines a listing returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolFilter {
    /// Also retired machines retired at or after this instant (usage reports); None: only unretired ones.
    pub retired_since: Option<Timestamp>,
}

/// Seconds machines spent in the pool (launch to binding or retirement) within `[from, to)`, per tier:
/// the operator's cost of keeping pools warm. A tenant's usage starts at binding.
pub fn pool_idle_seconds(
    machines: &[PoolMachine],
    from: Timestamp,
    to: Timestamp,
    now: Timestamp,
) -> BTreeMap<TierName, i64> {
    let mut out: BTreeMap<TierName, i64> = BTreeMap::new();
    for machine in machines {
        let end = machine.pool_end().unwrap_or(now).min(to);
        let start = machine.created_at.max(from);
        let seconds = (end - start).num_seconds();
        if seconds > 0 {
            *out.entry(machine.tier.clone()).or_default() += seconds;
        }
    }
    out
}
