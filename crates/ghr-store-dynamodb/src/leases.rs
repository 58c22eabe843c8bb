//! Leases on singleton work, as conditional writes in `<p>-state`.

use crate::DynamoStore;
use ghr_core::ports::StoreError;
use ghr_core::ports::{LeaseRequest, LeaseState};

pub(crate) async fn acquire(store: &DynamoStore, request: LeaseRequest) -> Result<LeaseState, StoreError> {
    todo!("{store:?} {request:?}")
}

pub(crate) async fn release(store: &DynamoStore, name: &str, holder: &str) -> Result<(), StoreError> {
    todo!("{store:?} {name} {holder}")
}
