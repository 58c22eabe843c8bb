//! Counter repair: recount live runners per tenant and for the deployment from the runner records.

use crate::DynamoStore;
use ghr_core::Timestamp;
use ghr_core::ports::StoreError;

pub(crate) async fn repair_counts(store: &DynamoStore, now: Timestamp) -> Result<u64, StoreError> {
    todo!("{store:?} {now}")
}
