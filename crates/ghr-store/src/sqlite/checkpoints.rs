//! Checkpoints on SQLite: named progress markers of ghr's loops, written whole (last write wins).

use crate::codec::{self, Columns, backend};
use ghr_core::Timestamp;
use ghr_core::ports::StoreError;
use sqlx::SqlitePool;

const OP_GET: &str = "checkpoint_get";
pub(super) const OP_SET: &str = "checkpoint_set";

pub(super) async fn get(pool: &SqlitePool, name: &str) -> Result<Option<String>, StoreError> {
    let row = sqlx::query("SELECT value FROM checkpoints WHERE name = ?")
        .bind(name)
        .fetch_optional(pool)
        .await
        .map_err(backend(OP_GET))?;
    row.map(|row| Columns::new(OP_GET, &row).text("value")).transpose()
}

pub(super) async fn set(
    conn: &mut sqlx::SqliteConnection,
    name: &str,
    value: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO checkpoints (name, value, updated_at) VALUES (?, ?, ?) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(name)
    .bind(value)
    .bind(codec::ts(now))
    .execute(&mut *conn)
    .await
    .map_err(backend(OP_SET))?;
    Ok(())
}
