//! Reservations on PostgreSQL. (Being written.)
use crate::codec::backend;
use ghr_core::ports::{Reservation, ReserveRequest, StoreError};
use sqlx::PgConnection;

pub(super) const OP: &str = "runner_reserve";

fn pending(op: &'static str) -> StoreError {
    backend(op)(sqlx::Error::Protocol("not written yet".into()))
}

pub(super) async fn reserve(_c: &mut PgConnection, _r: &ReserveRequest) -> Result<Reservation, StoreError> {
    Err(pending(OP))
}
