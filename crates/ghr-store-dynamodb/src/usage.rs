//! Usage: runner-seconds per tenant and tier from the runner records.

use crate::DynamoStore;
use ghr_core::Timestamp;
use ghr_core::cost::UsageRow;
use ghr_core::ports::StoreError;

pub(crate) async fn usage(
    store: &DynamoStore,
    from: Timestamp,
    to: Timestamp,
    now: Timestamp,
) -> Result<Vec<UsageRow>, StoreError> {
    todo!("{store:?} {from} {to} {now}")
}
