//! Health: a write that proves the tables take writes now.

use crate::DynamoStore;
use ghr_core::ports::StoreError;

pub(crate) async fn check_writable(store: &DynamoStore) -> Result<(), StoreError> {
    todo!("{store:?}")
}
