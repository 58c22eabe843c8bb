//! Usage on PostgreSQL. (Being written.)
use crate::codec::backend;
use ghr_core::Timestamp;
use ghr_core::cost::UsageRow;
use ghr_core::ports::StoreError;
use sqlx::PgPool;

fn pending(op: &'static str) -> StoreError {
    backend(op)(sqlx::Error::Protocol("not written yet".into()))
}

pub(super) async fn usage(
    _pool: &PgPool,
    _f: Timestamp,
    _t: Timestamp,
    _n: Timestamp,
) -> Result<Vec<UsageRow>, StoreError> {
    Err(pending("x"))
}
