//! Webhook deliveries: dedupe by a conditional put, expired by TTL.
//!
//! One item per delivery id in `<p>-deliveries`, put only when absent (`attribute_not_exists(delivery_id)`),
//! so a redelivery changes nothing. `expires_at` (epoch seconds, the table's TTL attribute) is the later of
//! `received_at` and the wall clock at the write, plus `store.options.ttl`: DynamoDB expires items by its own
//! clock, so the TTL must never fall before the real time of the write (a delivery stamped by a lagging or
//! simulated clock would otherwise be deleted at once and its redelivery accepted), and never before
//! `received_at + ttl` (what the reconciler's pruning, which goes by `received_at`, keeps).

use crate::DynamoStore;
use crate::error::{backend, retry_transaction_conflicts};
use crate::item::{Item, epoch_seconds, n, s, ts_ms};
use crate::tables::TTL_ATTRIBUTE;
use crate::tables::delivery::DELIVERY_ID;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use chrono::{DateTime, Utc};
use ghr_core::ids::DeliveryId;
use ghr_core::ports::DeliveryRecord;
use ghr_core::ports::StoreError;

const OP_RECORD: &str = "delivery_record";
const OP_SEEN: &str = "delivery_seen";

/// Attribute names of a delivery item besides its key and TTL.
pub(crate) mod attribute {
    pub const EVENT: &str = "event";
    pub const ACTION: &str = "action";
    pub const INSTALLATION_ID: &str = "installation_id";
    /// Epoch milliseconds (N).
    pub const RECEIVED_AT: &str = "received_at";
}

/// The condition that records a delivery only once (intake puts [`delivery_item`] under it in its transaction).
pub(crate) const RECORD_ONCE: &str = "attribute_not_exists(delivery_id)";

pub(crate) async fn record(store: &DynamoStore, delivery: &DeliveryRecord) -> Result<bool, StoreError> {
    let item = delivery_item(store, delivery);
    // Again while intake's transaction writes the same delivery: then the put finds it there.
    let put = retry_transaction_conflicts(|| {
        store
            .client
            .put_item()
            .table_name(&store.tables.deliveries)
            .set_item(Some(item.clone()))
            .condition_expression(RECORD_ONCE)
            .send()
    })
    .await;
    match put {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.as_service_error(), Some(PutItemError::ConditionalCheckFailedException(_))) => Ok(false),
        Err(e) => Err(backend(OP_RECORD)(e)),
    }
}

pub(crate) async fn seen(store: &DynamoStore, id: &DeliveryId) -> Result<bool, StoreError> {
    let answer = store
        .client
        .get_item()
        .table_name(&store.tables.deliveries)
        .key(DELIVERY_ID, s(id.as_str()))
        .projection_expression(DELIVERY_ID)
        .consistent_read(true)
        .send()
        .await
        .map_err(backend(OP_SEEN))?;
    Ok(answer.item.is_some())
}

/// The item of a delivery, with its TTL (intake writes it inside its own transaction, under [`RECORD_ONCE`]).
pub(crate) fn delivery_item(store: &DynamoStore, delivery: &DeliveryRecord) -> Item {
    let expires_from = delivery.received_at.max(Utc::now());
    let expires_at = chrono::Duration::from_std(store.options.ttl)
        .ok()
        .and_then(|ttl| expires_from.checked_add_signed(ttl))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let mut item: Item = [
        (DELIVERY_ID.to_owned(), s(delivery.delivery_id.as_str())),
        (attribute::EVENT.to_owned(), s(delivery.event.as_str())),
        (attribute::RECEIVED_AT.to_owned(), ts_ms(delivery.received_at)),
        (TTL_ATTRIBUTE.to_owned(), epoch_seconds(expires_at)),
    ]
    .into();
    if let Some(action) = &delivery.action {
        item.insert(attribute::ACTION.to_owned(), s(action.as_str()));
    }
    if let Some(installation) = delivery.installation_id {
        item.insert(attribute::INSTALLATION_ID.to_owned(), n(installation.0));
    }
    item
}
