//! Retention: prune old deliveries and completed jobs in bounded batches (TTL is the backstop).
//!
//! **Finding old items.** Neither table has an index by age, so each pass is a strongly consistent Scan with a
//! filter, one page of at most [`SCAN_PAGE`] items at a time: deliveries received before the cut, completed jobs
//! last updated before it. A Scan is billed for every item it reads, filtered or not, so an hourly pass costs
//! one read of the deliveries and jobs the tables hold. TTL keeps that bounded: every delivery and completed job
//! carries `expires_at` (`now + ttl`, a little past the retention), and DynamoDB deletes expired items for free
//! within a day or two, even when no ghr runs. Pruning is what keeps the job-status counters exact and makes
//! retention happen on time: a TTL deletion does not lower the completed count, and no repair recounts it (that
//! would scan every job), so a job TTL takes before a pass prunes it (no ghr ran for longer than the TTL's margin
//! past the retention) stays counted in `job_counts`, a gauge, never a limit.
//! A sparse index on `expires_at` projecting only the keys would cut the jobs pass to the completed jobs' keys;
//! the tables' index specs project ALL today, which would make such an index as costly to scan as the table.
//!
//! **Each delete is conditional on what was read.** A delivery goes only while it is still older than the cut.
//! A job goes in one `TransactWriteItems` with the decrement of its status counter, only while it is still
//! completed, with the `updated_at`, item version and number of timeline entries that were read: a job changed
//! meanwhile is kept (a later pass sees it again), and `Pruned::job_events` counts exactly the entries deleted.

use crate::DynamoStore;
use crate::counters::job_count_change;
use crate::deliveries::attribute::RECEIVED_AT as DELIVERY_RECEIVED_AT;
use crate::error::{MAX_ATTEMPTS, backend, cancellation_codes, contended, contention_backoff, is_contention};
use crate::item::{Item, Reader, n, s};
use crate::job_item::attr::{STATUS as JOB_STATUS, UPDATED_AT as JOB_UPDATED_AT, VERSION as JOB_VERSION};
use crate::tables::{delivery, job};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, TransactWriteItem};
use ghr_core::Timestamp;
use ghr_core::ids::JobId;
use ghr_core::job::JobStatus;
use ghr_core::ports::{Pruned, StoreError};
use tokio::task::JoinSet;

const OP_PRUNE: &str = "prune";
/// Items a Scan page reads (and so at most deletes) before the next page is asked for: one bounded batch.
pub(crate) const SCAN_PAGE: i32 = 500;
/// Delivery deletes in flight at once (each a single-item conditional delete).
const DELETES_IN_FLIGHT: usize = 16;

/// Delete what is older than `before`, deliveries first, then completed jobs with their timelines.
pub(crate) async fn prune(store: &DynamoStore, before: Timestamp) -> Result<Pruned, StoreError> {
    let deliveries = prune_deliveries(store, before).await?;
    let (jobs, job_events) = prune_jobs(store, before).await?;
    Ok(Pruned { deliveries, jobs, job_events })
}

/// Deliveries received before `before`, a Scan page at a time, each deleted while it is still that old.
async fn prune_deliveries(store: &DynamoStore, before: Timestamp) -> Result<u64, StoreError> {
    let mut pages = store
        .client
        .scan()
        .table_name(&store.tables.deliveries)
        .consistent_read(true)
        .limit(SCAN_PAGE)
        .filter_expression("#received < :before")
        .projection_expression("#id, #received")
        .expression_attribute_names("#id", delivery::DELIVERY_ID)
        .expression_attribute_names("#received", DELIVERY_RECEIVED_AT)
        .expression_attribute_values(":before", cut(before))
        .into_paginator()
        .send();
    let mut deleted = 0;
    while let Some(page) = pages.next().await {
        let page = page.map_err(backend(OP_PRUNE))?;
        let mut in_flight = JoinSet::new();
        for found in page.items.unwrap_or_default() {
            let Some(id) = found.get(delivery::DELIVERY_ID).cloned() else { continue };
            if in_flight.len() >= DELETES_IN_FLIGHT {
                deleted += joined(in_flight.join_next().await)?;
            }
            in_flight.spawn(delete_delivery(store.clone(), id, before));
        }
        while let Some(done) = in_flight.join_next().await {
            deleted += joined(Some(done))?;
        }
    }
    Ok(deleted)
}

fn joined(done: Option<Result<Result<bool, StoreError>, tokio::task::JoinError>>) -> Result<u64, StoreError> {
    match done {
        None => Ok(0),
        Some(Ok(outcome)) => outcome.map(u64::from),
        Some(Err(panicked)) => Err(StoreError::Backend { op: OP_PRUNE, source: Box::new(panicked) }),
    }
}

