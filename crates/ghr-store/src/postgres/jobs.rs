//! Jobs and their timelines on PostgreSQL: forward-only observations, the dispatcher's FIFO, wait reasons.
//!
//! Several replicas may observe the same job at once (GitHub's `queued` reaching one and `in_progress`
//! another). An observation therefore decides on a locked row: it locks the job (`SELECT ... FOR UPDATE`),
//! or creates it with `INSERT ... ON CONFLICT (job_id) DO NOTHING` when there is none; an insert that lost
//! the race to a concurrent one (which it waits for) locks the winner's row instead. The merge (does the
//! status move forward?) is then decided on the latest committed state while the row is held, so two
//! replicas never both move a job, and no transition is lost or logged twice.
//!
//! Before any job row, such a transaction locks the per-status count rows in status order
//! ([`lock_counts`]), so transactions that change statuses queue rather than deadlock.

use crate::WAIT_CLEARED_DETAIL;
use crate::codec::{self, Columns, backend};
pub(super) use crate::rows::job_columns;
pub(super) use crate::rows::job_from_row;
use ghr_core::Timestamp;
use ghr_core::ids::{JobId, RunnerName, TierName};
use ghr_core::job::{Job, JobChange, JobEvent, JobObservation, JobStatus, event_kind};
use ghr_core::ports::{JobFilter, StoreError};
use ghr_core::reason::Reason;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};

pub(super) const OP_OBSERVE: &str = "job_observe";
pub(super) const OP_SET_WAIT_REASON: &str = "job_set_wait_reason";
const OP_GET: &str = "job_get";
const OP_LIST: &str = "job_list";
const OP_WANTING: &str = "job_list_wanting_runner";
pub(super) const OP_APPEND: &str = "job_event_append";
const OP_TIMELINE: &str = "job_timeline";

/// Lock the rows of `job_status_counts` named by `$1`, in that order; the count of rows locked.
const LOCK_COUNTS: &str = "SELECT count(*) FROM ( \
         SELECT counts.status FROM unnest($1::TEXT[]) WITH ORDINALITY AS wanted (status, ord) \
         JOIN job_status_counts AS counts ON counts.status = wanted.status \
         ORDER BY wanted.ord FOR UPDATE OF counts) AS locked";
/// The count rows of `$1` that do not exist yet, at zero (once in a database's life).
const ADD_COUNTS: &str = "INSERT INTO job_status_counts (status, n) SELECT status, 0 FROM unnest($1::TEXT[]) AS status \
     ON CONFLICT (status) DO NOTHING";

/// The job's status, its row locked until the transaction ends (no row: the job is unknown).
const LOCK: &str = "SELECT status FROM jobs WHERE job_id = $1 FOR UPDATE";

/// A new job with its status entry and, when `$9` (its first wait reason) is set, the `waiting` entry after
/// it; nothing when the job exists (or a concurrent insert of it committed first). `created` is 1 or 0.
const CREATE: &str = "WITH created AS ( \
         INSERT INTO jobs (job_id, installation_id, repository, labels, tier, status, conclusion, runner_name, \
             wait_reason, received_at, queued_at, started_at, completed_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $10) \
         ON CONFLICT (job_id) DO NOTHING RETURNING job_id), \
     logged AS ( \
         INSERT INTO job_events (job_id, at, kind, detail) \
         SELECT created.job_id, $10, entry.kind, entry.detail FROM created CROSS JOIN ( \
             SELECT 1 AS ord, $6::TEXT AS kind, $14::TEXT AS detail \
             UNION ALL SELECT 2, $15::TEXT, $9::TEXT WHERE $9::TEXT IS NOT NULL) AS entry \
         ORDER BY entry.ord) \
     SELECT count(*) AS created FROM created";

/// Move a locked job forward and append its status entry. Repository, labels and tier stay as first
/// recorded; the wait reason is cleared because an advancing job has left `queued`.
const ADVANCE: &str = "WITH moved AS ( \
         UPDATE jobs SET status = $2, runner_name = COALESCE($3, runner_name), \
             started_at = COALESCE($4, started_at), completed_at = COALESCE($5, completed_at), \
             conclusion = COALESCE($6, conclusion), queued_at = COALESCE(queued_at, $7), wait_reason = NULL, \
             updated_at = $8 \
         WHERE job_id = $1 RETURNING job_id) \
     INSERT INTO job_events (job_id, at, kind, detail) SELECT job_id, $8, $2, $9 FROM moved";

