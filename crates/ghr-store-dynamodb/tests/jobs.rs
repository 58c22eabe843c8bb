//! Jobs, timelines, counters and intake on DynamoDB (the moto emulator; `GHR_TEST_MOTO_ENDPOINT`): the
//! conformance contracts of that area one by one, and what only a store with several replicas can show.

use ghr_core::ports::Store;
use ghr_store::conformance as contract;
use ghr_store_dynamodb::testing::fresh_store;
use std::sync::Arc;

async fn store() -> Arc<dyn Store> {
    Arc::new(fresh_store().await)
}

macro_rules! contracts {
    ($($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                contract::$name(store().await).await;
            }
        )+
    };
}

contracts!(
    job_observe_moves_forward_only,
    job_observe_completed_before_queued,
    job_observe_keeps_creation_fields,
    job_timeline_records_changes,
    job_wait_reason_logged_only_on_change,
    job_list_wanting_runner_is_fifo,
    job_list_filters,
);