/// Delete one delivery if it is still older than `before` (a delivery recorded again since, after TTL took
/// the old record, is a new dedupe record and stays). False when it was not deleted.
async fn delete_delivery(store: DynamoStore, id: AttributeValue, before: Timestamp) -> Result<bool, StoreError> {
    let outcome = store
        .client
        .delete_item()
        .table_name(&store.tables.deliveries)
        .key(delivery::DELIVERY_ID, id)
        .condition_expression("#received < :before")
        .expression_attribute_names("#received", DELIVERY_RECEIVED_AT)
        .expression_attribute_values(":before", cut(before))
        .send()
        .await;
    match outcome {
        Ok(_) => Ok(true),
        Err(error) if matches!(error.as_service_error(), Some(DeleteItemError::ConditionalCheckFailedException(_))) => {
            Ok(false)
        }
        Err(error) => Err(backend(OP_PRUNE)(error)),
    }
}

/// Completed jobs last updated before `before`, a Scan page at a time, each deleted with its status counter.
async fn prune_jobs(store: &DynamoStore, before: Timestamp) -> Result<(u64, u64), StoreError> {
    let mut pages = store
        .client
        .scan()
        .table_name(&store.tables.jobs)
        .consistent_read(true)
        .limit(SCAN_PAGE)
        .filter_expression("#status = :completed AND #updated < :before")
        .projection_expression("#id, #status, #updated, #version, #timeline")
        .expression_attribute_names("#id", job::JOB_ID)
        .expression_attribute_names("#status", JOB_STATUS)
        .expression_attribute_names("#updated", JOB_UPDATED_AT)
        .expression_attribute_names("#version", JOB_VERSION)
        .expression_attribute_names("#timeline", job::TIMELINE)
        .expression_attribute_values(":completed", s(JobStatus::Completed.as_str()))
        .expression_attribute_values(":before", cut(before))
        .into_paginator()
        .send();
    let (mut jobs, mut job_events) = (0, 0);
    while let Some(page) = pages.next().await {
        let page = page.map_err(backend(OP_PRUNE))?;
        for found in page.items.unwrap_or_default() {
            let candidate = Candidate::read(&found)?;
            if delete_job(store, &candidate).await? {
                jobs += 1;
                job_events += candidate.events;
            }
        }
    }
    Ok((jobs, job_events))
}

/// A completed job as the Scan read it: what its delete is conditioned on.
#[derive(Debug, Clone, PartialEq)]
struct Candidate {
    id: JobId,
    /// `updated_at` exactly as stored.
    updated_at: AttributeValue,
    /// The item's version (0: none yet).
    version: u64,
    /// Timeline entries (the length of the `timeline` list; 0 without one).
    events: u64,
}

impl Candidate {
    fn read(item: &Item) -> Result<Self, StoreError> {
        let reader = Reader::new(OP_PRUNE, item);
        let id = JobId(reader.u64(job::JOB_ID)?);
        reader.ts_ms(JOB_UPDATED_AT)?;
        let updated_at = item.get(JOB_UPDATED_AT).cloned().unwrap_or_else(|| n(0));
        let version = reader.opt_u64(JOB_VERSION)?.unwrap_or(0);
        let events = reader.opt_list(job::TIMELINE)?.map_or(0, |list| list.len() as u64);
        Ok(Self { id, updated_at, version, events })
    }

    /// The delete of the job, only while it is still completed with the `updated_at`, version and number of
    /// timeline entries read (every write of the item bumps its version; the entries are checked too, so the
    /// count is exact even for an item some other writer left without a version).
    fn delete(&self, store: &DynamoStore) -> Result<Delete, StoreError> {
        let version = if self.version == 0 { "attribute_not_exists(#version)" } else { "#version = :version" };
        let timeline = if self.events == 0 { "attribute_not_exists(#timeline)" } else { "size(#timeline) = :events" };
        let mut delete = Delete::builder()
            .table_name(&store.tables.jobs)
            .key(job::JOB_ID, n(self.id.0))
            .condition_expression(format!("#status = :completed AND #updated = :updated AND {version} AND {timeline}"))
            .expression_attribute_names("#status", JOB_STATUS)
            .expression_attribute_names("#updated", JOB_UPDATED_AT)
            .expression_attribute_names("#version", JOB_VERSION)
            .expression_attribute_names("#timeline", job::TIMELINE)
            .expression_attribute_values(":completed", s(JobStatus::Completed.as_str()))
            .expression_attribute_values(":updated", self.updated_at.clone());
        if self.version > 0 {
            delete = delete.expression_attribute_values(":version", n(self.version));
        }
        if self.events > 0 {
            delete = delete.expression_attribute_values(":events", n(self.events));
        }
        delete.build().map_err(|e| StoreError::Backend { op: OP_PRUNE, source: Box::new(e) })
    }
}

