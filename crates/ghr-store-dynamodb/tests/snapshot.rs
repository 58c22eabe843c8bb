//! The snapshot and retention contracts of the storage conformance suite on DynamoDB (the moto emulator;
//! `GHR_TEST_MOTO_ENDPOINT`), one test each so that a failure names its contract.

use ghr_core::ports::Store;
use ghr_store::conformance;
use ghr_store_dynamodb::testing::fresh_store;
use std::sync::Arc;

async fn store() -> Arc<dyn Store> {
    Arc::new(fresh_store().await)
}

#[tokio::test]
async fn job_set_wait_reasons_applies_each_change_once() {
    conformance::job_set_wait_reasons_applies_each_change_once(store().await).await;
}

#[tokio::test]
async fn prune_forgets_old_deliveries_and_completed_jobs() {
    conformance::prune_forgets_old_deliveries_and_completed_jobs(store().await).await;
}
