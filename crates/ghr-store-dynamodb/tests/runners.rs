//! Runner records, usage and counter repair on DynamoDB (the moto emulator; `GHR_TEST_MOTO_ENDPOINT`): the
//! conformance contracts of this area, and the repair of live-runner counts that drifted outside ghr.

use ghr_core::ports::Store;
use ghr_store::conformance;
use ghr_store_dynamodb::testing::fresh_store;
use std::sync::Arc;

async fn store() -> Arc<dyn Store> {
    Arc::new(fresh_store().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_contracts_pass() {
    conformance::runner_update_follows_lifecycle(store().await).await;
    conformance::runner_update_failure_and_field_updates(store().await).await;
    conformance::runner_bound_before_its_launch_is_recorded(store().await).await;
    conformance::runner_list_and_live_counts(store().await).await;
    conformance::usage_clips_to_the_period(store().await).await;
}

mod support;

use ghr_core::ids::InstallationId;
use ghr_core::ports::{Reservation, RunnerUpdate};
use ghr_core::reason::Reason;
use ghr_core::runner::RunnerState;
use ghr_store::conformance::at;
use ghr_store_dynamodb::DynamoStore;
use ghr_store_dynamodb::testing::{store_on, unique_prefix};
use support::{
    global_live_runners, n, put_tenant_by_hand, queue, request, reserve, s, set_by_hand, tenant_live_runners,
};

/// Long after every change the tests make: counts have stood still (the live-index has caught up).
fn later() -> ghr_core::Timestamp {
    at(100_000)
}

async fn reserved(store: &DynamoStore, installation: u64, secs: i64) -> ghr_core::runner::Runner {
    match reserve(store, request(installation, secs, None)).await {
        Reservation::Reserved(runner) => *runner,
        other => panic!("expected a reservation for {installation}, got {other:?}"),
    }
}

async fn set_tenant_count(store: &DynamoStore, id: u64, value: Option<u64>) {
    set_by_hand(store, &store.tables().tenants, ("installation_id", n(id)), "live_runners", value).await;
}

#[tokio::test]
async fn a_count_set_too_high_by_hand_is_repaired_and_the_tenant_served_again() {
    let store = ghr_store_dynamodb::testing::fresh_store().await;
    put_tenant_by_hand(&store, 71, 2).await;
    queue(&store, 71, "small", 71_000, 3).await;
    let first = reserved(&store, 71, 1).await;
    set_tenant_count(&store, 71, Some(2)).await;
    assert_eq!(reserve(&store, request(71, 2, None)).await, Reservation::Refused(Reason::TenantAtLimit), "blocked");

    assert_eq!(store.repair_counts(later()).await.expect("repair_counts"), 1, "one count fixed");
    assert_eq!(tenant_live_runners(&store, 71).await, Some(1), "recounted from the live runner");
    reserved(&store, 71, 3).await;
    assert_eq!(reserve(&store, request(71, 4, None)).await, Reservation::Refused(Reason::TenantAtLimit));
    assert_eq!(store.repair_counts(later()).await.expect("repair_counts"), 0, "nothing left to fix");

    // A tenant with no live runner at all is found by the walk over the tenant table.
    store.runner_update(&first.name, RunnerUpdate::state(RunnerState::Failed, at(5))).await.expect("update");
    put_tenant_by_hand(&store, 72, 1).await;
    set_tenant_count(&store, 72, Some(1)).await;
    assert_eq!(store.repair_counts(later()).await.expect("repair_counts"), 1);
    assert_eq!(tenant_live_runners(&store, 72).await, Some(0));
}

#[tokio::test]
async fn a_count_too_low_or_dropped_by_a_hand_made_put_item_is_repaired_before_the_limit_is_exceeded() {
    let store = ghr_store_dynamodb::testing::fresh_store().await;
    for id in [73, 74] {
        put_tenant_by_hand(&store, id, 2).await;
        queue(&store, id, "small", id * 1_000, 4).await;
        reserved(&store, id, 1).await;
        reserved(&store, id, 2).await;
    }
    // 73: counts 0 by hand; 74: its item replaced by the seed's put-item (no counters at all).
    set_tenant_count(&store, 73, Some(0)).await;
    put_tenant_by_hand(&store, 74, 2).await;
    assert_eq!(tenant_live_runners(&store, 74).await, None, "put-item dropped ghr's counters");

    assert_eq!(store.repair_counts(later()).await.expect("repair_counts"), 2, "both counts fixed");
    for id in [73, 74] {
        assert_eq!(tenant_live_runners(&store, id).await, Some(2), "tenant {id} counts its 2 live runners");
        let outcome = reserve(&store, request(id, 3, None)).await;
        assert_eq!(outcome, Reservation::Refused(Reason::TenantAtLimit), "tenant {id} is at its real limit");
    }
    let live = store.runner_live_counts().await.expect("runner_live_counts");
    assert_eq!(live.get(&InstallationId(73)), Some(&2));
}

#[tokio::test]
async fn the_deployments_count_is_repaired_and_the_cap_obeyed() {
    let store = ghr_store_dynamodb::testing::fresh_store().await;
    put_tenant_by_hand(&store, 75, 10).await;
    queue(&store, 75, "small", 75_000, 5).await;
    reserved(&store, 75, 1).await;
    reserved(&store, 75, 2).await;
    let state = store.tables().state.clone();
    set_by_hand(&store, &state, ("pk", s("runners#live")), "count", Some(0)).await;
    assert_eq!(store.repair_counts(later()).await.expect("repair_counts"), 1);
    assert_eq!(global_live_runners(&store).await, Some(2));
    assert_eq!(reserve(&store, request(75, 3, Some(2))).await, Reservation::Refused(Reason::GlobalCap));

    set_by_hand(&store, &state, ("pk", s("runners#live")), "count", Some(9)).await;
    assert_eq!(reserve(&store, request(75, 4, Some(3))).await, Reservation::Refused(Reason::GlobalCap));
    assert_eq!(store.repair_counts(later()).await.expect("repair_counts"), 1);
    assert!(matches!(reserve(&store, request(75, 5, Some(3))).await, Reservation::Reserved(_)));
}

#[tokio::test]
async fn a_count_that_just_changed_is_left_until_the_live_index_has_caught_up() {
    let store = ghr_store_dynamodb::testing::fresh_store().await;
    put_tenant_by_hand(&store, 76, 3).await;
    queue(&store, 76, "small", 76_000, 2).await;
    reserved(&store, 76, 10).await;
    set_tenant_count(&store, 76, Some(3)).await;
    assert_eq!(store.repair_counts(at(11)).await.expect("repair_counts"), 0, "changed a second ago: left alone");
    assert_eq!(tenant_live_runners(&store, 76).await, Some(3));
    assert_eq!(store.repair_counts(later()).await.expect("repair_counts"), 1);
    assert_eq!(tenant_live_runners(&store, 76).await, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_repair_racing_reservations_never_lowers_a_count_below_the_live_runners() {
    const LIMIT: u32 = 4;
    let prefix = unique_prefix();
    let (a, b) = (store_on(&prefix).await, store_on(&prefix).await);
    put_tenant_by_hand(&a, 77, LIMIT).await;
    queue(&a, 77, "small", 77_000, 12).await;
    // Drift first, so that the repairs have something to do while reservations run.
    set_tenant_count(&a, 77, None).await;
    let mut reservations = tokio::task::JoinSet::new();
    for task in 0..24 {
        let store = if task % 2 == 0 { a.clone() } else { b.clone() };
        reservations.spawn(async move { reserve(&store, request(77, task, None)).await });
    }
    let repairs = {
        let store = b.clone();
        tokio::spawn(async move {
            for _ in 0..6 {
                store.repair_counts(later()).await.expect("repair_counts");
            }
        })
    };
    let mut admitted = 0;
    while let Some(outcome) = reservations.join_next().await {
        if matches!(outcome.expect("task"), Reservation::Reserved(_)) {
            admitted += 1;
        }
    }
    repairs.await.expect("repairs");
    let live = a.runner_live_counts().await.expect("runner_live_counts");
    let live = live.get(&InstallationId(77)).copied().unwrap_or(0);
    assert!(live <= LIMIT, "{live} live runners under a limit of {LIMIT}");
    assert_eq!(live, admitted, "every admitted runner is live");
    a.repair_counts(later()).await.expect("repair_counts");
    assert_eq!(tenant_live_runners(&a, 77).await, Some(u64::from(live)), "the count is the live runners");
}

#[tokio::test]
async fn an_unreadable_tenant_item_does_not_stop_the_others_repair() {
    let store = ghr_store_dynamodb::testing::fresh_store().await;
    put_tenant_by_hand(&store, 78, 2).await;
    put_tenant_by_hand(&store, 79, 2).await;
    let tenants = store.tables().tenants.clone();
    store
        .client()
        .update_item()
        .table_name(&tenants)
        .key("installation_id", n(78))
        .update_expression("SET #s = :s")
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":s", s("on-holiday"))
        .send()
        .await
        .expect("hand edit");
    set_tenant_count(&store, 79, Some(2)).await;
    assert_eq!(store.repair_counts(later()).await.expect("repair_counts"), 1, "79 repaired despite 78");
    assert_eq!(tenant_live_runners(&store, 79).await, Some(0));
}
