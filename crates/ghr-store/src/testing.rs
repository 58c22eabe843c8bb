//! Test support for the PostgreSQL store: a fresh, migrated schema per store on the server that
//! `GHR_TEST_POSTGRES_URL` names (`scripts/postgres.sh start` prints it; `scripts/test.sh` starts one).
//!
//! There is no silent skip: without the variable, or when the server does not answer, these panic with
//! what to do.

use crate::postgres::{PgLocation, PgSettings, PgStore};
use std::sync::atomic::{AtomicU32, Ordering};

/// The environment variable that names the test server.
pub const POSTGRES_URL_ENV: &str = "GHR_TEST_POSTGRES_URL";

/// The test server's URL; panics with what to do when it is not set.
pub fn postgres_url() -> String {
    std::env::var(POSTGRES_URL_ENV).unwrap_or_else(|_| {
        panic!(
            "{POSTGRES_URL_ENV} is not set: the PostgreSQL tests need a server. Run them through scripts/test.sh \
             (which starts one), or `eval \"$(scripts/postgres.sh start)\"` first"
        )
    })
}

/// A schema name no other store of any test process uses.
pub fn fresh_schema_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    format!("t_{}_{}_{}", std::process::id(), nanos % 1_000_000_000, NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The test server's URL with a fresh schema, migrated: pass it to `ghr` (`store.url`) or open it again to
/// get a second store on the same data (another replica).
pub async fn fresh_postgres_url() -> String {
    let schema = fresh_schema_name();
    let url = format!("{}?{}={schema}", postgres_url(), crate::postgres::SCHEMA_PARAM);
    let location = PgLocation::parse(&url).expect("GHR_TEST_POSTGRES_URL is a PostgreSQL URL");
    let (store, _) = PgStore::migrate(location, &test_settings())
        .await
        .unwrap_or_else(|e| panic!("cannot migrate a fresh schema on {url}: {}", ghr_core::error::ErrorChain(&e)));
    store.close().await;
    url
}

/// A fresh, empty, migrated store in its own schema.
pub async fn fresh_postgres_store() -> PgStore {
    let url = fresh_postgres_url().await;
    open_postgres_store(&url).await
}

/// Another store on the schema `url` names (a second replica).
pub async fn open_postgres_store(url: &str) -> PgStore {
    PgStore::open(url, &test_settings())
        .await
        .unwrap_or_else(|e| panic!("cannot open {url}: {}", ghr_core::error::ErrorChain(&e)))
}

/// Small pools: many tests run at once against one server.
pub fn test_settings() -> PgSettings {
    PgSettings { max_connections: 5, min_connections: 0, ..PgSettings::default() }
}
