//! One REST call: authentication header, sending, rate-limit bookkeeping, error classification, the retry
//! loop (the shared [`ghr_core::retry::RetryPolicy`] via backon), and re-minting a refused credential once.

use super::errors::{
    HEADER_RATELIMIT_LIMIT, HEADER_RATELIMIT_REMAINING, HEADER_RATELIMIT_RESET, classify, epoch, header_u64,
};
use super::pages::next_link;
use super::{Counters, GithubClient, RateLimit, lock};
use crate::app::InstallationToken;
use backon::Retryable;
use chrono::Utc;
use ghr_core::ids::InstallationId;
use ghr_core::ports::GithubError;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::pin::Pin;

/// Who a call is made as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Auth {
    /// The App itself, with its JWT.
    App,
    /// An installation, with its access token.
    Installation(InstallationId),
}

/// A request to send (possibly several times).
#[derive(Debug)]
pub(crate) struct Call {
    method: Method,
    url: Url,
    body: Option<Vec<u8>>,
    auth: Auth,
    /// `METHOD /path`, for error messages and logs.
    what: String,
}

impl Call {
    pub(crate) fn new(method: Method, url: Url, auth: Auth) -> Self {
        let what = format!("{method} {}", url.path());
        Self { method, url, body: None, auth, what }
    }

    pub(crate) fn with_json(mut self, body: &impl Serialize) -> Result<Self, GithubError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|err| GithubError::decode(format!("{}: encoding the request body failed", self.what), err))?;
        self.body = Some(bytes);
        Ok(self)
    }

    /// Whether sending the request twice has the effect of sending it once (RFC 9110).
    fn is_idempotent(&self) -> bool {
        matches!(self.method, Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS)
    }
}

/// A successful (2xx) answer.
#[derive(Debug)]
pub(crate) struct Answer {
    body: Vec<u8>,
    /// The `rel="next"` target of GitHub's `Link` header.
    next: Option<Url>,
    what: String,
}

impl Answer {
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, GithubError> {
        serde_json::from_slice(&self.body).map_err(|err| GithubError::decode(self.what.clone(), err))
    }

    /// Decode an answer that carries a credential: the error names only the position, never content
    /// (serde's own message may quote the value, so it is not chained).
    pub(crate) fn json_secret<T: DeserializeOwned>(&self) -> Result<T, GithubError> {
        serde_json::from_slice(&self.body).map_err(|err| {
            GithubError::decode_message(format!(
                "{}: {:?} error at line {} column {}",
                self.what,
                err.classify(),
                err.line(),
                err.column()
            ))
        })
    }

    /// The next page's URL, when GitHub says there is one.
    pub(crate) fn next_page(&self) -> Option<&Url> {
        self.next.as_ref()
    }

    pub(crate) fn what(&self) -> &str {
        &self.what
    }
}

/// A failed attempt, and whether the retry policy may repeat it.
struct Failed {
    error: GithubError,
    retryable: bool,
}

impl Failed {
    /// A failure that retrying this call cannot fix (or that was already retried where it happened).
    fn fatal(error: GithubError) -> Self {
        Self { error, retryable: false }
    }
}

type CredentialFuture<'a> = Pin<Box<dyn Future<Output = Result<SecretString, GithubError>> + Send + 'a>>;

impl GithubClient {
    /// `base` + path segments (each percent-encoded).
    pub(crate) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Send `call` until it succeeds, fails for good, or the retry policy gives up. Rate limits wait for
    /// GitHub's `Retry-After`/`x-ratelimit-reset` instead of the computed delay, if the policy honours it.
    pub(crate) async fn execute(&self, call: &Call) -> Result<Answer, GithubError> {
        let policy = self.inner.retry;
        let attempt = || self.attempt(call);
        attempt
            .retry(policy.backoff())
            .when(|failed: &Failed| failed.retryable)
            .adjust(|failed: &Failed, delay| match (&failed.error, delay) {
                (GithubError::RateLimited { retry_after }, Some(_)) => {
                    policy.honours_wait(*retry_after).then_some(*retry_after)
                }
                (_, delay) => delay,
            })
            .notify(|failed: &Failed, wait| {
                Counters::bump(&self.inner.counters.retries);
                tracing::warn!(call = %call.what, error = %failed.error, wait_ms = wait.as_millis() as u64,
                    "GitHub call failed; retrying");
            })
            .await
            .map_err(|failed| failed.error)
    }

    /// One attempt; a 401 drops the credential and repeats the request once with a fresh one, and a
    /// second 401 is [`GithubError::Unauthorized`].
    async fn attempt(&self, call: &Call) -> Result<Answer, Failed> {
        let credential = self.credential(call.auth).await.map_err(Failed::fatal)?;
        let result = match self.send(call, &credential).await {
            Err(GithubError::Unauthorized) => {
                tracing::info!(call = %call.what, auth = ?call.auth, "GitHub refused the credential; minting a new one");
                self.drop_credential(call.auth, &credential).await;
                Counters::bump(&self.inner.counters.retries);
                let fresh = self.credential(call.auth).await.map_err(Failed::fatal)?;
                self.send(call, &fresh).await
            }
            other => other,
        };
        result.map_err(|error| Failed { retryable: retryable(&error, call), error })
    }

