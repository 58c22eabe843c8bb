//! The planner's snapshots: everything one dispatch or reconciler plan reads, in one read transaction, so
//! the plan sees one instant. Each read is bounded by what it returns (indexes of migration 0006), never by
//! the size of the jobs table.

use super::jobs::{job_columns, job_from_row};
use super::runners::{runner_columns, runner_from_row, states_json};
use super::tenants::{tenant_columns, tenant_from_row};
use crate::codec::{self, Columns, backend};
use ghr_core::ids::{InstallationId, TierName};
use ghr_core::job::Job;
use ghr_core::planner::DemandKey;
use ghr_core::planner::dispatch::DemandSnapshot;
use ghr_core::planner::fleet::{FleetRecords, JobCursor, StaleQuery};
use ghr_core::planner::reserve::{Headroom, split_by_headroom, tenant_loads};
use ghr_core::ports::{DemandQuery, StoreError};
use ghr_core::reason::Reason;
use ghr_core::runner::RunnerState;
use ghr_core::tenant::{OrgType, Tenant};
use sqlx::{SqliteConnection, SqlitePool};
use std::collections::{BTreeMap, BTreeSet};

pub(super) const OP_DEMAND: &str = "demand_snapshot";
pub(super) const OP_FLEET: &str = "fleet_records";

/// Installation ids as a JSON array, bound to `installation_id IN (SELECT value FROM json_each(?))`.
fn ids_json(ids: &BTreeSet<InstallationId>) -> String {
    let ids: Vec<String> = ids.iter().map(|id| id.0.to_string()).collect();
    format!("[{}]", ids.join(","))
}

/// Demand and supply of some tenants (see `Store::demand_snapshot`).
pub(super) async fn demand(pool: &SqlitePool, query: DemandQuery) -> Result<DemandSnapshot, StoreError> {
    let op = OP_DEMAND;
    let mut tx = pool.begin().await.map_err(backend(op))?;
    let conn = &mut *tx;
    let ids: BTreeSet<InstallationId> = match query.tenants.clone() {
        Some(ids) => ids.into_iter().collect(),
        None => {
            let rows =
                sqlx::query("SELECT DISTINCT installation_id FROM jobs WHERE status = 'queued' AND tier IS NOT NULL")
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(backend(op))?;
            rows.iter()
                .map(|row| Columns::new(op, row).unsigned("installation_id").map(InstallationId))
                .collect::<Result<_, _>>()?
        }
    };
    if ids.is_empty() {
        return Ok(DemandSnapshot::default());
    }
    let ids_json = ids_json(&ids);
    let tenants = tenants_of(conn, op, &ids_json).await?;
    let live = per_tenant_counts(conn, op, &ids_json).await?;
    let global_live = match query.global_cap {
        None => 0,
        Some(_) => {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM runners WHERE state IN (SELECT value FROM json_each(?))")
                .bind(states_json(&RunnerState::LIVE))
                .fetch_one(&mut *conn)
                .await
                .map_err(backend(op))?;
            saturate(Columns::new(op, &row).int("n")?)
        }
    };
    let loads = tenant_loads(tenants, &live);
    // Tenants with headroom contribute their whole queue; the others only the jobs whose reason is not the
    // tenant's refusal (admission's reason, or `unknown_tenant` without a record), grouped by that reason.
    let Headroom { open, closed } = split_by_headroom(&ids, &loads, query.global_cap, global_live);
    let full = query.tenants.is_none();
    let mut jobs = queued_jobs(conn, op, &open, None).await?;
    let mut kept_reasons = BTreeMap::new();
    for (reason, tenants) in &closed {
        jobs.extend(queued_jobs(conn, op, tenants, Some(*reason)).await?);
        if full {
            kept_reasons.insert(*reason, kept(conn, op, tenants, *reason).await?);
        }
    }
    kept_reasons.retain(|_, n| *n > 0);
    jobs.sort_by_key(|j| (j.received_at, j.job_id));
    let unbound = unbound_of(conn, op, &ids_json).await?;
    tx.commit().await.map_err(backend(op))?;
    Ok(DemandSnapshot { tenants: loads, jobs, unbound, global_live, kept_reasons })
}

/// How many queued jobs of `tenants` wait with `reason` (the jobs a snapshot leaves unread).
async fn kept(
    conn: &mut SqliteConnection,
    op: &'static str,
    tenants: &BTreeSet<InstallationId>,
    reason: Reason,
) -> Result<u32, StoreError> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM jobs WHERE status = 'queued' AND tier IS NOT NULL \
         AND installation_id IN (SELECT value FROM json_each(?)) AND wait_reason = ?",
    )
    .bind(ids_json(tenants))
    .bind(reason.code())
    .fetch_one(&mut *conn)
    .await
    .map_err(backend(op))?;
    Ok(saturate(Columns::new(op, &row).int("n")?))
}

