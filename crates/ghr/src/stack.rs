//! The local stack: a GitHub emulator, a SQLite store in a temporary directory, the production GitHub
//! client pointed at the emulator, the process provider running emulated runners, and a real ghr server.
//! `ghr demo` runs its scenario on it; the end-to-end tests drive it through signed webhooks and the API.

use anyhow::Context;
use ghr_config::Config;
use ghr_core::ports::{PoolStore, Provider, RunnerFilter, Store};
use ghr_core::runner::RunnerState;
use ghr_engine::{EngineSettings, Ports};
use ghr_github::{AppCredentials, GithubClient, GithubClientConfig};
use ghr_server::{RunningServer, ServerConfig};
use ghr_testkit::TEST_APP_PRIVATE_KEY_PEM;
use ghr_testkit::github::{EmulatorConfig, GithubEmulator, RunnerScopeInfo};
use rand::Rng;
use secrecy::SecretString;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Tunables of a local stack; the defaults make a fast, reactive system for demos and tests.
pub struct StackOptions {
    /// The runner program: `[ghr, "emulated-runner"]` (the path of a `ghr` binary).
    pub runner_command: Vec<String>,
    /// The agent program of warm-pool machines: `[ghr, "agent"]`.
    pub agent_command: Vec<String>,
    /// The `ghr.toml` text the settings start from (tiers, tenants section, ...). Empty: built-in defaults.
    pub config_toml: String,
    /// Applied to the settings derived from `config_toml`.
    pub tune: Box<dyn FnOnce(&mut EngineSettings) + Send>,
    pub emulator: EmulatorConfig,
    /// Serve Prometheus metrics on an ephemeral port.
    pub metrics: bool,
    /// Serve on this address instead of an ephemeral port (for `ghr demo --keep-running`).
    pub listen: Option<std::net::SocketAddr>,
}

impl StackOptions {
    /// Options that run `runner_binary emulated-runner` as the runner command.
    pub fn new(runner_binary: impl Into<PathBuf>) -> Self {
        let binary = runner_binary.into().to_string_lossy().into_owned();
        Self {
            runner_command: vec![binary.clone(), "emulated-runner".into()],
            agent_command: vec![binary, "agent".into()],
            config_toml: String::new(),
            tune: Box::new(|_| {}),
            emulator: EmulatorConfig::default(),
            metrics: false,
            listen: None,
        }
    }
}

/// Fast loops for a local stack: a pass per second, short graces.
pub fn reactive(settings: &mut EngineSettings) {
    settings.dispatch_tick = Duration::from_millis(500);
    settings.reconcile_interval = Duration::from_secs(1);
    settings.orphan_grace = Duration::from_secs(3);
    settings.bootstrap_timeout = Duration::from_secs(30);
    settings.stale_job_after = Duration::from_secs(20);
    settings.retry_base = Duration::from_millis(200);
    settings.retry_max = Duration::from_secs(2);
    settings.max_parallel_launches = 32;
}

pub struct LocalStack {
    pub dir: tempfile::TempDir,
    pub emulator: GithubEmulator,
    pub server: RunningServer,
    pub store: Arc<dyn Store>,
    /// The same database's pool machines.
    pub pool: Option<Arc<dyn PoolStore>>,
    pub github: Arc<GithubClient>,
    pub provider: Arc<ghr_cloud::ProcessProvider>,
    pub settings: Arc<EngineSettings>,
    pub webhook_secret: String,
    pub admin_token: String,
}

