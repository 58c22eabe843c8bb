//! Job-status counters: sharded count items in `<p>-state`, changed in the same transaction as the job.
//!
//! `jobs#<status>#<shard>` holds `count` (N) for the jobs of one status whose id falls in the shard
//! (`job id % JOB_COUNT_SHARDS`). Every write that creates a job, moves its status or deletes it carries the
//! matching `ADD count` updates in its own `TransactWriteItems`, so a count never disagrees with the items it
//! counts. Shards spread concurrent intake over several items: transactions that touch the same item at the
//! same moment cancel each other (`TransactionConflict`), and one counter per status would make every pair of
//! concurrent job writes collide. [`job_counts`] reads all `3 × JOB_COUNT_SHARDS` items in one `BatchGetItem`.

use crate::DynamoStore;
use crate::error::{DynamoError, backend, corrupt};
use crate::item::{Item, Reader, n, s};
use crate::tables::state;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Update};
use ghr_core::ids::JobId;
use ghr_core::job::JobStatus;
use ghr_core::ports::StoreError;
use std::collections::{BTreeMap, HashMap};

const OP_COUNTS: &str = "job_counts";

/// Count items per status. 3 statuses × 16 shards = 48 keys: one `BatchGetItem` (at most 100 keys).
pub(crate) const JOB_COUNT_SHARDS: u64 = 16;

/// How many times `job_counts` asks again for keys DynamoDB left unprocessed (throttling) before failing.
const UNPROCESSED_RETRIES: u32 = 8;

/// The `pk` of one counter item.
pub(crate) fn counter_key(status: JobStatus, shard: u64) -> String {
    format!("{}{}#{shard}", state::JOB_COUNT, status.as_str())
}

/// The shard a job is counted in.
pub(crate) fn shard_of(job: JobId) -> u64 {
    job.0 % JOB_COUNT_SHARDS
}

/// The update that changes the count of `status` by `delta` for `job` (its shard): one item of the
/// `TransactWriteItems` that creates, moves or deletes the job.
pub(crate) fn job_count_change(store: &DynamoStore, job: JobId, status: JobStatus, delta: i64) -> Update {
    Update::builder()
        .table_name(&store.tables.state)
        .key(state::PK, s(counter_key(status, shard_of(job))))
        .update_expression("ADD #count :delta")
        .expression_attribute_names("#count", state::COUNT)
        .expression_attribute_values(":delta", n(delta))
        .build()
        .expect("table, key and expression are set")
}

/// Jobs per status, summed over the shards; statuses with none are absent.
pub(crate) async fn job_counts(store: &DynamoStore) -> Result<BTreeMap<JobStatus, u64>, StoreError> {
    let mut keys: Vec<HashMap<String, AttributeValue>> = JobStatus::ALL
        .iter()
        .flat_map(|&status| (0..JOB_COUNT_SHARDS).map(move |shard| counter_key(status, shard)))
        .map(|pk| HashMap::from([(state::PK.to_owned(), s(pk))]))
        .collect();
    let mut items: Vec<Item> = Vec::with_capacity(keys.len());
    let mut attempt = 0;
    while !keys.is_empty() {
        let request = KeysAndAttributes::builder()
            .set_keys(Some(std::mem::take(&mut keys)))
            .consistent_read(true)
            .build()
            .expect("keys are set");
        let answer = store
            .client
            .batch_get_item()
            .request_items(&store.tables.state, request)
            .send()
            .await
            .map_err(backend(OP_COUNTS))?;
        if let Some(found) = answer.responses.and_then(|mut r| r.remove(&store.tables.state)) {
            items.extend(found);
        }
        if let Some(left) = answer.unprocessed_keys.and_then(|mut u| u.remove(&store.tables.state)) {
            keys = left.keys;
        }
        if !keys.is_empty() {
            attempt += 1;
            if attempt > UNPROCESSED_RETRIES {
                return Err(StoreError::Backend {
                    op: OP_COUNTS,
                    source: Box::new(DynamoError {
                        code: Some("ProvisionedThroughputExceeded".to_owned()),
                        message: format!("counter keys still unprocessed after {UNPROCESSED_RETRIES} retries"),
                    }),
                });
            }
            crate::error::contention_backoff(attempt).await;
        }
    }
    let mut counts = BTreeMap::new();
    for item in &items {
        let reader = Reader::new(OP_COUNTS, item);
        let pk = reader.s(state::PK)?;
        let status = pk
            .strip_prefix(state::JOB_COUNT)
            .and_then(|rest| rest.split('#').next())
            .and_then(|status| status.parse::<JobStatus>().ok())
            .ok_or_else(|| corrupt(OP_COUNTS, format!("counter item {pk:?} names no job status")))?;
        let count = reader.opt_i64(state::COUNT)?.unwrap_or(0);
        *counts.entry(status).or_insert(0i64) += count;
    }
    Ok(counts
        .into_iter()
        .filter_map(|(status, count)| u64::try_from(count).ok().filter(|c| *c > 0).map(|c| (status, c)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_keys_name_status_and_shard() {
        assert_eq!(counter_key(JobStatus::InProgress, 3), "jobs#in_progress#3");
        assert_eq!(shard_of(JobId(JOB_COUNT_SHARDS + 5)), 5);
    }
}
