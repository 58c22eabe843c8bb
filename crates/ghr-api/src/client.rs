//! [`Client`]: the [`Admin`] operations over HTTP, against a running server's `/api/v1` (what the CLI uses
//! with `--server`). Error answers are mapped back to the [`ApiError`] the server started from, so a caller
//! sees the same result as the server's local implementation would give.

use crate::error::{ApiError, ErrorBody};
use crate::model::*;
use crate::{Admin, TenantAction};
use async_trait::async_trait;
use chrono::SecondsFormat;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::time::Duration;

/// Path segments of the admin API under the server's base URL.
pub const API_PREFIX: [&str; 2] = ["api", "v1"];
/// Whole-request timeout of one admin call.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of establishing the connection to the server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How much of a non-JSON error answer is quoted in the error message.
const ERROR_SNIPPET_CHARS: usize = 200;
const JSON: &str = "application/json";
const CSV: &str = "text/csv";
const USER_AGENT: &str = concat!("ghr-cli/", env!("CARGO_PKG_VERSION"));

/// [`Admin`] over HTTP with a bearer token.
#[derive(Clone)]
pub struct Client {
    base: Url,
    token: SecretString,
    http: reqwest::Client,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("base", &self.base.as_str()).field("token", &"[REDACTED]").finish()
    }
}

impl Client {
    /// A client of the server at `base_url` (`http(s)://HOST:PORT`, optionally with a path prefix when the
    /// server sits behind a reverse proxy). Nothing is sent until the first call.
    pub fn new(base_url: &str, token: SecretString) -> Result<Self, ApiError> {
        let base = Url::parse(base_url.trim())
            .map_err(|e| ApiError::BadRequest(format!("server URL {base_url:?} is not a valid URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() || base.host().is_none() {
            return Err(ApiError::BadRequest(format!(
                "server URL {base_url:?} must be an http:// or https:// URL with a host"
            )));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(ApiError::BadRequest(
                "the server URL must not carry a user name or password: the admin token is the credential".into(),
            ));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(ApiError::BadRequest(format!("server URL {base_url:?} must not carry a query or a fragment")));
        }
        if token.expose_secret().is_empty() {
            return Err(ApiError::BadRequest("the admin token is empty".into()));
        }
        // Validate once, so every later call can build its header infallibly.
        bearer(&token)?;
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| ApiError::Internal(format!("cannot build the HTTP client: {}", chain(&e))))?;
        Ok(Self { base, token, http })
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// `GET /api/v1/usage?format=csv`: the usage report as the server renders it in CSV.
    pub async fn usage_csv(&self, query: UsageQuery) -> Result<String, ApiError> {
        let mut pairs = usage_pairs(&query);
        pairs.push(("format", "csv".to_owned()));
        let url = self.endpoint(&["usage"], &pairs);
        let response = self.send(Method::GET, url.clone(), CSV, None::<&()>).await?;
        response.text().await.map_err(|e| unreadable(&Method::GET, &url, &e))
    }

    /// `GET /api/v1/reconciler`: the last reconciler pass.
    pub async fn reconciler(&self) -> Result<ReconcilerStatus, ApiError> {
        self.call(Method::GET, self.endpoint(&["reconciler"], &[]), None::<&()>).await
    }

    /// The URL of an API resource: base, `/api/v1`, the (percent-encoded) segments, the query.
    fn endpoint(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(API_PREFIX).extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Send a request; a non-2xx answer becomes the matching [`ApiError`].
    async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        url: Url,
        accept: &'static str,
        body: Option<&B>,
    ) -> Result<reqwest::Response, ApiError> {
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .header(AUTHORIZATION, bearer(&self.token)?)
            .header(ACCEPT, accept);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            let what = if e.is_timeout() { "no answer in time" } else { "request failed" };
            ApiError::Unavailable(format!("{method} {url}: {what}: {}", chain(&e.without_url())))
        })?;
        if response.status().is_success() { Ok(response) } else { Err(error_from(&method, &url, response).await) }
    }

    /// Send a request and decode its JSON answer.
    async fn call<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        url: Url,
        body: Option<&B>,
    ) -> Result<T, ApiError> {
        let response = self.send(method.clone(), url.clone(), JSON, body).await?;
        let bytes = response.bytes().await.map_err(|e| unreadable(&method, &url, &e))?;
        serde_json::from_slice(&bytes).map_err(|e| unreadable(&method, &url, &e))
    }
}

fn bearer(token: &SecretString) -> Result<HeaderValue, ApiError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret())).map_err(|_| {
        ApiError::BadRequest("the admin token contains characters that cannot be sent in an HTTP header".into())
    })?;
    value.set_sensitive(true);
    Ok(value)
}

fn unreadable(method: &Method, url: &Url, error: &(dyn std::error::Error + 'static)) -> ApiError {
    ApiError::Internal(format!("{method} {url}: the server's answer is unreadable: {}", chain(error)))
}

/// An error with its whole `source()` chain.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// Map an error answer back to the [`ApiError`] the server answered with. The server's JSON error body
/// carries the message; anything else (a proxy's page, another service) is quoted.
async fn error_from(method: &Method, url: &Url, response: reqwest::Response) -> ApiError {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let (message, from_ghr) = match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => (body.message, true),
        Err(_) => {
            let snippet: String = text.trim().chars().take(ERROR_SNIPPET_CHARS).collect();
            (format!("{method} {url} answered {status}: {snippet}"), false)
        }
    };
    match status {
        StatusCode::UNAUTHORIZED => ApiError::Unauthorized,
        StatusCode::NOT_FOUND => ApiError::NotFound(message),
        StatusCode::CONFLICT => ApiError::Conflict(message),
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT if from_ghr => {
            ApiError::Unavailable(format!("{method} {url} answered {status}: {message}"))
        }
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => {
            ApiError::Unavailable(message)
        }
        s if s.is_client_error() => ApiError::BadRequest(message),
        _ => ApiError::Internal(message),
    }
}

