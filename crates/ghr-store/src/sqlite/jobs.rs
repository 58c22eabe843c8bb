//! Jobs and their timelines on SQLite: forward-only observations, the dispatcher's FIFO, wait reasons.

use crate::WAIT_CLEARED_DETAIL;
use crate::codec::{self, Columns, backend};
pub(super) use crate::rows::job_columns;
pub(super) use crate::rows::job_from_row;
use ghr_core::Timestamp;
use ghr_core::ids::{JobId, RunnerName, TierName};
use ghr_core::job::{Job, JobChange, JobEvent, JobObservation, JobStatus, event_kind};
use ghr_core::ports::{JobFilter, StoreError};
use ghr_core::reason::Reason;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};

pub(super) const OP_OBSERVE: &str = "job_observe";
pub(super) const OP_SET_WAIT_REASON: &str = "job_set_wait_reason";
const OP_GET: &str = "job_get";
const OP_LIST: &str = "job_list";
const OP_WANTING: &str = "job_list_wanting_runner";
pub(super) const OP_APPEND: &str = "job_event_append";
const OP_TIMELINE: &str = "job_timeline";

/// Record an observation inside the caller's write transaction.
pub(super) async fn observe(conn: &mut SqliteConnection, obs: JobObservation) -> Result<JobChange, StoreError> {
    let key = codec::id(OP_OBSERVE, "job id", obs.job_id.0)?;
    let current = sqlx::query("SELECT status FROM jobs WHERE job_id = ?")
        .bind(key)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend(OP_OBSERVE))?;
    let change = match current {
        None => {
            insert(conn, key, &obs).await?;
            JobChange::Created
        }
        Some(row) => {
            let from: JobStatus = Columns::new(OP_OBSERVE, &row).parse("status")?;
            if !from.advances_to(obs.status) {
                return Ok(JobChange::Unchanged);
            }
            advance(conn, key, &obs).await?;
            JobChange::Advanced { from }
        }
    };
    let event = JobEvent {
        job_id: obs.job_id,
        at: obs.observed_at,
        kind: obs.status.as_str().to_owned(),
        detail: status_detail(&obs),
    };
    insert_event(conn, &event, OP_OBSERVE).await?;
    Ok(change)
}

/// The timeline detail of a status entry: who runs the job, or how it ended.
pub(super) fn status_detail(obs: &JobObservation) -> String {
    match obs.status {
        JobStatus::Queued => String::new(),
        JobStatus::InProgress => obs.runner_name.as_ref().map(|name| name.as_str().to_owned()).unwrap_or_default(),
        JobStatus::Completed => obs.conclusion.clone().unwrap_or_default(),
    }
}

async fn insert(conn: &mut SqliteConnection, key: i64, obs: &JobObservation) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO jobs (job_id, installation_id, repository, labels, tier, status, conclusion, runner_name, \
             wait_reason, received_at, queued_at, started_at, completed_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?)",
    )
    .bind(key)
    .bind(codec::id(OP_OBSERVE, "installation id", obs.installation_id.0)?)
    .bind(obs.repository.as_str())
    .bind(codec::labels_to_json(OP_OBSERVE, &obs.labels)?)
    .bind(obs.tier.as_ref().map(TierName::as_str))
    .bind(obs.status.as_str())
    .bind(obs.conclusion.as_deref())
    .bind(obs.runner_name.as_ref().map(RunnerName::as_str))
    .bind(codec::ts(obs.observed_at))
    .bind(codec::ts_opt(obs.queued_at))
    .bind(codec::ts_opt(obs.started_at))
    .bind(codec::ts_opt(obs.completed_at))
    .bind(codec::ts(obs.observed_at))
    .execute(&mut *conn)
    .await
    .map_err(backend(OP_OBSERVE))?;
    Ok(())
}

/// Move the status forward. Repository, labels and tier stay as first recorded; the wait reason is
/// cleared because an advancing job has left `queued`.
async fn advance(conn: &mut SqliteConnection, key: i64, obs: &JobObservation) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE jobs SET status = ?, runner_name = COALESCE(?, runner_name), started_at = COALESCE(?, started_at), \
             completed_at = COALESCE(?, completed_at), conclusion = COALESCE(?, conclusion), \
             queued_at = COALESCE(queued_at, ?), wait_reason = NULL, updated_at = ? \
         WHERE job_id = ?",
    )
    .bind(obs.status.as_str())
    .bind(obs.runner_name.as_ref().map(RunnerName::as_str))
    .bind(codec::ts_opt(obs.started_at))
    .bind(codec::ts_opt(obs.completed_at))
    .bind(obs.conclusion.as_deref())
    .bind(codec::ts_opt(obs.queued_at))
    .bind(codec::ts(obs.observed_at))
    .bind(key)
    .execute(&mut *conn)
    .await
    .map_err(backend(OP_OBSERVE))?;
    Ok(())
}

pub(super) async fn get(pool: &SqlitePool, id: JobId) -> Result<Option<Job>, StoreError> {
    let Ok(key) = i64::try_from(id.0) else {
        return Ok(None);
    };
    let row = sqlx::query(concat!("SELECT ", job_columns!(), " FROM jobs WHERE job_id = ?"))
        .bind(key)
        .fetch_optional(pool)
        .await
        .map_err(backend(OP_GET))?;
    row.map(|row| job_from_row(OP_GET, &row)).transpose()
}

