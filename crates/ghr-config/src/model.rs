//! The sections and keys of `ghr.toml`, each with its default. `ghr config check` prints the effective values.

use ghr_core::entitlement::TierAccess;
use ghr_core::tier::{DEFAULT_TIER_PRIORITY, Tier};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The whole file. Every section is optional.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// Deployment name: the `ghr:environment` tag and part of every runner name. Default `main`.
    pub environment: String,
    pub server: ServerSection,
    pub store: StoreSection,
    pub github: GithubSection,
    pub admin: AdminSection,
    pub tenants: TenantsSection,
    pub dispatcher: DispatcherSection,
    pub reconciler: ReconcilerSection,
    pub provider: ProviderSection,
    pub cluster: crate::ClusterSection,
    pub agent: AgentSection,
    /// The tier catalog, in plan order. Empty: the built-in small/medium/large tiers.
    pub tiers: Vec<TierSection>,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            environment: "main".into(),
            server: ServerSection::default(),
            store: StoreSection::default(),
            github: GithubSection::default(),
            admin: AdminSection::default(),
            tenants: TenantsSection::default(),
            dispatcher: DispatcherSection::default(),
            reconciler: ReconcilerSection::default(),
            provider: ProviderSection::default(),
            cluster: crate::ClusterSection::default(),
            agent: AgentSection::default(),
            tiers: Vec::new(),
        }
    }
}

/// GitHub's cap on webhook payloads is 25 MB (it does not deliver larger ones); installation events
/// listing many repositories come close. The default body limit is 25 MiB, which is at least that.
pub const DEFAULT_MAX_BODY_BYTES: usize = 25 * 1024 * 1024;

/// `[server]`: listeners and HTTP limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Webhook and admin API listener. Default `127.0.0.1:8080`.
    pub listen: String,
    /// Prometheus `/metrics` listener (separate port). Default `127.0.0.1:9090`.
    pub metrics_listen: String,
    /// Path of the webhook endpoint. Default `/webhook`.
    pub webhook_path: String,
    /// Largest accepted webhook body; larger answers 413. Default 25 MiB ([`DEFAULT_MAX_BODY_BYTES`]:
    /// GitHub caps payloads at 25 MB).
    pub max_body_bytes: usize,
    /// Log format: `text` or `json`. Default `text`.
    pub log_format: LogFormat,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            metrics_listen: "127.0.0.1:9090".into(),
            webhook_path: "/webhook".into(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            log_format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

/// `[store]`: where state lives.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// `sqlite://PATH` (created if missing, migrated at start; one `ghr serve`), or
    /// `postgres://USER@HOST[:PORT]/DATABASE[?schema=NAME]` (several replicas; migrated only by
    /// `ghr store migrate`; the password is best given as `PGPASSWORD`), or
    /// `dynamodb://TABLE_PREFIX[?region=REGION][&endpoint=URL]` (a ghr built with the `dynamodb` feature; tables
    /// created by `ghr store init`). Default `sqlite://ghr.db`.
    pub url: String,
    /// Webhook deliveries and completed jobs older than this many days are pruned (runners, the usage
    /// record, are kept). 0 keeps everything. Default 90.
    pub retention_days: u32,
    /// Connection pool of a PostgreSQL store (a SQLite store keeps its own small pool: one writer at a time).
    pub pool: PoolSection,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self { url: "sqlite://ghr.db".into(), retention_days: 90, pool: PoolSection::default() }
    }
}

/// How long past `[store] retention_days` DynamoDB's TTL waits before it may delete a completed job or a
/// delivery. The reconciler prunes them at the retention (keeping the job-status counters exact); TTL is the
/// backstop for a deployment where no ghr has run for a week.
pub const DYNAMODB_TTL_MARGIN: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);
/// `retention_days = 0` keeps everything: the TTL attribute is then written a century ahead.
pub const DYNAMODB_KEEP_TTL: std::time::Duration = std::time::Duration::from_secs(36_500 * 86_400);

impl StoreSection {
    /// Which backend `url` names.
    pub fn kind(&self) -> StoreKind {
        StoreKind::of(&self.url)
    }

    /// The TTL a DynamoDB store writes on completed jobs and deliveries for `retention_days`.
    pub fn dynamodb_ttl(&self) -> std::time::Duration {
        match self.retention_days {
            0 => DYNAMODB_KEEP_TTL,
            days => std::time::Duration::from_secs(u64::from(days) * 86_400) + DYNAMODB_TTL_MARGIN,
        }
    }
}

