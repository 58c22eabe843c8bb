//! Webhook intake on SQLite: a batch of deliveries applied in one write transaction (group commit).
//!
//! Per delivery (`intake_item.rs`): insert the delivery record (`ON CONFLICT DO NOTHING`, which is the
//! deduplication: no separate lookup), then the job observation with its timeline entries and initial wait
//! reason, then the runner binding. All of one batch commits once, through the one write path (`write.rs`: `BEGIN IMMEDIATE`,
//! the database file check, a failed connection closed). The record is written before the change it
//! guards, but in the same transaction: a delivery is never durable without its effects.
//!
//! An item that fails rolls the whole transaction back; the rest of the batch is then applied again without
//! it, so one bad delivery fails alone and stays unrecorded (GitHub's redelivery applies it later). When the
//! transaction itself fails (begin, the file check, commit), every item is tried alone, so each learns its
//! own fate. Both happen only on failure: the common path costs one `BEGIN` and one `COMMIT` per batch.

use super::intake_item;
use super::write::Writer;
use ghr_core::intake::{JobIntake, JobIntakeOutcome};
use ghr_core::ports::StoreError;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub(super) const OP_INTAKE: &str = "intake_jobs";
/// "No item failed" in the failed-item marker of an attempt.
const NO_ITEM: usize = usize::MAX;

/// Why an attempt at a set of items failed.
struct AttemptFailed {
    /// The position (among the attempted items) of the item that failed; None when the transaction failed.
    item: Option<usize>,
    error: StoreError,
}

/// Apply `batch` (see the module documentation); one outcome per item, in order.
pub(super) async fn intake(writer: &Writer, batch: Vec<JobIntake>) -> Vec<Result<JobIntakeOutcome, StoreError>> {
    let items = Arc::new(batch);
    let mut results: Vec<Option<Result<JobIntakeOutcome, StoreError>>> = items.iter().map(|_| None).collect();
    let mut pending: Vec<usize> = (0..items.len()).collect();
    while !pending.is_empty() {
        match attempt(writer, &items, pending.clone()).await {
            Ok(outcomes) => {
                for (index, outcome) in pending.drain(..).zip(outcomes) {
                    results[index] = Some(Ok(outcome));
                }
            }
            Err(AttemptFailed { item: Some(position), error }) => {
                let index = pending.remove(position);
                results[index] = Some(Err(error));
            }
            Err(AttemptFailed { item: None, error }) if pending.len() == 1 => {
                results[pending[0]] = Some(Err(error));
                pending.clear();
            }
            Err(AttemptFailed { item: None, error }) => {
                tracing::debug!(
                    error = %ghr_core::error::ErrorChain(&error),
                    items = pending.len(),
                    "intake batch failed to commit; applying its deliveries one by one"
                );
                for index in pending.drain(..) {
                    let outcome = attempt(writer, &items, vec![index]).await;
                    results[index] = Some(outcome.map(|mut one| one.remove(0)).map_err(|failed| failed.error));
                }
            }
        }
    }
    results
        .into_iter()
        .map(|result| {
            result.unwrap_or_else(|| Err(super::codec::corrupt(OP_INTAKE, "an intake item was never applied")))
        })
        .collect()
}

/// One transaction over the items at `indexes`, in order.
async fn attempt(
    writer: &Writer,
    items: &Arc<Vec<JobIntake>>,
    indexes: Vec<usize>,
) -> Result<Vec<JobIntakeOutcome>, AttemptFailed> {
    let failed_item = Arc::new(AtomicUsize::new(NO_ITEM));
    let (work_items, marker) = (items.clone(), failed_item.clone());
    let result = writer
        .run(OP_INTAKE, move |conn| {
            Box::pin(async move {
                let mut outcomes = Vec::with_capacity(indexes.len());
                for (position, index) in indexes.into_iter().enumerate() {
                    match intake_item::apply(conn, &work_items[index]).await {
                        Ok(outcome) => outcomes.push(outcome),
                        Err(error) => {
                            marker.store(position, Ordering::Relaxed);
                            return Err(error);
                        }
                    }
                }
                Ok(outcomes)
            })
        })
        .await;
    result.map_err(|error| {
        let item = match failed_item.load(Ordering::Relaxed) {
            NO_ITEM => None,
            position => Some(position),
        };
        AttemptFailed { item, error }
    })
}
