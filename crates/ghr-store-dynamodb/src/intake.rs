//! Webhook intake: per delivery one transaction (dedupe, job observation, runner binding, delivery record).

use crate::DynamoStore;
use ghr_core::intake::{JobIntake, JobIntakeOutcome};
use ghr_core::ports::StoreError;

pub(crate) async fn intake_jobs(
    store: &DynamoStore,
    batch: Vec<JobIntake>,
) -> Vec<Result<JobIntakeOutcome, StoreError>> {
    todo!("{store:?} {batch:?}")
}
