//! The planner-snapshot and retention contracts of the storage conformance suite on DynamoDB (the moto emulator;
//! `GHR_TEST_MOTO_ENDPOINT`), one test each so that a failure names its contract. (The wait-reason batch and
//! the counter recount run with the jobs tests.)

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
    demand_snapshot_reads_the_tenants_asked_for,
    demand_snapshot_skips_reasoned_jobs_of_tenants_without_headroom,
    fleet_records_hold_what_the_reconciler_plans_from,
    prune_forgets_old_deliveries_and_completed_jobs,
);
