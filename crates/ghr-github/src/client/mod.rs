//! `GithubClient`: the REST client behind [`ghr_core::ports::GitHubApi`], with App and installation
//! authentication, bounded retries (the shared [`RetryPolicy`]) of rate limits, server errors and transport
//! failures, re-minted credentials after a 401, and per-installation rate-limit tracking.

mod actions;
mod api;
mod deliveries;
mod errors;
mod http;
mod pages;
mod runners;

pub use errors::{
    DEFAULT_RATE_LIMIT_WAIT, HEADER_RATELIMIT_LIMIT, HEADER_RATELIMIT_REMAINING, HEADER_RATELIMIT_RESET, classify,
};

use crate::app::{AppCredentials, AppJwtSigner, AppKeyError, DEFAULT_TOKEN_REFRESH_MARGIN, TokenCache};
use ghr_core::Timestamp;
use ghr_core::ids::InstallationId;
pub use ghr_core::retry::RetryPolicy;
use http::Auth;
use reqwest::Url;
use reqwest::header::{ACCEPT, HeaderMap, HeaderName, HeaderValue};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// The public GitHub API. GitHub Enterprise Server uses `https://HOST/api/v3`.
pub const DEFAULT_API_BASE_URL: &str = "https://api.github.com";
/// Sent as `User-Agent` unless configured otherwise (GitHub refuses requests without one).
pub const DEFAULT_USER_AGENT: &str = concat!("ghr/", env!("CARGO_PKG_VERSION"));
/// The REST API version ghr is written against (`X-GitHub-Api-Version`).
pub const GITHUB_API_VERSION: &str = "2022-11-28";
/// The media type GitHub recommends in `Accept`.
pub const GITHUB_ACCEPT: &str = "application/vnd.github+json";
/// Header naming the REST API version.
pub const HEADER_API_VERSION: &str = "x-github-api-version";
/// Whole-request timeout (connect, send, read the answer).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How to reach GitHub and as whom.
#[derive(Debug, Clone)]
pub struct GithubClientConfig {
    /// REST root: `https://api.github.com`, `https://HOST/api/v3`, or an emulator's `http://127.0.0.1:PORT`.
    pub api_base_url: String,
    pub credentials: AppCredentials,
    pub user_agent: String,
    pub request_timeout: Duration,
    /// Retries of rate limits (429, rate-limit 403), 5xx answers and transport failures (for a POST only
    /// when the connection was never made). A `Retry-After` longer than `retry.max_delay` is not waited
    /// for: the [`ghr_core::ports::GithubError::RateLimited`] goes back to the caller at once.
    pub retry: RetryPolicy,
    /// Installation tokens are refreshed when they have less than this left to live.
    pub token_refresh_margin: Duration,
}

impl GithubClientConfig {
    /// Defaults for github.com.
    pub fn new(credentials: AppCredentials) -> Self {
        Self {
            api_base_url: DEFAULT_API_BASE_URL.to_owned(),
            credentials,
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            retry: RetryPolicy::DEFAULT,
            token_refresh_margin: DEFAULT_TOKEN_REFRESH_MARGIN,
        }
    }
}

/// The client could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum ClientConfigError {
    #[error("GitHub API base URL {url:?} is invalid")]
    BaseUrl {
        url: String,
        #[source]
        source: url::ParseError,
    },
    #[error("GitHub API base URL {0:?} must be an http or https URL")]
    BaseUrlScheme(String),
    #[error("GitHub App credentials are unusable")]
    Credentials(#[source] AppKeyError),
    #[error("user agent {0:?} is not a valid header value")]
    UserAgent(String),
    #[error("building the HTTP client failed")]
    Http(#[source] reqwest::Error),
}

/// The rate-limit window GitHub last reported for one identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: u64,
    pub remaining: u64,
    pub reset_at: Timestamp,
}

/// Counters since the client was built (for metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// HTTP requests sent, including token requests and retries.
    pub calls: u64,
    /// Installation tokens requested.
    pub token_requests: u64,
    /// Requests repeated after a rate limit, a 5xx, a transport failure or a refused credential.
    pub retries: u64,
    /// Answers that were rate limits.
    pub rate_limited: u64,
}

