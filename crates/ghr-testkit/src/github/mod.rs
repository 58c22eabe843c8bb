//! The GitHub emulator: a stateful model of the parts of GitHub ghr talks to, served over real HTTP.
//!
//! [`GithubEmulator::start`] binds `127.0.0.1:0` and serves until [`GithubEmulator::shutdown`] or
//! until the last handle is dropped. Tests drive it through the driver API (`install_org`,
//! `queue_job`, ...), which sends the matching signed webhooks and returns once each was answered.

mod auth;
mod delivery;
mod driver;
mod faults;
mod http;
mod info;
mod routes_actions;
mod routes_app;
mod routes_runner_protocol;
mod routes_runners;
mod state;

pub use axum::http::StatusCode;
pub use info::{Counters, DeliveryInfo, InstallationInfo, JobInfo, JobSpec, RunnerInfo, RunnerScopeInfo};

use crate::TEST_APP_PUBLIC_KEY_PEM;
use jsonwebtoken::DecodingKey;
use secrecy::SecretString;
use state::State;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

/// Default lifetime of an installation token (GitHub's: one hour).
pub const DEFAULT_INSTALLATION_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// Default primary rate limit per installation and per hour (GitHub's minimum for installations).
pub const DEFAULT_RATE_LIMIT_PER_HOUR: u32 = 5000;
/// Default time after which a busy runner that stopped sending heartbeats is considered lost:
/// its job fails and its registration is removed (GitHub does the same, more slowly).
pub const DEFAULT_RUNNER_LOST_AFTER: Duration = Duration::from_secs(10);
/// How long a webhook POST may take before the delivery is recorded as failed (GitHub: 10 s).
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// How many delivery attempts are kept by default (older ones are forgotten, as GitHub forgets
/// deliveries after a few days; redelivering a forgotten one is a 404).
pub const DEFAULT_DELIVERY_LOG_LIMIT: usize = 10_000;
/// How long [`GithubEmulator::shutdown`] waits for open connections before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Where the App's webhooks go.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    pub url: String,
    pub secret: SecretString,
}

impl WebhookTarget {
    pub fn new(url: impl Into<String>, secret: impl Into<String>) -> Self {
        Self { url: url.into(), secret: SecretString::from(secret.into()) }
    }
}

/// How to start an emulator. `EmulatorConfig::default()` fits most tests.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The App id JWTs must carry in `iss`. Default 4242.
    pub app_id: u64,
    /// PEM of the key App JWTs are verified with. Default [`TEST_APP_PUBLIC_KEY_PEM`].
    pub app_public_key_pem: String,
    /// Lifetime of installation tokens. Default [`DEFAULT_INSTALLATION_TOKEN_TTL`].
    pub installation_token_ttl: Duration,
    /// Where webhooks go; `None` records every delivery as failed until a target is set.
    pub webhook_target: Option<WebhookTarget>,
    /// Timeout of one webhook POST. Default [`DEFAULT_WEBHOOK_TIMEOUT`].
    pub webhook_timeout: Duration,
    /// Seed of the randomness behind fault injection (dropped webhooks). Default 0.
    pub seed: u64,
    /// Requests per hour and per installation (and for the App JWT). Default [`DEFAULT_RATE_LIMIT_PER_HOUR`].
    pub rate_limit_per_hour: u32,
    /// See [`DEFAULT_RUNNER_LOST_AFTER`]. Keep it well above the runner's heartbeat interval.
    pub runner_lost_after: Duration,
    /// See [`DEFAULT_DELIVERY_LOG_LIMIT`].
    pub delivery_log_limit: usize,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            app_id: 4242,
            app_public_key_pem: TEST_APP_PUBLIC_KEY_PEM.to_owned(),
            installation_token_ttl: DEFAULT_INSTALLATION_TOKEN_TTL,
            webhook_target: None,
            webhook_timeout: DEFAULT_WEBHOOK_TIMEOUT,
            seed: 0,
            rate_limit_per_hour: DEFAULT_RATE_LIMIT_PER_HOUR,
            runner_lost_after: DEFAULT_RUNNER_LOST_AFTER,
            delivery_log_limit: DEFAULT_DELIVERY_LOG_LIMIT,
        }
    }
}

/// A failure of the emulator itself or a refused driver call.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("the App public key is not a usable RSA PEM")]
    PublicKey {
        #[source]
        source: jsonwebtoken::errors::Error,
    },
    #[error("binding the emulator's listener on 127.0.0.1 failed")]
    Bind {
        #[source]
        source: std::io::Error,
    },
    #[error("building the webhook HTTP client failed")]
    HttpClient {
        #[source]
        source: reqwest::Error,
    },
    #[error("the emulator's server stopped with an error")]
    Server {
        #[source]
        source: std::io::Error,
    },
    #[error("installation {0} does not exist")]
    UnknownInstallation(ghr_core::ids::InstallationId),
    #[error("account {login} already has installation {installation}")]
    AlreadyInstalled { login: String, installation: ghr_core::ids::InstallationId },
    #[error("account {login} exists as another kind of account")]
    AccountKindMismatch { login: String },
    #[error("login {0} belongs to another account")]
    LoginTaken(String),
    #[error("organisation {0} does not exist")]
    UnknownOrg(String),
    #[error("job {0} does not exist")]
    UnknownJob(ghr_core::ids::JobId),
    #[error("job {0} has already completed")]
    JobCompleted(ghr_core::ids::JobId),
    #[error("invalid job spec: {0}")]
    InvalidJobSpec(String),
    #[error("sending a webhook delivery failed inside the emulator")]
    DeliveryTask {
        #[source]
        source: tokio::task::JoinError,
    },
    #[error("the condition was not met within {0:?}")]
    Timeout(Duration),
}

