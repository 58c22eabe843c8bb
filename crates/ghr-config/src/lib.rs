//! `ghr.toml`: typed, strict, documented configuration.
//!
//! Unknown keys are rejected; every field has a documented default; secrets may come from environment
//! variables instead of the file. [`Config::parse`] is pure (text and an environment lookup in, a validated
//! config out), [`Config::load`] reads the file.

mod cluster;
mod model;

pub use cluster::*;
pub use model::*;

use ghr_core::ids::TierName;
use ghr_core::pool::{MAX_POOL_SIZE, WarmPool, window};
use ghr_core::tenant::{MAX_RUNNERS_LIMIT, check_max_runners};
use ghr_core::tier::{CatalogError, Tier, TierCatalog};
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Environment variable holding the webhook secret (overrides `github.webhook_secret`).
pub const ENV_WEBHOOK_SECRET: &str = "GHR_WEBHOOK_SECRET";
/// Environment variable holding the App private key PEM itself (overrides `github.private_key_path`).
pub const ENV_PRIVATE_KEY: &str = "GHR_GITHUB_PRIVATE_KEY";
/// Environment variable holding the admin API bearer token (overrides `admin.token`).
pub const ENV_ADMIN_TOKEN: &str = "GHR_ADMIN_TOKEN";

/// A configuration problem, naming the file, the key and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {file}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}: key `{key}`: {message}")]
    Invalid { file: String, key: String, message: String },
    #[error("{file}: key `tiers`: {source}")]
    Catalog {
        file: String,
        #[source]
        source: CatalogError,
    },
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from (file name, or `<built-in>`).
    pub source: String,
    pub raw: RawConfig,
    pub catalog: TierCatalog,
    pub webhook_secret: Option<SecretString>,
    pub admin_token: Option<SecretString>,
    /// Warm pools by tier (`[[tiers]] warm_pool`); empty when no tier has one.
    pub pools: BTreeMap<TierName, WarmPool>,
}

