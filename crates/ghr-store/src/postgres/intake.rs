//! Intake on PostgreSQL. (Being written.)
use super::write::Writer;
use crate::codec::backend;
use ghr_core::intake::{JobIntake, JobIntakeOutcome};
use ghr_core::ports::StoreError;

fn pending(op: &'static str) -> StoreError {
    backend(op)(sqlx::Error::Protocol("not written yet".into()))
}

pub(super) async fn intake(_w: &Writer, batch: Vec<JobIntake>) -> Vec<Result<JobIntakeOutcome, StoreError>> {
    batch.iter().map(|_| Err(pending("x"))).collect()
}
