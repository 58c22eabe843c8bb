//! Webhook deliveries on SQLite: record once per delivery id, so redeliveries change nothing; and retention
//! (old deliveries and old completed jobs are pruned).

use super::codec::{self, backend};
use ghr_core::ids::DeliveryId;
use ghr_core::ports::{DeliveryRecord, StoreError};
use sqlx::{SqliteConnection, SqlitePool};

pub(super) const OP_RECORD: &str = "delivery_record";
const OP_SEEN: &str = "delivery_seen";

/// Record a delivery inside the caller's write transaction.
pub(super) async fn record(conn: &mut SqliteConnection, delivery: &DeliveryRecord) -> Result<bool, StoreError> {
    let installation = codec::id_opt(OP_RECORD, "installation id", delivery.installation_id.map(|i| i.0))?;
    let result = sqlx::query(
        "INSERT INTO webhook_deliveries (delivery_id, event, action, installation_id, received_at) \
         VALUES (?, ?, ?, ?, ?) ON CONFLICT (delivery_id) DO NOTHING",
    )
    .bind(delivery.delivery_id.as_str())
    .bind(delivery.event.as_str())
    .bind(delivery.action.as_deref())
    .bind(installation)
    .bind(codec::ts(delivery.received_at))
    .execute(&mut *conn)
    .await
    .map_err(backend(OP_RECORD))?;
    Ok(result.rows_affected() == 1)
}

pub(super) async fn seen(pool: &SqlitePool, id: &DeliveryId) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT 1 FROM webhook_deliveries WHERE delivery_id = ?")
        .bind(id.as_str())
        .fetch_optional(pool)
        .await
        .map_err(backend(OP_SEEN))?;
    Ok(row.is_some())
}

pub(super) const OP_PRUNE: &str = "prune";

/// Delete old deliveries, and completed jobs last updated before `before` with their timelines, in the
/// caller's write transaction.
pub(super) async fn prune(conn: &mut SqliteConnection, before: i64) -> Result<ghr_core::ports::Pruned, StoreError> {
    let deliveries = sqlx::query("DELETE FROM webhook_deliveries WHERE received_at < ?")
        .bind(before)
        .execute(&mut *conn)
        .await
        .map_err(backend(OP_PRUNE))?
        .rows_affected();
    let job_events = sqlx::query(
        "DELETE FROM job_events WHERE job_id IN (SELECT job_id FROM jobs WHERE status = 'completed' AND updated_at < ?)",
    )
    .bind(before)
    .execute(&mut *conn)
    .await
    .map_err(backend(OP_PRUNE))?
    .rows_affected();
    let jobs = sqlx::query("DELETE FROM jobs WHERE status = 'completed' AND updated_at < ?")
        .bind(before)
        .execute(&mut *conn)
        .await
        .map_err(backend(OP_PRUNE))?
        .rows_affected();
    Ok(ghr_core::ports::Pruned { deliveries, jobs, job_events })
}
