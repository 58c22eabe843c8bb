//! Counts on PostgreSQL whose cost follows what changed, not the size of the tables: jobs and tenants per
//! status from the count tables the triggers of the first migration keep (in the transactions that change
//! the rows, so every replica reads committed, consistent counts), live runners per (tenant, tier, state)
//! from the partial index over live runners, and waiting jobs by reason from the partial indexes over
//! queued jobs. PostgreSQL has no `INDEXED BY`: the predicates repeat the partial indexes' `WHERE` clauses
//! word for word so the planner can use them.

use crate::codec::{Columns, backend, corrupt};
use ghr_core::ids::{InstallationId, TierName};
use ghr_core::job::JobStatus;
use ghr_core::ports::{RunnerSeries, StoreError};
use ghr_core::reason::Reason;
use ghr_core::tenant::TenantStatus;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::str::FromStr;

const OP_JOB_COUNTS: &str = "job_counts";
const OP_TENANT_COUNTS: &str = "tenant_counts";
const OP_LIVE_SERIES: &str = "runner_live_series";
const OP_WAITING_COUNTS: &str = "job_waiting_counts";

/// The live states as an SQL list. It must match the WHERE clause of the partial index `runners_live_series`
/// (first migration) for the planner to answer from that index.
macro_rules! live_states_sql {
    () => {
        "('requested', 'launching', 'idle', 'busy', 'finished')"
    };
}

/// Live runners grouped by (tenant, tier, state), from the partial index over live runners.
const LIVE_SERIES_SQL: &str = concat!(
    "SELECT installation_id, tier, state, COUNT(*) AS n FROM runners WHERE state IN ",
    live_states_sql!(),
    " GROUP BY installation_id, tier, state"
);

/// Every tenant's queued jobs matched to a tier, by reason (partial index `jobs_queued_by_tenant_reason`).
const WAITING_TOTALS_SQL: &str = "SELECT wait_reason, COUNT(*) AS n FROM jobs \
     WHERE status = 'queued' AND tier IS NOT NULL GROUP BY wait_reason";

/// One tenant's queued jobs matched to a tier, by reason (the same partial index, one tenant's range).
const WAITING_SQL: &str = "SELECT wait_reason, COUNT(*) AS n FROM jobs \
     WHERE installation_id = $1 AND status = 'queued' AND tier IS NOT NULL GROUP BY wait_reason";

/// Jobs per status, from `job_status_counts`; statuses counted down to zero are left out.
pub(super) async fn jobs(pool: &PgPool) -> Result<BTreeMap<JobStatus, u64>, StoreError> {
    status_counts(pool, "SELECT status, n FROM job_status_counts WHERE n > 0", OP_JOB_COUNTS).await
}

/// Tenants per status, from `tenant_status_counts`; statuses counted down to zero are left out.
pub(super) async fn tenants(pool: &PgPool) -> Result<BTreeMap<TenantStatus, u64>, StoreError> {
    status_counts(pool, "SELECT status, n FROM tenant_status_counts WHERE n > 0", OP_TENANT_COUNTS).await
}

async fn status_counts<S>(pool: &PgPool, sql: &'static str, op: &'static str) -> Result<BTreeMap<S, u64>, StoreError>
where
    S: FromStr + Ord,
    S::Err: std::fmt::Display,
{
    let rows = sqlx::query(sql).fetch_all(pool).await.map_err(backend(op))?;
    let mut counts = BTreeMap::new();
    for row in &rows {
        let c = Columns::new(op, row);
        let n = c.unsigned("n")?;
        counts.insert(c.parse::<S>("status")?, n);
    }
    Ok(counts)
}

/// Live runners per (tenant, tier, state).
pub(super) async fn live_series(pool: &PgPool) -> Result<RunnerSeries, StoreError> {
    let rows = sqlx::query(LIVE_SERIES_SQL).fetch_all(pool).await.map_err(backend(OP_LIVE_SERIES))?;
    let mut series = RunnerSeries::new();
    for row in &rows {
        let c = Columns::new(OP_LIVE_SERIES, row);
        let n = c.u32("n")?;
        let key = (InstallationId(c.unsigned("installation_id")?), TierName::new(c.text("tier")?), c.parse("state")?);
        series.insert(key, n);
    }
    Ok(series)
}

/// Jobs wanting a runner by wait reason, of one tenant or of every tenant.
pub(super) async fn waiting(
    pool: &PgPool,
    installation: Option<InstallationId>,
) -> Result<BTreeMap<Option<Reason>, u64>, StoreError> {
    let query = match installation {
        None => sqlx::query(WAITING_TOTALS_SQL),
        Some(installation) => match i64::try_from(installation.0) {
            Ok(key) => sqlx::query(WAITING_SQL).bind(key),
            // No stored job can belong to an id beyond the column's range.
            Err(_) => return Ok(BTreeMap::new()),
        },
    };
    let rows = query.fetch_all(pool).await.map_err(backend(OP_WAITING_COUNTS))?;
    let mut counts = BTreeMap::new();
    for row in &rows {
        let c = Columns::new(OP_WAITING_COUNTS, row);
        let reason =
            match c.text_opt("wait_reason")? {
                None => None,
                Some(code) => Some(Reason::from_code(&code).ok_or_else(|| {
                    corrupt(OP_WAITING_COUNTS, format!("column wait_reason: unknown reason {code:?}"))
                })?),
            };
        counts.insert(reason, c.unsigned("n")?);
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use ghr_core::runner::RunnerState;

    const SCHEMA: &str = include_str!("../../migrations/postgres/0001_init.sql");

    #[test]
    fn live_states_sql_lists_the_domain_live_states_and_the_index_predicate() {
        let listed: Vec<String> = RunnerState::LIVE.iter().map(|s| format!("'{}'", s.as_str())).collect();
        assert_eq!(live_states_sql!(), format!("({})", listed.join(", ")));
        let index = format!("WHERE state IN {}", live_states_sql!());
        assert!(SCHEMA.contains(&index), "runners_live_series is declared with {index}");
    }

    #[test]
    fn waiting_predicate_matches_the_queued_partial_index() {
        let predicate = "status = 'queued' AND tier IS NOT NULL";
        let index = format!(
            "jobs_queued_by_tenant_reason ON jobs (installation_id, wait_reason, received_at, job_id)\n    WHERE {predicate}"
        );
        assert!(SCHEMA.contains(&index), "the partial index is declared as {index}");
        for sql in [super::WAITING_TOTALS_SQL, super::WAITING_SQL] {
            assert!(sql.contains(predicate), "{sql} repeats the index predicate");
        }
    }
}
