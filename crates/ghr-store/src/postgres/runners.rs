//! Runner records on PostgreSQL: lifecycle-checked updates with timestamp stamping, lookups and live counts.
//!
//! An update locks its row (`SELECT ... FOR UPDATE`) before it reads the current state, so two replicas
//! moving one runner at once apply their changes one after the other, each merged into the state the other
//! committed: a state the lifecycle has left is never written back. When a live runner leaves the live states,
//! the schema's `runners_wake` trigger tells the other replicas that a slot is free; nothing here does that.

use crate::codec::{self, Columns, backend};
pub(super) use crate::rows::runner_columns;
pub(super) use crate::rows::runner_from_row;
use ghr_core::ids::{InstallationId, InstanceId, RunnerName};
use ghr_core::ports::{RunnerFilter, RunnerUpdate, StoreError};
use ghr_core::runner::{Runner, RunnerState};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use std::collections::BTreeMap;

pub(super) const OP_UPDATE: &str = "runner_update";
const OP_GET: &str = "runner_get";
const OP_LIST: &str = "runner_list";
const OP_LIVE_COUNTS: &str = "runner_live_counts";

/// A set of states as a text array, bound to `state = ANY($n)` so one prepared statement serves any set
/// (the sets are the domain's `LIVE` / `UNBOUND` constants).
pub(super) fn state_names(states: &[RunnerState]) -> Vec<&'static str> {
    states.iter().map(|state| state.as_str()).collect()
}

/// Apply an update inside the caller's write transaction. A state change the lifecycle forbids keeps
/// the state ([`RunnerState::merge`]); the other fields are recorded all the same.
pub(super) async fn update(
    conn: &mut PgConnection,
    name: &RunnerName,
    update: RunnerUpdate,
) -> Result<Option<Runner>, StoreError> {
    // The row lock holds until commit: another replica's update of this runner waits here, then reads the
    // state this one wrote.
    let row = sqlx::query(concat!("SELECT ", runner_columns!(), " FROM runners WHERE name = $1 FOR UPDATE"))
        .bind(name.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend(OP_UPDATE))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let current = runner_from_row(OP_UPDATE, &row)?;
    let asked = update.state.unwrap_or(current.state);
    let next = current.state.merge(asked);
    if next != asked {
        tracing::debug!(runner = %name, from = %current.state, to = %asked, "runner state change refused; state kept");
    }
    // Each timestamp is stamped once, when the runner is first seen in the matching state. Billing starts
    // when an instance is first recorded, whatever the state (GitHub's events may have moved it on).
    let stamp = |existing: Option<_>, states: &[RunnerState]| existing.or(states.contains(&next).then_some(update.at));
    let launched_at = if update.instance_id.is_some() {
        current.launched_at.or(Some(update.at))
    } else {
        stamp(current.launched_at, &[RunnerState::Launching])
    };
    let registered_at = stamp(current.registered_at, &[RunnerState::Idle]);
    let job_started_at = stamp(current.job_started_at, &[RunnerState::Busy]);
    let finished_at = stamp(current.finished_at, &[RunnerState::Finished]);
    let terminated_at = stamp(current.terminated_at, &[RunnerState::Terminated, RunnerState::Failed]);
    let row = sqlx::query(concat!(
        "UPDATE runners SET state = $1, instance_id = COALESCE($2, instance_id), \
             github_runner_id = COALESCE($3, github_runner_id), job_id = COALESCE($4, job_id), \
             last_error = COALESCE($5, last_error), launched_at = $6, registered_at = $7, job_started_at = $8, \
             finished_at = $9, terminated_at = $10, updated_at = $11 \
         WHERE seq = $12 RETURNING ",
        runner_columns!()
    ))
    .bind(next.as_str())
    .bind(update.instance_id.as_ref().map(InstanceId::as_str))
    .bind(codec::id_opt(OP_UPDATE, "GitHub runner id", update.github_runner_id.map(|id| id.0))?)
    .bind(codec::id_opt(OP_UPDATE, "job id", update.job_id.map(|id| id.0))?)
    .bind(update.last_error.as_deref())
    .bind(codec::ts_opt(launched_at))
    .bind(codec::ts_opt(registered_at))
    .bind(codec::ts_opt(job_started_at))
    .bind(codec::ts_opt(finished_at))
    .bind(codec::ts_opt(terminated_at))
    .bind(codec::ts(update.at))
    .bind(codec::id(OP_UPDATE, "runner seq", current.seq.0)?)
    .fetch_one(&mut *conn)
    .await
    .map_err(backend(OP_UPDATE))?;
    runner_from_row(OP_UPDATE, &row).map(Some)
}

pub(super) async fn get(pool: &PgPool, name: &RunnerName) -> Result<Option<Runner>, StoreError> {
    let row = sqlx::query(concat!("SELECT ", runner_columns!(), " FROM runners WHERE name = $1"))
        .bind(name.as_str())
        .fetch_optional(pool)
        .await
        .map_err(backend(OP_GET))?;
    row.map(|row| runner_from_row(OP_GET, &row)).transpose()
}

/// Matching runners in creation order. Only the filters given become conditions, so each combination is
/// planned on its own (a catch-all `$1 IS NULL OR ...` statement would get one generic plan for all).
pub(super) async fn list(pool: &PgPool, filter: RunnerFilter) -> Result<Vec<Runner>, StoreError> {
    let mut query = QueryBuilder::<Postgres>::new(concat!("SELECT ", runner_columns!(), " FROM runners WHERE TRUE"));
    if let Some(installation) = filter.installation_id {
        let Ok(key) = i64::try_from(installation.0) else {
            return Ok(Vec::new());
        };
        query.push(" AND installation_id = ").push_bind(key);
    }
    if let Some(tier) = filter.tier {
        query.push(" AND tier = ").push_bind(tier.0);
    }
    if !filter.states.is_empty() {
        query.push(" AND state = ANY(").push_bind(state_names(&filter.states)).push(")");
    }
    if let Some(after) = filter.after_seq {
        query.push(" AND seq > ").push_bind(i64::try_from(after.0).unwrap_or(i64::MAX));
    }
    query.push(" ORDER BY seq");
    if let Some(limit) = filter.limit {
        query.push(" LIMIT ").push_bind(i64::from(limit));
    }
    let rows = query.build().fetch_all(pool).await.map_err(backend(OP_LIST))?;
    rows.iter().map(|row| runner_from_row(OP_LIST, row)).collect()
}

/// Live runners per installation; installations without live runners are absent.
pub(super) async fn live_counts(pool: &PgPool) -> Result<BTreeMap<InstallationId, u32>, StoreError> {
    let rows = sqlx::query(
        "SELECT installation_id, COUNT(*) AS n FROM runners WHERE state = ANY($1) GROUP BY installation_id",
    )
    .bind(state_names(&RunnerState::LIVE))
    .fetch_all(pool)
    .await
    .map_err(backend(OP_LIVE_COUNTS))?;
    rows.iter()
        .map(|row| {
            let c = Columns::new(OP_LIVE_COUNTS, row);
            Ok((InstallationId(c.unsigned("installation_id")?), c.u32("n")?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_sets_bind_as_their_stored_names() {
        assert_eq!(state_names(&[RunnerState::Requested, RunnerState::Idle]), ["requested", "idle"]);
        assert!(state_names(&[]).is_empty());
    }
}
