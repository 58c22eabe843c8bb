//! Wiring: the only place that picks concrete adapters (store, GitHub client, provider) from the config.

use anyhow::{Context, anyhow, bail};
use ghr_config::{Config, ProviderKind};
use ghr_core::ports::{GitHubApi, Provider, Store};
use ghr_github::{AppCredentials, GithubClient, GithubClientConfig};
use ghr_store::{PgSettings, StoreOptions};
use std::sync::Arc;
use std::time::Duration;

/// Open `store.url` with the configured pool.
pub async fn store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let named = format!("{}: store.url {}", config.source, ghr_config::redact_url(&config.raw.store.url));
    open(&config.raw.store.url, &store_options(config), &named).await
}

/// Open the store `url` names (`--db`, or the config's) with the pool of `config`.
pub async fn store_at(config: &Config, url: &str) -> anyhow::Result<Arc<dyn Store>> {
    open(url, &store_options(config), &format!("the store {}", ghr_config::redact_url(url))).await
}

/// A schema this ghr cannot run on (a PostgreSQL one missing, older or newer; a SQLite one newer) is reported
/// as what it is, naming what to run, instead of under the driver's details.
async fn open(url: &str, options: &StoreOptions, named: &str) -> anyhow::Result<Arc<dyn Store>> {
    ghr_store::open_store(url, options).await.map_err(|error| match ghr_store::schema_mismatch(&error) {
        Some(mismatch) => anyhow!("{named}: {mismatch}"),
        None => anyhow::Error::new(error).context(format!("cannot open {named}")),
    })
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