    /// Send once and classify a non-2xx answer.
    async fn send(&self, call: &Call, credential: &SecretString) -> Result<Answer, GithubError> {
        let (status, headers, body) = self.send_once(call, credential).await?;
        if status.is_success() {
            return Ok(Answer { body, next: next_link(&headers), what: call.what.clone() });
        }
        let err = classify(status, &headers, &body, &call.what, Utc::now());
        if let GithubError::RateLimited { .. } = err {
            Counters::bump(&self.inner.counters.rate_limited);
        }
        Err(err)
    }

    /// Forget a credential GitHub refused (only if it is still the cached one).
    async fn drop_credential(&self, auth: Auth, rejected: &SecretString) {
        match auth {
            Auth::App => self.inner.jwt.invalidate_if(rejected),
            Auth::Installation(id) => self.inner.tokens.invalidate(id, rejected).await,
        }
    }

    /// The bearer credential for `auth`. Boxed because fetching a token is itself a call (as the App):
    /// the box ends the `execute` -> `credential` -> `request_token` -> `execute` type cycle.
    fn credential(&self, auth: Auth) -> CredentialFuture<'_> {
        Box::pin(async move {
            match auth {
                Auth::App => self.inner.jwt.jwt().map_err(|err| GithubError::Config(err.to_string())),
                Auth::Installation(id) => Ok(self.inner.tokens.get(id, || self.request_token(id)).await?.token),
            }
        })
    }

    /// The installation token of `installation`, from the cache or freshly requested.
    /// It is a credential: never log it.
    pub async fn installation_token(&self, installation: InstallationId) -> Result<InstallationToken, GithubError> {
        self.inner.tokens.get(installation, || self.request_token(installation)).await
    }

    /// `POST /app/installations/{id}/access_tokens` as the App.
    async fn request_token(&self, installation: InstallationId) -> Result<InstallationToken, GithubError> {
        Counters::bump(&self.inner.counters.token_requests);
        let id = installation.to_string();
        let url = self.url(&["app", "installations", &id, "access_tokens"]);
        let answer = self.execute(&Call::new(Method::POST, url, Auth::App)).await.map_err(|err| match err {
            GithubError::NotFound(_) => GithubError::NotFound(format!("installation {installation} of this App")),
            other => other,
        })?;
        tracing::debug!(installation = %installation, "installation token obtained");
        answer.json_secret()
    }

    async fn send_once(
        &self,
        call: &Call,
        credential: &SecretString,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), GithubError> {
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", credential.expose_secret()))
            .map_err(|_| GithubError::Config("credential contains characters not allowed in a header".into()))?;
        authorization.set_sensitive(true);
        let mut request =
            self.inner.http.request(call.method.clone(), call.url.clone()).header(AUTHORIZATION, authorization);
        if let Some(body) = &call.body {
            request = request.header(CONTENT_TYPE, "application/json").body(body.clone());
        }
        Counters::bump(&self.inner.counters.calls);
        let response = request.send().await.map_err(|err| self.transport(call, err))?;
        let status = response.status();
        let headers = response.headers().clone();
        self.record_rate_limit(call.auth, &headers);
        let body = response.bytes().await.map_err(|err| self.transport(call, err))?.to_vec();
        tracing::debug!(call = %call.what, status = status.as_u16(), "GitHub answered");
        Ok((status, headers, body))
    }

    /// A call that got no answer, saying what happened and where; reqwest's error (and its causes, such
    /// as `Connection refused`) stay the source chain.
    fn transport(&self, call: &Call, err: reqwest::Error) -> GithubError {
        let base = self.inner.base.as_str().trim_end_matches('/');
        let message = if err.is_connect() {
            format!("could not connect to GitHub at {base} ({})", call.what)
        } else if err.is_timeout() {
            format!("GitHub at {base} did not answer {} in time", call.what)
        } else {
            format!("the connection to GitHub at {base} failed during {}", call.what)
        };
        GithubError::Transport { message, source: Box::new(err) }
    }

    fn record_rate_limit(&self, auth: Auth, headers: &HeaderMap) {
        let (Some(limit), Some(remaining), Some(reset_at)) = (
            header_u64(headers, HEADER_RATELIMIT_LIMIT),
            header_u64(headers, HEADER_RATELIMIT_REMAINING),
            header_u64(headers, HEADER_RATELIMIT_RESET).and_then(epoch),
        ) else {
            return;
        };
        lock(&self.inner.rate_limits).insert(auth, RateLimit { limit, remaining, reset_at });
    }
}

/// Whether the retry policy may repeat a call that failed with `error`: rate limits and 5xx always; a
/// transport failure when repeating is safe (an idempotent method, or a connection that was never made,
/// so GitHub never saw the request). A POST that timed out may have taken effect and is not repeated.
fn retryable(error: &GithubError, call: &Call) -> bool {
    match error {
        GithubError::RateLimited { .. } | GithubError::Server { .. } => true,
        GithubError::Transport { source, .. } => {
            call.is_idempotent() || source.downcast_ref::<reqwest::Error>().is_some_and(reqwest::Error::is_connect)
        }
        _ => false,
    }
}
