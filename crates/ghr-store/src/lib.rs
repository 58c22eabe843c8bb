//! Storage adapters of ghr (SQLite, PostgreSQL) and the storage conformance suite run against every backend.
//!
//! - [`SqliteStore`] implements [`ghr_core::ports::Store`] on SQLite (a file, or memory for tests).
//! - [`PgStore`] implements it on PostgreSQL, for several `ghr serve` replicas sharing one database.
//! - [`open_store`] turns a configured URL into a shared `Arc<dyn Store>` for the binary; [`migrate_store`]
//!   creates or upgrades a store's schema (`ghr store migrate`); [`open_existing_store`] opens one that exists
//!   without changing it (operator commands); [`copy`] moves every record from one store to
//!   another (`ghr store copy`).
//! - [`conformance`] holds the backend-independent contract tests every store must pass; [`testing`] gives
//!   tests fresh PostgreSQL schemas; [`sample`] fills a store with something of everything (copy tests).

mod codec;
pub mod conformance;
pub mod copy;
mod pool_rows;
mod postgres;
mod rows;
pub mod sample;
mod sqlite;
pub mod testing;

pub use postgres::{
    DEFAULT_SCHEMA, Migrated, PgLocation, PgSettings, PgStore, SCHEMA_PARAM, SchemaMismatch, is_postgres_url,
};
#[cfg(feature = "bench")]
pub use sqlite::seed;
pub use sqlite::{SqliteLocation, SqliteStore};

use ghr_core::ports::{PoolStore, Store, StoreError};
use std::sync::Arc;

/// Timeline detail of a `waiting` entry written when a job's wait reason is cleared
/// (a set reason is recorded with its code).
pub const WAIT_CLEARED_DETAIL: &str = "cleared";

/// How a store is opened: the pool settings of a PostgreSQL store (`[store.pool]`; a SQLite store keeps its
/// own small pool, since SQLite has one writer at a time).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreOptions {
    pub postgres: PgSettings,
}

/// Which backend a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

impl StoreKind {
    /// `postgres://` and `postgresql://` URLs name PostgreSQL; everything else (`sqlite:` URLs, bare paths)
    /// names SQLite.
    pub fn of(url: &str) -> Self {
        if is_postgres_url(url) { StoreKind::Postgres } else { StoreKind::Sqlite }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "sqlite",
            StoreKind::Postgres => "postgres",
        }
    }
}

/// Open the store a URL names: `postgres://...` or `postgresql://...` (see [`PgLocation::parse`]), else
/// `sqlite://PATH`, `sqlite:PATH`, `sqlite::memory:` or a bare file path.
///
/// A SQLite file is created if missing and migrated to the current schema (one process owns it). A
/// PostgreSQL schema is never changed by opening it: one that is missing, older or newer than this ghr's is
/// refused with [`SchemaMismatch`] (replicas of several versions may share it during a rolling upgrade;
/// `ghr store migrate` upgrades it). A SQLite schema newer than this ghr's is refused the same way.
pub async fn open_store(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    match StoreKind::of(url) {
        StoreKind::Postgres => Ok(Arc::new(PgStore::open(url, &options.postgres).await?)),
        StoreKind::Sqlite => Ok(Arc::new(SqliteStore::open(url).await?)),
    }
}

/// A store and the same database's pool machines.
pub struct OpenedStore {
    pub store: Arc<dyn Store>,
    pub pool: Arc<dyn PoolStore>,
}

/// [`open_store`], also giving the store as the `PoolStore` port (both backends here keep pool machines).
pub async fn open_store_with_pool(url: &str, options: &StoreOptions) -> Result<OpenedStore, StoreError> {
    match StoreKind::of(url) {
        StoreKind::Postgres => {
            let store = Arc::new(PgStore::open(url, &options.postgres).await?);
            Ok(OpenedStore { store: store.clone(), pool: store })
        }
        StoreKind::Sqlite => {
            let store = Arc::new(SqliteStore::open(url).await?);
            Ok(OpenedStore { store: store.clone(), pool: store })
        }
    }
}

/// Open the existing store a URL names as it is, never creating or migrating it (the `ghr` operator commands
/// on a database: a mistyped path must not become an empty store, and a read-only look must not upgrade a
/// production schema). A SQLite file that does not exist is refused ([`SchemaMismatch::NoDatabase`]) and not
/// created; a schema that is missing, older or newer than this ghr's is refused on either backend
/// ([`SchemaMismatch`]); `ghr store migrate` ([`migrate_store`]) creates and upgrades.
pub async fn open_existing_store(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    match StoreKind::of(url) {
        StoreKind::Postgres => Ok(Arc::new(PgStore::open(url, &options.postgres).await?)),
        StoreKind::Sqlite => Ok(Arc::new(SqliteStore::open_existing(SqliteLocation::parse(url)).await?)),
    }
}

/// Create the store's schema if needed and migrate it to this ghr's version (`ghr store migrate`); running
/// it again changes nothing. A schema newer than this ghr's is refused ([`SchemaMismatch::Newer`]).
pub async fn migrate_store(url: &str, options: &StoreOptions) -> Result<Migrated, StoreError> {
    match StoreKind::of(url) {
        StoreKind::Postgres => {
            let location =
                PgLocation::parse(url).map_err(|e| StoreError::Backend { op: "migrate", source: Box::new(e) })?;
            let (store, migrated) = PgStore::migrate(location, &options.postgres).await?;
            store.close().await;
            Ok(migrated)
        }
        StoreKind::Sqlite => {
            let (store, migrated) = SqliteStore::open_migrated(SqliteLocation::parse(url)).await?;
            store.close().await;
            Ok(migrated)
        }
    }
}

/// The schema problem behind a store error, if that is what it is (the CLI then says what to run).
pub fn schema_mismatch(error: &StoreError) -> Option<&SchemaMismatch> {
    let StoreError::Backend { source, .. } = error else { return None };
    source.downcast_ref::<SchemaMismatch>()
}
