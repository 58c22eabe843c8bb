//! Checkpoints on PostgreSQL: named progress markers of ghr's loops, written whole (last write wins).

use crate::codec::{self, Columns, backend};
use ghr_core::Timestamp;
use ghr_core::ports::StoreError;
use sqlx::{PgConnection, PgPool};

const OP_GET: &str = "checkpoint_get";
pub(super) const OP_SET: &str = "checkpoint_set";

pub(super) async fn get(pool: &PgPool, name: &str) -> Result<Option<String>, StoreError> {
    let row = sqlx::query("SELECT value FROM checkpoints WHERE name = $1")
        .bind(name)
        .fetch_optional(pool)
        .await
        .map_err(backend(OP_GET))?;
    row.map(|row| Columns::new(OP_GET, &row).text("value")).transpose()
}

pub(super) async fn set(conn: &mut PgConnection, name: &str, value: &str, now: Timestamp) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO checkpoints (name, value, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at",
    )
    .bind(name)
    .bind(value)
    .bind(codec::ts(now))
    .execute(&mut *conn)
    .await
    .map_err(backend(OP_SET))?;
    Ok(())
}