fn instant(at: Timestamp) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn usage_pairs(query: &UsageQuery) -> Pairs {
    let mut pairs = Vec::new();
    if let Some(from) = query.from {
        pairs.push(("from", instant(from)));
    }
    if let Some(to) = query.to {
        pairs.push(("to", instant(to)));
    }
    if let Some(tenant) = &query.tenant {
        pairs.push(("tenant", tenant.clone()));
    }
    pairs
}

/// Query pairs of a list endpoint: the set filters, the page size and the cursor.
fn list_pairs(filters: Vec<(&'static str, Option<String>)>, limit: Option<u32>, cursor: Option<String>) -> Pairs {
    filters
        .into_iter()
        .chain([("limit", limit.map(|l| l.to_string())), ("cursor", cursor)])
        .filter_map(|(name, value)| value.map(|v| (name, v)))
        .collect()
}

type Pairs = Vec<(&'static str, String)>;

#[async_trait]
impl Admin for Client {
    async fn tenants_list(&self, query: TenantsQuery) -> Result<Page<Tenant>, ApiError> {
        let pairs = list_pairs(vec![("status", query.status.map(|s| s.to_string()))], query.limit, query.cursor);
        self.call(Method::GET, self.endpoint(&["tenants"], &pairs), None::<&()>).await
    }

    async fn tenant_show(&self, reference: &str) -> Result<TenantDetail, ApiError> {
        self.call(Method::GET, self.endpoint(&["tenants", reference], &[]), None::<&()>).await
    }

    async fn tenant_add(&self, request: NewTenantRequest) -> Result<Tenant, ApiError> {
        self.call(Method::POST, self.endpoint(&["tenants"], &[]), Some(&request)).await
    }

    async fn tenant_set_tier(&self, reference: &str, request: SetTierRequest) -> Result<Tenant, ApiError> {
        self.call(Method::PUT, self.endpoint(&["tenants", reference, "tier"], &[]), Some(&request)).await
    }

    async fn tenant_action(&self, reference: &str, action: TenantAction) -> Result<Tenant, ApiError> {
        self.call(Method::POST, self.endpoint(&["tenants", reference, action.as_str()], &[]), None::<&()>).await
    }

    async fn runners_list(&self, query: RunnersQuery) -> Result<Page<Runner>, ApiError> {
        let filters =
            vec![("tenant", query.tenant), ("tier", query.tier), ("state", query.state.map(|s| s.to_string()))];
        let pairs = list_pairs(filters, query.limit, query.cursor);
        self.call(Method::GET, self.endpoint(&["runners"], &pairs), None::<&()>).await
    }

    async fn jobs_list(&self, query: JobsQuery) -> Result<Page<Job>, ApiError> {
        let filters = vec![
            ("tenant", query.tenant),
            ("status", query.status.map(|s| s.to_string())),
            ("reason", query.reason.map(|r| r.to_string())),
        ];
        let pairs = list_pairs(filters, query.limit, query.cursor);
        self.call(Method::GET, self.endpoint(&["jobs"], &pairs), None::<&()>).await
    }

    async fn job_show(&self, id: u64) -> Result<JobDetail, ApiError> {
        self.call(Method::GET, self.endpoint(&["jobs", &id.to_string()], &[]), None::<&()>).await
    }

    async fn usage(&self, query: UsageQuery) -> Result<UsageReport, ApiError> {
        self.call(Method::GET, self.endpoint(&["usage"], &usage_pairs(&query)), None::<&()>).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin(base: &str) -> Client {
        Client::new(base, SecretString::from("t0ken")).unwrap()
    }

    #[test]
    fn endpoints_keep_a_path_prefix_and_encode_segments() {
        let plain = admin("http://127.0.0.1:8080");
        assert_eq!(plain.endpoint(&["tenants"], &[]).as_str(), "http://127.0.0.1:8080/api/v1/tenants");
        let prefixed = admin("https://ops.example.com/ghr/");
        let url = prefixed.endpoint(&["tenants", "a b/c", "tier"], &[("status", "active".into())]);
        assert_eq!(url.as_str(), "https://ops.example.com/ghr/api/v1/tenants/a%20b%2Fc/tier?status=active");
    }

    #[test]
    fn usage_instants_are_rfc3339_and_encoded() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-01-31T10:00:00+02:00").unwrap().to_utc();
        let query = UsageQuery { from: Some(at), to: None, tenant: Some("acme".into()) };
        let url = admin("http://h").endpoint(&["usage"], &usage_pairs(&query));
        assert_eq!(url.query(), Some("from=2026-01-31T08%3A00%3A00Z&tenant=acme"));
    }

    #[test]
    fn bad_urls_and_tokens_are_refused() {
        for url in
            ["", "ftp://host", "mailto:ops@example.com", "http://h/?x=1", "not a url", "http://u:pw@h/", "http://u@h"]
        {
            let error = Client::new(url, SecretString::from("t")).unwrap_err();
            assert!(matches!(error, ApiError::BadRequest(_)), "{url}: {error}");
        }
        let error = Client::new("http://h", SecretString::from("")).unwrap_err();
        assert!(error.to_string().contains("empty"));
        let error = Client::new("http://h", SecretString::from("bad\ntoken")).unwrap_err();
        assert!(error.to_string().contains("HTTP header"));
    }

    #[test]
    fn debug_hides_the_token() {
        let shown = format!("{:?}", admin("http://h"));
        assert!(!shown.contains("t0ken") && shown.contains("REDACTED"), "{shown}");
    }
}
