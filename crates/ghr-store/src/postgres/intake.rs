//! Webhook intake on PostgreSQL: a batch of deliveries applied in one write transaction (group commit),
//! with webhooks of one burst reaching any replica.
//!
//! The transaction first locks the per-status job counts (`jobs::lock_counts`): every transaction that
//! changes a job's status holds them until it commits anyway, and taking them first and in one order keeps
//! batches (on one replica or several) from deadlocking on them or on the job rows locked after them, so
//! batches that change jobs commit one after the other, across replicas. Each delivery then runs under its
//! own `SAVEPOINT`:
//!
//! 1. record the delivery (`ON CONFLICT DO NOTHING` is the deduplication: an id another replica is inserting
//!    right now makes this wait for that transaction, then counts as a duplicate) and, in the same statement,
//!    lock the job's row and read its status;
//! 2. create the job with its timeline entries (and initial wait reason), or move it forward with its entry
//!    (`jobs::merge`, on the locked row; a creation that lost the race to another replica merges into the
//!    winner's row);
//! 3. bind the runner GitHub names, when the job moved.
//!
//! A delivery that fails is rolled back to its savepoint alone and its batch-mates commit. A failure that
//! aborts the whole transaction (a deadlock or serialization failure with some other writer,
//! `write::is_conflict`) is not one delivery's fault: it aborts the attempt, and the writer runs the whole
//! batch again. Outcomes are returned only after the commit, so an `Ok` is durable.
//!
//! When the transaction itself cannot commit (the connection is lost, conflicts outlast the retries), every
//! delivery is tried alone, so each learns its own fate; that happens only on failure.

use super::write::{self, Writer};
use super::{jobs, runners};
use crate::codec::{self, Columns, backend};
use ghr_core::intake::{JobIntake, JobIntakeOutcome};
use ghr_core::job::{JobChange, JobStatus};
use ghr_core::ports::{RunnerUpdate, StoreError};
use sqlx::PgConnection;
use std::sync::Arc;

pub(super) const OP_INTAKE: &str = "intake_jobs";

const SAVEPOINT: &str = "SAVEPOINT ghr_intake_item";
const RELEASE: &str = "RELEASE SAVEPOINT ghr_intake_item";
const ROLLBACK_TO: &str = "ROLLBACK TO SAVEPOINT ghr_intake_item";

/// One outcome per item, in order.
type Outcomes = Vec<Result<JobIntakeOutcome, StoreError>>;

/// Apply `batch` (see the module documentation); one outcome per item, in order.
pub(super) async fn intake(writer: &Writer, batch: Vec<JobIntake>) -> Outcomes {
    if batch.is_empty() {
        return Vec::new();
    }
    let items = Arc::new(batch);
    match attempt(writer, items.clone()).await {
        Ok(outcomes) => outcomes,
        Err(error) if items.len() == 1 => vec![Err(error)],
        Err(error) => {
            tracing::debug!(
                error = %ghr_core::error::ErrorChain(&error),
                items = items.len(),
                "intake batch failed to commit; applying its deliveries one by one"
            );
            let mut outcomes = Vec::with_capacity(items.len());
            for item in items.iter() {
                let alone = attempt(writer, Arc::new(vec![item.clone()])).await;
                outcomes.push(alone.and_then(|mut one| one.pop().unwrap_or_else(|| Err(lost_outcome()))));
            }
            outcomes
        }
    }
}

/// One transaction over `items`, retried whole by the writer when the server aborted it for a conflict.
async fn attempt(writer: &Writer, items: Arc<Vec<JobIntake>>) -> Result<Outcomes, StoreError> {
    writer
        .run(OP_INTAKE, move |conn| {
            let items = items.clone();
            Box::pin(async move { apply_all(conn, &items).await })
        })
        .await
}

