//! Storage adapters of ghr (SQLite, PostgreSQL) and the storage conformance suite run against every backend.
//!
//! - [`SqliteStore`] implements [`ghr_core::ports::Store`] on SQLite (a file, or memory for tests).
//! - [`PgStore`] implements it on PostgreSQL, for several `ghr serve` replicas sharing one database.
//! - [`open_store`] turns a configured URL into a shared `Arc<dyn Store>` for the binary.
//! - [`conformance`] holds the backend-independent contract tests every store must pass; [`testing`] gives
//!   tests fresh PostgreSQL schemas.

mod codec;
pub mod conformance;
mod postgres;
mod sqlite;
pub mod testing;

pub use postgres::{
    DEFAULT_SCHEMA, Migrated, PgLocation, PgSettings, PgStore, SCHEMA_PARAM, SchemaMismatch, is_postgres_url,
};
#[cfg(feature = "bench")]
pub use sqlite::seed;
pub use sqlite::{SqliteLocation, SqliteStore};

use ghr_core::ports::{Store, StoreError};
use std::sync::Arc;

/// Timeline detail of a `waiting` entry written when a job's wait reason is cleared
/// (a set reason is recorded with its code).
pub const WAIT_CLEARED_DETAIL: &str = "cleared";

/// Open the store a URL names: `sqlite://PATH`, `sqlite:PATH`, `sqlite::memory:` or a bare file path.
///
/// A file is created if missing, and the schema is migrated to the current version.
pub async fn open_store(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    let store = SqliteStore::open(url).await?;
    Ok(Arc::new(store))
}
