//! Retention on PostgreSQL. (Being written.)
use super::write::Writer;
use crate::codec::backend;
use ghr_core::ports::{Pruned, StoreError};

fn pending(op: &'static str) -> StoreError {
    backend(op)(sqlx::Error::Protocol("not written yet".into()))
}

pub(super) async fn prune(_w: &Writer, _before: i64) -> Result<Pruned, StoreError> {
    Err(pending("x"))
}
