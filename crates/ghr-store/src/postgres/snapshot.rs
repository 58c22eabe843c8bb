//! Planner snapshots on PostgreSQL. (Being written.)
use crate::codec::backend;
use ghr_core::planner::dispatch::{DemandQuery, DemandSnapshot};
use ghr_core::planner::fleet::{FleetRecords, StaleQuery};
use ghr_core::ports::StoreError;
use sqlx::PgPool;

fn pending(op: &'static str) -> StoreError {
    backend(op)(sqlx::Error::Protocol("not written yet".into()))
}

pub(super) async fn demand(_p: &PgPool, _q: DemandQuery) -> Result<DemandSnapshot, StoreError> {
    Err(pending("x"))
}
pub(super) async fn fleet(_p: &PgPool, _q: StaleQuery) -> Result<FleetRecords, StoreError> {
    Err(pending("x"))
}