fn random_secret() -> String {
    let bytes: [u8; 20] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl LocalStack {
    pub async fn start(options: StackOptions) -> anyhow::Result<LocalStack> {
        let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
        let config = Config::parse(&options.config_toml, "<stack>", &|_| None)?;
        let mut settings = EngineSettings::from_config(&config);
        reactive(&mut settings);
        (options.tune)(&mut settings);
        let settings = Arc::new(settings);

        let webhook_secret = random_secret();
        let admin_token = random_secret();
        let emulator = GithubEmulator::start(options.emulator).await.context("cannot start the GitHub emulator")?;

        let db = dir.path().join("ghr.db");
        let opened =
            ghr_store::open_store_with_pool(&format!("sqlite://{}", db.display()), &ghr_store::StoreOptions::default())
                .await
                .context("cannot open the store")?;
        let (store, pool) = (opened.store, opened.pool);
        let credentials =
            AppCredentials { app_id: emulator.app_id(), private_key_pem: SecretString::from(TEST_APP_PRIVATE_KEY_PEM) };
        let mut client_config = GithubClientConfig::new(credentials);
        client_config.api_base_url = emulator.base_url().to_owned();
        client_config.retry.base_delay = Duration::from_millis(50);
        let github = Arc::new(GithubClient::new(client_config).context("cannot build the GitHub client")?);

        let mut process = ghr_cloud::ProcessProviderConfig::new(
            options.runner_command,
            dir.path().join("runners"),
            settings.environment.clone(),
        );
        process.terminate_grace = Duration::from_secs(2);
        process.agent_command = options.agent_command;
        let provider = Arc::new(ghr_cloud::ProcessProvider::new(process).context("cannot start the process provider")?);

        let mut ports = Ports::new(store.clone(), github.clone(), provider.clone());
        if !settings.pools.is_empty() {
            ports = ports.with_pool(pool.clone());
        }
        let listen = options.listen.unwrap_or_else(|| "127.0.0.1:0".parse().expect("a valid address"));
        let metrics_listen = options.metrics.then(|| "127.0.0.1:0".parse().expect("a valid address"));
        let server = RunningServer::start(ServerConfig {
            ports,
            settings: settings.clone(),
            webhook_secret: SecretString::from(webhook_secret.clone()),
            admin_token: Some(SecretString::from(admin_token.clone())),
            webhook_path: "/webhook".into(),
            max_body_bytes: 1024 * 1024,
            listen,
            metrics_listen,
        })
        .await?;
        emulator.set_webhook_target(format!("http://{}/webhook", server.addr), webhook_secret.clone());
        let pool = (!settings.pools.is_empty()).then_some(pool);
        Ok(LocalStack { dir, emulator, server, store, pool, github, provider, settings, webhook_secret, admin_token })
    }

    /// Base URL of the server (admin API, webhook).
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// What is still running or holding a slot. Empty at the end of a healthy run. Warm-pool machines waiting
    /// for a job are kept on purpose and are not leftovers.
    pub async fn leftovers(&self) -> anyhow::Result<Leftovers> {
        let pooled: HashSet<String> = match &self.pool {
            Some(pool) => pool
                .pool_list(ghr_core::pool::PoolFilter::default())
                .await?
                .into_iter()
                .filter(|m| m.state.is_pooled())
                .filter_map(|m| m.instance_id.map(|i| i.to_string()))
                .collect(),
            None => HashSet::new(),
        };
        let live = self
            .store
            .runner_list(RunnerFilter { states: RunnerState::LIVE.to_vec(), ..RunnerFilter::default() })
            .await?;
        let instances = self.provider.list().await?;
        let installed: HashSet<String> =
            self.emulator.installations().into_iter().map(|i| i.account_login.to_ascii_lowercase()).collect();
        let (online, unreachable): (Vec<_>, Vec<_>) = self
            .emulator
            .runners()
            .into_iter()
            .filter(|r| r.online)
            .partition(|r| installed.contains(&account_of(&r.scope).to_ascii_lowercase()));
        Ok(Leftovers {
            live_runners: live.iter().map(|r| r.name.to_string()).collect(),
            instances: instances.iter().map(|i| i.id.to_string()).filter(|id| !pooled.contains(id)).collect(),
            online_registrations: online.len(),
            unreachable_registrations: unreachable.len(),
        })
    }

    /// Poll `check` until it holds or `timeout` passes.
    pub async fn wait_for<F, Fut>(&self, timeout: Duration, mut check: F) -> bool
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if check().await {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stop the server, terminate any runner process left, stop the emulator.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.server.shutdown().await;
        self.provider.terminate_all().await?;
        self.emulator.shutdown().await?;
        Ok(())
    }
}

/// The account (org or user login) a runner is registered in.
fn account_of(scope: &RunnerScopeInfo) -> &str {
    match scope {
        RunnerScopeInfo::Org(login) => login,
        RunnerScopeInfo::Repo(full_name) => full_name.split_once('/').map_or(full_name.as_str(), |(owner, _)| owner),
    }
}

/// Things that should not outlive a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Leftovers {
    pub live_runners: Vec<String>,
    pub instances: Vec<String>,
    /// Registrations GitHub still shows online in an account that has the App: ghr removes those.
    pub online_registrations: usize,
    /// Registrations still shown online in an account that removed the App. ghr has no token there to remove
    /// them (their processes are gone, see `instances`); GitHub drops them itself once their runners stop
    /// answering, on its own clock (the emulator: `runner_lost_after`). Reported, never waited for.
    pub unreachable_registrations: usize,
}

impl Leftovers {
    /// Nothing ghr is responsible for is left: no live runner record, no instance, no registration it can
    /// remove.
    pub fn is_empty(&self) -> bool {
        self.live_runners.is_empty() && self.instances.is_empty() && self.online_registrations == 0
    }
}