/// Record an observation inside the caller's write transaction.
pub(super) async fn observe(conn: &mut PgConnection, obs: JobObservation) -> Result<JobChange, StoreError> {
    let key = codec::id(OP_OBSERVE, "job id", obs.job_id.0)?;
    lock_counts(conn, OP_OBSERVE).await?;
    let current = lock(conn, key, OP_OBSERVE).await?;
    merge(conn, key, current, &obs, None, OP_OBSERVE).await
}

/// Lock the per-status job counts, in status order, before any job row: call it first in every transaction
/// that may change a job's status.
///
/// Each such change updates two of these rows (the triggers of the first migration) and holds them until
/// commit, so the transactions that change statuses queue on them whatever else they touch. A transaction
/// that changed several jobs would otherwise take them in the order of its changes (`completed` for one job,
/// then `queued` for the next) and deadlock with one that went the other way, each deadlock costing the
/// server's `deadlock_timeout` before a retry. Taken up front and in one order, they make every such
/// transaction wait for the one ahead instead; job rows are locked after them, so no cycle goes through a
/// job row either.
pub(super) async fn lock_counts(conn: &mut PgConnection, op: &'static str) -> Result<(), StoreError> {
    let statuses: Vec<&str> = JobStatus::ALL.iter().map(|status| status.as_str()).collect();
    let locked: i64 =
        sqlx::query_scalar(LOCK_COUNTS).bind(&statuses).fetch_one(&mut *conn).await.map_err(backend(op))?;
    if usize::try_from(locked).unwrap_or(0) < statuses.len() {
        sqlx::query(ADD_COUNTS).bind(&statuses).execute(&mut *conn).await.map_err(backend(op))?;
        sqlx::query(LOCK_COUNTS).bind(&statuses).execute(&mut *conn).await.map_err(backend(op))?;
    }
    Ok(())
}

/// Lock the job's row and read its status (None when the job is unknown).
pub(super) async fn lock(conn: &mut PgConnection, key: i64, op: &'static str) -> Result<Option<JobStatus>, StoreError> {
    let row = sqlx::query(LOCK).bind(key).fetch_optional(&mut *conn).await.map_err(backend(op))?;
    row.map(|row| Columns::new(op, &row).parse("status")).transpose()
}

/// Apply `obs` to the job whose locked status is `current` (None: unknown, so create it, with
/// `initial_wait_reason` when given). A creation that lost the race to a concurrent one locks the row that
/// won and merges into it.
pub(super) async fn merge(
    conn: &mut PgConnection,
    key: i64,
    current: Option<JobStatus>,
    obs: &JobObservation,
    initial_wait_reason: Option<Reason>,
    op: &'static str,
) -> Result<JobChange, StoreError> {
    let from = match current {
        Some(from) => from,
        None => {
            if create(conn, key, obs, initial_wait_reason, op).await? {
                return Ok(JobChange::Created);
            }
            lock(conn, key, op).await?.ok_or_else(|| codec::corrupt(op, "a job vanished while it was observed"))?
        }
    };
    if !from.advances_to(obs.status) {
        return Ok(JobChange::Unchanged);
    }
    advance(conn, key, obs, op).await?;
    Ok(JobChange::Advanced { from })
}

/// Insert the job with its timeline entries; false when it exists already.
async fn create(
    conn: &mut PgConnection,
    key: i64,
    obs: &JobObservation,
    initial_wait_reason: Option<Reason>,
    op: &'static str,
) -> Result<bool, StoreError> {
    let created: i64 = sqlx::query_scalar(CREATE)
        .bind(key)
        .bind(codec::id(op, "installation id", obs.installation_id.0)?)
        .bind(obs.repository.as_str())
        .bind(codec::labels_to_json(op, &obs.labels)?)
        .bind(obs.tier.as_ref().map(TierName::as_str))
        .bind(obs.status.as_str())
        .bind(obs.conclusion.as_deref())
        .bind(obs.runner_name.as_ref().map(RunnerName::as_str))
        .bind(initial_wait_reason.map(Reason::code))
        .bind(codec::ts(obs.observed_at))
        .bind(codec::ts_opt(obs.queued_at))
        .bind(codec::ts_opt(obs.started_at))
        .bind(codec::ts_opt(obs.completed_at))
        .bind(status_detail(obs))
        .bind(event_kind::WAITING)
        .fetch_one(&mut *conn)
        .await
        .map_err(backend(op))?;
    Ok(created > 0)
}

