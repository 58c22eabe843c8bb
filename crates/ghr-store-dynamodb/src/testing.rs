//! Test support: fresh stores (a new table prefix each) on the DynamoDB emulator the tests are pointed at.
//!
//! `GHR_TEST_MOTO_ENDPOINT` names it (`scripts/test.sh` starts moto and sets it; by hand:
//! `eval "$(scripts/moto.sh start)"`). Without it the tests fail, saying so; they never skip.

use crate::{DynamoOptions, DynamoStore, Tables, init_tables};
use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::Credentials;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable naming the emulator's endpoint.
pub const ENDPOINT_ENV: &str = "GHR_TEST_MOTO_ENDPOINT";
/// The region the tests use on the emulator.
pub const TEST_REGION: &str = "us-east-1";

/// The emulator's endpoint, or a panic that says how to start one.
pub fn endpoint() -> String {
    std::env::var(ENDPOINT_ENV).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| {
        panic!(
            "{ENDPOINT_ENV} is not set: the DynamoDB store's tests need the moto emulator. Run scripts/test.sh, or \
             `eval \"$(scripts/moto.sh start)\"` first (it exports {ENDPOINT_ENV})"
        )
    })
}

/// A client on the emulator with throwaway credentials.
pub async fn client() -> Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(TEST_REGION))
        .credentials_provider(Credentials::new("test", "test", None, None, "ghr-tests"))
        .endpoint_url(endpoint())
        .load()
        .await;
    Client::new(&config)
}

/// A table prefix no other test (in this or another process) uses.
pub fn unique_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("t{}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed), nanos % 1_000_000_000)
}

/// The `dynamodb://` URL of `prefix` on the emulator.
pub fn url_of(prefix: &str) -> String {
    format!("dynamodb://{prefix}?region={TEST_REGION}&endpoint={}", endpoint())
}

/// A fresh store with its tables created, on a new prefix.
pub async fn fresh_store() -> DynamoStore {
    let prefix = unique_prefix();
    store_on(&prefix).await
}

/// A store on `prefix` (created when missing): several of them on one prefix are replicas sharing the tables.
pub async fn store_on(prefix: &str) -> DynamoStore {
    let client = client().await;
    init_tables(&client, &Tables::new(prefix)).await.unwrap_or_else(|e| panic!("creating tables {prefix}: {e}"));
    DynamoStore::with_client(client, prefix, DynamoOptions::default())
}
