//! Engine settings derived from the configuration file.

use ghr_config::{Config, OnSuspend, Onboarding};
use ghr_core::entitlement::TierAccess;
use ghr_core::ids::TierName;
use ghr_core::pool::WarmPool;
use ghr_core::tier::TierCatalog;
use std::collections::BTreeMap;
use std::time::Duration;

/// Everything the engine needs to know from `ghr.toml`.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub environment: String,
    pub catalog: TierCatalog,
    pub default_tier: TierName,
    pub onboarding: Onboarding,
    pub tier_access: TierAccess,
    pub global_max_runners: Option<u32>,
    pub on_suspend: OnSuspend,
    pub runner_group: String,
    pub dispatch_tick: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub max_parallel_launches: usize,
    pub reconcile_interval: Duration,
    pub orphan_grace: Duration,
    pub bootstrap_timeout: Duration,
    pub max_runtime: Duration,
    pub stale_job_after: Duration,
    pub redelivery_scan: u32,
    /// How often each active tenant is polled for queued jobs ghr missed; None disables the poll.
    pub queued_poll: Option<Duration>,
    /// Deliveries and completed jobs older than this are pruned; None keeps everything.
    pub retention: Option<Duration>,
    /// This replica's name among the processes sharing the store (holder of the reconciler lease).
    pub replica_id: String,
    /// How long the reconciler lease lasts unless renewed (see [`crate::lease`]).
    pub lease_ttl: Duration,
    /// Warm pools by tier; empty: every runner starts cold.
    pub pools: BTreeMap<TierName, WarmPool>,
    /// The base URL pool machines' agents reach this server at (`[agent] url`); None: the server's own
    /// listener, filled in by `ghr serve` once it is bound.
    pub agent_url: Option<String>,
}

impl EngineSettings {
    pub fn from_config(config: &Config) -> Self {
        let raw = &config.raw;
        let secs = Duration::from_secs;
        Self {
            environment: raw.environment.clone(),
            catalog: config.catalog.clone(),
            default_tier: raw.tenants.default_tier.as_str().into(),
            onboarding: raw.tenants.onboarding,
            tier_access: raw.tenants.tier_access,
            global_max_runners: raw.tenants.global_max_runners,
            on_suspend: raw.tenants.on_suspend,
            runner_group: raw.github.runner_group.clone(),
            dispatch_tick: secs(raw.dispatcher.tick_seconds),
            retry_base: secs(raw.dispatcher.retry_base_seconds),
            retry_max: secs(raw.dispatcher.retry_max_seconds),
            max_parallel_launches: raw.dispatcher.max_parallel_launches.max(1),
            reconcile_interval: secs(raw.reconciler.interval_seconds),
            orphan_grace: secs(raw.reconciler.orphan_grace_seconds),
            bootstrap_timeout: secs(raw.reconciler.bootstrap_timeout_seconds),
            max_runtime: secs(raw.reconciler.max_runtime_seconds),
            stale_job_after: secs(raw.reconciler.stale_job_seconds),
            redelivery_scan: raw.reconciler.redelivery_scan,
            queued_poll: (raw.reconciler.queued_poll_seconds > 0).then(|| secs(raw.reconciler.queued_poll_seconds)),
            retention: (raw.store.retention_days > 0).then(|| secs(u64::from(raw.store.retention_days) * 86_400)),
            replica_id: raw.cluster.replica_id.clone().unwrap_or_else(default_replica_id),
            lease_ttl: secs(raw.cluster.lease_ttl_seconds),
            pools: config.pools.clone(),
            agent_url: raw.agent.url.clone(),
        }
    }
}

/// Where the host's name is read from when the `HOSTNAME` environment variable is not set.
const HOSTNAME_FILE: &str = "/etc/hostname";

/// `<hostname>-<pid>`: unique among processes on one host, and across hosts as long as hostnames are.
/// The hostname comes from `HOSTNAME`, else `/etc/hostname`, else is `ghr`.
pub fn default_replica_id() -> String {
    let from_env = std::env::var("HOSTNAME").ok();
    let from_file = || std::fs::read_to_string(HOSTNAME_FILE).ok();
    let host = [from_env, from_file()]
        .into_iter()
        .flatten()
        .map(|name| name.trim().chars().filter(|c| !c.is_whitespace() && !c.is_control()).collect::<String>())
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| "ghr".to_owned());
    format!("{host}-{}", std::process::id())
}
