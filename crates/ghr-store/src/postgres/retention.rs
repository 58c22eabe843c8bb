//! Retention on PostgreSQL: old webhook deliveries and old completed jobs (with their timelines) are deleted
//! in bounded batches, each its own short write transaction, so a pass over a million rows never holds row
//! locks (or a long snapshot that keeps vacuum from reclaiming space) for long. Nothing is truncated
//! afterwards: autovacuum reclaims the space of deleted rows.
//!
//! Retention runs under the reconciler lease, but a batch is safe even when two replicas prune at once: the
//! rows of a batch are locked with `FOR UPDATE SKIP LOCKED`, so two batches never pick the same rows, and a
//! row another transaction holds (a completed job being observed again) is left for the next pass rather
//! than waited for.

use super::write::Writer;
use crate::codec::backend;
use ghr_core::ports::{Pruned, StoreError};
use sqlx::PgConnection;
use std::time::Duration;

pub(super) const OP_PRUNE: &str = "prune";
/// Completed jobs deleted per write transaction (each with its few timeline entries). Half SQLite's batch:
/// each deleted job decrements the one `completed` row of `job_status_counts` (a trigger), and a transaction
/// that updates one row n times costs O(n²) (every update walks the row's versions written by the same
/// transaction), while the row stays locked, holding back every replica's job completions, until commit
/// (measured: 500 jobs 34 ms, 1,000 jobs 72 ms, 4,000 jobs 585 ms).
pub(super) const JOB_BATCH: u32 = 500;
/// Webhook deliveries deleted per write transaction (small rows, one index).
pub(super) const DELIVERY_BATCH: u32 = 5_000;
/// Pause between two full batches, so the database serves other work between them.
const BATCH_PAUSE: Duration = Duration::from_millis(5);

/// A batch of deliveries received before a time, oldest first (index `webhook_deliveries_by_time`).
const DELIVERIES_BATCH_SQL: &str = "DELETE FROM webhook_deliveries WHERE delivery_id IN \
     (SELECT delivery_id FROM webhook_deliveries WHERE received_at < $1 ORDER BY received_at LIMIT $2 \
      FOR UPDATE SKIP LOCKED)";
/// A batch of completed jobs last updated before a time, oldest first (partial index
/// `jobs_completed_by_update`), locked until the batch commits.
const JOBS_BATCH_SQL: &str = "SELECT job_id FROM jobs WHERE status = 'completed' AND updated_at < $1 \
     ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED";

/// Delete what is older than `before` (milliseconds) in batches: deliveries first, then completed jobs.
pub(super) async fn prune(writer: &Writer, before: i64) -> Result<Pruned, StoreError> {
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
    Ok(pruned)
}

async fn delete_deliveries(conn: &mut PgConnection, before: i64, limit: u32) -> Result<u64, StoreError> {
    let deleted = sqlx::query(DELIVERIES_BATCH_SQL)
        .bind(before)
        .bind(i64::from(limit))
        .execute(&mut *conn)
        .await
        .map_err(backend(OP_PRUNE))?
        .rows_affected();
    Ok(deleted)
}

/// One batch of completed jobs, with their timelines; the job rows stay locked from the pick to the delete.
async fn delete_jobs(conn: &mut PgConnection, before: i64, limit: u32) -> Result<(u64, u64), StoreError> {
    let ids: Vec<i64> = sqlx::query_scalar(JOBS_BATCH_SQL)
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await
        .map_err(backend(OP_PRUNE))?;
    if ids.is_empty() {
        return Ok((0, 0));
    }
    let job_events = sqlx::query("DELETE FROM job_events WHERE job_id = ANY($1)")
        .bind(&ids)
        .execute(&mut *conn)
        .await
        .map_err(backend(OP_PRUNE))?
        .rows_affected();
    let jobs = sqlx::query("DELETE FROM jobs WHERE job_id = ANY($1)")
        .bind(&ids)
        .execute(&mut *conn)
        .await
        .map_err(backend(OP_PRUNE))?
        .rows_affected();
    Ok((jobs, job_events))
}
