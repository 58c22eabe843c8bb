//! Retention on the emulator, with items written directly through the SDK in the store's layout: old
//! deliveries and old completed jobs go (with their timelines and a status-counter decrement), everything else
//! stays, and a job changed since the scan read it is kept.

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use ghr_core::Timestamp;
use ghr_core::ports::{Pruned, Store};
use ghr_store_dynamodb::DynamoStore;
use ghr_store_dynamodb::testing::fresh_store;
use std::collections::HashMap;

fn at(secs: i64) -> Timestamp {
    Timestamp::UNIX_EPOCH + chrono::Duration::seconds(secs)
}

fn n(value: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn ms(secs: i64) -> AttributeValue {
    n(at(secs).timestamp_millis())
}

async fn put(store: &DynamoStore, table: &str, item: HashMap<String, AttributeValue>) {
    store.client().put_item().table_name(table).set_item(Some(item)).send().await.expect("put item");
}

async fn delivery(store: &DynamoStore, id: &str, received: i64) {
    let item = HashMap::from([
        ("delivery_id".to_owned(), s(id)),
        ("event".to_owned(), s("workflow_job")),
        ("received_at".to_owned(), ms(received)),
        ("expires_at".to_owned(), n(at(received).timestamp() + 86_400)),
    ]);
    put(store, &store.tables().deliveries, item).await;
}

async fn job(store: &DynamoStore, id: u64, status: &str, updated: i64, events: usize) {
    let mut item = HashMap::from([
        ("job_id".to_owned(), n(id)),
        ("installation_id".to_owned(), n(80)),
        ("status".to_owned(), s(status)),
        ("received_at".to_owned(), ms(1)),
        ("updated_at".to_owned(), ms(updated)),
    ]);
    if events > 0 {
        let entry = AttributeValue::M(HashMap::from([("kind".to_owned(), s("observed"))]));
        item.insert("timeline".to_owned(), AttributeValue::L(vec![entry; events]));
    }
    put(store, &store.tables().jobs, item).await;
}

async fn exists(store: &DynamoStore, table: &str, key: &str, value: AttributeValue) -> bool {
    let answer =
        store.client().get_item().table_name(table).key(key, value).consistent_read(true).send().await.expect("get");
    answer.item.is_some()
}

/// The completed-jobs count: the sum of its shards (`jobs#completed#<shard>` in `<p>-state`).
async fn completed_count(store: &DynamoStore) -> i64 {
    let answer =
        store.client().scan().table_name(&store.tables().state).consistent_read(true).send().await.expect("scan");
    answer
        .items()
        .iter()
        .filter(|item| matches!(item.get("pk"), Some(AttributeValue::S(pk)) if pk.starts_with("jobs#completed#")))
        .map(|item| match item.get("count") {
            Some(AttributeValue::N(count)) => count.parse::<i64>().expect("a count"),
            _ => 0,
        })
        .sum()
}

#[tokio::test]
async fn prune_deletes_old_deliveries_and_completed_jobs_with_their_timelines() {
    let store = fresh_store().await;
    delivery(&store, "old", 10).await;
    delivery(&store, "new", 100).await;
    job(&store, 801, "queued", 5, 1).await;
    job(&store, 802, "completed", 5, 3).await;
    job(&store, 803, "completed", 200, 2).await;
    job(&store, 804, "completed", 6, 0).await;
    job(&store, 805, "in_progress", 5, 2).await;

    let pruned = store.prune(at(50)).await.expect("prune");
    assert_eq!(pruned, Pruned { deliveries: 1, jobs: 2, job_events: 3 }, "802 with 3 entries, 804 without any");
    let jobs = &store.tables().jobs;
    assert!(!exists(&store, &store.tables().deliveries, "delivery_id", s("old")).await);
    assert!(exists(&store, &store.tables().deliveries, "delivery_id", s("new")).await, "a recent delivery stays");
    assert!(exists(&store, jobs, "job_id", n(801)).await, "a queued job is never pruned");
    assert!(!exists(&store, jobs, "job_id", n(802)).await, "an old completed job goes, timeline and all");
    assert!(exists(&store, jobs, "job_id", n(803)).await, "a recently completed job stays");
    assert!(!exists(&store, jobs, "job_id", n(804)).await);
    assert!(exists(&store, jobs, "job_id", n(805)).await, "a running job is never pruned");
    assert_eq!(completed_count(&store).await, -2, "each pruned job lowered the completed count in its transaction");
    assert_eq!(store.prune(at(50)).await.expect("prune again"), Pruned::default(), "pruning is idempotent");
}

/// Items written 25 a call (moto takes tens of milliseconds a request).
async fn put_all(store: &DynamoStore, table: &str, items: Vec<HashMap<String, AttributeValue>>) {
    for chunk in items.chunks(25) {
        let writes = chunk
            .iter()
            .map(|item| {
                let put = PutRequest::builder().set_item(Some(item.clone())).build().expect("an item");
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        let answer = store.client().batch_write_item().request_items(table, writes).send().await.expect("batch write");
        assert!(answer.unprocessed_items().is_none_or(HashMap::is_empty), "the emulator does not throttle");
    }
}

/// More items than one Scan page reads: the pass goes on to the next pages, also past pages where the filter
/// kept nothing.
#[tokio::test]
async fn prune_goes_through_every_scan_page() {
    let store = fresh_store().await;
    let deliveries = 1_100;
    let items = (0..deliveries)
        .map(|i| HashMap::from([("delivery_id".to_owned(), s(&format!("d{i}"))), ("received_at".to_owned(), ms(10))]))
        .collect();
    put_all(&store, &store.tables().deliveries, items).await;
    let queued = (1..=1_100u64)
        .map(|id| {
            HashMap::from([
                ("job_id".to_owned(), n(id)),
                ("status".to_owned(), s("queued")),
                ("updated_at".to_owned(), ms(5)),
            ])
        })
        .collect();
    put_all(&store, &store.tables().jobs, queued).await;
    for id in [5_001, 5_002, 5_003] {
        job(&store, id, "completed", 5, 1).await;
    }
    let pruned = store.prune(at(50)).await.expect("prune");
    assert_eq!(pruned, Pruned { deliveries, jobs: 3, job_events: 3 }, "every page of both scans");
    let left = store.client().scan().table_name(&store.tables().deliveries).send().await.expect("scan");
    assert_eq!(left.count(), 0);
}
