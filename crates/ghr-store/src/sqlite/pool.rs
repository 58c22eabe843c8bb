//! Pool machines on SQLite. Reads use the pool of readers; every change runs under the write lock
//! (`BEGIN IMMEDIATE`), so a claim's read of the longest-ready machine and its update are one step: two
//! claims never get the same machine.

use crate::codec::{self, backend};
use crate::pool_rows::pool_columns;
use crate::pool_rows::{self, OP_CLAIM, OP_GET, OP_INSERT, OP_LIST, OP_PRUNE, OP_TRANSITION, decode};
use ghr_core::Timestamp;
use ghr_core::ids::{MachineId, RunnerName, TierName};
use ghr_core::pool::{MachineState, PoolFilter, PoolMachine, PoolTransition};
use ghr_core::ports::StoreError;
use sqlx::{SqliteConnection, SqlitePool};

pub(super) async fn insert(conn: &mut SqliteConnection, m: &PoolMachine) -> Result<(), StoreError> {
    sqlx::query(concat!(
        "INSERT INTO pool_machines (",
        pool_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
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

async fn read(conn: &mut SqliteConnection, op: &'static str, id: &str) -> Result<Option<PoolMachine>, StoreError> {
    let row = sqlx::query(concat!("SELECT ", pool_columns!(), " FROM pool_machines WHERE id = ?1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend(op))?;
    row.map(|row| decode(op, &row)).transpose()
}

pub(super) async fn get(pool: &SqlitePool, id: &MachineId) -> Result<Option<PoolMachine>, StoreError> {
    let mut conn = pool.acquire().await.map_err(backend(OP_GET))?;
    read(&mut conn, OP_GET, id.as_str()).await
}

pub(super) async fn list(pool: &SqlitePool, filter: &PoolFilter) -> Result<Vec<PoolMachine>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        pool_columns!(),
        " FROM pool_machines WHERE state <> 'retired' OR retired_at >= ?1 ORDER BY created_at, id"
    ))
    .bind(filter.retired_since.map(codec::ts).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .map_err(backend(OP_LIST))?;
    rows.iter().map(|row| decode(OP_LIST, row)).collect()
}

pub(super) async fn transition(
    conn: &mut SqliteConnection,
    id: &MachineId,
    from: &[MachineState],
    t: &PoolTransition,
) -> Result<Option<PoolMachine>, StoreError> {
    let Some(current) = read(conn, OP_TRANSITION, id.as_str()).await? else { return Ok(None) };
    if !pool_rows::allowed(current.state, from, t.to) {
        return Ok(None);
    }
    sqlx::query(
        "UPDATE pool_machines SET state = ?2, \
             ready_at = CASE WHEN ?2 = 'ready' THEN ?3 ELSE ready_at END, \
             delivered_at = CASE WHEN ?2 = 'delivered' THEN ?3 ELSE delivered_at END, \
             retired_at = CASE WHEN ?2 = 'retired' THEN ?3 ELSE retired_at END, \
             instance_id = COALESCE(?4, instance_id), retire_reason = COALESCE(?5, retire_reason) \
         WHERE id = ?1",
    )
    .bind(id.as_str())
    .bind(t.to.as_str())
    .bind(codec::ts(t.at))
    .bind(t.instance_id.as_ref().map(|i| i.as_str()))
    .bind(t.reason.as_deref())
    .execute(&mut *conn)
    .await
    .map_err(backend(OP_TRANSITION))?;
    read(conn, OP_TRANSITION, id.as_str()).await
}

pub(super) async fn claim(
    conn: &mut SqliteConnection,
    tier: &TierName,
    runner: &RunnerName,
    at: Timestamp,
) -> Result<Option<PoolMachine>, StoreError> {
    let id: Option<String> = sqlx::query_scalar(
        "SELECT id FROM pool_machines WHERE tier = ?1 AND state = 'ready' ORDER BY ready_at, id LIMIT 1",
    )
    .bind(tier.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(backend(OP_CLAIM))?;
    let Some(id) = id else { return Ok(None) };
    sqlx::query("UPDATE pool_machines SET state = 'bound', runner_name = ?2, bound_at = ?3 WHERE id = ?1")
        .bind(&id)
        .bind(runner.as_str())
        .bind(codec::ts(at))
        .execute(&mut *conn)
        .await
        .map_err(backend(OP_CLAIM))?;
    read(conn, OP_CLAIM, &id).await
}

pub(super) async fn prune(conn: &mut SqliteConnection, before: Timestamp) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM pool_machines WHERE state = 'retired' AND retired_at < ?1")
        .bind(codec::ts(before))
        .execute(&mut *conn)
        .await
        .map_err(backend(OP_PRUNE))?;
    Ok(done.rows_affected())
}

#[async_trait::async_trait]
impl ghr_core::ports::PoolStore for super::SqliteStore {
    async fn pool_insert(&self, machine: &PoolMachine) -> Result<(), StoreError> {
        let machine = machine.clone();
        self.writer.run(OP_INSERT, move |conn| Box::pin(async move { insert(conn, &machine).await })).await
    }

    async fn pool_get(&self, id: &MachineId) -> Result<Option<PoolMachine>, StoreError> {
        get(&self.pool, id).await
    }

    async fn pool_list(&self, filter: PoolFilter) -> Result<Vec<PoolMachine>, StoreError> {
        list(&self.pool, &filter).await
    }

    async fn pool_transition(
        &self,
        id: &MachineId,
        from: &[MachineState],
        transition: PoolTransition,
    ) -> Result<Option<PoolMachine>, StoreError> {
        let (id, from) = (id.clone(), from.to_vec());
        self.writer
            .run(OP_TRANSITION, move |conn| {
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
        let (tier, runner) = (tier.clone(), runner.clone());
        self.writer.run(OP_CLAIM, move |conn| Box::pin(async move { claim(conn, &tier, &runner, at).await })).await
    }

    async fn pool_prune(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.writer.run(OP_PRUNE, move |conn| Box::pin(async move { prune(conn, before).await })).await
    }
}
