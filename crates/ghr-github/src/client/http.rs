//! One REST call: authentication header, sending, rate-limit bookkeeping, error classification and
//! the bounded retry loop (rate limits and 5xx wait and retry; a refused cached token is replaced once).

use super::errors::{
    HEADER_RATELIMIT_LIMIT, HEADER_RATELIMIT_REMAINING, HEADER_RATELIMIT_RESET, classify, epoch, header_u64,
};
use super::{Counters, GithubClient, RateLimit, lock};
use crate::app::InstallationToken;
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
use std::time::Duration;

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
            .map_err(|err| GithubError::Decode(format!("{}: encoding the request body failed: {err}", self.what)))?;
        self.body = Some(bytes);
        Ok(self)
    }
}

/// A successful (2xx) answer.
#[derive(Debug)]
pub(crate) struct Answer {
    body: Vec<u8>,
    what: String,
}

impl Answer {
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, GithubError> {
        serde_json::from_slice(&self.body).map_err(|err| GithubError::Decode(format!("{}: {err}", self.what)))
    }

    /// Decode an answer that carries a credential: the error names only the position, never content.
    pub(crate) fn json_secret<T: DeserializeOwned>(&self) -> Result<T, GithubError> {
        serde_json::from_slice(&self.body).map_err(|err| {
            GithubError::Decode(format!(
                "{}: {:?} error at line {} column {}",
                self.what,
                err.classify(),
                err.line(),
                err.column()
            ))
        })
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

    /// Send `call` until it succeeds, fails for good, or the retry budget is spent.
    pub(crate) async fn execute(&self, call: &Call) -> Result<Answer, GithubError> {
        let mut attempt: u32 = 0;
        let mut replaced_token = false;
        loop {
            let credential = self.credential(call.auth).await?;
            let (status, headers, body) = self.send_once(call, &credential).await?;
            if status.is_success() {
                return Ok(Answer { body, what: call.what.clone() });
            }
            let err = classify(status, &headers, &body, &call.what, Utc::now());
            if let GithubError::RateLimited { .. } = err {
                Counters::bump(&self.inner.counters.rate_limited);
            }
            if let (GithubError::Unauthorized, Auth::Installation(id), false) = (&err, call.auth, replaced_token) {
                tracing::info!(installation = %id, call = %call.what, "installation token refused; fetching a new one");
                self.inner.tokens.invalidate(id, &credential).await;
                replaced_token = true;
                Counters::bump(&self.inner.counters.retries);
                continue;
            }
            let Some(wait) = self.retry_delay(&err, attempt) else {
                return Err(err);
            };
            attempt += 1;
            Counters::bump(&self.inner.counters.retries);
            tracing::warn!(call = %call.what, status = status.as_u16(), attempt, wait_ms = wait.as_millis() as u64,
                "GitHub call failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// How long to wait before retrying `err`, or None to give up.
    fn retry_delay(&self, err: &GithubError, attempt: u32) -> Option<Duration> {
        let policy = self.inner.retry;
        if attempt >= policy.max_retries {
            return None;
        }
        match err {
            GithubError::RateLimited { retry_after } => (*retry_after <= policy.max_wait).then_some(*retry_after),
            GithubError::Server { .. } => {
                let factor = 2u32.saturating_pow(attempt);
                Some(policy.base_delay.saturating_mul(factor).min(policy.max_wait))
            }
            _ => None,
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
        let response = request.send().await.map_err(|err| transport(&call.what, &err))?;
        let status = response.status();
        let headers = response.headers().clone();
        self.record_rate_limit(call.auth, &headers);
        let body = response.bytes().await.map_err(|err| transport(&call.what, &err))?.to_vec();
        tracing::debug!(call = %call.what, status = status.as_u16(), "GitHub answered");
        Ok((status, headers, body))
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

/// A transport failure with its cause chain (reqwest's own message is terse).
fn transport(what: &str, err: &reqwest::Error) -> GithubError {
    let mut message = format!("{what}: {err}");
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    GithubError::Transport(message)
}
