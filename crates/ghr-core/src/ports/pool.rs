//! The pool store port: warm-pool machines, kept apart from the main [`super::Store`] so that a backend
//! without pools (the serverless DynamoDB shape) needs nothing; wiring refuses `warm_pool` there.

use super::StoreError;
use crate::Timestamp;
use crate::ids::{MachineId, RunnerName, TierName};
use crate::pool::{MachineState, PoolFilter, PoolMachine, PoolTransition};
use async_trait::async_trait;

/// Where pool machines are recorded. Every change is atomic: two dispatchers never claim one machine, and
/// a state moves only forward ([`MachineState::can_become`]).
#[async_trait]
pub trait PoolStore: Send + Sync {
    /// Record a new machine (state `starting`). An existing id is an error (ids are random).
    async fn pool_insert(&self, machine: &PoolMachine) -> Result<(), StoreError>;
    async fn pool_get(&self, id: &MachineId) -> Result<Option<PoolMachine>, StoreError>;
    /// Machines not retired (and, with `retired_since`, those retired since), oldest first.
    async fn pool_list(&self, filter: PoolFilter) -> Result<Vec<PoolMachine>, StoreError>;
    /// Apply `transition` if the machine is in one of `from` and the lifecycle allows it; the machine after
    /// the change, or None when it was not in one of `from` (or does not exist). Sets the instant column of
    /// the new state (`ready_at`, `delivered_at`, `retired_at`), the instance id and the retire reason when given.
    async fn pool_transition(
        &self,
        id: &MachineId,
        from: &[MachineState],
        transition: PoolTransition,
    ) -> Result<Option<PoolMachine>, StoreError>;
    /// Bind the longest-ready machine of `tier` to `runner` (`ready → bound`, `bound_at = at`), atomically:
    /// concurrent claims never get the same machine. None when no machine of the tier is ready.
    async fn pool_claim(
        &self,
        tier: &TierName,
        runner: &RunnerName,
        at: Timestamp,
    ) -> Result<Option<PoolMachine>, StoreError>;
    /// Delete machines retired before `before`; how many.
    async fn pool_prune(&self, before: Timestamp) -> Result<u64, StoreError>;
}
