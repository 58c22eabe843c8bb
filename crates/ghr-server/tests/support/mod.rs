//! The API test harness: a real ghr server in-process on a SQLite file, the GitHub emulator behind the
//! production GitHub client, a recording provider, and HTTP helpers for the admin API.

#![allow(dead_code)] // Every test module uses a different part of the harness.

pub mod fleet;
pub mod openapi;
pub mod provider;
pub mod webhooks;

use ghr_api::Client;
use ghr_config::Config;
use ghr_core::ids::{InstallationId, JobId};
use ghr_core::ports::Store;
use ghr_engine::Ports;
use ghr_engine::settings::EngineSettings;
use ghr_github::{AppCredentials, GithubClient, GithubClientConfig};
use ghr_server::admin::LocalAdmin;
use ghr_server::{RunningServer, ServerConfig};
use ghr_store::SqliteStore;
use ghr_testkit::github::{EmulatorConfig, GithubEmulator, JobSpec};
use provider::RecordingProvider;
use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use secrecy::SecretString;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The admin token the test server accepts.
pub const ADMIN_TOKEN: &str = "test-admin-token-5b1f";
/// The webhook secret shared by the server and the emulator.
pub const WEBHOOK_SECRET: &str = "test-webhook-secret-9c2e";
/// The webhook path the test server serves (the configured default).
pub const WEBHOOK_PATH: &str = "/webhook";
/// The webhook body limit of the test server (small, so the 413 answer is cheap to provoke).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// How long any awaited condition may take.
pub const DEADLINE: Duration = Duration::from_secs(15);
/// How often an awaited condition is checked.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Loops that must not run by themselves during a test (they are woken by events, or called directly).
const QUIET_INTERVAL: Duration = Duration::from_secs(3600);
/// Labels that select the `small` tier of the default catalog.
pub const SMALL: &[&str] = &["self-hosted", "linux", "x64", "small"];
/// Labels that select the `large` tier of the default catalog.
pub const LARGE: &[&str] = &["self-hosted", "linux", "x64", "large"];
/// Labels no tier matches.
pub const FOREIGN: &[&str] = &["ubuntu-latest"];

/// One HTTP answer, read completely.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("answer is not JSON ({e}): {}", self.text))
    }

    /// Assert the status and return the JSON body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected answer: {}", self.text);
        self.json()
    }

    /// Assert an error answer with this status and code; returns its message.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) -> String {
        let body = self.expect(status);
        assert_eq!(body["error"], code, "unexpected error body: {body}");
        body["message"].as_str().unwrap_or_else(|| panic!("error without a message: {body}")).to_owned()
    }
}

/// A running server with everything it talks to.
pub struct Harness {
    pub server: RunningServer,
    pub base: String,
    pub store: Arc<dyn Store>,
    pub settings: Arc<EngineSettings>,
    pub github: GithubEmulator,
    pub provider: Arc<RecordingProvider>,
    pub http: reqwest::Client,
    /// The SQLite file of the store.
    pub db: PathBuf,
    _dir: TempDir,
}

impl Harness {
    /// A server with the built-in configuration (automatic onboarding, the seed tier catalog).
    pub async fn start() -> Harness {
        Self::start_with(|_| {}).await
    }

    /// A server whose engine settings `adjust` changes first.
    pub async fn start_with(adjust: impl FnOnce(&mut EngineSettings)) -> Harness {
        Self::start_full(adjust, false).await
    }

    /// A server that also serves Prometheus `/metrics` (the recorder is process-wide: nextest runs each test
    /// in its own process, so the counters a test reads are its own).
    pub async fn start_serving_metrics() -> Harness {
        Self::start_full(|_| {}, true).await
    }

    /// Another replica on this harness's database file (its own emulator, provider and listener).
    pub async fn start_replica(&self, adjust: impl FnOnce(&mut EngineSettings)) -> Harness {
        Self::start_on_file(self.db.clone(), adjust).await
    }

    /// A server on an existing SQLite file, which the caller keeps.
    pub async fn start_on_file(db: PathBuf, adjust: impl FnOnce(&mut EngineSettings)) -> Harness {
        Self::start_on(Some(db), adjust, false).await
    }

    async fn start_full(adjust: impl FnOnce(&mut EngineSettings), serve_metrics: bool) -> Harness {
        Self::start_on(None, adjust, serve_metrics).await
    }

