//! Leases on PostgreSQL: one row per lease, taken or renewed by a conditional upsert. Replicas run on
//! several hosts whose clocks may differ, so expiry is judged by the database's clock alone (the caller's
//! `now` is not used): two replicas can never both believe they hold a lease because their clocks disagree.

use crate::codec::{Columns, backend};
use ghr_core::ports::{LeaseRequest, LeaseState, StoreError};
use sqlx::PgConnection;

pub(super) const OP_ACQUIRE: &str = "lease_acquire";
pub(super) const OP_RELEASE: &str = "lease_release";

/// Taken when free, expired or already the requester's, by the database's clock (milliseconds since the
/// epoch, as the store keeps times); the acquisition time moves only when the holder changes.
const ACQUIRE_SQL: &str = "WITH clock AS (SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT AS now) \
     INSERT INTO leases AS l (name, holder, acquired_at, expires_at) \
     SELECT $1, $2, clock.now, clock.now + $3 FROM clock \
     ON CONFLICT (name) DO UPDATE SET \
         acquired_at = CASE WHEN l.holder = EXCLUDED.holder THEN l.acquired_at ELSE EXCLUDED.acquired_at END, \
         holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at \
     WHERE l.holder = EXCLUDED.holder OR l.expires_at <= EXCLUDED.acquired_at";

pub(super) async fn acquire(conn: &mut PgConnection, request: &LeaseRequest) -> Result<LeaseState, StoreError> {
    let ttl = i64::try_from(request.ttl.as_millis()).unwrap_or(i64::MAX);
    // The row is locked by the upsert (or by its conflict check), so the read after it sees the outcome.
    sqlx::query(ACQUIRE_SQL)
        .bind(&request.name)
        .bind(&request.holder)
        .bind(ttl)
        .execute(&mut *conn)
        .await
        .map_err(backend(OP_ACQUIRE))?;
    let row = sqlx::query("SELECT holder, expires_at FROM leases WHERE name = $1")
        .bind(&request.name)
        .fetch_one(&mut *conn)
        .await
        .map_err(backend(OP_ACQUIRE))?;
    let columns = Columns::new(OP_ACQUIRE, &row);
    Ok(LeaseState { holder: columns.text("holder")?, expires_at: columns.timestamp("expires_at")? })
}

pub(super) async fn release(conn: &mut PgConnection, name: &str, holder: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
        .bind(name)
        .bind(holder)
        .execute(&mut *conn)
        .await
        .map_err(backend(OP_RELEASE))?;
    Ok(())
}
