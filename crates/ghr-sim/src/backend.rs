//! The store the simulated ghr runs on, chosen by [`STORE_ENV`]: SQLite in memory (the default), or
//! PostgreSQL, a fresh migrated schema per seed on the server `GHR_TEST_POSTGRES_URL` names (see
//! `ghr_store::testing`). A failing seed's replay command names the store, so it replays on the same one.

use ghr_core::ports::{Store, StoreError};
use ghr_store::SqliteStore;
use std::fmt;
use std::sync::Arc;

/// The environment variable that picks the store: [`SQLITE`] or [`POSTGRES`].
pub const STORE_ENV: &str = "GHR_SIM_STORE";
/// [`STORE_ENV`] value of the embedded SQLite store, in memory.
pub const SQLITE: &str = "sqlite";
/// [`STORE_ENV`] value of the PostgreSQL store.
pub const POSTGRES: &str = "postgres";

/// Which store the world opens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SimBackend {
    #[default]
    Sqlite,
    Postgres,
}

/// [`STORE_ENV`] names no store the simulation knows.
#[derive(Debug, thiserror::Error)]
#[error("{STORE_ENV}={0:?} names no store the simulation knows: use {SQLITE} (the default) or {POSTGRES}")]
pub struct UnknownBackend(String);

impl SimBackend {
    /// The store [`STORE_ENV`] names; SQLite when it is unset or empty.
    pub fn from_env() -> Result<Self, UnknownBackend> {
        std::env::var(STORE_ENV).map_or(Ok(Self::default()), |name| Self::parse(&name))
    }

    /// The store `name` names (case-insensitive); SQLite for an empty name.
    pub fn parse(name: &str) -> Result<Self, UnknownBackend> {
        match name.trim().to_ascii_lowercase().as_str() {
            "" | SQLITE => Ok(Self::Sqlite),
            POSTGRES => Ok(Self::Postgres),
            _ => Err(UnknownBackend(name.to_owned())),
        }
    }

    /// The value of [`STORE_ENV`] that picks this store.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => SQLITE,
            Self::Postgres => POSTGRES,
        }
    }

    /// A fresh, empty store. On PostgreSQL this panics, saying what to do, when the test server is not
    /// configured or does not answer (the simulation never silently falls back to SQLite).
    pub async fn open(self) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match self {
            Self::Sqlite => Arc::new(SqliteStore::open_in_memory().await?),
            Self::Postgres => Arc::new(ghr_store::testing::fresh_postgres_store().await),
        })
    }
}

impl fmt::Display for SimBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for backend in [SimBackend::Sqlite, SimBackend::Postgres] {
            assert_eq!(SimBackend::parse(backend.name()).unwrap(), backend);
        }
        assert_eq!(SimBackend::parse(" Postgres ").unwrap(), SimBackend::Postgres);
        assert_eq!(SimBackend::parse("").unwrap(), SimBackend::Sqlite);
        let refused = SimBackend::parse("mysql").unwrap_err().to_string();
        assert!(refused.contains(STORE_ENV) && refused.contains(POSTGRES), "{refused}");
    }
}