/// Newest first (by first sight, then job id), at most `limit`.
pub(super) async fn list(pool: &SqlitePool, filter: JobFilter) -> Result<Vec<Job>, StoreError> {
    let Some(mut query) = list_query(&filter) else {
        return Ok(Vec::new());
    };
    let rows = query.build().fetch_all(pool).await.map_err(backend(OP_LIST))?;
    rows.iter().map(|row| job_from_row(OP_LIST, row)).collect()
}

/// The listing's statement: every combination of filters is a range scan of one index in the order asked for
/// (migrations 0001 and 0005), so a limit stops it early. None when no job can match.
pub(super) fn list_query(filter: &JobFilter) -> Option<QueryBuilder<Sqlite>> {
    let mut query = QueryBuilder::<Sqlite>::new(concat!("SELECT ", job_columns!(), " FROM jobs WHERE 1 = 1"));
    if let Some(installation) = filter.installation_id {
        let key = i64::try_from(installation.0).ok()?;
        query.push(" AND installation_id = ").push_bind(key);
    }
    if let Some(status) = filter.status {
        query.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(reason) = filter.wait_reason {
        query.push(" AND wait_reason = ").push_bind(reason.code());
    }
    if let Some((received_at, job_id)) = filter.before {
        let job_key = i64::try_from(job_id.0).unwrap_or(i64::MAX);
        // A row value: the same index range the order uses, entered at the cursor.
        query
            .push(" AND (received_at, job_id) < (")
            .push_bind(codec::ts(received_at))
            .push(", ")
            .push_bind(job_key)
            .push(")");
    }
    query.push(" ORDER BY received_at DESC, job_id DESC");
    if let Some(limit) = filter.limit {
        query.push(" LIMIT ").push_bind(i64::from(limit));
    }
    Some(query)
}

/// Queued jobs matched to a tier, oldest first. The literal `'queued'` lets SQLite use the partial index.
pub(super) async fn list_wanting_runner(pool: &SqlitePool) -> Result<Vec<Job>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        job_columns!(),
        " FROM jobs WHERE status = 'queued' AND tier IS NOT NULL ORDER BY received_at, job_id"
    ))
    .fetch_all(pool)
    .await
    .map_err(backend(OP_WANTING))?;
    rows.iter().map(|row| job_from_row(OP_WANTING, row)).collect()
}

/// Set or clear the wait reason inside the caller's write transaction; a timeline entry is
/// appended only when the value changes, so repeated dispatcher passes leave one entry.
///
/// Only a queued job takes a reason (a job that runs or ran waits for nothing, so a dispatcher
/// pass racing with `in_progress` cannot mark a running job as waiting); clearing works on any job.
/// An unknown job is left alone.
pub(super) async fn set_wait_reason(
    conn: &mut SqliteConnection,
    id: JobId,
    reason: Option<Reason>,
    at: Timestamp,
) -> Result<(), StoreError> {
    let Ok(key) = i64::try_from(id.0) else {
        return Ok(());
    };
    let code = reason.map(Reason::code);
    let changed = sqlx::query(
        "UPDATE jobs SET wait_reason = ?1, updated_at = ?2 \
         WHERE job_id = ?3 AND wait_reason IS NOT ?1 AND (?1 IS NULL OR status = 'queued')",
    )
    .bind(code)
    .bind(codec::ts(at))
    .bind(key)
    .execute(&mut *conn)
    .await
    .map_err(backend(OP_SET_WAIT_REASON))?
    .rows_affected()
        > 0;
    if changed {
        let detail = code.unwrap_or(WAIT_CLEARED_DETAIL).to_owned();
        let event = JobEvent { job_id: id, at, kind: event_kind::WAITING.to_owned(), detail };
        insert_event(conn, &event, OP_SET_WAIT_REASON).await?;
    }
    Ok(())
}

/// Append a timeline entry inside the caller's write transaction.
pub(super) async fn append_event(conn: &mut SqliteConnection, event: &JobEvent) -> Result<(), StoreError> {
    insert_event(conn, event, OP_APPEND).await
}

async fn insert_event(conn: &mut SqliteConnection, event: &JobEvent, op: &'static str) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO job_events (job_id, at, kind, detail) VALUES (?, ?, ?, ?)")
        .bind(codec::id(op, "job id", event.job_id.0)?)
        .bind(codec::ts(event.at))
        .bind(event.kind.as_str())
        .bind(event.detail.as_str())
        .execute(&mut *conn)
        .await
        .map_err(backend(op))?;
    Ok(())
}

/// A job's timeline in time order (insertion order among equal times).
pub(super) async fn timeline(pool: &SqlitePool, id: JobId) -> Result<Vec<JobEvent>, StoreError> {
    let Ok(key) = i64::try_from(id.0) else {
        return Ok(Vec::new());
    };
    let rows = sqlx::query("SELECT job_id, at, kind, detail FROM job_events WHERE job_id = ? ORDER BY at, id")
        .bind(key)
        .fetch_all(pool)
        .await
        .map_err(backend(OP_TIMELINE))?;
    rows.iter()
        .map(|row| {
            let c = Columns::new(OP_TIMELINE, row);
            Ok(JobEvent {
                job_id: JobId(c.unsigned("job_id")?),
                at: c.timestamp("at")?,
                kind: c.text("kind")?,
                detail: c.text("detail")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_literals_match_the_domain_strings() {
        // The wanting-runner query and the partial indexes use this literal.
        assert_eq!(JobStatus::Queued.as_str(), "queued");
    }
}
