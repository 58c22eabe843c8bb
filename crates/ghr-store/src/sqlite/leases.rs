//! Leases on SQLite: one row per lease, taken or renewed by a conditional upsert under the write lock.
//! Processes sharing a SQLite file share a host and its clock, so the caller's clock decides expiry.

use crate::codec::{self, Columns, backend};
use ghr_core::ports::{LeaseRequest, LeaseState, StoreError};
use sqlx::SqliteConnection;

pub(super) const OP_ACQUIRE: &str = "lease_acquire";
pub(super) const OP_RELEASE: &str = "lease_release";

pub(super) async fn acquire(conn: &mut SqliteConnection, request: &LeaseRequest) -> Result<LeaseState, StoreError> {
    let now = codec::ts(request.now);
    let expires = now.saturating_add(i64::try_from(request.ttl.as_millis()).unwrap_or(i64::MAX));
    // Taken when free, expired or already ours; the acquisition time moves only when the holder changes.
    sqlx::query(
        "INSERT INTO leases (name, holder, acquired_at, expires_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (name) DO UPDATE SET \
             acquired_at = CASE WHEN leases.holder = excluded.holder THEN leases.acquired_at ELSE excluded.acquired_at END, \
             holder = excluded.holder, expires_at = excluded.expires_at \
         WHERE leases.holder = excluded.holder OR leases.expires_at <= ?3",
    )
    .bind(&request.name)
    .bind(&request.holder)
    .bind(now)
    .bind(expires)
    .execute(&mut *conn)
    .await
    .map_err(backend(OP_ACQUIRE))?;
    let row = sqlx::query("SELECT holder, expires_at FROM leases WHERE name = ?")
        .bind(&request.name)
        .fetch_one(&mut *conn)
        .await
        .map_err(backend(OP_ACQUIRE))?;
    let columns = Columns::new(OP_ACQUIRE, &row);
    Ok(LeaseState { holder: columns.text("holder")?, expires_at: columns.timestamp("expires_at")? })
}

pub(super) async fn release(conn: &mut SqliteConnection, name: &str, holder: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM leases WHERE name = ? AND holder = ?")
        .bind(name)
        .bind(holder)
        .execute(&mut *conn)
        .await
        .map_err(backend(OP_RELEASE))?;
    Ok(())
}
