//! Runner records on SQLite: lifecycle-checked updates with timestamp stamping, lookups and live counts.

use crate::codec::{self, Columns, backend};
pub(super) use crate::rows::runner_columns;
pub(super) use crate::rows::runner_from_row;
use ghr_core::ids::{InstallationId, InstanceId, RunnerName};
use ghr_core::ports::{RunnerFilter, RunnerUpdate, StoreError};
use ghr_core::runner::{Runner, RunnerState};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};
use std::collections::BTreeMap;

pub(super) const OP_UPDATE: &str = "runner_update";
const OP_GET: &str = "runner_get";
const OP_LIST: &str = "runner_list";
const OP_LIVE_COUNTS: &str = "runner_live_counts";

/// A set of states as a JSON array, bound to `state IN (SELECT value FROM json_each(?))` so one
/// static statement serves any set (the sets are the domain's `LIVE` / `UNBOUND` constants).
pub(super) fn states_json(states: &[RunnerState]) -> String {
    let quoted: Vec<String> = states.iter().map(|state| format!("\"{}\"", state.as_str())).collect();
    format!("[{}]", quoted.join(","))
}

/// Apply an update inside the caller's write transaction. A state change the lifecycle forbids keeps
/// the state ([`RunnerState::merge`]); the other fields are recorded all the same.
pub(super) async fn update(
    conn: &mut SqliteConnection,
    name: &RunnerName,
    update: RunnerUpdate,
) -> Result<Option<Runner>, StoreError> {
    let row = sqlx::query(concat!("SELECT ", runner_columns!(), " FROM runners WHERE name = ?"))
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
        "UPDATE runners SET state = ?, instance_id = COALESCE(?, instance_id), \
             github_runner_id = COALESCE(?, github_runner_id), job_id = COALESCE(?, job_id), \
             last_error = COALESCE(?, last_error), launched_at = ?, registered_at = ?, job_started_at = ?, \
             finished_at = ?, terminated_at = ?, updated_at = ? \
         WHERE seq = ? RETURNING ",
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

pub(super) async fn get(pool: &SqlitePool, name: &RunnerName) -> Result<Option<Runner>, StoreError> {
    let row = sqlx::query(concat!("SELECT ", runner_columns!(), " FROM runners WHERE name = ?"))
        .bind(name.as_str())
        .fetch_optional(pool)
        .await
        .map_err(backend(OP_GET))?;
    row.map(|row| runner_from_row(OP_GET, &row)).transpose()
}

/// Matching runners in creation order.
pub(super) async fn list(pool: &SqlitePool, filter: RunnerFilter) -> Result<Vec<Runner>, StoreError> {
    let mut query = QueryBuilder::<Sqlite>::new(concat!("SELECT ", runner_columns!(), " FROM runners WHERE 1 = 1"));
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
        query.push(" AND state IN (SELECT value FROM json_each(").push_bind(states_json(&filter.states)).push("))");
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
pub(super) async fn live_counts(pool: &SqlitePool) -> Result<BTreeMap<InstallationId, u32>, StoreError> {
    let rows = sqlx::query(
        "SELECT installation_id, COUNT(*) AS n FROM runners \
         WHERE state IN (SELECT value FROM json_each(?)) GROUP BY installation_id",
    )
    .bind(states_json(&RunnerState::LIVE))
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
    fn state_sets_encode_as_json_arrays() {
        assert_eq!(states_json(&[RunnerState::Requested, RunnerState::Idle]), r#"["requested","idle"]"#);
        assert_eq!(states_json(&[]), "[]");
    }
}
