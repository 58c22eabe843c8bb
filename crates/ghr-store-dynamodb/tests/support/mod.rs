//! Helpers shared by the admission and repair tests: tenants made as an operator makes them (the seed's
//! `put-item` and `update-item`), queued jobs through the store, and reads of the raw counters.

#![allow(dead_code)] // each test binary uses its own part

use aws_sdk_dynamodb::types::AttributeValue;
use ghr_core::ids::{InstallationId, JobId, TierName};
use ghr_core::job::{JobObservation, JobStatus};
use ghr_core::ports::{Reservation, ReserveRequest, Store};
use ghr_store::conformance::{at, reserve_request};
use ghr_store_dynamodb::DynamoStore;

pub fn n(value: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

/// A tenant as an operator makes one by hand: the seed's attributes only (no `org_type`, no `metadata`, none
/// of ghr's counters). Over an existing item it replaces it whole, dropping ghr's counters.
pub async fn put_tenant_by_hand(store: &DynamoStore, id: u64, max_runners: u32) {
    store
        .client()
        .put_item()
        .table_name(&store.tables().tenants)
        .item("installation_id", n(id))
        .item("org_name", s(&format!("hand-{id}")))
        .item("status", s("active"))
        .item("tier", s("small"))
        .item("max_runners", n(max_runners))
        .item("created_at", s("2024-01-15T12:00:00Z"))
        .item("updated_at", s("2024-01-15T12:00:00Z"))
        .send()
        .await
        .expect("hand-made put-item");
}

/// The seed README's "Upgrade Tenant Tier" `update-item`, expression and attributes verbatim.
pub async fn seed_update_item(store: &DynamoStore, id: u64, tier: &str, max_runners: u32) {
    store
        .client()
        .update_item()
        .table_name(&store.tables().tenants)
        .key("installation_id", n(id))
        .update_expression("SET tier = :tier, max_runners = :max, updated_at = :now")
        .expression_attribute_values(":tier", s(tier))
        .expression_attribute_values(":max", n(max_runners))
        .expression_attribute_values(":now", s("2024-01-15T12:00:00Z"))
        .send()
        .await
        .expect("the seed's update-item");
}

/// Set (or, with None, remove) one numeric attribute by hand, as an operator or a restore would.
pub async fn set_by_hand(
    store: &DynamoStore,
    table: &str,
    key: (&str, AttributeValue),
    name: &str,
    value: Option<u64>,
) {
    let update =
        store.client().update_item().table_name(table).key(key.0, key.1).expression_attribute_names("#a", name);
    let update = match value {
        Some(value) => update.update_expression("SET #a = :v").expression_attribute_values(":v", n(value)),
        None => update.update_expression("REMOVE #a"),
    };
    update.send().await.expect("hand edit");
}

/// A numeric attribute of an item (None when absent or no item).
pub async fn read_number(store: &DynamoStore, table: &str, key: (&str, AttributeValue), name: &str) -> Option<u64> {
    let item = store.client().get_item().table_name(table).key(key.0, key.1).consistent_read(true).send().await;
    match item.expect("get-item").item?.get(name)? {
        AttributeValue::N(value) => Some(value.parse().expect("a number")),
        other => panic!("{name} is not a number: {other:?}"),
    }
}

pub async fn tenant_live_runners(store: &DynamoStore, id: u64) -> Option<u64> {
    read_number(store, &store.tables().tenants, ("installation_id", n(id)), "live_runners").await
}

pub async fn global_live_runners(store: &DynamoStore) -> Option<u64> {
    read_number(store, &store.tables().state, ("pk", s("runners#live")), "count").await
}

/// Queue `count` jobs of one tenant on `tier`, ids from `first`, through the store.
pub async fn queue(store: &dyn Store, installation: u64, tier: &str, first: u64, count: u64) {
    for job in first..first + count {
        let observation = JobObservation {
            job_id: JobId(job),
            installation_id: InstallationId(installation),
            repository: format!("org-{installation}/app"),
            labels: vec!["self-hosted".to_owned(), tier.to_owned()],
            tier: Some(TierName::from(tier)),
            status: JobStatus::Queued,
            conclusion: None,
            runner_name: None,
            queued_at: Some(at(0)),
            started_at: None,
            completed_at: None,
            observed_at: at(0),
        };
        store.job_observe(observation).await.expect("job_observe");
    }
}

pub fn request(installation: u64, secs: i64, cap: Option<u32>) -> ReserveRequest {
    ReserveRequest { global_cap: cap, ..reserve_request(installation, "small", secs) }
}

/// Reserve, insisting on no error.
pub async fn reserve(store: &dyn Store, request: ReserveRequest) -> Reservation {
    store
        .runner_reserve(request)
        .await
        .unwrap_or_else(|e| panic!("runner_reserve failed: {}", ghr_core::error::ErrorChain(&e)))
}