impl Config {
    /// Read and validate a config file; secrets may come from the process environment. A `.json` file is the
    /// same keys as one JSON document ([`Config::parse_json`]: what the serverless functions read from their
    /// environment), so `ghr config check --config F.json` checks a deployment's rendered configuration.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { file: path.to_path_buf(), source })?;
        let env = |name: &str| std::env::var(name).ok();
        if path.extension().is_some_and(|ext| ext.eq_ignore_ascii_case("json")) {
            return Self::parse_json(&text, &path.display().to_string(), &env);
        }
        Self::parse(&text, &path.display().to_string(), &env)
    }

    /// The built-in defaults (used by `ghr demo` and when no file is given to `config check`).
    pub fn builtin() -> Config {
        Self::parse("", "<built-in>", &|_| None).expect("the empty config is valid")
    }

    /// Parse and validate config text. `env` looks up environment variables (injected for tests).
    pub fn parse(text: &str, source: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| ConfigError::Syntax { file: source.to_owned(), message: e.to_string() })?;
        Self::validate(raw, source, env)
    }

    /// Parse and validate the same keys written as one JSON document (`ghr.toml`'s tables as objects, arrays of
    /// tables as arrays): the serverless functions' configuration, which Terraform renders with `jsonencode`
    /// into an environment variable. A `null` value means the key's default. The checks and messages are
    /// `ghr config check`'s.
    pub fn parse_json(text: &str, source: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let syntax = |message: String| ConfigError::Syntax { file: source.to_owned(), message };
        let mut value: serde_json::Value = serde_json::from_str(text).map_err(|e| syntax(e.to_string()))?;
        if !value.is_object() {
            return Err(syntax("expected a JSON object of ghr.toml's keys".into()));
        }
        strip_nulls(&mut value);
        let raw: RawConfig = serde_json::from_value(value).map_err(|e| syntax(e.to_string()))?;
        Self::validate(raw, source, env)
    }

    /// The checks every configuration goes through, whatever its syntax.
    fn validate(raw: RawConfig, source: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let invalid =
            |key: &str, message: String| ConfigError::Invalid { file: source.to_owned(), key: key.to_owned(), message };

        let catalog = if raw.tiers.is_empty() {
            TierCatalog::seed_default()
        } else {
            let tiers = raw.tiers.iter().map(TierSection::to_tier).collect::<Vec<Tier>>();
            TierCatalog::new(tiers).map_err(|e| ConfigError::Catalog { file: source.to_owned(), source: e })?
        };
        if let Some(tier) = raw.tiers.iter().find(|t| check_max_runners(t.max_runners).is_err()) {
            return Err(invalid(
                "tiers.max_runners",
                format!("tier {:?} has max_runners = {}: use 1 to {MAX_RUNNERS_LIMIT}", tier.name, tier.max_runners),
            ));
        }
        if catalog.get(&raw.tenants.default_tier.as_str().into()).is_none() {
            return Err(invalid(
                "tenants.default_tier",
                format!(
                    "tier {:?} is not in the catalog; use one of: {}",
                    raw.tenants.default_tier,
                    catalog.names().join(", ")
                ),
            ));
        }
        if raw.environment.is_empty()
            || !raw.environment.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            || raw.environment.len() > 32
        {
            return Err(invalid(
                "environment",
                format!(
                    "{:?} is not a valid deployment name: use 1-32 characters of a-z, 0-9, '-' and '_'",
                    raw.environment
                ),
            ));
        }
        if !raw.server.webhook_path.starts_with('/') {
            return Err(invalid("server.webhook_path", "must start with '/'".into()));
        }
        if raw.server.max_body_bytes == 0 {
            return Err(invalid("server.max_body_bytes", "must be positive".into()));
        }
        if raw.tenants.global_max_runners == Some(0) {
            return Err(invalid("tenants.global_max_runners", "0 would block every job; remove it for no cap".into()));
        }
        check_store(&raw.store).map_err(|(key, message)| invalid(key, message))?;
        if raw.dispatcher.tick_seconds == 0 {
            return Err(invalid("dispatcher.tick_seconds", "must be at least 1".into()));
        }
        if raw.reconciler.interval_seconds == 0 {
            return Err(invalid("reconciler.interval_seconds", "must be at least 1".into()));
        }
        raw.cluster.check().map_err(|(key, message)| invalid(key, message))?;
        match raw.provider.kind {
            ProviderKind::Process if raw.provider.process.command.is_empty() => {
                return Err(invalid(
                    "provider.process.command",
                    "give the runner command, e.g. [\"./run-runner.sh\"]".into(),
                ));
            }
            ProviderKind::Ec2 if raw.provider.ec2.subnets.is_empty() => {
                return Err(invalid("provider.ec2.subnets", "list at least one subnet id".into()));
            }
            _ => {}
        }
        if raw.provider.kind == ProviderKind::Ec2 {
            let ec2 = &raw.provider.ec2;
            let imaged =
                |arch: &str| ec2.ami_ids.contains_key(arch) || ec2.ami_id.is_some() || ec2.launch_template.is_some();
            if let Some(tier) = catalog.tiers().iter().find(|tier| !imaged(&tier.runner_architecture)) {
                return Err(invalid(
                    "provider.ec2.ami_ids",
                    format!(
                        "tier {:?} runs on {}: set provider.ec2.ami_ids.{} (or provider.ec2.ami_id, or a launch_template)",
                        tier.name.as_str(),
                        tier.runner_architecture,
                        tier.runner_architecture
                    ),
                ));
            }
        }

        let pools = warm_pools(&raw.tiers).map_err(|(key, message)| invalid(&key, message))?;
        if let Some(url) = &raw.agent.url {
            check_agent_url(url).map_err(|message| invalid("agent.url", message))?;
        }

        let from_env = |name: &str| env(name).filter(|s| !s.is_empty()).map(SecretString::from);
        let non_empty = |secret: &Option<SecretString>| secret.clone().filter(|s| !s.expose_secret().is_empty());
        let webhook_secret = from_env(ENV_WEBHOOK_SECRET).or_else(|| non_empty(&raw.github.webhook_secret));
        let admin_token = from_env(ENV_ADMIN_TOKEN).or_else(|| non_empty(&raw.admin.token));
        Ok(Config { source: source.to_owned(), raw, catalog, webhook_secret, admin_token, pools })
    }

    /// The settings in effect, as keys of `ghr.toml`: every default filled in, the tier catalog written out
    /// (the built-in tiers when the file has none), the store URL's password hidden (`***`). Serialized with
    /// `toml` it is a valid `ghr.toml` that parses back to the same settings, secrets apart: they are never
    /// serialized (give them in the environment).
    pub fn effective(&self) -> RawConfig {
        let mut raw = self.raw.clone();
        raw.tiers = self
            .catalog
            .tiers()
            .iter()
            .map(|tier| {
                let declared = self.raw.tiers.iter().find(|t| t.name == tier.name.as_str());
                TierSection { warm_pool: declared.and_then(|t| t.warm_pool.clone()), ..TierSection::from_tier(tier) }
            })
            .collect();
        raw.store.url = redact_url(&raw.store.url);
        raw
    }

    /// The App private key PEM: from the environment, else from `github.private_key_path`.
    pub fn private_key_pem(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<SecretString, ConfigError> {
        if let Some(pem) = env(ENV_PRIVATE_KEY).filter(|s| !s.is_empty()) {
            return Ok(SecretString::from(pem));
        }
        let path = self.raw.github.private_key_path.as_ref().ok_or_else(|| ConfigError::Invalid {
            file: self.source.clone(),
            key: "github.private_key_path".into(),
            message: format!("no App private key: set this key or the {ENV_PRIVATE_KEY} environment variable"),
        })?;
        std::fs::read_to_string(path)
            .map(SecretString::from)
            .map_err(|source| ConfigError::Read { file: path.clone(), source })
    }

    /// Require a secret for serving (`ghr serve` refuses to start without it).
    pub fn require_webhook_secret(&self) -> Result<&SecretString, ConfigError> {
        self.webhook_secret.as_ref().ok_or_else(|| ConfigError::Invalid {
            file: self.source.clone(),
            key: "github.webhook_secret".into(),
            message: format!("no webhook secret: set this key or the {ENV_WEBHOOK_SECRET} environment variable"),
        })
    }
}

