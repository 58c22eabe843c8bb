//! One delivery of an intake batch, in two round trips to SQLite's connection thread.
//!
//! sqlx runs each statement on the connection's worker thread and waits for it, so a delivery costs what its
//! hand-offs cost more than what SQLite does. Here each hand-off runs a short script of statements (sqlx
//! binds `?N` parameters by absolute position across a script's statements, and caches the prepared script
//! per connection like any statement):
//!
//! 1. record the delivery (`ON CONFLICT DO NOTHING` is the deduplication) and read the job's status;
//! 2. insert the job with its timeline entries (and initial wait reason), or move it forward with its entry.
//!
//! A runner binding (`in_progress`/`completed` on one of ghr's runners) adds the runner update's own two.

use super::{jobs, runners};
use crate::codec::{self, Columns, backend};
use ghr_core::intake::{JobIntake, JobIntakeChange, JobIntakeOutcome};
use ghr_core::job::{JobChange, JobObservation, JobStatus, event_kind};
use ghr_core::ports::{RunnerUpdate, StoreError};
use ghr_core::reason::Reason;
use sqlx::SqliteConnection;

const OP: &str = "intake_jobs";

/// Record the delivery; then whether it was new (`recorded`: 1, or 0 for a duplicate) and the job's status
/// (NULL when the job is unknown, or the delivery reports none).
const RECORD_AND_READ: &str = "INSERT INTO webhook_deliveries (delivery_id, event, action, installation_id, received_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (delivery_id) DO NOTHING; \
     SELECT changes() AS recorded, (SELECT status FROM jobs WHERE job_id = ?6) AS status";

/// A new job and its status entry (`?15` the entry's kind, `?16` its detail).
const CREATE: &str = "INSERT INTO jobs (job_id, installation_id, repository, labels, tier, status, conclusion, \
             runner_name, wait_reason, received_at, queued_at, started_at, completed_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?10); \
     INSERT INTO job_events (job_id, at, kind, detail) VALUES (?1, ?10, ?14, ?15)";

/// A new job, its status entry and its first wait reason (`?16` the `waiting` kind, `?9` the reason).
const CREATE_WAITING: &str = "INSERT INTO jobs (job_id, installation_id, repository, labels, tier, status, \
             conclusion, runner_name, wait_reason, received_at, queued_at, started_at, completed_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?10); \
     INSERT INTO job_events (job_id, at, kind, detail) VALUES (?1, ?10, ?14, ?15), (?1, ?10, ?16, ?9)";

/// Move a job forward (as `jobs::advance` does) and append its status entry.
const ADVANCE: &str = "UPDATE jobs SET status = ?2, runner_name = COALESCE(?3, runner_name), \
             started_at = COALESCE(?4, started_at), completed_at = COALESCE(?5, completed_at), \
             conclusion = COALESCE(?6, conclusion), queued_at = COALESCE(queued_at, ?7), wait_reason = NULL, \
             updated_at = ?8 \
         WHERE job_id = ?1; \
     INSERT INTO job_events (job_id, at, kind, detail) VALUES (?1, ?8, ?2, ?9)";

/// One delivery inside the batch's transaction.
pub(super) async fn apply(conn: &mut SqliteConnection, item: &JobIntake) -> Result<JobIntakeOutcome, StoreError> {
    let delivery = &item.delivery;
    let job_key = item.job.as_ref().map(|change| codec::id(OP, "job id", change.observation.job_id.0)).transpose()?;
    let row = sqlx::query(RECORD_AND_READ)
        .bind(delivery.delivery_id.as_str())
        .bind(delivery.event.as_str())
        .bind(delivery.action.as_deref())
        .bind(codec::id_opt(OP, "installation id", delivery.installation_id.map(|i| i.0))?)
        .bind(codec::ts(delivery.received_at))
        .bind(job_key)
        .fetch_one(&mut *conn)
        .await
        .map_err(backend(OP))?;
    let columns = Columns::new(OP, &row);
    if columns.int("recorded")? == 0 {
        return Ok(JobIntakeOutcome::Duplicate);
    }
    let (Some(change), Some(key)) = (&item.job, job_key) else {
        return Ok(JobIntakeOutcome::Recorded { job: None, change: None, runner: None });
    };
    let current = columns.text_opt("status")?.map(|text| columns_status(&text)).transpose()?;
    let job_change = match current {
        None => {
            create(conn, key, change).await?;
            JobChange::Created
        }
        Some(from) if from.advances_to(change.observation.status) => {
            advance(conn, key, &change.observation).await?;
            JobChange::Advanced { from }
        }
        Some(_) => JobChange::Unchanged,
    };
    let observation = &change.observation;
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

fn columns_status(text: &str) -> Result<JobStatus, StoreError> {
    text.parse().map_err(|_| codec::corrupt(OP, format!("column status: unknown job status {text:?}")))
}

async fn create(conn: &mut SqliteConnection, key: i64, change: &JobIntakeChange) -> Result<(), StoreError> {
    let obs = &change.observation;
    let script = if change.initial_wait_reason.is_some() { CREATE_WAITING } else { CREATE };
    let query = sqlx::query(script)
        .bind(key)
        .bind(codec::id(OP, "installation id", obs.installation_id.0)?)
        .bind(obs.repository.as_str())
        .bind(codec::labels_to_json(OP, &obs.labels)?)
        .bind(obs.tier.as_ref().map(|tier| tier.as_str()))
        .bind(obs.status.as_str())
        .bind(obs.conclusion.as_deref())
        .bind(obs.runner_name.as_ref().map(|name| name.as_str()))
        .bind(change.initial_wait_reason.map(Reason::code))
        .bind(codec::ts(obs.observed_at))
        .bind(codec::ts_opt(obs.queued_at))
        .bind(codec::ts_opt(obs.started_at))
        .bind(codec::ts_opt(obs.completed_at))
        .bind(obs.status.as_str())
        .bind(jobs::status_detail(obs));
    let query = if change.initial_wait_reason.is_some() { query.bind(event_kind::WAITING) } else { query };
    query.execute(&mut *conn).await.map_err(backend(OP))?;
    Ok(())
}

async fn advance(conn: &mut SqliteConnection, key: i64, obs: &JobObservation) -> Result<(), StoreError> {
    sqlx::query(ADVANCE)
        .bind(key)
        .bind(obs.status.as_str())
        .bind(obs.runner_name.as_ref().map(|name| name.as_str()))
        .bind(codec::ts_opt(obs.started_at))
        .bind(codec::ts_opt(obs.completed_at))
        .bind(obs.conclusion.as_deref())
        .bind(codec::ts_opt(obs.queued_at))
        .bind(codec::ts(obs.observed_at))
        .bind(jobs::status_detail(obs))
        .execute(&mut *conn)
        .await
        .map_err(backend(OP))?;
    Ok(())
}
