//! Usage on PostgreSQL: runner-seconds per tenant and tier, clipped to a period.
//!
//! SQL selects the runners that can overlap the period (the index on `terminated_at` keeps old, finished
//! runners out of the scan); the clipping itself is `ghr_core::cost::overlap_millis`, as on SQLite, so
//! every backend bills exactly the same way. A plain read: it needs no lock across replicas.

use crate::codec::{self, Columns, backend};
use ghr_core::Timestamp;
use ghr_core::cost::{UsageRow, overlap_millis, seconds_from_millis};
use ghr_core::ids::{InstallationId, TierName};
use ghr_core::ports::StoreError;
use sqlx::PgPool;
use std::collections::BTreeMap;

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

    let mut totals: BTreeMap<(InstallationId, TierName), (i64, u64)> = BTreeMap::new();
    for row in &rows {
        let c = Columns::new(OP, row);
        let launched = c.timestamp("launched_at")?;
        let end = c.timestamp_opt("terminated_at")?.unwrap_or(now);
        let millis = overlap_millis(launched, end, from, to);
        if millis <= 0 {
            continue;
        }
        let key = (InstallationId(c.unsigned("installation_id")?), TierName::new(c.text("tier")?));
        let entry = totals.entry(key).or_insert((0, 0));
        entry.0 += millis;
        entry.1 += 1;
    }
    Ok(totals
        .into_iter()
        .map(|((installation_id, tier), (millis, runners))| UsageRow {
            installation_id,
            tier,
            runner_seconds: seconds_from_millis(millis),
            runners,
        })
        .collect())
}
