//! The write check on PostgreSQL: commit one small update, proving the database takes writes now.

use crate::codec::backend;
use ghr_core::ports::StoreError;
use sqlx::PgConnection;

pub(super) const OP_CHECK_WRITABLE: &str = "check_writable";

pub(super) async fn touch(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("UPDATE store_health SET probes = probes + 1 WHERE id = 1")
        .execute(&mut *conn)
        .await
        .map_err(backend(OP_CHECK_WRITABLE))?;
    Ok(())
}
