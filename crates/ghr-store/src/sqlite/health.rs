//! The store's write check on SQLite: one upsert of the single `store_health` row, committed
//! through the same write path as every other write (so it fails exactly when they would).

use crate::codec::backend;
use ghr_core::ports::StoreError;
use sqlx::SqliteConnection;

pub(super) const OP_CHECK_WRITABLE: &str = "check_writable";

/// Count one more probe in the health row (inside the caller's write transaction).
pub(super) async fn touch(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO store_health (id, probes) VALUES (1, 1) \
         ON CONFLICT (id) DO UPDATE SET probes = probes + 1",
    )
    .execute(&mut *conn)
    .await
    .map_err(backend(OP_CHECK_WRITABLE))?;
    Ok(())
}