async fn advance(conn: &mut PgConnection, key: i64, obs: &JobObservation, op: &'static str) -> Result<(), StoreError> {
    sqlx::query(ADVANCE)
        .bind(key)
        .bind(obs.status.as_str())
        .bind(obs.runner_name.as_ref().map(RunnerName::as_str))
        .bind(codec::ts_opt(obs.started_at))
        .bind(codec::ts_opt(obs.completed_at))
        .bind(obs.conclusion.as_deref())
        .bind(codec::ts_opt(obs.queued_at))
        .bind(codec::ts(obs.observed_at))
        .bind(status_detail(obs))
        .execute(&mut *conn)
        .await
        .map_err(backend(op))?;
    Ok(())
}

/// The timeline detail of a status entry: who runs the job, or how it ended.
pub(super) fn status_detail(obs: &JobObservation) -> String {
    match obs.status {
        JobStatus::Queued => String::new(),
        JobStatus::InProgress => obs.runner_name.as_ref().map(|name| name.as_str().to_owned()).unwrap_or_default(),
        JobStatus::Completed => obs.conclusion.clone().unwrap_or_default(),
    }
}

pub(super) async fn get(pool: &PgPool, id: JobId) -> Result<Option<Job>, StoreError> {
    let Ok(key) = i64::try_from(id.0) else {
        return Ok(None);
    };
    let row = sqlx::query(concat!("SELECT ", job_columns!(), " FROM jobs WHERE job_id = $1"))
        .bind(key)
        .fetch_optional(pool)
        .await
        .map_err(backend(OP_GET))?;
    row.map(|row| job_from_row(OP_GET, &row)).transpose()
}

/// Newest first (by first sight, then job id), at most `limit`.
pub(super) async fn list(pool: &PgPool, filter: JobFilter) -> Result<Vec<Job>, StoreError> {
    let Some(mut query) = list_query(&filter) else {
        return Ok(Vec::new());
    };
    let rows = query.build().fetch_all(pool).await.map_err(backend(OP_LIST))?;
    rows.iter().map(|row| job_from_row(OP_LIST, row)).collect()
}

