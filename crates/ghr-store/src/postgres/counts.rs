//! Counts on PostgreSQL. (Being written.)
use crate::codec::backend;
use ghr_core::ids::InstallationId;
use ghr_core::job::JobStatus;
use ghr_core::ports::{RunnerSeries, StoreError};
use ghr_core::reason::Reason;
use ghr_core::tenant::TenantStatus;
use sqlx::PgPool;
use std::collections::BTreeMap;

fn pending(op: &'static str) -> StoreError {
    backend(op)(sqlx::Error::Protocol("not written yet".into()))
}

pub(super) async fn tenants(_pool: &PgPool) -> Result<BTreeMap<TenantStatus, u64>, StoreError> {
    Err(pending("x"))
}
pub(super) async fn jobs(_pool: &PgPool) -> Result<BTreeMap<JobStatus, u64>, StoreError> {
    Err(pending("x"))
}
pub(super) async fn waiting(
    _pool: &PgPool,
    _i: Option<InstallationId>,
) -> Result<BTreeMap<Option<Reason>, u64>, StoreError> {
    Err(pending("x"))
}
pub(super) async fn live_series(_pool: &PgPool) -> Result<RunnerSeries, StoreError> {
    Err(pending("x"))
}
