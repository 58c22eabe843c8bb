//! Wiring: the only place that picks concrete adapters (store, GitHub client, provider) from the config.

use anyhow::{Context, anyhow, bail};
use ghr_config::{Config, ProviderKind, StoreKind};
use ghr_core::ports::{GitHubApi, PoolStore, Provider, Store};
use ghr_github::{AppCredentials, GithubClient, GithubClientConfig};
use ghr_store::{PgSettings, SchemaMismatch, StoreOptions};
use std::sync::Arc;
use std::time::Duration;

/// The TTL a DynamoDB store writes on completed jobs and deliveries for `[store] retention_days`.
pub fn dynamodb_ttl(retention_days: u32) -> Duration {
    ghr_config::StoreSection { retention_days, ..Default::default() }.dynamodb_ttl()
}

/// Open `store.url` with the configured pool.
pub async fn store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let named = format!("{}: store.url {}", config.source, ghr_config::redact_url(&config.raw.store.url));
    open(config, &config.raw.store.url, &named).await
}

/// `store.url` with its pool machines, for `ghr serve`: with a `warm_pool` on any tier, the store must keep
/// pool machines (SQLite and PostgreSQL do; the serverless DynamoDB store does not) and the provider must keep
/// pools, or serving is refused before anything starts.
pub async fn store_with_pool(config: &Config) -> anyhow::Result<(Arc<dyn Store>, Option<Arc<dyn PoolStore>>)> {
    if config.pools.is_empty() {
        return Ok((store(config).await?, None));
    }
    let tiers = pool_tiers(config);
    let url = &config.raw.store.url;
    let named = format!("{}: store.url {}", config.source, ghr_config::redact_url(url));
    if StoreKind::of(url) == StoreKind::DynamoDb {
        bail!(
            "{named}: tiers {tiers} have a warm_pool, and warm pools need a SQLite or PostgreSQL store (the DynamoDB \
             store keeps no pool machines): remove warm_pool or use sqlite:// or postgres://"
        );
    }
    let opened = ghr_store::open_store_with_pool(url, &store_options(config)).await.map_err(|error| {
        match ghr_store::schema_mismatch(&error) {
            Some(mismatch) => anyhow!("{named}: {mismatch}"),
            None => anyhow::Error::new(error).context(format!("cannot open {named}")),
        }
    })?;
    Ok((opened.store, Some(opened.pool)))
}

/// Refuse tiers with a `warm_pool` when the provider cannot keep pool machines.
pub fn check_pool_support(config: &Config, provider: &dyn Provider) -> anyhow::Result<()> {
    if !config.pools.is_empty() && !provider.supports_pools() {
        bail!(
            "{}: tiers {} have a warm_pool, but the {} provider cannot keep warm pools: remove warm_pool or use \
             the process or ec2 provider",
            config.source,
            pool_tiers(config),
            provider.name()
        );
    }
    Ok(())
}

fn pool_tiers(config: &Config) -> String {
    config.pools.keys().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
}

/// The URL schemes a store URL may have.
const KNOWN_STORE_SCHEMES: &[&str] = &["sqlite", "postgres", "postgresql", "dynamodb"];

/// Open the existing store `url` names for an operator command (`--db`, or the config's): never created,
/// never migrated. A SQLite file that does not exist (a mistyped path) is refused and stays absent, a schema
/// that is missing or older is refused naming the `ghr store migrate` that fixes it.
pub async fn existing_store_at(config: &Config, url: &str) -> anyhow::Result<Arc<dyn Store>> {
    let shown = ghr_config::redact_url(url);
    let named = format!("the store {shown}");
    if let Some((scheme, _)) = url.trim().split_once("://")
        && !KNOWN_STORE_SCHEMES.contains(&scheme)
    {
        bail!("{named}: unknown store scheme `{scheme}://`: use sqlite://PATH, postgres://... or dynamodb://PREFIX");
    }
    if StoreKind::of(url) == StoreKind::DynamoDb {
        return open_dynamodb(url.trim(), dynamodb_ttl(config.raw.store.retention_days), &named).await;
    }
    ghr_store::open_existing_store(url, &store_options(config)).await.map_err(|error| match ghr_store::schema_mismatch(
        &error,
    ) {
        Some(SchemaMismatch::NoDatabase { database }) => anyhow!(
            "{named}: {database} does not exist, and commands on a database never create one (nothing was \
                 created): `ghr store migrate --db {shown}` creates it"
        ),
        Some(mismatch @ (SchemaMismatch::Missing { .. } | SchemaMismatch::Older { .. })) => {
            anyhow!("{named}: {mismatch} (`ghr store migrate --db {shown}`; commands on a database never migrate)")
        }
        Some(mismatch) => anyhow!("{named}: {mismatch}"),
        None => anyhow::Error::new(error).context(format!("cannot open {named}")),
    })
}

/// A schema this ghr cannot run on (a PostgreSQL one missing, older or newer; a SQLite one newer; DynamoDB
/// tables missing) is reported as what it is, naming what to run, instead of under the driver's details.
async fn open(config: &Config, url: &str, named: &str) -> anyhow::Result<Arc<dyn Store>> {
    if StoreKind::of(url) == StoreKind::DynamoDb {
        return open_dynamodb(url.trim(), dynamodb_ttl(config.raw.store.retention_days), named).await;
    }
    ghr_store::open_store(url, &store_options(config)).await.map_err(|error| match ghr_store::schema_mismatch(&error) {
        Some(mismatch) => anyhow!("{named}: {mismatch}"),
        None => anyhow::Error::new(error).context(format!("cannot open {named}")),
    })
}

