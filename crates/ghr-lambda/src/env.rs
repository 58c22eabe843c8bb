//! The functions' configuration, from the Lambda environment alone (no file): which function this is, ghr's
//! configuration as one JSON document (Terraform renders it from the module's inputs, so the tier map flows in
//! unchanged), the queue URLs and where the secrets are. Checked at cold start with `ghr config check`'s rules
//! and messages, plus what the serverless shape needs; a function whose environment is wrong fails its init
//! with the variable and the fix, and never takes an event.

use ghr_config::{Config, ConfigError, ProviderKind, StoreKind};
use ghr_core::ids::TierName;
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::time::Duration;

/// Which function this process is: `webhook`, `tenant-manager`, `scale-up` or `scale-down`.
pub const ENV_FUNCTION: &str = "GHR_FUNCTION";
/// ghr's configuration: ghr.toml's keys as one JSON object (see [`Config::parse_json`]).
pub const ENV_CONFIG: &str = "GHR_CONFIG_JSON";
/// The tier queues: a JSON object of tier name → queue URL, one per tier of the catalog.
pub const ENV_TIER_QUEUES: &str = "GHR_TIER_QUEUES";
/// The queue of runner teardowns (consumed by scale-down).
pub const ENV_TEARDOWN_QUEUE: &str = "GHR_TEARDOWN_QUEUE_URL";
/// The queue of tenant teardowns (consumed by the tenant manager).
pub const ENV_TENANT_EVENTS_QUEUE: &str = "GHR_TENANT_EVENTS_QUEUE_URL";
/// SSM SecureString parameter holding the App private key (PEM, or its base64 as the seed stores it).
pub const ENV_APP_KEY_PARAMETER: &str = "GHR_APP_KEY_PARAMETER";
/// SSM SecureString parameter holding the webhook secret.
pub const ENV_WEBHOOK_SECRET_PARAMETER: &str = "GHR_WEBHOOK_SECRET_PARAMETER";
/// The function's timeout in seconds, as configured on the Lambda (the queue's visibility timeout and the
/// reconciler's lease follow it).
pub const ENV_FUNCTION_TIMEOUT: &str = "GHR_FUNCTION_TIMEOUT_SECONDS";
/// A scale-up function's tier: the queue it consumes.
pub const ENV_TIER: &str = "GHR_TIER";
/// Where [`ENV_CONFIG`] is named in messages.
pub const CONFIG_SOURCE: &str = "GHR_CONFIG_JSON";

/// The default function timeout (the seed's `lambda_timeout`).
pub const DEFAULT_FUNCTION_TIMEOUT: Duration = Duration::from_secs(60);

/// The role this process plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Webhook,
    TenantManager,
    ScaleUp,
    ScaleDown,
}

impl Function {
    pub const ALL: [Function; 4] = [Function::Webhook, Function::TenantManager, Function::ScaleUp, Function::ScaleDown];

    pub fn as_str(self) -> &'static str {
        match self {
            Function::Webhook => "webhook",
            Function::TenantManager => "tenant-manager",
            Function::ScaleUp => "scale-up",
            Function::ScaleDown => "scale-down",
        }
    }

    pub fn from_name(name: &str) -> Option<Function> {
        Self::ALL.into_iter().find(|f| f.as_str() == name)
    }
}

/// Where every kind of work item goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueUrls {
    /// One per tier of the catalog.
    pub tiers: BTreeMap<TierName, String>,
    /// Dispatches naming no tier (a slot freed, a full pass) go to this tier's queue.
    pub default_tier: TierName,
    pub teardown: String,
    pub tenant_events: String,
}

/// Where the secrets come from: an SSM parameter, else the environment variable ghr-config reads.
#[derive(Debug, Clone, Default)]
pub struct SecretSources {
    pub app_key_parameter: Option<String>,
    pub webhook_secret_parameter: Option<String>,
    /// `GHR_GITHUB_PRIVATE_KEY` (tests and simple setups).
    pub app_key_env: Option<SecretString>,
    /// `GHR_WEBHOOK_SECRET` (as `ghr serve` reads it).
    pub webhook_secret_env: Option<SecretString>,
}

/// Everything a function reads from its environment, checked.
#[derive(Debug, Clone)]
pub struct LambdaEnv {
    pub function: Function,
    pub config: Config,
    pub queues: QueueUrls,
    pub secrets: SecretSources,
    pub timeout: Duration,
    /// A scale-up function's tier.
    pub tier: Option<TierName>,
}