/// The store backends `store.url` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Postgres,
    /// Opened only by a ghr built with the `dynamodb` feature; the rest of the URL is checked by that store's
    /// parser.
    DynamoDb,
}

/// URL schemes of PostgreSQL stores.
pub const POSTGRES_SCHEMES: [&str; 2] = ["postgres://", "postgresql://"];
/// URL scheme of DynamoDB stores.
pub const DYNAMODB_SCHEME: &str = "dynamodb://";

impl StoreKind {
    pub fn of(url: &str) -> Self {
        let url = url.trim_start();
        if POSTGRES_SCHEMES.iter().any(|scheme| url.starts_with(scheme)) {
            StoreKind::Postgres
        } else if url.starts_with(DYNAMODB_SCHEME) {
            StoreKind::DynamoDb
        } else {
            StoreKind::Sqlite
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "sqlite",
            StoreKind::Postgres => "postgres",
            StoreKind::DynamoDb => "dynamodb",
        }
    }
}

/// A store URL fit for messages and `ghr config check`: its password, if any, replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((userinfo, host)) = rest.rsplit_once('@') else { return url.to_owned() };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// `[store.pool]`: the connection pool of a PostgreSQL store. A table of its own because these keys apply to
/// PostgreSQL only and size one replica's share of the server's `max_connections`, which every replica (and
/// `ghr` CLI run) draws on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolSection {
    /// Connections one ghr process opens at most (the listener of wake-ups holds one more). Default 10.
    pub max_connections: u32,
    /// Connections kept open while idle. Default 1.
    pub min_connections: u32,
    /// How long an operation waits for a free connection before it fails. Default 30 s.
    pub acquire_timeout_seconds: u64,
}

impl Default for PoolSection {
    fn default() -> Self {
        Self { max_connections: 10, min_connections: 1, acquire_timeout_seconds: 30 }
    }
}

/// `[github]`: the GitHub App shared by every tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GithubSection {
    /// The App id (Settings → Developer settings → GitHub Apps). Required by `ghr serve`.
    pub app_id: Option<u64>,
    /// PEM file of the App private key; or set `GHR_GITHUB_PRIVATE_KEY` to the PEM itself.
    pub private_key_path: Option<PathBuf>,
    /// Webhook secret; prefer the `GHR_WEBHOOK_SECRET` environment variable.
    #[serde(skip_serializing)]
    pub webhook_secret: Option<SecretString>,
    /// REST API root. Default `https://api.github.com`; GitHub Enterprise Server: `https://HOST/api/v3`.
    pub api_url: String,
    /// Runner group of org-level runners. Default `Default`.
    pub runner_group: String,
}

impl Default for GithubSection {
    fn default() -> Self {
        Self {
            app_id: None,
            private_key_path: None,
            webhook_secret: None,
            api_url: "https://api.github.com".into(),
            runner_group: "Default".into(),
        }
    }
}

/// `[admin]`: the admin REST API.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    /// Bearer token of the admin API; prefer `GHR_ADMIN_TOKEN`. Without one the admin API answers 401 to everything.
    #[serde(skip_serializing)]
    pub token: Option<SecretString>,
}

/// How new installations become tenants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Onboarding {
    /// `installation.created` makes an active tenant (default).
    #[default]
    Automatic,
    /// New tenants are `pending` until `ghr tenants approve`.
    Approval,
}

/// What happens to running runners when a tenant is suspended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnSuspend {
    /// Running jobs finish; no new runners start (default).
    #[default]
    LetFinish,
    /// Terminate every runner of the tenant at once.
    Terminate,
}

/// `[tenants]`: onboarding, plans and limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantsSection {
    /// Plan of new tenants; must be a tier of the catalog. Default `small`.
    pub default_tier: String,
    /// `automatic` (default) or `approval`.
    pub onboarding: Onboarding,
    /// `up_to_plan` (default): tiers up to the plan in catalog order; `any`: every tier.
    pub tier_access: TierAccess,
    /// Cap on live runners across all tenants. Default: none.
    pub global_max_runners: Option<u32>,
    /// `let_finish` (default) or `terminate`.
    pub on_suspend: OnSuspend,
}

impl Default for TenantsSection {
    fn default() -> Self {
        Self {
            default_tier: "small".into(),
            onboarding: Onboarding::Automatic,
            tier_access: TierAccess::UpToPlan,
            global_max_runners: None,
            on_suspend: OnSuspend::LetFinish,
        }
    }
}

