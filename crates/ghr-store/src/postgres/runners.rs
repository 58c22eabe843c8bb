//! Runners on PostgreSQL. (Being written.)
use crate::codec::backend;
use ghr_core::ids::{InstallationId, RunnerName};
use ghr_core::ports::{RunnerFilter, RunnerUpdate, StoreError};
use ghr_core::runner::Runner;
use sqlx::{PgConnection, PgPool};
use std::collections::BTreeMap;

pub(super) const OP_UPDATE: &str = "runner_update";

fn pending(op: &'static str) -> StoreError {
    backend(op)(sqlx::Error::Protocol("not written yet".into()))
}

pub(super) async fn update(
    _c: &mut PgConnection,
    _n: &RunnerName,
    _u: RunnerUpdate,
) -> Result<Option<Runner>, StoreError> {
    Err(pending("x"))
}
pub(super) async fn get(_p: &PgPool, _n: &RunnerName) -> Result<Option<Runner>, StoreError> {
    Err(pending("x"))
}
pub(super) async fn list(_p: &PgPool, _f: RunnerFilter) -> Result<Vec<Runner>, StoreError> {
    Err(pending("x"))
}
pub(super) async fn live_counts(_p: &PgPool) -> Result<BTreeMap<InstallationId, u32>, StoreError> {
    Err(pending("x"))
}