/// The listing's statement: each combination of filters has an index whose order is the one asked for
/// (`jobs_by_time`, `jobs_by_installation`, `jobs_by_status`, `jobs_by_installation_status`, the wait-reason
/// ones), read backwards, so a limit stops the scan early. None when no job can match. Only binds are
/// appended, never values.
fn list_query(filter: &JobFilter) -> Option<QueryBuilder<Postgres>> {
    let mut query = QueryBuilder::<Postgres>::new(concat!("SELECT ", job_columns!(), " FROM jobs WHERE TRUE"));
    if let Some(installation) = filter.installation_id {
        let key = i64::try_from(installation.0).ok()?;
        query.push(" AND installation_id = ").push_bind(key);
    }
    if let Some(status) = filter.status {
        query.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(reason) = filter.wait_reason {
        // The partial indexes on wait_reason need the planner to see it is not NULL.
        query.push(" AND wait_reason IS NOT NULL AND wait_reason = ").push_bind(reason.code());
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

/// Queued jobs matched to a tier, oldest first (the partial index `jobs_wanting_runner`, whose predicate
/// the literal `'queued'` matches).
pub(super) async fn list_wanting_runner(pool: &PgPool) -> Result<Vec<Job>, StoreError> {
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

/// Set or clear the wait reason inside the caller's write transaction; a timeline entry is appended only
/// when the value changes, so repeated dispatcher passes (on any replica) leave one entry.
///
/// The conditional `UPDATE` locks the row and re-checks its condition on the latest committed version, so
/// a pass racing with `in_progress` on another replica cannot mark a running job as waiting, and two passes
/// setting the same reason log it once. Only a queued job takes a reason; clearing works on any job. An
/// unknown job is left alone.
pub(super) async fn set_wait_reason(
    conn: &mut PgConnection,
    id: JobId,
    reason: Option<Reason>,
    at: Timestamp,
) -> Result<(), StoreError> {
    let Ok(key) = i64::try_from(id.0) else {
        return Ok(());
    };
    let code = reason.map(Reason::code);
    sqlx::query(
        "WITH changed AS ( \
             UPDATE jobs SET wait_reason = $1, updated_at = $2 \
             WHERE job_id = $3 AND wait_reason IS DISTINCT FROM $1 AND ($1 IS NULL OR status = 'queued') \
             RETURNING job_id) \
         INSERT INTO job_events (job_id, at, kind, detail) SELECT job_id, $2, $4, $5 FROM changed",
    )
    .bind(code)
    .bind(codec::ts(at))
    .bind(key)
    .bind(event_kind::WAITING)
    .bind(code.unwrap_or(WAIT_CLEARED_DETAIL))
    .execute(&mut *conn)
    .await
    .map_err(backend(OP_SET_WAIT_REASON))?;
    Ok(())
}

/// Many [`set_wait_reason`]s in the caller's transaction. The rows are changed in job id order, so two
/// replicas' passes over overlapping jobs wait for each other instead of deadlocking. A job listed twice
/// takes its last reason.
pub(super) async fn set_wait_reasons(
    conn: &mut PgConnection,
    reasons: &[(JobId, Option<Reason>)],
    at: Timestamp,
) -> Result<(), StoreError> {
    let mut ordered: Vec<(usize, JobId, Option<Reason>)> =
        reasons.iter().enumerate().map(|(position, &(id, reason))| (position, id, reason)).collect();
    // By job id, keeping the given order among entries of one job.
    ordered.sort_by_key(|&(position, id, _)| (id, position));
    for (_, id, reason) in ordered {
        set_wait_reason(conn, id, reason, at).await?;
    }
    Ok(())
}

/// Append a timeline entry inside the caller's write transaction.
pub(super) async fn append_event(conn: &mut PgConnection, event: &JobEvent) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO job_events (job_id, at, kind, detail) VALUES ($1, $2, $3, $4)")
        .bind(codec::id(OP_APPEND, "job id", event.job_id.0)?)
        .bind(codec::ts(event.at))
        .bind(event.kind.as_str())
        .bind(event.detail.as_str())
        .execute(&mut *conn)
        .await
        .map_err(backend(OP_APPEND))?;
    Ok(())
}

/// A job's timeline in time order (insertion order among equal times).
pub(super) async fn timeline(pool: &PgPool, id: JobId) -> Result<Vec<JobEvent>, StoreError> {
    let Ok(key) = i64::try_from(id.0) else {
        return Ok(Vec::new());
    };
    let rows = sqlx::query("SELECT job_id, at, kind, detail FROM job_events WHERE job_id = $1 ORDER BY at, id")
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
    use ghr_core::ids::InstallationId;

    #[test]
    fn sql_literals_match_the_domain_strings() {
        // The wanting-runner query, set_wait_reason and the partial indexes use this literal.
        assert_eq!(JobStatus::Queued.as_str(), "queued");
    }

    #[test]
    fn listing_binds_every_filter() {
        let filter = JobFilter {
            installation_id: Some(InstallationId(7)),
            status: Some(JobStatus::Queued),
            wait_reason: Some(Reason::GlobalCap),
            before: Some((chrono::DateTime::UNIX_EPOCH, JobId(9))),
            limit: Some(3),
        };
        let built = list_query(&filter).expect("a listable filter").into_sql();
        let sql = built.as_str();
        assert!(sql.contains("installation_id = $1") && sql.contains("LIMIT $6"), "{sql}");
        assert!(sql.contains("(received_at, job_id) < ($4, $5)"), "{sql}");
        let beyond = JobFilter { installation_id: Some(InstallationId(u64::MAX)), ..JobFilter::default() };
        assert!(list_query(&beyond).is_none(), "an installation id no row can hold matches nothing");
    }
}