/// The body of the batch's transaction: each item under its savepoint. Err aborts the transaction (a
/// conflict, or a savepoint that could not be rolled back); an item's own failure is its outcome.
async fn apply_all(conn: &mut PgConnection, items: &[JobIntake]) -> Result<Outcomes, StoreError> {
    jobs::lock_counts(conn, OP_INTAKE).await?;
    let mut outcomes = Vec::with_capacity(items.len());
    for item in items {
        statement(conn, SAVEPOINT).await?;
        match apply_item(conn, item).await {
            Ok(outcome) => {
                statement(conn, RELEASE).await?;
                outcomes.push(Ok(outcome));
            }
            Err(error) if write::is_conflict(&error) => return Err(error),
            Err(error) => {
                statement(conn, ROLLBACK_TO).await?;
                statement(conn, RELEASE).await?;
                tracing::debug!(
                    delivery = item.delivery.delivery_id.as_str(),
                    error = %ghr_core::error::ErrorChain(&error),
                    "intake item failed; its batch-mates go on"
                );
                outcomes.push(Err(error));
            }
        }
    }
    Ok(outcomes)
}

async fn statement(conn: &mut PgConnection, sql: &'static str) -> Result<(), StoreError> {
    sqlx::raw_sql(sql).execute(&mut *conn).await.map_err(backend(OP_INTAKE))?;
    Ok(())
}

fn lost_outcome() -> StoreError {
    codec::corrupt(OP_INTAKE, "an intake item was never applied")
}

/// Record the delivery; then whether it was new (`recorded`: 1, or 0 for a duplicate) and the status of the
/// job `$6`, its row locked (NULL when the job is unknown or the delivery reports none).
const RECORD_AND_LOCK: &str = "WITH recorded AS ( \
         INSERT INTO webhook_deliveries (delivery_id, event, action, installation_id, received_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (delivery_id) DO NOTHING RETURNING delivery_id) \
     SELECT (SELECT count(*) FROM recorded) AS recorded, \
         (SELECT status FROM jobs WHERE job_id = $6 FOR UPDATE) AS status";

/// One delivery inside its savepoint of the batch's transaction (see the module documentation).
async fn apply_item(conn: &mut PgConnection, item: &JobIntake) -> Result<JobIntakeOutcome, StoreError> {
    let delivery = &item.delivery;
    let job_key =
        item.job.as_ref().map(|change| codec::id(OP_INTAKE, "job id", change.observation.job_id.0)).transpose()?;
    let row = sqlx::query(RECORD_AND_LOCK)
        .bind(delivery.delivery_id.as_str())
        .bind(delivery.event.as_str())
        .bind(delivery.action.as_deref())
        .bind(codec::id_opt(OP_INTAKE, "installation id", delivery.installation_id.map(|i| i.0))?)
        .bind(codec::ts(delivery.received_at))
        .bind(job_key)
        .fetch_one(&mut *conn)
        .await
        .map_err(backend(OP_INTAKE))?;
    let columns = Columns::new(OP_INTAKE, &row);
    if columns.int("recorded")? == 0 {
        return Ok(JobIntakeOutcome::Duplicate);
    }
    let (Some(change), Some(key)) = (&item.job, job_key) else {
        return Ok(JobIntakeOutcome::Recorded { job: None, change: None, runner: None });
    };
    let current: Option<JobStatus> = match columns.text_opt("status")? {
        None => None,
        Some(text) => Some(
            text.parse()
                .map_err(|_| codec::corrupt(OP_INTAKE, format!("column status: unknown job status {text:?}")))?,
        ),
    };
    let observation = &change.observation;
    let job_change = jobs::merge(conn, key, current, observation, change.initial_wait_reason, OP_INTAKE).await?;
    let runner = match &change.runner {
        // GitHub decides which runner runs which job: bind it whenever the job moved (a duplicate changes
        // nothing, so it binds nothing either).
        Some(binding) if job_change != JobChange::Unchanged => {
            let update = RunnerUpdate {
                job_id: Some(observation.job_id),
                ..RunnerUpdate::state(binding.state, observation.observed_at)
            };
            runners::update(conn, &binding.name, update).await?.map(Box::new)
        }
        _ => None,
    };
    Ok(JobIntakeOutcome::Recorded { job: Some(observation.job_id), change: Some(job_change), runner })
}
