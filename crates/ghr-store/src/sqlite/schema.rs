//! The schema version of a SQLite store: migrated on open (the embedded default has one process), but a
//! database a later ghr migrated is refused, naming what to do, instead of failing inside the migrator.
//! Opened as an existing store (operator commands), it is only checked: a missing, older or newer schema is
//! refused, as PostgreSQL's always is.

use super::write::BEGIN_WRITE;
use crate::postgres::{Migrated, SchemaMismatch};
use ghr_core::ports::StoreError;
use sqlx::SqlitePool;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

const OP_MIGRATE: &str = "migrate";
const OP_CHECK: &str = "schema_check";

/// Reading the schema version failed (not a SQLite database, unreadable); says which database.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the schema version of the SQLite database {location}")]
struct CheckFailed {
    location: String,
    #[source]
    source: sqlx::Error,
}

/// Migrating the schema failed; says which database.
#[derive(Debug, thiserror::Error)]
#[error("cannot migrate the SQLite database {location} to the current schema")]
struct MigrateFailed {
    location: String,
    #[source]
    source: sqlx::migrate::MigrateError,
}

/// The newest schema version this ghr knows.
pub(crate) fn known_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Apply the embedded migrations under the write lock, so stores opened at the same time on one file do not
/// race to create the schema. A schema newer than this ghr knows is refused before the migrator runs (it
/// would only say that a migration "was previously applied but is missing").
pub(super) async fn migrate(pool: &SqlitePool, location: &str) -> Result<Migrated, StoreError> {
    let failed = |source| StoreError::Backend {
        op: OP_MIGRATE,
        source: Box::new(MigrateFailed { location: location.to_owned(), source }),
    };
    let mut tx = pool.begin_with(BEGIN_WRITE).await.map_err(|e| failed(e.into()))?;
    let from = applied_version(&mut tx).await.map_err(|e| failed(e.into()))?;
    let known = known_version();
    if let Some(applied) = from.filter(|applied| *applied > known) {
        let newer = SchemaMismatch::Newer { database: location.to_owned(), schema: String::new(), applied, known };
        return Err(StoreError::Backend { op: OP_MIGRATE, source: Box::new(newer) });
    }
    // `run_direct` is `Migrator::run` on a bare connection; `run(&mut *tx)` would make this future
    // lose `Send` (sqlx's "Acquire is not general enough").
    MIGRATOR.run_direct(None, &mut *tx, false).await.map_err(failed)?;
    tx.commit().await.map_err(|e| failed(e.into()))?;
    Ok(Migrated { from, to: known })
}

/// Refuse a schema this ghr cannot run on, changing nothing: none yet, older than this ghr's (run
/// `ghr store migrate`), or newer (a later ghr migrated it).
pub(super) async fn check(conn: &mut sqlx::SqliteConnection, location: &str) -> Result<(), StoreError> {
    let applied = applied_version(conn).await.map_err(|source| StoreError::Backend {
        op: OP_CHECK,
        source: Box::new(CheckFailed { location: location.to_owned(), source }),
    })?;
    let known = known_version();
    let (database, schema) = (location.to_owned(), String::new());
    let mismatch = match applied {
        None => SchemaMismatch::Missing { database, schema },
        Some(applied) if applied < known => SchemaMismatch::Older { database, schema, applied, known },
        Some(applied) if applied > known => SchemaMismatch::Newer { database, schema, applied, known },
        Some(_) => return Ok(()),
    };
    Err(StoreError::Backend { op: OP_CHECK, source: Box::new(mismatch) })
}

/// The newest applied migration (`None`: no ghr schema yet).
async fn applied_version(conn: &mut sqlx::SqliteConnection) -> Result<Option<i64>, sqlx::Error> {
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
    )
    .fetch_one(&mut *conn)
    .await?;
    if !exists {
        return Ok(None);
    }
    sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations").fetch_one(&mut *conn).await
}