/// The tables `ghr store init` created and those that were there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TablesReport {
    pub created: Vec<String>,
    pub existing: Vec<String>,
}

/// What a ghr without the `dynamodb` feature says about a `dynamodb://` URL.
#[cfg(not(feature = "dynamodb"))]
fn dynamodb_missing(named: &str) -> anyhow::Error {
    anyhow!(
        "{named}: a DynamoDB store needs a ghr built with the dynamodb feature (cargo build --release --features \
         dynamodb)"
    )
}

#[cfg(feature = "dynamodb")]
async fn open_dynamodb(url: &str, ttl: Duration, named: &str) -> anyhow::Result<Arc<dyn Store>> {
    crate::dynamodb::open(url, ttl, named).await
}

#[cfg(not(feature = "dynamodb"))]
async fn open_dynamodb(_url: &str, _ttl: Duration, named: &str) -> anyhow::Result<Arc<dyn Store>> {
    Err(dynamodb_missing(named))
}

/// Create the DynamoDB tables of `url` (`ghr store init`); `shown` names it in messages.
#[cfg(feature = "dynamodb")]
pub async fn init_dynamodb(url: &str, shown: &str) -> anyhow::Result<TablesReport> {
    crate::dynamodb::init(url.trim(), shown).await
}

#[cfg(not(feature = "dynamodb"))]
pub async fn init_dynamodb(_url: &str, shown: &str) -> anyhow::Result<TablesReport> {
    Err(dynamodb_missing(&format!("the store {shown}")))
}

/// `ghr config check`'s look at `store.url` beyond its scheme: a `dynamodb://` URL goes through the DynamoDB
/// store's own parser (or is refused by a ghr that cannot open it).
pub fn check_store_url(config: &Config) -> anyhow::Result<()> {
    let url = config.raw.store.url.trim();
    if StoreKind::of(url) != StoreKind::DynamoDb {
        return Ok(());
    }
    check_dynamodb_url(url, &format!("{}: key `store.url`", config.source))
}

#[cfg(feature = "dynamodb")]
fn check_dynamodb_url(url: &str, named: &str) -> anyhow::Result<()> {
    crate::dynamodb::check_url(url).map_err(|error| anyhow!("{named}: {error}"))
}

#[cfg(not(feature = "dynamodb"))]
fn check_dynamodb_url(_url: &str, named: &str) -> anyhow::Result<()> {
    Err(dynamodb_missing(named))
}

/// `[store.pool]` as the store's options.
pub fn store_options(config: &Config) -> StoreOptions {
    let pool = &config.raw.store.pool;
    StoreOptions {
        postgres: PgSettings {
            max_connections: pool.max_connections,
            min_connections: pool.min_connections,
            acquire_timeout: Duration::from_secs(pool.acquire_timeout_seconds),
        },
    }
}

pub fn github(config: &Config) -> anyhow::Result<Arc<GithubClient>> {
    let Some(app_id) = config.raw.github.app_id else {
        bail!("{}: key `github.app_id`: set the GitHub App id", config.source);
    };
    let pem = config.private_key_pem(&|name| std::env::var(name).ok())?;
    let credentials = AppCredentials { app_id, private_key_pem: pem };
    let mut client = GithubClientConfig::new(credentials);
    client.api_base_url = config.raw.github.api_url.clone();
    let client = GithubClient::new(client).with_context(|| {
        format!(
            "{}: the GitHub App settings are unusable (github.app_id, the private key, github.api_url)",
            config.source
        )
    })?;
    Ok(Arc::new(client))
}

pub async fn provider(config: &Config) -> anyhow::Result<Arc<dyn Provider>> {
    match config.raw.provider.kind {
        ProviderKind::Process => {
            let section = &config.raw.provider.process;
            let mut process = ghr_cloud::ProcessProviderConfig::new(
                section.command.clone(),
                section.state_dir.clone(),
                config.raw.environment.clone(),
            );
            process.terminate_grace = Duration::from_secs(section.terminate_grace_seconds);
            if !section.agent_command.is_empty() {
                process.agent_command = section.agent_command.clone();
            }
            let provider = ghr_cloud::ProcessProvider::new(process)
                .with_context(|| format!("{}: [provider.process] is unusable", config.source))?;
            Ok(Arc::new(provider))
        }
        ProviderKind::Ec2 => ec2(config).await,
    }
}

#[cfg(not(feature = "ec2"))]
async fn ec2(config: &Config) -> anyhow::Result<Arc<dyn Provider>> {
    bail!(
        "{}: provider.kind = \"ec2\" needs a ghr built with the ec2 feature (cargo build --release --features ec2)",
        config.source
    )
}

#[cfg(feature = "ec2")]
async fn ec2(config: &Config) -> anyhow::Result<Arc<dyn Provider>> {
    crate::ec2::provider(config).await
}

/// The GitHub client as the port the engine uses.
pub fn github_port(client: Arc<GithubClient>) -> Arc<dyn GitHubApi> {
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamodb_ttl_outlasts_the_retention_by_the_margin_or_keeps_everything() {
        assert_eq!(dynamodb_ttl(90), Duration::from_secs(97 * 86_400));
        assert_eq!(dynamodb_ttl(1), Duration::from_secs(8 * 86_400));
        assert_eq!(dynamodb_ttl(0), ghr_config::DYNAMODB_KEEP_TTL);
        assert!(dynamodb_ttl(u32::MAX) > ghr_config::DYNAMODB_TTL_MARGIN);
    }
}
