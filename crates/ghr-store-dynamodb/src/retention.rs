//! Retention: prune old deliveries and completed jobs in bounded batches (TTL is the backstop).

use crate::DynamoStore;
use ghr_core::Timestamp;
use ghr_core::ports::Pruned;
use ghr_core::ports::StoreError;

pub(crate) async fn prune(store: &DynamoStore, before: Timestamp) -> Result<Pruned, StoreError> {
    todo!("{store:?} {before}")
}
