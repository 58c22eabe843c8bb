//! The atomic runner reservation on PostgreSQL: demand, admission and the insert of a `requested` runner, in
//! one READ COMMITTED write transaction that holds the locks the decision depends on, so the tenant limit and
//! the global cap hold across every replica. The decision is the planner's reservation rule
//! ([`decide_reservation`]) on the counts read here.
//!
//! Locks, always in this order (one order everywhere, so reservations cannot deadlock each other):
//! 1. the tenant's row (`FOR UPDATE`): reservations of one tenant run one at a time across replicas;
//! 2. with a global cap, the one `reserve_lock` row (`FOR UPDATE`): capped reservations of every tenant run one
//!    at a time across replicas.
//!
//! The counts are read by a statement that starts after the locks are held, and under READ COMMITTED each
//! statement sees everything committed before it started: every reservation that held these locks earlier
//! has committed its runner by then, so it is counted. Releases (`runner_update`) take neither lock: they only
//! lower the counts, so reading one a moment late can refuse a slot, never grant one too many.

use super::runners::{self, runner_columns, state_names};
use crate::codec::{self, Columns, backend};
use ghr_core::admission::AdmissionInput;
use ghr_core::ids::{RunnerName, RunnerSeq};
use ghr_core::planner::reserve::{ReserveCounts, ReserveDecision, decide_reservation};
use ghr_core::ports::{Reservation, ReserveRequest, StoreError};
use ghr_core::reason::Reason;
use ghr_core::runner::RunnerState;
use ghr_core::tenant::TenantStatus;
use sqlx::PgConnection;

pub(super) const OP: &str = "runner_reserve";

/// Lock 1: the tenant's row; its status, plan and limit are read under the lock.
const LOCK_TENANT_SQL: &str = "SELECT status, tier, max_runners FROM tenants WHERE installation_id = $1 FOR UPDATE";

/// Lock 2 (with a global cap only): the row that serialises capped reservations cluster-wide.
const LOCK_GLOBAL_SQL: &str = "SELECT id FROM reserve_lock WHERE id = 1 FOR UPDATE";

/// Every count the decision needs and the latest release, in one statement (one snapshot, one round trip
/// while the locks are held). Binds: installation, tier, scope (NULL: any repository for jobs, none for
/// runners), unbound states, live states, whether the global count is needed. The global count is an
/// uncorrelated subquery under `CASE`, evaluated only when asked for.
const COUNTS_SQL: &str = "SELECT \
     (SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND installation_id = $1 AND tier = $2 \
         AND ($3::TEXT IS NULL OR repository = $3)) AS queued, \
     (SELECT COUNT(*) FROM runners WHERE installation_id = $1 AND state = ANY($4) AND tier = $2 \
         AND scope_repo IS NOT DISTINCT FROM $3) AS unbound, \
     (SELECT COUNT(*) FROM runners WHERE installation_id = $1 AND state = ANY($5)) AS tenant_live, \
     CASE WHEN $6 THEN (SELECT COUNT(*) FROM runners WHERE state = ANY($5)) ELSE 0 END AS global_live, \
     (SELECT MAX(terminated_at) FROM runners) AS latest_release";

/// The next runner sequence number (the column's own sequence, found by name under the store's schema).
const NEXT_SEQ_SQL: &str = "SELECT nextval(pg_get_serial_sequence('runners', 'seq')) AS seq";

const INSERT_SQL: &str = concat!(
    "INSERT INTO runners (seq, name, installation_id, tier, tenant_tier, scope_repo, state, intended_job, \
         created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING ",
    runner_columns!()
);

/// Decide and, when admitted, insert, inside the caller's write transaction (see the module documentation).
pub(super) async fn reserve(conn: &mut PgConnection, request: &ReserveRequest) -> Result<Reservation, StoreError> {
    let installation = codec::id(OP, "installation id", request.installation_id.0)?;

    // 1. The tenant, locked.
    let Some(row) =
        sqlx::query(LOCK_TENANT_SQL).bind(installation).fetch_optional(&mut *conn).await.map_err(backend(OP))?
    else {
        return Ok(Reservation::Refused(Reason::UnknownTenant));
    };
    let tenant = Columns::new(OP, &row);
    let status: TenantStatus = tenant.parse("status")?;
    let plan = tenant.text("tier")?;
    let max_runners = tenant.u32("max_runners")?;

    // 2. The deployment-wide lock, after the tenant's (one lock order).
    if request.global_cap.is_some() {
        sqlx::query(LOCK_GLOBAL_SQL).fetch_one(&mut *conn).await.map_err(backend(OP))?;
    }

    // 3. Remaining demand of (tenant, tier, scope), the tenant's live runners across all tiers, the
    //    deployment's (only when capped: otherwise it decides nothing) and the latest release.
    let row = sqlx::query(COUNTS_SQL)
        .bind(installation)
        .bind(request.tier.as_str())
        .bind(request.scope_repo.as_deref())
        .bind(state_names(&RunnerState::UNBOUND))
        .bind(state_names(&RunnerState::LIVE))
        .bind(request.global_cap.is_some())
        .fetch_one(&mut *conn)
        .await
        .map_err(backend(OP))?;
    let c = Columns::new(OP, &row);
    let counts = ReserveCounts {
        queued: saturate(c.int("queued")?),
        unbound: saturate(c.int("unbound")?),
        admission: AdmissionInput {
            tenant_status: status,
            max_runners,
            tenant_live: saturate(c.int("tenant_live")?),
            global_cap: request.global_cap,
            global_live: saturate(c.int("global_live")?),
        },
    };
    let latest_release = c.int_opt("latest_release")?;
    match decide_reservation(counts) {
        ReserveDecision::Reserve => {}
        ReserveDecision::NoDemand => return Ok(Reservation::NoDemand),
        ReserveDecision::Refused(reason) => return Ok(Reservation::Refused(reason)),
    }

    // 4. The runner, named after its sequence number and inserted whole. It is dated no earlier than the
    //    latest release already committed: the caller read its clock before it got the locks, and records
    //    read as intervals [created_at, terminated_at) must never show more live runners than were admitted.
    //    (The database's clock is not used: callers and tests own time.)
    let now = codec::ts(request.now).max(latest_release.unwrap_or(i64::MIN));
    let seq_row = sqlx::query(NEXT_SEQ_SQL).fetch_one(&mut *conn).await.map_err(backend(OP))?;
    let seq = RunnerSeq(Columns::new(OP, &seq_row).unsigned("seq")?);
    let name = RunnerName::derive(&request.environment, request.installation_id, &request.tier, seq);
    let row = sqlx::query(INSERT_SQL)
        .bind(codec::id(OP, "runner seq", seq.0)?)
        .bind(name.as_str())
        .bind(installation)
        .bind(request.tier.as_str())
        .bind(plan.as_str())
        .bind(request.scope_repo.as_deref())
        .bind(RunnerState::Requested.as_str())
        .bind(codec::id_opt(OP, "job id", request.intended_job.map(|j| j.0))?)
        .bind(now)
        .fetch_one(&mut *conn)
        .await
        .map_err(backend(OP))?;
    let runner = runners::runner_from_row(OP, &row)?;
    Ok(Reservation::Reserved(Box::new(runner)))
}

fn saturate(count: i64) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}
