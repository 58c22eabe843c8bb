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

/// A tenant item broken by hand (`max_runners` typed as a string) leaves that tenant out of dispatch, with its
/// jobs as they were, while every other tenant is planned; the reconciler still sees its running runners under a
/// tenant it does not tear down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_item_broken_by_hand_stops_only_that_tenant() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use ghr_core::ids::InstallationId;
    use ghr_core::planner::dispatch::DemandQuery;
    use ghr_core::planner::fleet::StaleQuery;
    use ghr_core::tenant::TenantStatus;

    let dynamo = fresh_store().await;
    let store: &dyn Store = &dynamo;
    for (id, org) in [(81, "acme"), (82, "globex")] {
        let tenant = contract::new_tenant(id, org, TenantStatus::Active, "small", 3);
        store.tenant_create(tenant, contract::at(1)).await.expect("tenant_create");
        for job in 0..2 {
            let observation = contract::queued(id * 1000 + job, id, &format!("{org}/app"), Some("small"), 2);
            store.job_observe(observation).await.expect("job_observe");
        }
    }
    let reserved = store.runner_reserve(contract::reserve_request(82, "small", 10)).await.expect("reserve");
    let ghr_core::ports::Reservation::Reserved(broken_runner) = reserved else { panic!("{reserved:?}") };
    dynamo
        .client()
        .update_item()
        .table_name(&dynamo.tables().tenants)
        .key("installation_id", AttributeValue::N("82".into()))
        .update_expression("SET max_runners = :m")
        .expression_attribute_values(":m", AttributeValue::S("5".into()))
        .send()
        .await
        .expect("update-item by hand");

    let snapshot = store.demand_snapshot(DemandQuery { tenants: None, global_cap: None }).await.expect("snapshot");
    assert!(snapshot.tenants.contains_key(&InstallationId(81)), "the readable tenant is planned: {snapshot:?}");
    assert!(!snapshot.tenants.contains_key(&InstallationId(82)), "the broken tenant is left out: {snapshot:?}");
    assert!(snapshot.jobs.iter().all(|j| j.installation_id == InstallationId(81)), "{:?}", snapshot.jobs);
    assert_eq!(snapshot.jobs.len(), 2, "the readable tenant's jobs are all there");

    let stale = StaleQuery { before: contract::at(0), queued_after: None, in_progress_after: None, limit: 10 };
    let fleet = store.fleet_records(stale).await.expect("fleet records");
    assert!(fleet.live.iter().any(|r| r.name == broken_runner.name), "its runner is still in the fleet");
    let tenant = fleet.tenants.get(&InstallationId(82)).expect("the broken tenant is in the fleet's tenants");
    assert_eq!(tenant.status, TenantStatus::Active, "read as active, so its running jobs are not torn down");
}