/// Delete one job with the decrement of the completed counter in one transaction. False when the job changed
/// (or went) since it was read: it is kept. Contention is retried from the same read.
async fn delete_job(store: &DynamoStore, candidate: &Candidate) -> Result<bool, StoreError> {
    let items = vec![
        TransactWriteItem::builder().delete(candidate.delete(store)?).build(),
        TransactWriteItem::builder().update(job_count_change(store, candidate.id, JobStatus::Completed, -1)).build(),
    ];
    for attempt in 1..=MAX_ATTEMPTS {
        if attempt > 1 {
            contention_backoff(attempt).await;
        }
        let outcome = store.client.transact_write_items().set_transact_items(Some(items.clone())).send().await;
        let Err(error) = outcome else { return Ok(true) };
        if is_contention(&error) {
            continue;
        }
        let job_condition_failed = cancellation_codes(&error)
            .and_then(|codes| codes.into_iter().next().flatten())
            .is_some_and(|code| code == "ConditionalCheckFailed");
        if job_condition_failed {
            return Ok(false);
        }
        return Err(backend(OP_PRUNE)(error));
    }
    Err(contended(OP_PRUNE))
}

/// The cut as stored times are compared with: epoch milliseconds.
fn cut(before: Timestamp) -> AttributeValue {
    n(before.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::UNIX_EPOCH + chrono::Duration::seconds(secs)
    }

    #[test]
    fn a_candidate_is_what_the_scan_read_of_a_completed_job() {
        let item = Item::from([
            (job::JOB_ID.to_owned(), n(802)),
            (JOB_STATUS.to_owned(), s("completed")),
            (JOB_UPDATED_AT.to_owned(), n(5_000)),
            (JOB_VERSION.to_owned(), n(4)),
            (job::TIMELINE.to_owned(), AttributeValue::L(vec![s("queued"), s("completed")])),
        ]);
        let candidate = Candidate::read(&item).expect("a completed job");
        assert_eq!(candidate, Candidate { id: JobId(802), updated_at: n(5_000), version: 4, events: 2 });

        let mut bare = item.clone();
        bare.remove(job::TIMELINE);
        bare.remove(JOB_VERSION);
        let bare = Candidate::read(&bare).expect("no timeline, no version");
        assert_eq!((bare.events, bare.version), (0, 0), "no timeline list: no entries; no version: 0");

        let mut broken = item;
        broken.insert(JOB_UPDATED_AT.to_owned(), s("yesterday"));
        let error = Candidate::read(&broken).unwrap_err().to_string();
        assert!(error.contains(JOB_UPDATED_AT), "a job that does not decode names the attribute: {error}");
    }

    #[test]
    fn the_cut_is_in_the_stored_unit() {
        assert_eq!(cut(at(50)), n(50_000));
    }

    /// A job changed between the scan and its delete is kept: a new timeline entry, a new `updated_at`, a new
    /// version.
    #[tokio::test]
    async fn a_job_changed_since_it_was_read_is_kept() {
        let store = crate::testing::fresh_store().await;
        let entry = AttributeValue::M(Item::from([("kind".to_owned(), s("observed"))]));
        let item = Item::from([
            (job::JOB_ID.to_owned(), n(7)),
            (JOB_STATUS.to_owned(), s("completed")),
            (JOB_UPDATED_AT.to_owned(), n(5_000)),
            (job::TIMELINE.to_owned(), AttributeValue::L(vec![entry.clone()])),
        ]);
        let put = |item: Item| store.client.put_item().table_name(&store.tables.jobs).set_item(Some(item)).send();
        put(item.clone()).await.expect("put");
        let read = Candidate::read(&item).expect("candidate");

        let mut appended = item.clone();
        appended.insert(job::TIMELINE.to_owned(), AttributeValue::L(vec![entry.clone(), entry]));
        put(appended).await.expect("append an entry");
        assert!(!delete_job(&store, &read).await.expect("delete"), "an entry was added since the read");
        let mut touched = item.clone();
        touched.insert(JOB_UPDATED_AT.to_owned(), n(6_000));
        put(touched).await.expect("touch");
        assert!(!delete_job(&store, &read).await.expect("delete"), "updated since the read");
        let mut rewritten = item.clone();
        rewritten.insert(JOB_VERSION.to_owned(), n(1));
        put(rewritten).await.expect("rewrite");
        assert!(!delete_job(&store, &read).await.expect("delete"), "written since the read");

        put(item).await.expect("as read");
        assert!(delete_job(&store, &read).await.expect("delete"), "unchanged: deleted");
        assert!(!delete_job(&store, &read).await.expect("delete"), "gone already (another pass, or TTL)");
    }
}