/// A wrong environment: the variable (or config key) and what to do.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("{variable}: {message}")]
    Variable { variable: &'static str, message: String },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

fn variable(variable: &'static str, message: impl Into<String>) -> EnvError {
    EnvError::Variable { variable, message: message.into() }
}

impl LambdaEnv {
    /// Read and check the environment `lookup` gives (the process's, or a test's).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<LambdaEnv, EnvError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let names = Function::ALL.map(Function::as_str).join(", ");
        let function = match get(ENV_FUNCTION) {
            None => return Err(variable(ENV_FUNCTION, format!("not set: use one of {names}"))),
            Some(name) => Function::from_name(&name)
                .ok_or_else(|| variable(ENV_FUNCTION, format!("{name:?} is not a function: use one of {names}")))?,
        };
        let text = get(ENV_CONFIG).ok_or_else(|| {
            variable(ENV_CONFIG, "not set: give ghr's configuration as a JSON object (ghr.toml's keys)")
        })?;
        let config = Config::parse_json(&text, CONFIG_SOURCE, lookup)?;
        if config.raw.store.kind() != StoreKind::DynamoDb {
            return Err(variable(
                ENV_CONFIG,
                "key `store.url`: the functions keep their state in DynamoDB: use dynamodb://PREFIX?region=REGION",
            ));
        }
        if config.raw.provider.kind != ProviderKind::Ec2 {
            return Err(variable(ENV_CONFIG, "key `provider.kind`: the functions launch EC2 runners: set \"ec2\""));
        }
        if let Some(tier) = config.pools.keys().next() {
            return Err(variable(
                ENV_CONFIG,
                format!(
                    "key `tiers.warm_pool` (tier {tier:?}): warm pools need `ghr serve` (its agents reach ghr over \
                     HTTP and the pool keeper runs as a loop); the serverless functions start every runner cold: \
                     remove warm_pool"
                ),
            ));
        }
        if config.raw.github.app_id.is_none() && function != Function::Webhook {
            return Err(variable(ENV_CONFIG, "key `github.app_id`: set the GitHub App id"));
        }
        let timeout = match get(ENV_FUNCTION_TIMEOUT) {
            None => DEFAULT_FUNCTION_TIMEOUT,
            Some(text) => match text.parse::<u64>() {
                Ok(seconds) if (1..=900).contains(&seconds) => Duration::from_secs(seconds),
                _ => {
                    return Err(variable(
                        ENV_FUNCTION_TIMEOUT,
                        format!("{text:?}: give the Lambda timeout, 1 to 900 seconds"),
                    ));
                }
            },
        };
        let grace = Duration::from_secs(config.raw.reconciler.orphan_grace_seconds);
        if grace <= timeout {
            return Err(variable(
                ENV_CONFIG,
                format!(
                    "key `reconciler.orphan_grace_seconds`: {} is not longer than the function timeout ({}s): a launch still \
                     running in a scale-up function would be released as crashed; make it longer",
                    grace.as_secs(),
                    timeout.as_secs()
                ),
            ));
        }
        let queues = queue_urls(&get, &config)?;
        let tier = match function {
            Function::ScaleUp => {
                let tier = get(ENV_TIER).ok_or_else(|| {
                    variable(ENV_TIER, "not set: name the tier whose queue this scale-up function consumes")
                })?;
                let tier = TierName::from(tier.as_str());
                if config.catalog.get(&tier).is_none() {
                    return Err(variable(
                        ENV_TIER,
                        format!(
                            "{:?} is not a tier of the catalog: use one of {}",
                            tier.as_str(),
                            config.catalog.names().join(", ")
                        ),
                    ));
                }
                Some(tier)
            }
            _ => None,
        };
        let secret_env = |name: &str| get(name).map(SecretString::from);
        let secrets = SecretSources {
            app_key_parameter: get(ENV_APP_KEY_PARAMETER),
            webhook_secret_parameter: get(ENV_WEBHOOK_SECRET_PARAMETER),
            app_key_env: secret_env(ghr_config::ENV_PRIVATE_KEY),
            // As `ghr serve` reads it: the variable, else `github.webhook_secret` of the configuration.
            webhook_secret_env: secret_env(ghr_config::ENV_WEBHOOK_SECRET).or_else(|| config.webhook_secret.clone()),
        };
        let needs_key = function != Function::Webhook;
        if needs_key && secrets.app_key_parameter.is_none() && secrets.app_key_env.is_none() {
            return Err(variable(
                ENV_APP_KEY_PARAMETER,
                format!(
                    "not set: name the SSM parameter holding the App private key (or set {})",
                    ghr_config::ENV_PRIVATE_KEY
                ),
            ));
        }
        if function == Function::Webhook
            && secrets.webhook_secret_parameter.is_none()
            && secrets.webhook_secret_env.is_none()
        {
            return Err(variable(
                ENV_WEBHOOK_SECRET_PARAMETER,
                format!(
                    "not set: name the SSM parameter holding the webhook secret (or set {})",
                    ghr_config::ENV_WEBHOOK_SECRET
                ),
            ));
        }
        Ok(LambdaEnv { function, config, queues, secrets, timeout, tier })
    }

    /// The process's environment.
    pub fn from_process() -> Result<LambdaEnv, EnvError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }
}

fn queue_urls(get: &dyn Fn(&str) -> Option<String>, config: &Config) -> Result<QueueUrls, EnvError> {
    let text = get(ENV_TIER_QUEUES)
        .ok_or_else(|| variable(ENV_TIER_QUEUES, "not set: give a JSON object of tier name → queue URL"))?;
    let raw: BTreeMap<String, String> = serde_json::from_str(&text)
        .map_err(|e| variable(ENV_TIER_QUEUES, format!("not a JSON object of tier name → queue URL: {e}")))?;
    let tiers: BTreeMap<TierName, String> =
        raw.into_iter().map(|(tier, url)| (TierName::from(tier.as_str()), url)).collect();
    for name in config.catalog.names() {
        if tiers.get(&TierName::from(name.as_str())).is_none_or(|url| url.trim().is_empty()) {
            return Err(variable(
                ENV_TIER_QUEUES,
                format!("no queue for tier {name:?}: every tier of the catalog needs one"),
            ));
        }
    }
    if let Some(extra) = tiers.keys().find(|tier| config.catalog.get(tier).is_none()) {
        return Err(variable(
            ENV_TIER_QUEUES,
            format!("tier {:?} is not in the catalog ({})", extra.as_str(), config.catalog.names().join(", ")),
        ));
    }
    let url = |name: &'static str| get(name).ok_or_else(|| variable(name, "not set: give the queue URL"));
    Ok(QueueUrls {
        tiers,
        default_tier: config.raw.tenants.default_tier.as_str().into(),
        teardown: url(ENV_TEARDOWN_QUEUE)?,
        tenant_events: url(ENV_TENANT_EVENTS_QUEUE)?,
    })
}

#[cfg(test)]
mod tests;
