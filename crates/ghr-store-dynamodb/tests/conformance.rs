//! The storage conformance suite on DynamoDB (the moto emulator; `GHR_TEST_MOTO_ENDPOINT`).

use ghr_core::ports::Store;
use ghr_store_dynamodb::testing::fresh_store;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_suite_passes_on_dynamodb() {
    ghr_store::conformance::run_all(|| async { Arc::new(fresh_store().await) as Arc<dyn Store> }).await;
}
