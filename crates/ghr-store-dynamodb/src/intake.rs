//! Webhook intake: per delivery one transaction (dedupe, job observation, runner binding, delivery record).
//!
//! Each delivery of a batch is applied on its own, in order, as one `TransactWriteItems`:
//!
//! 1. the delivery item, `Put` with `attribute_not_exists(delivery_id)`: the deduplication, with no lookup
//!    first. When this condition fails the delivery was recorded before: nothing is written, the outcome is
//!    `Duplicate`;
//! 2. the job write of the observation (as `job_observe`: on the version read, with its timeline entries and
//!    initial wait reason) and the status counters;
//! 3. the runner GitHub names on the job, bound when the job moved: its state merged as the lifecycle allows,
//!    `job_id` set, the state's timestamp stamped once, on the state read (`#state = :read`, as `runner_update`
//!    writes). Binding moves a runner to `busy` or `finished`, which never changes whether it is live (see the
//!    test below), so the live counts are not part of it.
//!
//! A transaction that lost a race (the job or the runner changed since read, or a concurrent transaction on the
//! same items) is read and decided again. A delivery whose job does not move (`Unchanged`, stable since a
//! status only moves forward) is only recorded, with one conditional `PutItem`. One item's failure fails it
//! alone and leaves nothing of it behind, so GitHub's redelivery can apply it later. Unlike the SQL stores a
//! batch is not one transaction: each delivery is durable when its own write returns.

use crate::DynamoStore;
use crate::deliveries::RECORD_ONCE;
use crate::error::{MAX_ATTEMPTS, backend, contended, contention_backoff, retry_transaction_conflicts};
use crate::item::{Item, n, s, ts_ms};
use crate::job_item::{self, storable};
use crate::jobs::{self, WriteFailed, lost_a_race, refused};
use crate::tables::runner as runner_table;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use ghr_core::Timestamp;
use ghr_core::intake::{JobIntake, JobIntakeOutcome, RunnerBinding};
use ghr_core::job::JobChange;
use ghr_core::ports::{DeliveryRecord, StoreError};
use ghr_core::runner::{Runner, RunnerState};
use std::collections::HashMap;

const OP: &str = "intake_jobs";

/// Runner attributes a binding writes (the runner item's, see `runner_item`).
mod runner_attr {
    pub const STATE: &str = "state";
    pub const JOB_ID: &str = "job_id";
    pub const UPDATED_AT: &str = "updated_at";
    pub const REGISTERED_AT: &str = "registered_at";
    pub const JOB_STARTED_AT: &str = "job_started_at";
    pub const FINISHED_AT: &str = "finished_at";
    pub const TERMINATED_AT: &str = "terminated_at";
}

pub(crate) async fn intake_jobs(
    store: &DynamoStore,
    batch: Vec<JobIntake>,
) -> Vec<Result<JobIntakeOutcome, StoreError>> {
    let mut outcomes = Vec::with_capacity(batch.len());
    for item in &batch {
        let outcome = apply(store, item).await;
        if let Err(error) = &outcome {
            tracing::debug!(
                delivery = %item.delivery.delivery_id,
                error = %ghr_core::error::ErrorChain(error),
                "intake item failed; the others go on"
            );
        }
        outcomes.push(outcome);
    }
    outcomes
}

/// One delivery (see the module documentation).
async fn apply(store: &DynamoStore, intake: &JobIntake) -> Result<JobIntakeOutcome, StoreError> {
    let delivery = delivery_item(store, &intake.delivery);
    let Some(change) = &intake.job else {
        return Ok(if record_only(store, delivery).await? {
            JobIntakeOutcome::Recorded { job: None, change: None, runner: None }
        } else {
            JobIntakeOutcome::Duplicate
        });
    };
    let obs = &change.observation;
    job_item::check_id(OP, "job id", obs.job_id.0)?;
    for attempt in 1..=MAX_ATTEMPTS {
        let stored = if storable(obs.job_id.0) { job_item::read(store, OP, obs.job_id).await? } else { None };
        let planned = jobs::plan(store, OP, stored.as_ref(), obs, change.initial_wait_reason)?;
        if planned.change == JobChange::Unchanged {
            return Ok(if record_only(store, delivery).await? {
                JobIntakeOutcome::Recorded { job: Some(obs.job_id), change: Some(JobChange::Unchanged), runner: None }
            } else {
                JobIntakeOutcome::Duplicate
            });
        }
        let mut writes = vec![TransactWriteItem::builder().put(delivery_put(store, delivery.clone())).build()];
        writes.extend(planned.writes);
        // GitHub decides which runner runs which job: bind it whenever the job moved.
        let bound = match &change.runner {
            Some(binding) => bind(store, binding, obs.job_id, obs.observed_at).await?,
            None => None,
        };
        let runner = bound.map(|(update, runner)| {
            writes.push(TransactWriteItem::builder().update(update).build());
            Box::new(runner)
        });
        match jobs::transact(store, OP, writes).await {
            Ok(()) => {
                return Ok(JobIntakeOutcome::Recorded { job: Some(obs.job_id), change: Some(planned.change), runner });
            }
            Err(WriteFailed::Cancelled(codes)) if is_duplicate(&codes) => return Ok(JobIntakeOutcome::Duplicate),
            Err(WriteFailed::Cancelled(codes)) if lost_a_race(&codes) => contention_backoff(attempt).await,
            Err(WriteFailed::Cancelled(codes)) => return Err(refused(OP, &codes)),
            Err(WriteFailed::Failed(error)) => return Err(error),
        }
    }
    Err(contended(OP))
}