/// Longest `max_idle_seconds` / `boot_timeout_seconds` of a warm pool: a day.
pub const MAX_POOL_SECONDS: u64 = 86_400;

/// The checked warm pools of the declared tiers; the error names the key and what to fix.
fn warm_pools(tiers: &[TierSection]) -> Result<BTreeMap<TierName, WarmPool>, (String, String)> {
    let mut pools = BTreeMap::new();
    for tier in tiers {
        let Some(section) = &tier.warm_pool else { continue };
        let key = |k: &str| format!("tiers.warm_pool.{k}");
        if section.size > MAX_POOL_SIZE {
            return Err((key("size"), format!("tier {:?}: size {} is above {MAX_POOL_SIZE}", tier.name, section.size)));
        }
        for (name, seconds) in
            [("max_idle_seconds", section.max_idle_seconds), ("boot_timeout_seconds", section.boot_timeout_seconds)]
        {
            if seconds == 0 || seconds > MAX_POOL_SECONDS {
                return Err((
                    key(name),
                    format!("tier {:?}: {seconds} is out of range: use 1 to {MAX_POOL_SECONDS}", tier.name),
                ));
            }
        }
        let schedule = section
            .schedule
            .iter()
            .map(|w| window(&w.from, &w.to, w.size))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| (key("schedule"), format!("tier {:?}: {e}", tier.name)))?;
        let pool = WarmPool {
            size: section.size,
            schedule,
            max_idle: std::time::Duration::from_secs(section.max_idle_seconds),
            boot_timeout: std::time::Duration::from_secs(section.boot_timeout_seconds),
        };
        pools.insert(TierName::from(tier.name.as_str()), pool);
    }
    Ok(pools)
}

/// `agent.url` must be an absolute http(s) URL without credentials, query or fragment.
fn check_agent_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{url:?} is not an http:// or https:// URL"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.contains('@') || url.contains(['?', '#']) || url.chars().any(char::is_whitespace) {
        return Err(format!("{url:?}: give scheme, host and optional port and path, without credentials or a query"));
    }
    Ok(())
}

/// Drop `null` members of objects, recursively (Terraform writes unset optional values as `null`; serde's
/// defaults apply to absent keys).
fn strip_nulls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|_, member| !member.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// The store URLs `store.url` takes, for messages.
const KNOWN_STORE_URLS: &str = "sqlite://PATH, postgres://USER@HOST/DATABASE or dynamodb://TABLE_PREFIX?region=REGION";

/// `[store]`: a URL ghr can open and a usable PostgreSQL pool; the failing key and the fix.
fn check_store(store: &StoreSection) -> Result<(), (&'static str, String)> {
    let url = store.url.trim();
    if url.is_empty() {
        return Err(("store.url", format!("give {KNOWN_STORE_URLS}")));
    }
    if let Some((scheme, _)) = url.split_once("://")
        && store.kind() == StoreKind::Sqlite
        && scheme != "sqlite"
    {
        return Err(("store.url", format!("{scheme}:// is not a store ghr knows: use {KNOWN_STORE_URLS}")));
    }
    let pool = &store.pool;
    if pool.max_connections == 0 {
        return Err(("store.pool.max_connections", "must be at least 1".into()));
    }
    if pool.min_connections > pool.max_connections {
        return Err((
            "store.pool.min_connections",
            format!("{} is more than store.pool.max_connections = {}", pool.min_connections, pool.max_connections),
        ));
    }
    if pool.acquire_timeout_seconds == 0 {
        return Err(("store.pool.acquire_timeout_seconds", "must be at least 1".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
