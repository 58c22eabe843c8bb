//! Counts on SQLite whose cost follows what changed, not the size of the tables: jobs and tenants per
//! status from the count tables the triggers of migration 0005 keep, live runners per (tenant, tier, state)
//! from a partial index over live runners, and one tenant's waiting jobs by reason.

use crate::codec::{Columns, backend, corrupt};
use ghr_core::ids::{InstallationId, TierName};
use ghr_core::job::JobStatus;
use ghr_core::ports::{RunnerSeries, StoreError};
use ghr_core::reason::Reason;
use ghr_core::tenant::TenantStatus;
use sqlx::SqlitePool;
use std::collections::BTreeMap;
use std::str::FromStr;

const OP_JOB_COUNTS: &str = "job_counts";
const OP_TENANT_COUNTS: &str = "tenant_counts";
const OP_LIVE_SERIES: &str = "runner_live_series";
const OP_WAITING_COUNTS: &str = "job_waiting_counts";

/// The live states as an SQL list. It must match the WHERE clause of the partial index
/// `runners_live_series` (migration 0005) word for word, or SQLite reads the whole runners table.
macro_rules! live_states_sql {
    () => {
        "('requested', 'launching', 'idle', 'busy', 'finished')"
    };
}

/// Live runners grouped by (tenant, tier, state), read from the partial index alone. Without statistics SQLite
/// would prefer `runners_by_state` and sort; `INDEXED BY` makes a change that stops the index from serving
/// this query an error rather than a slow scan.
pub(super) const LIVE_SERIES_SQL: &str = concat!(
    "SELECT installation_id, tier, state, COUNT(*) AS n FROM runners INDEXED BY runners_live_series WHERE state IN ",
    live_states_sql!(),
    " GROUP BY installation_id, tier, state"
);

/// Jobs per status, from `job_status_counts` (kept by triggers in the transactions that change jobs).
pub(super) async fn jobs(pool: &SqlitePool) -> Result<BTreeMap<JobStatus, u64>, StoreError> {
    status_counts(pool, "SELECT status, n FROM job_status_counts WHERE n > 0", OP_JOB_COUNTS).await
}

/// Tenants per status, from `tenant_status_counts` (kept by triggers).
pub(super) async fn tenants(pool: &SqlitePool) -> Result<BTreeMap<TenantStatus, u64>, StoreError> {
    status_counts(pool, "SELECT status, n FROM tenant_status_counts WHERE n > 0", OP_TENANT_COUNTS).await
}

async fn status_counts<S>(
    pool: &SqlitePool,
    sql: &'static str,
    op: &'static str,
) -> Result<BTreeMap<S, u64>, StoreError>
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

/// Live runners per (tenant, tier, state): a covering scan of the partial index over live runners.
pub(super) async fn live_series(pool: &SqlitePool) -> Result<RunnerSeries, StoreError> {
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

/// Jobs wanting a runner by wait reason, of one tenant (its queued jobs only) or of every tenant (one entry of
/// the partial index over queued jobs each, grouped in memory by SQLite: a handful of reasons).
pub(super) async fn waiting(
    pool: &SqlitePool,
    installation: Option<InstallationId>,
) -> Result<BTreeMap<Option<Reason>, u64>, StoreError> {
    let query = match installation {
        None => sqlx::query(WAITING_TOTALS_SQL),
        Some(installation) => match i64::try_from(installation.0) {
            Ok(key) => sqlx::query(WAITING_SQL).bind(key),
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

/// Every tenant's queued jobs matched to a tier, by reason, one entry of the partial index over them each (and a
/// row read for its status and tier). The index is named: without statistics SQLite
/// prefers `jobs_by_status` and a table lookup per queued job; a dropped index makes this an error, not a scan.
pub(super) const WAITING_TOTALS_SQL: &str = "SELECT wait_reason, COUNT(*) AS n FROM jobs INDEXED BY jobs_queued_by_tenant_reason \
     WHERE status = 'queued' AND tier IS NOT NULL GROUP BY wait_reason";

/// The literal `'queued'` lets SQLite use the partial indexes over queued jobs.
pub(super) const WAITING_SQL: &str = "SELECT wait_reason, COUNT(*) AS n FROM jobs \
     WHERE installation_id = ? AND status = 'queued' AND tier IS NOT NULL GROUP BY wait_reason";

#[cfg(test)]
mod tests {
    use ghr_core::runner::RunnerState;

    #[test]
    fn live_states_sql_lists_the_domain_live_states() {
        let listed: Vec<String> = RunnerState::LIVE.iter().map(|s| format!("'{}'", s.as_str())).collect();
        assert_eq!(live_states_sql!(), format!("({})", listed.join(", ")));
    }
}
