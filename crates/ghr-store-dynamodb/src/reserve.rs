//! Admission: one `TransactWriteItems` creates the runner and takes the tenant's slot (and the global one),
//! conditioned on the tenant's status, `live_runners < max_runners` and the live version read.

use crate::DynamoStore;
use ghr_core::ports::StoreError;
use ghr_core::ports::{Reservation, ReserveRequest};

pub(crate) async fn reserve(store: &DynamoStore, request: ReserveRequest) -> Result<Reservation, StoreError> {
    todo!("{store:?} {request:?}")
}