#[derive(Debug, Default)]
struct Counters {
    calls: AtomicU64,
    token_requests: AtomicU64,
    retries: AtomicU64,
    rate_limited: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Key of the runner-group cache: (lower-cased org login, exact group name).
type GroupKey = (String, String);

struct Inner {
    http: reqwest::Client,
    base: Url,
    retry: RetryPolicy,
    jwt: AppJwtSigner,
    tokens: TokenCache,
    groups: Mutex<HashMap<GroupKey, u64>>,
    rate_limits: Mutex<HashMap<Auth, RateLimit>>,
    counters: Counters,
}

/// GitHub REST client for one App. Cheap to clone (shared state).
#[derive(Clone)]
pub struct GithubClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for GithubClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubClient")
            .field("api_base_url", &self.inner.base.as_str())
            .field("app_id", &self.inner.jwt.app_id())
            .finish_non_exhaustive()
    }
}

impl GithubClient {
    /// Build the client; reads the App key (and signs once with it) so a bad key fails here.
    pub fn new(config: GithubClientConfig) -> Result<Self, ClientConfigError> {
        let base = parse_base_url(&config.api_base_url)?;
        let jwt = AppJwtSigner::new(&config.credentials).map_err(ClientConfigError::Credentials)?;
        let user_agent = HeaderValue::from_str(&config.user_agent)
            .map_err(|_| ClientConfigError::UserAgent(config.user_agent.clone()))?;
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(GITHUB_ACCEPT));
        headers.insert(HeaderName::from_static(HEADER_API_VERSION), HeaderValue::from_static(GITHUB_API_VERSION));
        let http = reqwest::Client::builder()
            .user_agent(user_agent)
            .default_headers(headers)
            .timeout(config.request_timeout)
            .build()
            .map_err(ClientConfigError::Http)?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                retry: config.retry,
                jwt,
                tokens: TokenCache::new(config.token_refresh_margin),
                groups: Mutex::new(HashMap::new()),
                rate_limits: Mutex::new(HashMap::new()),
                counters: Counters::default(),
            }),
        })
    }

    /// The REST root every path is appended to.
    pub fn api_base_url(&self) -> &Url {
        &self.inner.base
    }

    pub fn app_id(&self) -> u64 {
        self.inner.jwt.app_id()
    }

    /// The rate-limit window last reported for calls made with `installation`'s token.
    pub fn rate_limit(&self, installation: InstallationId) -> Option<RateLimit> {
        lock(&self.inner.rate_limits).get(&Auth::Installation(installation)).copied()
    }

    /// The rate-limit window last reported for calls made as the App (JWT).
    pub fn app_rate_limit(&self) -> Option<RateLimit> {
        lock(&self.inner.rate_limits).get(&Auth::App).copied()
    }

    pub fn stats(&self) -> ClientStats {
        let c = &self.inner.counters;
        ClientStats {
            calls: c.calls.load(Ordering::Relaxed),
            token_requests: c.token_requests.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            rate_limited: c.rate_limited.load(Ordering::Relaxed),
        }
    }

    /// Remaining requests per installation, as GitHub last reported them.
    pub fn rate_limits(&self) -> Vec<(InstallationId, RateLimit)> {
        let limits = lock(&self.inner.rate_limits);
        let mut out: Vec<_> = limits
            .iter()
            .filter_map(|(auth, limit)| match auth {
                Auth::Installation(id) => Some((*id, *limit)),
                _ => None,
            })
            .collect();
        out.sort_by_key(|(id, _)| *id);
        out
    }

    /// Drop everything cached for an installation (its token, its rate-limit window); for uninstalls.
    pub fn forget_installation(&self, installation: InstallationId) {
        self.inner.tokens.forget(installation);
        lock(&self.inner.rate_limits).remove(&Auth::Installation(installation));
    }
}

fn parse_base_url(text: &str) -> Result<Url, ClientConfigError> {
    let url = Url::parse(text.trim()).map_err(|source| ClientConfigError::BaseUrl { url: text.to_owned(), source })?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(ClientConfigError::BaseUrlScheme(text.to_owned()));
    }
    Ok(url)
}

/// Lock a std mutex; a panic elsewhere never leaves the maps here half-updated, so poison is ignored.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
