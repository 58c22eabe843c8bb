//! Checkpoints: named progress markers in `<p>-state`.

use crate::DynamoStore;
use ghr_core::Timestamp;
use ghr_core::ports::StoreError;

pub(crate) async fn get(store: &DynamoStore, name: &str) -> Result<Option<String>, StoreError> {
    todo!("{store:?} {name}")
}

pub(crate) async fn set(store: &DynamoStore, name: &str, value: &str, now: Timestamp) -> Result<(), StoreError> {
    todo!("{store:?} {name} {value} {now}")
}