/// The fleet for a reconciler plan (see `Store::fleet_records`).
pub(super) async fn fleet(pool: &SqlitePool, stale: StaleQuery) -> Result<FleetRecords, StoreError> {
    let op = OP_FLEET;
    let mut tx = pool.begin().await.map_err(backend(op))?;
    let conn = &mut *tx;
    let rows = sqlx::query(concat!(
        "SELECT ",
        runner_columns!(),
        " FROM runners WHERE state IN (SELECT value FROM json_each(?)) ORDER BY seq"
    ))
    .bind(states_json(&RunnerState::LIVE))
    .fetch_all(&mut *conn)
    .await
    .map_err(backend(op))?;
    let live = rows.iter().map(|row| runner_from_row(op, row)).collect::<Result<Vec<_>, _>>()?;
    let before = codec::ts(stale.before);
    let limit = i64::from(stale.limit);
    // Each walk reads the next page after its cursor, in index order (`jobs_wanting_runner` for queued jobs,
    // `jobs_by_status` for running ones): a pass costs its page, not the number of jobs waiting.
    let (queued_at, queued_id) = cursor_values(op, stale.queued_after)?;
    let mut stale_jobs =
        fetch_jobs(conn, op, sqlx::query(STALE_QUEUED_SQL).bind(before).bind(queued_at).bind(queued_id).bind(limit))
            .await?;
    let (running_at, running_id) = cursor_values(op, stale.in_progress_after)?;
    stale_jobs.extend(
        fetch_jobs(
            conn,
            op,
            sqlx::query(STALE_IN_PROGRESS_SQL).bind(before).bind(running_at).bind(running_id).bind(limit),
        )
        .await?,
    );
    let ids: BTreeSet<InstallationId> =
        live.iter().map(|r| r.installation_id).chain(stale_jobs.iter().map(|j| j.installation_id)).collect();
    let tenants = tenants_of(conn, op, &ids_json(&ids)).await?.into_iter().map(|t| (t.installation_id, t)).collect();
    let demand = demand_of_unbound_tenants(conn, op).await?;
    tx.commit().await.map_err(backend(op))?;
    Ok(FleetRecords { live, tenants, demand, stale_jobs })
}

/// The next page of the walk over stale queued jobs (binds: threshold, cursor time, cursor id, limit).
pub(super) const STALE_QUEUED_SQL: &str = concat!(
    "SELECT ",
    job_columns!(),
    " FROM jobs WHERE status = 'queued' AND tier IS NOT NULL AND received_at <= ? \
     AND (received_at, job_id) > (?, ?) ORDER BY received_at, job_id LIMIT ?"
);

/// The next page of the walk over stale in-progress jobs (binds as [`STALE_QUEUED_SQL`]).
pub(super) const STALE_IN_PROGRESS_SQL: &str = concat!(
    "SELECT ",
    job_columns!(),
    " FROM jobs WHERE status = 'in_progress' AND tier IS NOT NULL \
     AND COALESCE(started_at, updated_at) <= ? AND (received_at, job_id) > (?, ?) \
     ORDER BY received_at, job_id LIMIT ?"
);

/// A walk's cursor as the values its row comparison binds; before every job when `None`.
fn cursor_values(op: &'static str, cursor: Option<JobCursor>) -> Result<(i64, i64), StoreError> {
    match cursor {
        Some(cursor) => Ok((codec::ts(cursor.received_at), codec::id(op, "job_id", cursor.job_id.0)?)),
        None => Ok((i64::MIN, i64::MIN)),
    }
}

async fn tenants_of(conn: &mut SqliteConnection, op: &'static str, ids_json: &str) -> Result<Vec<Tenant>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        tenant_columns!(),
        " FROM tenants WHERE installation_id IN (SELECT value FROM json_each(?)) ORDER BY installation_id"
    ))
    .bind(ids_json)
    .fetch_all(&mut *conn)
    .await
    .map_err(backend(op))?;
    rows.iter().map(|row| tenant_from_row(op, row)).collect()
}

/// Live runners per tenant among `ids_json`.
async fn per_tenant_counts(
    conn: &mut SqliteConnection,
    op: &'static str,
    ids_json: &str,
) -> Result<BTreeMap<InstallationId, u32>, StoreError> {
    let rows = sqlx::query(
        "SELECT installation_id, COUNT(*) AS n FROM runners WHERE state IN (SELECT value FROM json_each(?)) \
         AND installation_id IN (SELECT value FROM json_each(?)) GROUP BY installation_id",
    )
    .bind(states_json(&RunnerState::LIVE))
    .bind(ids_json)
    .fetch_all(&mut *conn)
    .await
    .map_err(backend(op))?;
    rows.iter()
        .map(|row| {
            let c = Columns::new(op, row);
            Ok((InstallationId(c.unsigned("installation_id")?), saturate(c.int("n")?)))
        })
        .collect()
}

