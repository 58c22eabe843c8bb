//! Pool machines on PostgreSQL. A claim is one statement that locks the longest-ready machine of the tier with
//! `FOR UPDATE SKIP LOCKED`, so concurrent claims across replicas take different machines without waiting
//! on each other; a transition locks its row (`FOR UPDATE`) before deciding.

use crate::codec::{self, backend};
use crate::pool_rows::{self, OP_CLAIM, OP_GET, OP_INSERT, OP_LIST, OP_PRUNE, OP_TRANSITION, decode, pool_columns};
use ghr_core::Timestamp;
use ghr_core::ids::{MachineId, RunnerName, TierName};
use ghr_core::pool::{MachineState, PoolFilter, PoolMachine, PoolTransition};
use ghr_core::ports::StoreError;
use sqlx::PgConnection;

async fn insert(conn: &mut PgConnection, m: &PoolMachine) -> Result<(), StoreError> {
    sqlx::query(concat!(
        "INSERT INTO pool_machines (",
        pool_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    ))
    .bind(m.id.as_str())
    .bind(m.tier.as_str())
    .bind(m.state.as_str())
    .bind(m.instance_id.as_ref().map(|i| i.as_str()))
    .bind(&m.secret_hash)
    .bind(m.runner_name.as_ref().map(|r| r.as_str()))
    .bind(codec::ts(m.created_at))
    .bind(codec::ts_opt(m.ready_at))
    .bind(codec::ts_opt(m.bound_at))
    .bind(codec::ts_opt(m.delivered_at))
    .bind(codec::ts_opt(m.retired_at))
    .bind(m.retire_reason.as_deref())
    .execute(&mut *conn)
    .await
    .map_err(backend(OP_INSERT))?;
    Ok(())
}

async fn transition(
    conn: &mut PgConnection,
    id: &MachineId,
    from: &[MachineState],
    t: &PoolTransition,
) -> Result<Option<PoolMachine>, StoreError> {
    let row = sqlx::query(concat!("SELECT ", pool_columns!(), " FROM pool_machines WHERE id = $1 FOR UPDATE"))
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend(OP_TRANSITION))?;
    let Some(current) = row.map(|row| decode(OP_TRANSITION, &row)).transpose()? else { return Ok(None) };
    if !pool_rows::allowed(current.state, from, t.to) {
        return Ok(None);
    }
    let row = sqlx::query(concat!(
        "UPDATE pool_machines SET state = $2, \
             ready_at = CASE WHEN $2 = 'ready' THEN $3 ELSE ready_at END, \
             delivered_at = CASE WHEN $2 = 'delivered' THEN $3 ELSE delivered_at END, \
             retired_at = CASE WHEN $2 = 'retired' THEN $3 ELSE retired_at END, \
             instance_id = COALESCE($4, instance_id), retire_reason = COALESCE($5, retire_reason) \
         WHERE id = $1 RETURNING ",
        pool_columns!()
    ))
    .bind(id.as_str())
    .bind(t.to.as_str())
    .bind(codec::ts(t.at))
    .bind(t.instance_id.as_ref().map(|i| i.as_str()))
    .bind(t.reason.as_deref())
    .fetch_one(&mut *conn)
    .await
    .map_err(backend(OP_TRANSITION))?;
    decode(OP_TRANSITION, &row).map(Some)
}

async fn claim(
    conn: &mut PgConnection,
    tier: &TierName,
    runner: &RunnerName,
    at: Timestamp,
) -> Result<Option<PoolMachine>, StoreError> {
    let row = sqlx::query(concat!(
        "UPDATE pool_machines SET state = 'bound', runner_name = $2, bound_at = $3 WHERE id = ( \
             SELECT id FROM pool_machines WHERE tier = $1 AND state = 'ready' \
             ORDER BY ready_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
         AND state = 'ready' RETURNING ",
        pool_columns!()
    ))
    .bind(tier.as_str())
    .bind(runner.as_str())
    .bind(codec::ts(at))
    .fetch_optional(&mut *conn)
    .await
    .map_err(backend(OP_CLAIM))?;
    row.map(|row| decode(OP_CLAIM, &row)).transpose()
}

#[async_trait::async_trait]
impl ghr_core::ports::PoolStore for super::PgStore {
    async fn pool_insert(&self, machine: &PoolMachine) -> Result<(), StoreError> {
        self.writer
            .run(OP_INSERT, move |conn| {
                let machine = machine.clone();
                Box::pin(async move { insert(conn, &machine).await })
            })
            .await
    }

    async fn pool_get(&self, id: &MachineId) -> Result<Option<PoolMachine>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", pool_columns!(), " FROM pool_machines WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend(OP_GET))?;
        row.map(|row| decode(OP_GET, &row)).transpose()
    }

    async fn pool_list(&self, filter: PoolFilter) -> Result<Vec<PoolMachine>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            pool_columns!(),
            " FROM pool_machines WHERE state <> 'retired' OR retired_at >= $1 ORDER BY created_at, id"
        ))
        .bind(filter.retired_since.map(codec::ts).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(backend(OP_LIST))?;
        rows.iter().map(|row| decode(OP_LIST, row)).collect()
    }

    async fn pool_transition(
        &self,
        id: &MachineId,
        from: &[MachineState],
        transition: PoolTransition,
    ) -> Result<Option<PoolMachine>, StoreError> {
        self.writer
            .run(OP_TRANSITION, move |conn| {
                let (id, from, transition) = (id.clone(), from.to_vec(), transition.clone());
                Box::pin(async move { self::transition(conn, &id, &from, &transition).await })
            })
            .await
    }

    async fn pool_claim(
        &self,
        tier: &TierName,
        runner: &RunnerName,
        at: Timestamp,
    ) -> Result<Option<PoolMachine>, StoreError> {
        self.writer
            .run(OP_CLAIM, move |conn| {
                let (tier, runner) = (tier.clone(), runner.clone());
                Box::pin(async move { claim(conn, &tier, &runner, at).await })
            })
            .await
    }

    async fn pool_prune(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.writer
            .run(OP_PRUNE, move |conn| {
                Box::pin(async move {
                    let done = sqlx::query("DELETE FROM pool_machines WHERE state = 'retired' AND retired_at < $1")
                        .bind(codec::ts(before))
                        .execute(&mut *conn)
                        .await
                        .map_err(backend(OP_PRUNE))?;
                    Ok(done.rows_affected())
                })
            })
            .await
    }
}
