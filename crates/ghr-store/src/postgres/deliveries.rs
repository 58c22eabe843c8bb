//! Webhook deliveries on PostgreSQL: recorded once per delivery id, across every replica.

use crate::codec::{self, backend};
use ghr_core::ids::DeliveryId;
use ghr_core::ports::{DeliveryRecord, StoreError};
use sqlx::{PgConnection, PgPool};

pub(super) const OP_RECORD: &str = "delivery_record";
const OP_SEEN: &str = "delivery_seen";

/// Insert the delivery; false when its id was recorded before. A concurrent insert of the same id by
/// another replica waits for that one to commit, then counts as seen.
pub(super) async fn record(conn: &mut PgConnection, delivery: &DeliveryRecord) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO webhook_deliveries (delivery_id, event, action, installation_id, received_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (delivery_id) DO NOTHING",
    )
    .bind(delivery.delivery_id.as_str())
    .bind(&delivery.event)
    .bind(delivery.action.as_deref())
    .bind(codec::id_opt(OP_RECORD, "installation id", delivery.installation_id.map(|i| i.0))?)
    .bind(codec::ts(delivery.received_at))
    .execute(&mut *conn)
    .await
    .map_err(backend(OP_RECORD))?
    .rows_affected();
    Ok(inserted == 1)
}

pub(super) async fn seen(pool: &PgPool, id: &DeliveryId) -> Result<bool, StoreError> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM webhook_deliveries WHERE delivery_id = $1)")
        .bind(id.as_str())
        .fetch_one(pool)
        .await
        .map_err(backend(OP_SEEN))
}