/// Whether a cancelled intake transaction failed on its first item, the delivery's put: a duplicate.
fn is_duplicate(codes: &[Option<String>]) -> bool {
    codes.first().and_then(Option::as_deref) == Some("ConditionalCheckFailed")
}

/// The item of a delivery, with its TTL (the deliveries module's).
fn delivery_item(store: &DynamoStore, delivery: &DeliveryRecord) -> Item {
    crate::deliveries::delivery_item(store, delivery)
}

fn delivery_put(store: &DynamoStore, item: Item) -> Put {
    Put::builder()
        .table_name(&store.tables.deliveries)
        .set_item(Some(item))
        .condition_expression(RECORD_ONCE)
        .build()
        .expect("table and item are set")
}

/// Record a delivery that changes nothing else; false when it was recorded before.
async fn record_only(store: &DynamoStore, item: Item) -> Result<bool, StoreError> {
    let request = store
        .client
        .put_item()
        .table_name(&store.tables.deliveries)
        .set_item(Some(item))
        .condition_expression(RECORD_ONCE);
    // Another replica's intake transaction of the same delivery rejects a single put meanwhile.
    let result = retry_transaction_conflicts(|| request.clone().send()).await;
    match result {
        Ok(_) => Ok(true),
        Err(SdkError::ServiceError(failure))
            if matches!(failure.err(), PutItemError::ConditionalCheckFailedException(_)) =>
        {
            Ok(false)
        }
        Err(error) => Err(backend(OP)(error)),
    }
}

/// The state a binding leaves a runner in: what the lifecycle allows ([`RunnerState::merge`]).
fn bound_state(current: RunnerState, binding: &RunnerBinding) -> RunnerState {
    current.merge(binding.state)
}

/// The runner update of a binding and the runner as it will be; None when the runner is not one of ghr's.
async fn bind(
    store: &DynamoStore,
    binding: &RunnerBinding,
    job: ghr_core::ids::JobId,
    at: Timestamp,
) -> Result<Option<(Update, Runner)>, StoreError> {
    let answer = store
        .client
        .get_item()
        .table_name(&store.tables.runners)
        .key(runner_table::RUNNER_NAME, s(binding.name.as_str()))
        .consistent_read(true)
        .send()
        .await
        .map_err(backend(OP))?;
    let Some(item) = answer.item else {
        return Ok(None);
    };
    let current = crate::runner_item::runner_from_item(OP, &item)?;
    let next = bound_state(current.state, binding);
    let mut names = HashMap::from([
        ("#state".to_owned(), runner_attr::STATE.to_owned()),
        ("#job_id".to_owned(), runner_attr::JOB_ID.to_owned()),
        ("#updated_at".to_owned(), runner_attr::UPDATED_AT.to_owned()),
    ]);
    let values: HashMap<String, AttributeValue> = HashMap::from([
        (":read".to_owned(), s(current.state.as_str())),
        (":next".to_owned(), s(next.as_str())),
        (":job".to_owned(), n(job.0)),
        (":at".to_owned(), ts_ms(at)),
    ]);
    let mut sets = vec!["#state = :next".to_owned(), "#job_id = :job".to_owned(), "#updated_at = :at".to_owned()];
    // Each timestamp is stamped once, when the runner is first seen in its state (as `runner_update`).
    let stamp = match next {
        RunnerState::Idle => Some(runner_attr::REGISTERED_AT),
        RunnerState::Busy => Some(runner_attr::JOB_STARTED_AT),
        RunnerState::Finished => Some(runner_attr::FINISHED_AT),
        RunnerState::Terminated | RunnerState::Failed => Some(runner_attr::TERMINATED_AT),
        RunnerState::Requested | RunnerState::Launching => None,
    };
    if let Some(stamp) = stamp {
        names.insert("#stamp".to_owned(), stamp.to_owned());
        sets.push("#stamp = if_not_exists(#stamp, :at)".to_owned());
    }
    let update = Update::builder()
        .table_name(&store.tables.runners)
        .key(runner_table::RUNNER_NAME, s(binding.name.as_str()))
        .update_expression(format!("SET {}", sets.join(", ")))
        .condition_expression("#state = :read")
        .set_expression_attribute_names(Some(names))
        .set_expression_attribute_values(Some(values))
        .build()
        .expect("table, key and expression are set");
    let stamped =
        |existing: Option<Timestamp>, states: &[RunnerState]| existing.or(states.contains(&next).then_some(at));
    let runner = Runner {
        state: next,
        job_id: Some(job),
        registered_at: stamped(current.registered_at, &[RunnerState::Idle]),
        job_started_at: stamped(current.job_started_at, &[RunnerState::Busy]),
        finished_at: stamped(current.finished_at, &[RunnerState::Finished]),
        terminated_at: stamped(current.terminated_at, &[RunnerState::Terminated, RunnerState::Failed]),
        updated_at: at,
        ..current
    };
    Ok(Some((update, runner)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ghr_core::ids::RunnerName;
    use ghr_core::job::JobStatus;

    #[test]
    fn binding_never_changes_whether_a_runner_is_live() {
        for status in [JobStatus::InProgress, JobStatus::Completed] {
            let binding = RunnerBinding::for_status(RunnerName::from("r"), status).expect("a runner state");
            for current in RunnerState::ALL {
                let next = bound_state(current, &binding);
                assert_eq!(current.is_live(), next.is_live(), "{current} -> {next} on {status}");
            }
        }
    }

    #[test]
    fn only_a_failed_delivery_put_is_a_duplicate() {
        let failed = Some("ConditionalCheckFailed".to_owned());
        assert!(is_duplicate(&[failed.clone(), None]));
        assert!(!is_duplicate(&[None, failed]));
        assert!(!is_duplicate(&[Some("TransactionConflict".to_owned())]));
    }
}
