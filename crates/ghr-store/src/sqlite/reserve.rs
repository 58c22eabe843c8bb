//! The atomic runner reservation: demand, admission and the insert of a `requested` runner, all
//! under SQLite's write lock (the caller opened the transaction with `BEGIN IMMEDIATE`). The decision is the
//! planner's reservation rule ([`decide_reservation`]) on the counts read here.

use super::runners::{self, states_json};
use crate::codec::{self, Columns, backend};
use ghr_core::admission::AdmissionInput;
use ghr_core::ids::{RunnerName, RunnerSeq};
use ghr_core::planner::reserve::{ReserveCounts, ReserveDecision, decide_reservation};
use ghr_core::ports::{Reservation, ReserveRequest, StoreError};
use ghr_core::reason::Reason;
use ghr_core::runner::{Runner, RunnerState};
use ghr_core::tenant::TenantStatus;
use sqlx::SqliteConnection;

pub(super) const OP: &str = "runner_reserve";

/// The name a runner row carries between its insert and the naming update of the same
/// transaction; never committed (and `name` is unique, so two could not coexist anyway).
const UNNAMED: &str = "";

/// Decide and, when admitted, insert. Reads happen after the write lock is held, so the counts
/// cannot change before the insert commits.
pub(super) async fn reserve(conn: &mut SqliteConnection, request: &ReserveRequest) -> Result<Reservation, StoreError> {
    let installation = codec::id(OP, "installation id", request.installation_id.0)?;

    // 1. The tenant.
    let Some(row) = sqlx::query("SELECT status, tier, max_runners FROM tenants WHERE installation_id = ?")
        .bind(installation)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend(OP))?
    else {
        return Ok(Reservation::Refused(Reason::UnknownTenant));
    };
    let tenant = Columns::new(OP, &row);
    let status: TenantStatus = tenant.parse("status")?;
    let plan = tenant.text("tier")?;
    let max_runners = tenant.u32("max_runners")?;

    // 2. Remaining demand of (tenant, tier, scope): queued jobs not yet covered by an unbound runner.
    let queued = count(
        conn,
        sqlx::query(
            "SELECT COUNT(*) AS n FROM jobs \
             WHERE status = 'queued' AND installation_id = ?1 AND tier = ?2 AND (?3 IS NULL OR repository = ?3)",
        )
        .bind(installation)
        .bind(request.tier.as_str())
        .bind(request.scope_repo.as_deref()),
    )
    .await?;
    let unbound = count(
        conn,
        sqlx::query(
            "SELECT COUNT(*) AS n FROM runners \
             WHERE installation_id = ? AND state IN (SELECT value FROM json_each(?)) AND tier = ? AND scope_repo IS ?",
        )
        .bind(installation)
        .bind(states_json(&RunnerState::UNBOUND))
        .bind(request.tier.as_str())
        .bind(request.scope_repo.as_deref()),
    )
    .await?;
    // 3. Admission: the tenant's live runners across all tiers, and the deployment-wide cap.
    let tenant_live = count(
        conn,
        sqlx::query(
            "SELECT COUNT(*) AS n FROM runners WHERE installation_id = ? AND state IN (SELECT value FROM json_each(?))",
        )
        .bind(installation)
        .bind(states_json(&RunnerState::LIVE)),
    )
    .await?;
    let global_live = match request.global_cap {
        // Without a cap the global count decides nothing; skip the scan.
        None => 0,
        Some(_) => {
            count(
                conn,
                sqlx::query("SELECT COUNT(*) AS n FROM runners WHERE state IN (SELECT value FROM json_each(?))")
                    .bind(states_json(&RunnerState::LIVE)),
            )
            .await?
        }
    };
    let counts = ReserveCounts {
        queued: saturate(queued),
        unbound: saturate(unbound),
        admission: AdmissionInput {
            tenant_status: status,
            max_runners,
            tenant_live: saturate(tenant_live),
            global_cap: request.global_cap,
            global_live: saturate(global_live),
        },
    };
    match decide_reservation(counts) {
        ReserveDecision::Reserve => {}
        ReserveDecision::NoDemand => return Ok(Reservation::NoDemand),
        ReserveDecision::Refused(reason) => return Ok(Reservation::Refused(reason)),
    }

    // 4. The runner: insert, then name it after its sequence number. It is dated no earlier than the
    //    latest release already committed: the caller read its clock before it got the write lock, and
    //    records read as intervals [created_at, terminated_at) must never show more live runners than
    //    were admitted. (The store's own clock is not used: callers and tests own time.)
    let latest_release = sqlx::query("SELECT MAX(terminated_at) AS latest FROM runners")
        .fetch_one(&mut *conn)
        .await
        .map_err(backend(OP))?;
    let latest_release: Option<i64> = Columns::new(OP, &latest_release).int_opt("latest")?;
    let now = codec::ts(request.now).max(latest_release.unwrap_or(i64::MIN));
    let seq_row = sqlx::query(
        "INSERT INTO runners (name, installation_id, tier, tenant_tier, scope_repo, state, intended_job, \
             created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
    )
    .bind(UNNAMED)
    .bind(installation)
    .bind(request.tier.as_str())
    .bind(plan.as_str())
    .bind(request.scope_repo.as_deref())
    .bind(RunnerState::Requested.as_str())
    .bind(codec::id_opt(OP, "job id", request.intended_job.map(|j| j.0))?)
    .bind(now)
    .bind(now)
    .fetch_one(&mut *conn)
    .await
    .map_err(backend(OP))?;
    let seq = RunnerSeq(Columns::new(OP, &seq_row).unsigned("seq")?);
    let name = RunnerName::derive(&request.environment, request.installation_id, &request.tier, seq);
    let runner =
        sqlx::query(concat!("UPDATE runners SET name = ? WHERE seq = ? RETURNING ", runners::runner_columns!()))
            .bind(name.as_str())
            .bind(codec::id(OP, "runner seq", seq.0)?)
            .fetch_one(&mut *conn)
            .await
            .map_err(backend(OP))?;
    let runner: Runner = runners::runner_from_row(OP, &runner)?;
    Ok(Reservation::Reserved(Box::new(runner)))
}

async fn count<'q>(
    conn: &mut SqliteConnection,
    query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
) -> Result<i64, StoreError> {
    let row = query.fetch_one(&mut *conn).await.map_err(backend(OP))?;
    Columns::new(OP, &row).int("n")
}

fn saturate(count: i64) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}
