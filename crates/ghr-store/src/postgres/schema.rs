//! The schema version of a PostgreSQL store: applied explicitly (`ghr store migrate`), checked on open.
//!
//! Replicas of several ghr versions may share a database during a rolling upgrade, so opening a store never
//! changes its schema: an operator migrates once, then restarts the replicas. A store whose schema is older
//! than this ghr knows, or newer (a later ghr migrated it), is refused with what to do.

use ghr_core::ports::StoreError;
use sqlx::PgPool;

pub(super) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

const OP_CHECK: &str = "schema_check";
const OP_MIGRATE: &str = "migrate";

/// A schema that this ghr cannot run on.
#[derive(Debug, thiserror::Error)]
pub enum SchemaMismatch {
    /// A SQLite database file that does not exist, opened by something that never creates one (operator
    /// commands on a database); it was not created.
    #[error(
        "the SQLite database {database} does not exist (it was not created): run `ghr store migrate` (with the \
         same store URL) to create it"
    )]
    NoDatabase { database: String },
    #[error(
        "the database {database} has no ghr schema{schema}: run `ghr store migrate` (with the same store.url) to \
         create it"
    )]
    Missing { database: String, schema: String },
    #[error(
        "the database {database} has ghr schema version {applied}{schema}, older than version {known} this ghr \
         needs: run `ghr store migrate` (with the same store.url), then start ghr again"
    )]
    Older { database: String, schema: String, applied: i64, known: i64 },
    #[error(
        "the database {database} has ghr schema version {applied}{schema}, newer than version {known} this ghr \
         knows (a later ghr migrated it): run that ghr version or a later one"
    )]
    Newer { database: String, schema: String, applied: i64, known: i64 },
    #[error(
        "the database {database}{schema} has a failed migration (version {version}): fix it, then run `ghr store migrate`"
    )]
    Failed { database: String, schema: String, version: i64 },
}

/// What a migration did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// The version before (`None`: the schema was created).
    pub from: Option<i64>,
    /// The version now.
    pub to: i64,
}

/// The newest schema version this ghr knows.
pub(super) fn known_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The newest applied version (`None`: no ghr schema), failing on a migration left half-applied.
async fn applied_version(pool: &PgPool, database: &str, schema: &str) -> Result<Option<i64>, StoreError> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await
        .map_err(crate::codec::backend(OP_CHECK))?;
    if !exists {
        return Ok(None);
    }
    let failed: Option<i64> = sqlx::query_scalar("SELECT MIN(version) FROM _sqlx_migrations WHERE NOT success")
        .fetch_one(pool)
        .await
        .map_err(crate::codec::backend(OP_CHECK))?;
    if let Some(version) = failed {
        return Err(mismatch(SchemaMismatch::Failed {
            database: database.to_owned(),
            schema: schema.to_owned(),
            version,
        }));
    }
    sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(pool)
        .await
        .map_err(crate::codec::backend(OP_CHECK))
}

/// Refuse a schema this ghr cannot run on.
pub(super) async fn check(pool: &PgPool, database: &str, schema: &str) -> Result<(), StoreError> {
    let known = known_version();
    let (database, schema) = (database.to_owned(), schema.to_owned());
    match applied_version(pool, &database, &schema).await? {
        None => Err(mismatch(SchemaMismatch::Missing { database, schema })),
        Some(applied) if applied < known => Err(mismatch(SchemaMismatch::Older { database, schema, applied, known })),
        Some(applied) if applied > known => Err(mismatch(SchemaMismatch::Newer { database, schema, applied, known })),
        Some(_) => Ok(()),
    }
}

/// Bring the schema to the version this ghr knows; refuses a newer one. Several processes migrating at
/// once are serialised by sqlx's advisory lock.
pub(super) async fn migrate(pool: &PgPool, database: &str, schema: &str) -> Result<Migrated, StoreError> {
    let known = known_version();
    let from = applied_version(pool, database, schema).await?;
    if let Some(applied) = from.filter(|applied| *applied > known) {
        return Err(mismatch(SchemaMismatch::Newer {
            database: database.to_owned(),
            schema: schema.to_owned(),
            applied,
            known,
        }));
    }
    MIGRATOR.run(pool).await.map_err(|source| StoreError::Backend { op: OP_MIGRATE, source: Box::new(source) })?;
    Ok(Migrated { from, to: known })
}

fn mismatch(error: SchemaMismatch) -> StoreError {
    StoreError::Backend { op: OP_CHECK, source: Box::new(error) }
}