    async fn start_on(db: Option<PathBuf>, adjust: impl FnOnce(&mut EngineSettings), serve_metrics: bool) -> Harness {
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let db = db.unwrap_or_else(|| dir.path().join("ghr.db"));
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&db.display().to_string()).await.expect("opening the SQLite store"));
        let github = GithubEmulator::start(EmulatorConfig::default()).await.expect("starting the GitHub emulator");
        let client = github_client(&github);
        let provider = Arc::new(RecordingProvider::default());

        let mut settings = EngineSettings::from_config(&Config::builtin());
        settings.environment = "test".into();
        settings.dispatch_tick = QUIET_INTERVAL;
        settings.reconcile_interval = QUIET_INTERVAL;
        adjust(&mut settings);
        let settings = Arc::new(settings);

        let server = RunningServer::start(ServerConfig {
            ports: Ports::new(store.clone(), Arc::new(client), provider.clone()),
            settings: settings.clone(),
            webhook_secret: SecretString::from(WEBHOOK_SECRET),
            admin_token: Some(SecretString::from(ADMIN_TOKEN)),
            webhook_path: WEBHOOK_PATH.into(),
            max_body_bytes: MAX_BODY_BYTES,
            listen: "127.0.0.1:0".parse().expect("a socket address"),
            metrics_listen: serve_metrics.then(|| "127.0.0.1:0".parse().expect("a socket address")),
        })
        .await
        .expect("starting the ghr server");
        let base = format!("http://{}", server.addr);
        github.set_webhook_target(format!("{base}{WEBHOOK_PATH}"), WEBHOOK_SECRET);
        Harness { server, base, store, settings, github, provider, http: reqwest::Client::new(), db, _dir: dir }
    }

    /// The Prometheus exposition text (the server must have been started with [`Harness::start_serving_metrics`]).
    pub async fn metrics(&self) -> String {
        let addr = self.server.metrics_addr.expect("a server started with start_serving_metrics");
        let response = self.http.get(format!("http://{addr}/metrics")).send().await.expect("GET /metrics");
        response.text().await.expect("the metrics text")
    }

    /// The admin operations on the server's store, without HTTP.
    pub fn local(&self) -> LocalAdmin {
        LocalAdmin::new(self.store.clone(), self.settings.clone())
    }

    /// The admin operations over HTTP with the right token.
    pub fn remote(&self) -> Client {
        Client::new(&self.base, SecretString::from(ADMIN_TOKEN)).expect("a valid server URL and token")
    }

    /// Send a request with exactly this `Authorization` header (none when `None`).
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        authorization: Option<&str>,
        body: Option<&Value>,
        accept: Option<&str>,
    ) -> Answer {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base));
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        if let Some(value) = accept {
            request = request.header(ACCEPT, value);
        }
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, "application/json").body(body.to_string());
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{method} {path} failed: {e}"));
        let status = response.status().as_u16();
        let content_type =
            response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let text = response.text().await.unwrap_or_else(|e| panic!("reading the answer of {method} {path}: {e}"));
        Answer { status, content_type, text }
    }

    /// An admin request with the right token.
    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Answer {
        self.send_raw(method, path, Some(&format!("Bearer {ADMIN_TOKEN}")), body, None).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Option<&Value>) -> Answer {
        self.send(Method::POST, path, body).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Answer {
        self.send(Method::PUT, path, Some(body)).await
    }

    /// Install the App on an organisation through the emulator (a signed `installation.created`).
    pub async fn install(&self, login: &str) -> InstallationId {
        self.github.install_org(login).await.unwrap_or_else(|e| panic!("installing the App on {login}: {e}"))
    }

    /// Queue a job through the emulator (a signed `workflow_job.queued`) and wait until the store has it.
    pub async fn queue(&self, installation: InstallationId, repo: &str, labels: &[&str]) -> JobId {
        let job = self
            .github
            .queue_job(JobSpec::new(installation, repo, labels))
            .await
            .unwrap_or_else(|e| panic!("queueing a job: {e}"));
        let store = self.store.clone();
        eventually(&format!("job {job} recorded"), async || store.job_get(job).await.ok().flatten()).await;
        job
    }

    /// POST a signed `workflow_job` delivery for a job queued in `repo`, as if GitHub sent it; returns the status.
    pub async fn job_event(
        &self,
        action: &str,
        installation: InstallationId,
        repo: &str,
        job: JobId,
        runner_name: Option<&str>,
    ) -> u16 {
        let source = webhooks::JobSource::from_emulator(self, installation, repo);
        webhooks::deliver(self, &source.delivery(action, job, SMALL, runner_name)).await.status
    }
}

/// The production GitHub client, talking to `github`.
pub fn github_client(github: &GithubEmulator) -> GithubClient {
    let mut client_config = GithubClientConfig::new(AppCredentials {
        app_id: github.app_id(),
        private_key_pem: SecretString::from(ghr_testkit::TEST_APP_PRIVATE_KEY_PEM),
    });
    client_config.api_base_url = github.base_url().to_owned();
    GithubClient::new(client_config).expect("building the GitHub client")
}

/// Poll `probe` until it yields a value, failing the test with `what` after [`DEADLINE`].
pub async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {DEADLINE:?} waiting for: {what}");
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
