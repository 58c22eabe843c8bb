//! The store the simulated ghr runs on, chosen by [`STORE_ENV`]: SQLite in memory (the default),
//! PostgreSQL, a fresh migrated schema per seed on the server `GHR_TEST_POSTGRES_URL` names (see
//! `ghr_store::testing`), or DynamoDB, fresh tables per seed on the moto emulator `GHR_TEST_MOTO_ENDPOINT` names
//! (see `ghr_store_dynamodb::testing`; needs the `dynamodb` feature). A failing seed's replay command names the
//! store, so it replays on the same one.

use ghr_core::ports::{Store, StoreError};
use ghr_store::SqliteStore;
use std::fmt;
use std::sync::Arc;

/// The environment variable that picks the store: [`SQLITE`], [`POSTGRES`] or [`DYNAMODB`].
pub const STORE_ENV: &str = "GHR_SIM_STORE";
/// [`STORE_ENV`] value of the embedded SQLite store, in memory.
pub const SQLITE: &str = "sqlite";
/// [`STORE_ENV`] value of the PostgreSQL store.
pub const POSTGRES: &str = "postgres";
/// [`STORE_ENV`] value of the DynamoDB store (ghr-sim built with the `dynamodb` feature).
pub const DYNAMODB: &str = "dynamodb";

/// Which store the world opens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SimBackend {
    #[default]
    Sqlite,
    Postgres,
    DynamoDb,
}

/// [`STORE_ENV`] names no store the simulation knows.
#[derive(Debug, thiserror::Error)]
#[error("{STORE_ENV}={0:?} names no store the simulation knows: use {SQLITE} (the default), {POSTGRES} or {DYNAMODB}")]
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
            DYNAMODB => Ok(Self::DynamoDb),
            _ => Err(UnknownBackend(name.to_owned())),
        }
    }

    /// The value of [`STORE_ENV`] that picks this store.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => SQLITE,
            Self::Postgres => POSTGRES,
            Self::DynamoDb => DYNAMODB,
        }
    }

    /// The cargo flags a replay of this store needs (` --features dynamodb`, or nothing).
    pub fn cargo_flags(self) -> &'static str {
        match self {
            Self::Sqlite | Self::Postgres => "",
            Self::DynamoDb => " --features dynamodb",
        }
    }

    /// A fresh, empty store. On PostgreSQL or DynamoDB this panics, saying what to do, when the test server
    /// or emulator is not configured or does not answer, or (DynamoDB) when ghr-sim was built without the
    /// `dynamodb` feature: the simulation never silently falls back to SQLite.
    pub async fn open(self) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match self {
            Self::Sqlite => Arc::new(SqliteStore::open_in_memory().await?),
            Self::Postgres => Arc::new(ghr_store::testing::fresh_postgres_store().await),
            Self::DynamoDb => fresh_dynamodb_store().await,
        })
    }
}

#[cfg(feature = "dynamodb")]
async fn fresh_dynamodb_store() -> Arc<dyn Store> {
    Arc::new(ghr_store_dynamodb::testing::fresh_store().await)
}

#[cfg(not(feature = "dynamodb"))]
async fn fresh_dynamodb_store() -> Arc<dyn Store> {
    panic!(
        "{STORE_ENV}={DYNAMODB} needs ghr-sim built with the dynamodb feature: cargo nextest run -p ghr-sim --features \
         dynamodb (or cargo run -p ghr-sim --features dynamodb)"
    )
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
        for backend in [SimBackend::Sqlite, SimBackend::Postgres, SimBackend::DynamoDb] {
            assert_eq!(SimBackend::parse(backend.name()).unwrap(), backend);
        }
        assert_eq!(SimBackend::parse(" Postgres ").unwrap(), SimBackend::Postgres);
        assert_eq!(SimBackend::parse("").unwrap(), SimBackend::Sqlite);
        let refused = SimBackend::parse("mysql").unwrap_err().to_string();
        assert!(refused.contains(STORE_ENV) && refused.contains(POSTGRES) && refused.contains(DYNAMODB), "{refused}");
        assert_eq!(SimBackend::DynamoDb.cargo_flags(), " --features dynamodb");
        assert_eq!(SimBackend::Postgres.cargo_flags(), "");
    }

    /// Without the feature, asking for DynamoDB fails the run (it never falls back to another store).
    #[cfg(not(feature = "dynamodb"))]
    #[tokio::test]
    #[should_panic(expected = "needs ghr-sim built with the dynamodb feature")]
    async fn dynamodb_without_the_feature_fails() {
        let _ = SimBackend::DynamoDb.open().await;
    }
}