/// State shared by the HTTP handlers, the background tasks and every handle.
pub(crate) struct Shared {
    pub(crate) config: EmulatorConfig,
    pub(crate) base_url: String,
    pub(crate) decoding_key: DecodingKey,
    pub(crate) state: Mutex<State>,
    /// Woken whenever a job becomes assignable or a runner is removed (long-polls re-check).
    pub(crate) runners_wakeup: Notify,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) http: reqwest::Client,
}

impl Shared {
    /// Lock the state. A panic while holding the lock cannot leave it half-updated in a way
    /// that matters for an emulator, so a poisoned lock is recovered.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Resolves once the emulator shuts down.
    pub(crate) async fn shutting_down(&self) {
        let mut receiver = self.shutdown.clone();
        // An error means the sender is gone, which is a shutdown too.
        let _ = receiver.wait_for(|stop| *stop).await;
    }
}

/// Stops the server when the last handle goes away.
struct ServerGuard {
    shutdown: watch::Sender<bool>,
    server: Mutex<Option<JoinHandle<std::io::Result<()>>>>,
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

/// A running emulator. Cheap to clone; every clone drives the same state.
#[derive(Clone)]
pub struct GithubEmulator {
    shared: Arc<Shared>,
    guard: Arc<ServerGuard>,
}

impl std::fmt::Debug for GithubEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubEmulator").field("base_url", &self.shared.base_url).finish_non_exhaustive()
    }
}

impl GithubEmulator {
    /// Bind `127.0.0.1:0` and serve. Must be called inside a tokio runtime.
    pub async fn start(config: EmulatorConfig) -> Result<GithubEmulator, EmulatorError> {
        let decoding_key = DecodingKey::from_rsa_pem(config.app_public_key_pem.as_bytes())
            .map_err(|source| EmulatorError::PublicKey { source })?;
        let listener =
            tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.map_err(|source| EmulatorError::Bind { source })?;
        let address = listener.local_addr().map_err(|source| EmulatorError::Bind { source })?;
        let http = reqwest::Client::builder()
            .timeout(config.webhook_timeout)
            .build()
            .map_err(|source| EmulatorError::HttpClient { source })?;
        let (shutdown_sender, shutdown_receiver) = watch::channel(false);
        let state = State::new(&config);
        let shared = Arc::new(Shared {
            base_url: format!("http://{address}"),
            decoding_key,
            state: Mutex::new(state),
            runners_wakeup: Notify::new(),
            shutdown: shutdown_receiver,
            http,
            config,
        });
        let router = http::router(shared.clone());
        let server_shared = shared.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { server_shared.shutting_down().await })
                .await
        });
        tokio::spawn(routes_runner_protocol::reap_lost_runners(shared.clone()));
        tracing::debug!(base_url = %shared.base_url, "GitHub emulator started");
        let guard = Arc::new(ServerGuard { shutdown: shutdown_sender, server: Mutex::new(Some(server)) });
        Ok(GithubEmulator { shared, guard })
    }

    /// The REST root (no `/api/v3`), e.g. `http://127.0.0.1:40123`.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    pub fn app_id(&self) -> u64 {
        self.shared.config.app_id
    }

    /// Send future webhooks to `url`, signed with `secret`.
    pub fn set_webhook_target(&self, url: impl Into<String>, secret: impl Into<String>) {
        let mut state = self.shared.lock();
        state.webhook_target = Some(WebhookTarget::new(url, secret));
        state.webhook_alternates.clear();
    }

    /// Send future webhooks to each of `urls` in turn (one delivery each, round robin), signed with `secret`:
    /// several ghr replicas, each taking every n-th delivery. A redelivery goes to the next URL in turn, like a
    /// fresh delivery. Panics on an empty list.
    pub fn set_webhook_targets(&self, urls: Vec<String>, secret: impl Into<String>) {
        let mut urls = urls.into_iter();
        let first = urls.next().expect("at least one webhook URL");
        let mut state = self.shared.lock();
        state.webhook_target = Some(WebhookTarget::new(first, secret));
        state.webhook_alternates = urls.collect();
    }

    /// Stop serving: long-polls end at once, open requests get [`SHUTDOWN_GRACE`] to finish.
    pub async fn shutdown(&self) -> Result<(), EmulatorError> {
        self.guard.shutdown.send_replace(true);
        let server = self.guard.server.lock().unwrap_or_else(PoisonError::into_inner).take();
        let Some(mut server) = server else {
            return Ok(());
        };
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(source))) => Err(EmulatorError::Server { source }),
            Ok(Err(join_error)) => Err(EmulatorError::Server { source: std::io::Error::other(join_error) }),
            Err(_elapsed) => {
                server.abort();
                Ok(())
            }
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}
