//! Admission on DynamoDB (the moto emulator; `GHR_TEST_MOTO_ENDPOINT`): the conformance contracts of
//! `runner_reserve`, and what only a store without a lock server must show.

use ghr_core::ports::Store;
use ghr_store::conformance;
use ghr_store_dynamodb::testing::fresh_store;
use std::sync::Arc;

async fn store() -> Arc<dyn Store> {
    Arc::new(fresh_store().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reserve_contracts_pass() {
    conformance::reserve_refuses_unknown_tenant(store().await).await;
    conformance::reserve_covers_demand_once(store().await).await;
    conformance::reserve_limit_spans_tiers(store().await).await;
    conformance::reserve_respects_global_cap(store().await).await;
    conformance::reserve_refuses_inactive_tenants(store().await).await;
    conformance::reserve_scopes_user_tenants_by_repository(store().await).await;
    conformance::reserve_is_dated_after_earlier_releases(store().await).await;
    conformance::reserve_is_atomic_under_concurrency(store().await).await;
}

mod support;

use ghr_core::ids::InstallationId;
use ghr_core::ports::{Reservation, RunnerFilter};
use ghr_core::reason::Reason;
use ghr_core::runner::RunnerState;
use ghr_store::conformance::at;
use ghr_store_dynamodb::DynamoStore;
use ghr_store_dynamodb::testing::{store_on, unique_prefix};
use support::{
    global_live_runners, put_tenant_by_hand, queue, request, reserve, seed_update_item, tenant_live_runners,
};
use tokio::task::JoinSet;

const REPLICAS: usize = 4;
const CONCURRENT: usize = 200;

/// Four stores on one prefix: replicas sharing the tables, each with its own client.
async fn replicas() -> Vec<DynamoStore> {
    let prefix = unique_prefix();
    let mut stores = Vec::new();
    for _ in 0..REPLICAS {
        stores.push(store_on(&prefix).await);
    }
    stores
}

/// Outcomes of `CONCURRENT` reservations spread over the replicas, for the tenants given in turn.
async fn race(stores: &[DynamoStore], tenants: &[u64], cap: Option<u32>) -> Vec<Reservation> {
    let mut tasks = JoinSet::new();
    for task in 0..CONCURRENT {
        let store = stores[task % stores.len()].clone();
        let tenant = tenants[task % tenants.len()];
        tasks.spawn(async move { reserve(&store, request(tenant, task as i64, cap)).await });
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        outcomes.push(joined.expect("reservation task"));
    }
    outcomes
}

fn reserved(outcomes: &[Reservation]) -> usize {
    outcomes.iter().filter(|o| matches!(o, Reservation::Reserved(_))).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_reservations_from_four_replicas_never_admit_a_fourth() {
    let stores = replicas().await;
    // Made by hand with the seed's put-item: no counters yet, which count as 0.
    put_tenant_by_hand(&stores[0], 31, 3).await;
    queue(&stores[0], 31, "small", 31_000, 10).await;
    let outcomes = race(&stores, &[31], None).await;
    for outcome in &outcomes {
        assert!(
            matches!(outcome, Reservation::Reserved(_) | Reservation::Refused(Reason::TenantAtLimit)),
            "unexpected outcome {outcome:?}"
        );
    }
    assert_eq!(reserved(&outcomes), 3, "max_runners = 3 admits exactly 3 of {CONCURRENT}");
    let stored = stores[1].runner_list(RunnerFilter::default()).await.expect("runner_list");
    assert_eq!(stored.len(), 3, "exactly the admitted runners are stored");
    assert_eq!(tenant_live_runners(&stores[2], 31).await, Some(3), "the tenant's count is the runners'");
    assert_eq!(global_live_runners(&stores[3]).await, Some(3), "the deployment's count is the runners'");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_global_cap_holds_across_tenants_and_replicas() {
    const CAP: u32 = 5;
    let stores = replicas().await;
    let tenants = [41, 42, 43, 44];
    for id in tenants {
        put_tenant_by_hand(&stores[0], id, 10).await;
        queue(&stores[0], id, "small", id * 1_000, 10).await;
    }
    let outcomes = race(&stores, &tenants, Some(CAP)).await;
    for outcome in &outcomes {
        assert!(
            matches!(outcome, Reservation::Reserved(_) | Reservation::Refused(Reason::GlobalCap)),
            "unexpected outcome {outcome:?}"
        );
    }
    assert_eq!(reserved(&outcomes), CAP as usize, "a cap of {CAP} admits exactly {CAP} across 4 tenants");
    let live = stores[1].runner_live_counts().await.expect("runner_live_counts");
    assert_eq!(live.values().sum::<u32>(), CAP);
    assert_eq!(global_live_runners(&stores[2]).await, Some(u64::from(CAP)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reservations_start_one_runner_per_queued_job_as_sqlite_would() {
    let stores = replicas().await;
    put_tenant_by_hand(&stores[0], 51, 50).await;
    queue(&stores[0], 51, "small", 51_000, 2).await;
    let outcomes = race(&stores, &[51], None).await;
    for outcome in &outcomes {
        assert!(matches!(outcome, Reservation::Reserved(_) | Reservation::NoDemand), "unexpected {outcome:?}");
    }
    assert_eq!(reserved(&outcomes), 2, "two queued jobs, two runners: the rest see the demand covered");
    assert_eq!(tenant_live_runners(&stores[1], 51).await, Some(2));
}

#[tokio::test]
async fn a_tier_upgraded_by_the_seeds_update_item_is_obeyed_by_the_very_next_reservation() {
    let stores = replicas().await;
    let (store, other) = (&stores[0], &stores[1]);
    put_tenant_by_hand(store, 61, 1).await;
    queue(store, 61, "small", 61_000, 3).await;
    assert!(matches!(reserve(store, request(61, 1, None)).await, Reservation::Reserved(_)));
    assert_eq!(reserve(other, request(61, 2, None)).await, Reservation::Refused(Reason::TenantAtLimit));

    seed_update_item(store, 61, "medium", 2).await;
    let upgraded = reserve(other, request(61, 3, None)).await;
    let Reservation::Reserved(runner) = upgraded else { panic!("after the upgrade: {upgraded:?}") };
    assert_eq!(runner.tenant_tier.as_str(), "medium", "the runner carries the plan read at reservation time");
    assert_eq!(reserve(store, request(61, 4, None)).await, Reservation::Refused(Reason::TenantAtLimit));

    // Lowered by hand below the live runners: nothing more is admitted, even after a release.
    seed_update_item(store, 61, "small", 1).await;
    other.runner_update(&runner.name, ghr_core::ports::RunnerUpdate::state(RunnerState::Failed, at(5))).await.unwrap();
    assert_eq!(reserve(other, request(61, 6, None)).await, Reservation::Refused(Reason::TenantAtLimit));
    let live = store.runner_live_counts().await.expect("runner_live_counts");
    assert_eq!(live.get(&InstallationId(61)), Some(&1));
}

#[tokio::test]
async fn a_runner_the_live_index_does_not_show_yet_still_covers_its_job() {
    let store = ghr_store_dynamodb::testing::fresh_store().await;
    put_tenant_by_hand(&store, 81, 10).await;
    queue(&store, 81, "small", 81_000, 1).await;
    let Reservation::Reserved(runner) = reserve(&store, request(81, 1, None)).await else { panic!("not reserved") };
    // As the index looks while it lags behind the table: the runner item without its index keys.
    store
        .client()
        .update_item()
        .table_name(&store.tables().runners)
        .key("runner_name", support::s(runner.name.as_str()))
        .update_expression("REMOVE live_tenant, live_order")
        .send()
        .await
        .expect("hide the runner from the index");
    assert_eq!(reserve(&store, request(81, 2, None)).await, Reservation::NoDemand, "the job has its runner");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_made_again_by_hand_over_its_running_runners_is_not_admitted_past_its_limit() {
    let stores = replicas().await;
    put_tenant_by_hand(&stores[0], 71, 3).await;
    queue(&stores[0], 71, "small", 71_000, 10).await;
    for (i, store) in stores.iter().take(3).enumerate() {
        assert!(matches!(reserve(store, request(71, i as i64, None)).await, Reservation::Reserved(_)));
    }
    // The reference's put-item over the existing item drops ghr's counters while three runners still run.
    put_tenant_by_hand(&stores[1], 71, 3).await;
    assert_eq!(tenant_live_runners(&stores[0], 71).await, None, "the hand-made item carries no count");

    let outcomes = race(&stores, &[71], None).await;
    assert_eq!(reserved(&outcomes), 0, "the three live runners fill the limit: {outcomes:?}");
    assert_eq!(tenant_live_runners(&stores[2], 71).await, Some(3), "the count is re-established from the runners");
    let live = stores[3].runner_live_counts().await.expect("runner_live_counts");
    assert_eq!(live.get(&InstallationId(71)), Some(&3), "never more than max_runners live");
}
