//! Usage on PostgreSQL: runner-seconds per tenant and tier, clipped to a period.
//!
//! SQL selects the runners that can overlap the period (the index on `terminated_at` keeps old, finished
//! runners out of the scan); the clipping and summing is `ghr_core::cost::usage_rows`, as on SQLite, so
//! every backend bills exactly the same way. A plain read: it needs no lock across replicas.

use crate::codec::{self, backend};
use crate::rows::interval_from_row;
use ghr_core::Timestamp;
use ghr_core::cost::{UsageRow, usage_rows};
use ghr_core::ports::StoreError;
use sqlx::PgPool;

const OP: &str = "usage";

pub(super) async fn usage(
    pool: &PgPool,
    from: Timestamp,
    to: Timestamp,
    now: Timestamp,
) -> Result<Vec<UsageRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT installation_id, tier, launched_at, terminated_at FROM runners \
         WHERE launched_at IS NOT NULL AND launched_at < $1 AND (terminated_at IS NULL OR terminated_at > $2)",
    )
    .bind(codec::ts(to))
    .bind(codec::ts(from))
    .fetch_all(pool)
    .await
    .map_err(backend(OP))?;

    let intervals = rows.iter().map(|row| interval_from_row(OP, row)).collect::<Result<Vec<_>, _>>()?;
    Ok(usage_rows(intervals, from, to, now))
}
