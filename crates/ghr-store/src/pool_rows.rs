//! Pool machines as rows, shared by the SQLite and PostgreSQL backends: the columns, the decoder and the
//! transition rule (`ghr_core::pool::MachineState::can_become`, and only a claim binds).

use crate::codec::{Columns, corrupt};
use ghr_core::ids::{InstanceId, MachineId, RunnerName, TierName};
use ghr_core::pool::{MachineState, PoolMachine};
use ghr_core::ports::StoreError;
use sqlx::{ColumnIndex, Decode, Row, Type};

pub(crate) const OP_INSERT: &str = "pool_insert";
pub(crate) const OP_GET: &str = "pool_get";
pub(crate) const OP_LIST: &str = "pool_list";
pub(crate) const OP_TRANSITION: &str = "pool_transition";
pub(crate) const OP_CLAIM: &str = "pool_claim";
pub(crate) const OP_PRUNE: &str = "pool_prune";

/// Every column, in the order both backends select them (a macro, so queries stay literal strings).
macro_rules! pool_columns {
    () => {
        "id, tier, state, instance_id, secret_hash, runner_name, created_at, ready_at, bound_at, delivered_at, \
         retired_at, retire_reason"
    };
}
pub(crate) use pool_columns;

pub(crate) fn decode<'r, R>(op: &'static str, row: &'r R) -> Result<PoolMachine, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
{
    let c = Columns::new(op, row);
    let state = c.text("state")?;
    Ok(PoolMachine {
        id: MachineId::new(c.text("id")?),
        tier: TierName::new(c.text("tier")?),
        state: MachineState::parse(&state).ok_or_else(|| corrupt(op, format!("column state: {state:?}")))?,
        instance_id: c.text_opt("instance_id")?.map(InstanceId::new),
        secret_hash: c.text("secret_hash")?,
        runner_name: c.text_opt("runner_name")?.map(RunnerName::new),
        created_at: c.timestamp("created_at")?,
        ready_at: c.timestamp_opt("ready_at")?,
        bound_at: c.timestamp_opt("bound_at")?,
        delivered_at: c.timestamp_opt("delivered_at")?,
        retired_at: c.timestamp_opt("retired_at")?,
        retire_reason: c.text_opt("retire_reason")?,
    })
}

/// Whether a machine in `current` may take a transition to `to` asked from `from`. Binding is the claim's.
pub(crate) fn allowed(current: MachineState, from: &[MachineState], to: MachineState) -> bool {
    to != MachineState::Bound && from.contains(&current) && current.can_become(to)
}