/// `[dispatcher]`: turning queued jobs into runners.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatcherSection {
    /// How often the dispatcher checks for ended backoffs when nothing wakes it; every 12th tick is a full
    /// pass over every tenant (the safety net). Default 5 s.
    pub tick_seconds: u64,
    /// First retry delay after a failed launch for a (tenant, tier); doubles up to `retry_max_seconds`. Default 2 s.
    pub retry_base_seconds: u64,
    /// Longest retry delay. Default 60 s.
    pub retry_max_seconds: u64,
    /// Launches in flight at once. Default 16.
    pub max_parallel_launches: usize,
}

impl Default for DispatcherSection {
    fn default() -> Self {
        Self { tick_seconds: 5, retry_base_seconds: 2, retry_max_seconds: 60, max_parallel_launches: 16 }
    }
}

/// `[reconciler]`: the periodic repair loop.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReconcilerSection {
    /// Pass interval. Default 30 s.
    pub interval_seconds: u64,
    /// An instance with no runner record older than this is terminated. Default 120 s.
    pub orphan_grace_seconds: u64,
    /// A runner not registered with GitHub within this is terminated and its demand put back. Default 600 s.
    pub bootstrap_timeout_seconds: u64,
    /// A runner older than this is terminated, even under a job. Default 5 days and 1 hour: GitHub lets a job on
    /// a self-hosted runner run for up to 5 days, so the default never cuts a legitimate job short; lower it to
    /// cap what one stuck runner can cost.
    pub max_runtime_seconds: u64,
    /// A job queued longer than this is checked against GitHub. Default 600 s.
    pub stale_job_seconds: u64,
    /// Page size (1–100) of the scan of the App's failed webhook deliveries, which reads back to where the
    /// last scan stopped (up to GitHub's 3-day retention) and redelivers what never reached ghr. Default 100;
    /// 0 disables the scan.
    pub redelivery_scan: u32,
    /// How often each active tenant's repositories are polled for queued jobs ghr never heard of (the last
    /// line of defence when deliveries themselves are gone). Default 900 s; 0 disables.
    pub queued_poll_seconds: u64,
}

impl Default for ReconcilerSection {
    fn default() -> Self {
        Self {
            interval_seconds: 30,
            orphan_grace_seconds: 120,
            bootstrap_timeout_seconds: 600,
            max_runtime_seconds: 5 * 24 * 3600 + 3600,
            stale_job_seconds: 600,
            redelivery_scan: 100,
            queued_poll_seconds: 900,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// Local processes on this host (default).
    #[default]
    Process,
    /// EC2 instances (needs a build with the `ec2` feature).
    Ec2,
}

/// `[provider]`: where runners run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderSection {
    /// `process` (default) or `ec2`.
    pub kind: ProviderKind,
    pub process: ProcessSection,
    pub ec2: Ec2Section,
}

/// `[provider.process]`: one local process per runner.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessSection {
    /// Program and arguments; the JIT config arrives on its stdin. Default: `ghr-emulated-runner`.
    pub command: Vec<String>,
    /// Where instance records and runner logs are kept. Default `ghr-runners`.
    pub state_dir: PathBuf,
    /// Seconds between SIGTERM and SIGKILL on terminate. Default 10.
    pub terminate_grace_seconds: u64,
    /// The agent of warm-pool machines, program and arguments. Default (empty): this ghr with `agent`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub agent_command: Vec<String>,
}

impl Default for ProcessSection {
    fn default() -> Self {
        Self {
            command: vec!["ghr-emulated-runner".into()],
            state_dir: "ghr-runners".into(),
            terminate_grace_seconds: 10,
            agent_command: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CapacityType {
    #[default]
    Spot,
    OnDemand,
}

/// `[provider.ec2]`: EC2 instances.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ec2Section {
    /// Default `us-east-1`.
    pub region: String,
    /// Custom endpoint (an emulator); default none.
    pub endpoint_url: Option<String>,
    pub launch_template: Option<String>,
    pub ami_id: Option<String>,
    /// AMIs by tier architecture (`x64`, `arm64`), ahead of `ami_id`.
    pub ami_ids: std::collections::BTreeMap<String, String>,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub iam_instance_profile: Option<String>,
    /// `spot` (default) or `on_demand`.
    pub capacity: CapacityType,
    /// Retry on-demand when spot has no capacity. Default true.
    pub fallback_to_on_demand: bool,
    /// Where the image has `ghr-agent`, which warm-pool machines start. Default `/opt/ghr/ghr-agent`.
    pub agent_path: String,
    /// The runner program the agent starts with the JIT config (its last argument) once a pool machine is
    /// bound. Default `["/opt/actions-runner/run.sh"]`.
    pub runner_command: Vec<String>,
}

impl Default for Ec2Section {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            endpoint_url: None,
            launch_template: None,
            ami_id: None,
            ami_ids: std::collections::BTreeMap::new(),
            subnets: Vec::new(),
            security_groups: Vec::new(),
            iam_instance_profile: None,
            capacity: CapacityType::Spot,
            fallback_to_on_demand: true,
            agent_path: DEFAULT_EC2_AGENT_PATH.into(),
            runner_command: vec![DEFAULT_EC2_RUNNER_COMMAND.into()],
        }
    }
}

