//! Wiring of the DynamoDB store (built with `--features dynamodb`): opening `dynamodb://` URLs, creating their
//! tables (`ghr store init`) and checking the URL (`ghr config check`).

use crate::wiring::TablesReport;
use anyhow::anyhow;
use ghr_core::ports::Store;
use ghr_store_dynamodb::{DynamoOptions, DynamoStore, DynamoUrl, Tables, init_tables};
use std::sync::Arc;
use std::time::Duration;

/// Open the store `url` names; a missing table (`ghr store init`), a table that is not ghr's or a bad URL is
/// reported as what it is, after `named`.
pub async fn open(url: &str, ttl: Duration, named: &str) -> anyhow::Result<Arc<dyn Store>> {
    let store = DynamoStore::open(url, DynamoOptions { ttl }).await.map_err(|error| anyhow!("{named}: {error}"))?;
    Ok(Arc::new(store))
}

/// Create the tables of `url` that are missing (on-demand capacity, TTL on); keep those that exist.
pub async fn init(url: &str, shown: &str) -> anyhow::Result<TablesReport> {
    let parsed = DynamoUrl::parse(url)?;
    let client = parsed.client().await;
    let outcome = init_tables(&client, &Tables::new(&parsed.prefix))
        .await
        .map_err(|error| anyhow!("cannot create the tables of {shown}: {error}"))?;
    Ok(TablesReport { created: outcome.created, existing: outcome.existing })
}

/// The URL parser's verdict on `url`.
pub fn check_url(url: &str) -> anyhow::Result<()> {
    DynamoUrl::parse(url)?;
    Ok(())
}
