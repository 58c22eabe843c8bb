//! Retention on SQLite: old webhook deliveries and old completed jobs (with their timelines) are deleted in
//! bounded batches, each its own short write transaction, so a pass over a million rows never holds the
//! write lock for seconds; afterwards the write-ahead log is checkpointed and truncated, so the file shrinks
//! back from the high-water mark the deletions (and the traffic before them) left.
//!
//! Truncation keeps the log's inode (`wal_checkpoint(TRUNCATE)` and `journal_size_limit` shorten the file in
//! place; SQLite deletes the log only when the last connection closes, and a file store keeps one open), so
//! the identity check of every commit (`write.rs`) still finds the log it opened.

use super::write::Writer;
use crate::codec::backend;
use ghr_core::ports::{Pruned, StoreError};
use sqlx::{Row, SqliteConnection, SqlitePool};
use std::time::Duration;

pub(super) const OP_PRUNE: &str = "prune";
const OP_CHECKPOINT: &str = "wal_checkpoint";
/// Completed jobs deleted per write transaction (each with its few timeline entries): a few milliseconds of
/// write lock.
pub(super) const JOB_BATCH: u32 = 1_000;
/// Webhook deliveries deleted per write transaction (small rows, one index).
pub(super) const DELIVERY_BATCH: u32 = 5_000;
/// Pause between two full batches, so writers waiting for the lock (webhooks, the dispatcher) take it.
const BATCH_PAUSE: Duration = Duration::from_millis(5);
/// How long the truncating checkpoint waits for readers still on the log before giving up (it blocks new
/// writers while it waits): the next retention pass tries again.
const CHECKPOINT_BUSY_TIMEOUT: Duration = Duration::from_millis(250);

/// Delete what is older than `before` (milliseconds) in batches, then truncate the log when anything went.
pub(super) async fn prune(
    writer: &Writer,
    pool: &SqlitePool,
    file_backed: bool,
    before: i64,
    busy_timeout: Duration,
) -> Result<Pruned, StoreError> {
    let mut pruned = Pruned::default();
    loop {
        let deleted =
            writer.run(OP_PRUNE, move |conn| Box::pin(delete_deliveries(conn, before, DELIVERY_BATCH))).await?;
        pruned.deliveries += deleted;
        if deleted < u64::from(DELIVERY_BATCH) {
            break;
        }
        tokio::time::sleep(BATCH_PAUSE).await;
    }
    loop {
        let (jobs, job_events) =
            writer.run(OP_PRUNE, move |conn| Box::pin(delete_jobs(conn, before, JOB_BATCH))).await?;
        pruned.jobs += jobs;
        pruned.job_events += job_events;
        if jobs < u64::from(JOB_BATCH) {
            break;
        }
        tokio::time::sleep(BATCH_PAUSE).await;
    }
    if file_backed && pruned != Pruned::default() {
        match truncate_wal(pool, busy_timeout).await {
            Ok(Checkpoint { complete: true }) => tracing::debug!("write-ahead log truncated after retention"),
            Ok(Checkpoint { complete: false }) => {
                tracing::debug!("write-ahead log not truncated: readers still on it; the next pass retries")
            }
            Err(error) => {
                tracing::warn!(error = %ghr_core::error::ErrorChain(&error), "cannot truncate the write-ahead log")
            }
        }
    }
    Ok(pruned)
}

/// A batch of old deliveries, oldest first.
pub(super) const DELIVERIES_BATCH_SQL: &str = "DELETE FROM webhook_deliveries WHERE delivery_id IN \
     (SELECT delivery_id FROM webhook_deliveries WHERE received_at < ?1 ORDER BY received_at LIMIT ?2)";
/// A batch of completed jobs last updated before a time, oldest first (`INDEXED BY`: without statistics SQLite
/// would pick `jobs_by_status` and sort every completed job).
pub(super) const JOBS_BATCH_SQL: &str = "SELECT job_id FROM jobs INDEXED BY jobs_completed_by_update \
     WHERE status = 'completed' AND updated_at < ?1 ORDER BY updated_at LIMIT ?2";

/// One batch of deliveries received before `before`, oldest first (index `webhook_deliveries_by_time`).
async fn delete_deliveries(conn: &mut SqliteConnection, before: i64, limit: u32) -> Result<u64, StoreError> {
    let deleted = sqlx::query(DELIVERIES_BATCH_SQL)
        .bind(before)
        .bind(i64::from(limit))
        .execute(&mut *conn)
        .await
        .map_err(backend(OP_PRUNE))?
        .rows_affected();
    Ok(deleted)
}

/// One batch of completed jobs last updated before `before`, oldest first (partial index
/// `jobs_completed_by_update`), with their timelines.
async fn delete_jobs(conn: &mut SqliteConnection, before: i64, limit: u32) -> Result<(u64, u64), StoreError> {
    let ids: Vec<i64> = sqlx::query_scalar(JOBS_BATCH_SQL)
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await
        .map_err(backend(OP_PRUNE))?;
    if ids.is_empty() {
        return Ok((0, 0));
    }
    let ids = serde_json::Value::from(ids).to_string();
    let job_events = sqlx::query("DELETE FROM job_events WHERE job_id IN (SELECT value FROM json_each(?))")
        .bind(ids.as_str())
        .execute(&mut *conn)
        .await
        .map_err(backend(OP_PRUNE))?
        .rows_affected();
    let jobs = sqlx::query("DELETE FROM jobs WHERE job_id IN (SELECT value FROM json_each(?))")
        .bind(ids.as_str())
        .execute(&mut *conn)
        .await
        .map_err(backend(OP_PRUNE))?
        .rows_affected();
    Ok((jobs, job_events))
}

/// The outcome of a truncating checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Checkpoint {
    /// Every frame was copied into the database and the log truncated to zero bytes; false when readers
    /// still used the log (nothing is lost: the log is truncated by a later checkpoint).
    pub(super) complete: bool,
}

/// `PRAGMA wal_checkpoint(TRUNCATE)` on a pooled connection, waiting at most [`CHECKPOINT_BUSY_TIMEOUT`]
/// for readers; the connection's usual busy timeout is restored afterwards (or the connection is closed).
pub(super) async fn truncate_wal(pool: &SqlitePool, busy_timeout: Duration) -> Result<Checkpoint, StoreError> {
    let mut conn = pool.acquire().await.map_err(backend(OP_CHECKPOINT))?;
    let outcome = checkpoint_with_timeout(&mut conn, busy_timeout).await;
    if outcome.is_err() {
        // Its busy timeout may still be the short one: never hand it out again.
        conn.close_on_drop();
    }
    outcome
}

async fn checkpoint_with_timeout(
    conn: &mut SqliteConnection,
    busy_timeout: Duration,
) -> Result<Checkpoint, StoreError> {
    set_busy_timeout(conn, CHECKPOINT_BUSY_TIMEOUT).await?;
    let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&mut *conn).await;
    set_busy_timeout(conn, busy_timeout).await?;
    let row = row.map_err(backend(OP_CHECKPOINT))?;
    // Columns: busy (1 when blocked by readers or a writer), log frames, frames checkpointed.
    let busy: i64 = row.try_get(0).map_err(backend(OP_CHECKPOINT))?;
    Ok(Checkpoint { complete: busy == 0 })
}

async fn set_busy_timeout(conn: &mut SqliteConnection, timeout: Duration) -> Result<(), StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA busy_timeout = {}", timeout.as_millis())))
        .execute(&mut *conn)
        .await
        .map_err(backend(OP_CHECKPOINT))?;
    Ok(())
}