/// Default `[provider.ec2] agent_path`.
pub const DEFAULT_EC2_AGENT_PATH: &str = "/opt/ghr/ghr-agent";
/// Default `[provider.ec2] runner_command` (its one element).
pub const DEFAULT_EC2_RUNNER_COMMAND: &str = "/opt/actions-runner/run.sh";

/// One `[[tiers]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierSection {
    pub name: String,
    pub labels: Vec<String>,
    pub instance_types: Vec<String>,
    /// Concurrent-runner limit of a tenant on this plan.
    pub max_runners: u32,
    /// Default `linux`.
    #[serde(default = "default_os")]
    pub runner_os: String,
    /// Default `x64`.
    #[serde(default = "default_arch")]
    pub runner_architecture: String,
    /// Price per runner-hour for cost reports. Default 0.
    #[serde(default)]
    pub price_per_hour: f64,
    /// Tie-breaker between equally specific tiers; lower wins. Default 100.
    #[serde(default = "default_priority")]
    pub priority: i32,
    /// Tenant-neutral machines of this tier kept ready and bound to a tenant when its job arrives. Absent:
    /// every runner of the tier starts cold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_pool: Option<WarmPoolSection>,
}

/// `[[tiers]] warm_pool = { size = N, ... }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmPoolSection {
    /// Machines kept ready outside the schedule's windows (0 to 1000).
    pub size: u32,
    /// Other sizes at times of day (UTC), e.g. `[{ from = "22:00", to = "06:00", size = 1 }]`; first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedule: Vec<PoolWindowSection>,
    /// A ready machine unclaimed this long is replaced by a fresh one. Default 3600.
    #[serde(default = "default_pool_max_idle")]
    pub max_idle_seconds: u64,
    /// A machine whose agent has not said hello this long after launch is replaced. Default 600.
    #[serde(default = "default_pool_boot_timeout")]
    pub boot_timeout_seconds: u64,
}

/// One `warm_pool.schedule` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolWindowSection {
    /// `HH:MM`, UTC, inclusive.
    pub from: String,
    /// `HH:MM`, UTC, exclusive; before `from` wraps midnight.
    pub to: String,
    pub size: u32,
}

fn default_pool_max_idle() -> u64 {
    ghr_core::pool::DEFAULT_MAX_IDLE.as_secs()
}
fn default_pool_boot_timeout() -> u64 {
    ghr_core::pool::DEFAULT_BOOT_TIMEOUT.as_secs()
}

/// `[agent]`: how `ghr-agent` on pool machines reaches ghr.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentSection {
    /// Base URL agents use to reach this server (e.g. `https://ghr.internal:8443`); the agent endpoints are
    /// served on `server.listen` under `/agent/v1`. Default: `http://` + `server.listen` (right for the
    /// process provider; set it for EC2 pools).
    pub url: Option<String>,
}

fn default_os() -> String {
    "linux".into()
}
fn default_arch() -> String {
    "x64".into()
}
fn default_priority() -> i32 {
    DEFAULT_TIER_PRIORITY
}

impl TierSection {
    /// The `[[tiers]]` entry that declares `tier`.
    pub fn from_tier(tier: &Tier) -> Self {
        Self {
            name: tier.name.to_string(),
            labels: tier.labels.clone(),
            instance_types: tier.instance_types.clone(),
            max_runners: tier.max_runners,
            runner_os: tier.runner_os.clone(),
            runner_architecture: tier.runner_architecture.clone(),
            price_per_hour: tier.price_per_hour,
            priority: tier.priority,
            warm_pool: None,
        }
    }

    pub fn to_tier(&self) -> Tier {
        Tier {
            name: self.name.as_str().into(),
            labels: self.labels.clone(),
            instance_types: self.instance_types.clone(),
            max_runners: self.max_runners,
            runner_os: self.runner_os.clone(),
            runner_architecture: self.runner_architecture.clone(),
            price_per_hour: self.price_per_hour,
            priority: self.priority,
        }
    }
}