/// Unbound runners per key of the tenants among `ids_json`.
async fn unbound_of(
    conn: &mut SqliteConnection,
    op: &'static str,
    ids_json: &str,
) -> Result<BTreeMap<DemandKey, u32>, StoreError> {
    let rows = sqlx::query(
        "SELECT installation_id, tier, scope_repo, COUNT(*) AS n FROM runners \
         WHERE state IN (SELECT value FROM json_each(?)) AND installation_id IN (SELECT value FROM json_each(?)) \
         GROUP BY installation_id, tier, scope_repo",
    )
    .bind(states_json(&RunnerState::UNBOUND))
    .bind(ids_json)
    .fetch_all(&mut *conn)
    .await
    .map_err(backend(op))?;
    keyed_counts(op, &rows, "scope_repo")
}

/// Queued jobs matched to a tier per key, for the tenants that have unbound runners (the surplus rule).
async fn demand_of_unbound_tenants(
    conn: &mut SqliteConnection,
    op: &'static str,
) -> Result<BTreeMap<DemandKey, u32>, StoreError> {
    let rows = sqlx::query(
        "SELECT j.installation_id AS installation_id, j.tier AS tier, \
                CASE WHEN t.org_type = ? THEN j.repository END AS scope, COUNT(*) AS n \
         FROM jobs j LEFT JOIN tenants t ON t.installation_id = j.installation_id \
         WHERE j.status = 'queued' AND j.tier IS NOT NULL AND j.installation_id IN \
             (SELECT DISTINCT installation_id FROM runners WHERE state IN (SELECT value FROM json_each(?))) \
         GROUP BY 1, 2, 3",
    )
    .bind(OrgType::User.as_str())
    .bind(states_json(&RunnerState::UNBOUND))
    .fetch_all(&mut *conn)
    .await
    .map_err(backend(op))?;
    keyed_counts(op, &rows, "scope")
}

fn keyed_counts(
    op: &'static str,
    rows: &[sqlx::sqlite::SqliteRow],
    scope_column: &'static str,
) -> Result<BTreeMap<DemandKey, u32>, StoreError> {
    rows.iter()
        .map(|row| {
            let c = Columns::new(op, row);
            let key = DemandKey {
                installation_id: InstallationId(c.unsigned("installation_id")?),
                tier: TierName::new(c.text("tier")?),
                scope_repo: c.text_opt(scope_column)?,
            };
            Ok((key, saturate(c.int("n")?)))
        })
        .collect()
}

/// Queued jobs matched to a tier of `tenants`, oldest first; with `except`, only those whose wait reason is
/// not that one.
async fn queued_jobs(
    conn: &mut SqliteConnection,
    op: &'static str,
    tenants: &BTreeSet<InstallationId>,
    except: Option<Reason>,
) -> Result<Vec<Job>, StoreError> {
    if tenants.is_empty() {
        return Ok(Vec::new());
    }
    let query = match except {
        // Three index ranges (no reason, a reason before, a reason after `except`): the jobs that keep
        // `except` are never visited, so the read costs what it returns.
        Some(reason) => sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs INDEXED BY jobs_queued_by_tenant_reason WHERE status = 'queued' AND tier IS NOT NULL \
             AND installation_id IN (SELECT value FROM json_each(?1)) AND wait_reason IS NULL \
             UNION ALL SELECT ",
            job_columns!(),
            " FROM jobs INDEXED BY jobs_queued_by_tenant_reason WHERE status = 'queued' AND tier IS NOT NULL \
             AND installation_id IN (SELECT value FROM json_each(?1)) AND wait_reason < ?2 \
             UNION ALL SELECT ",
            job_columns!(),
            " FROM jobs INDEXED BY jobs_queued_by_tenant_reason WHERE status = 'queued' AND tier IS NOT NULL \
             AND installation_id IN (SELECT value FROM json_each(?1)) AND wait_reason > ?2 \
             ORDER BY received_at, job_id"
        ))
        .bind(ids_json(tenants))
        .bind(reason.code()),
        None => sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs INDEXED BY jobs_queued_by_tenant WHERE status = 'queued' AND tier IS NOT NULL \
             AND installation_id IN (SELECT value FROM json_each(?)) ORDER BY received_at, job_id"
        ))
        .bind(ids_json(tenants)),
    };
    fetch_jobs(conn, op, query).await
}

async fn fetch_jobs<'q>(
    conn: &mut SqliteConnection,
    op: &'static str,
    query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
) -> Result<Vec<Job>, StoreError> {
    let rows = query.fetch_all(&mut *conn).await.map_err(backend(op))?;
    rows.iter().map(|row| job_from_row(op, row)).collect()
}

fn saturate(count: i64) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}
