//! Webhook deliveries on SQLite: record once per delivery id, so redeliveries change nothing (retention is
//! in `retention.rs`).

use crate::codec::{self, backend};
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
