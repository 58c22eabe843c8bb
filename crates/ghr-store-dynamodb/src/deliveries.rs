//! Webhook deliveries: dedupe by a conditional put, expired by TTL.

use crate::DynamoStore;
use ghr_core::ids::DeliveryId;
use ghr_core::ports::DeliveryRecord;
use ghr_core::ports::StoreError;

pub(crate) async fn record(store: &DynamoStore, delivery: &DeliveryRecord) -> Result<bool, StoreError> {
    todo!("{store:?} {delivery:?}")
}

pub(crate) async fn seen(store: &DynamoStore, id: &DeliveryId) -> Result<bool, StoreError> {
    todo!("{store:?} {id}")
}

/// The item of a delivery, with its TTL (intake writes it inside its own transaction).
pub(crate) fn delivery_item(store: &DynamoStore, delivery: &DeliveryRecord) -> crate::item::Item {
    todo!("{store:?} {delivery:?}")
}
