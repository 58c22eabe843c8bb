//! The operator web console under `/ui`: server-rendered pages over the admin surface, signed in with the admin
//! token, every action a CSRF-protected form. Pages work without JavaScript; `console.js` only refreshes the
//! live section of a page in place.

pub mod auth;
mod chart;
mod data;
mod layout;
mod pages;

use crate::AppState;
use auth::{SESSION_COOKIE, Session, SessionKey, SignInLimiter};
use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use ghr_core::tier::TierCatalog;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;

/// What the console shows beside the admin surface: the tier catalog (plans and their limits), the deployment's
/// cap, and the process's metrics (webhook and GitHub API health) when they are recorded.
pub struct ConsoleConfig {
    pub catalog: TierCatalog,
    pub global_max_runners: Option<u32>,
    pub metrics: Option<PrometheusHandle>,
}

/// The console's handler state.
#[derive(Clone)]
pub(crate) struct Console {
    pub app: AppState,
    pub config: Arc<ConsoleConfig>,
    pub limiter: Arc<SignInLimiter>,
    /// The wait chart's last computation (it reads many jobs; pages refresh every few seconds).
    pub waits: Arc<std::sync::Mutex<Option<data::CachedWaits>>>,
}

impl Console {
    /// The session key, when the admin token is configured (else the console is off).
    fn key(&self) -> Option<SessionKey> {
        self.app.admin_token.as_ref().map(SessionKey::derive)
    }
}

/// Headers of every console answer.
const SECURITY_HEADERS: [(header::HeaderName, &str); 4] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; \
         form-action 'self'",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "same-origin"),
    (header::CACHE_CONTROL, "no-store"),
];

/// The console's routes (all under `/ui`).
pub fn router(app: AppState, config: ConsoleConfig) -> Router {
    let console =
        Console { app, config: Arc::new(config), limiter: Arc::new(SignInLimiter::default()), waits: Arc::default() };
    Router::new()
        .route("/ui", get(pages::overview::page))
        .route("/ui/", get(|| async { Redirect::to("/ui") }))
        .route("/ui/login", get(pages::login::form).post(pages::login::submit))
        .route("/ui/logout", post(pages::login::logout))
        .route("/ui/tenants", get(pages::tenants::page))
        .route("/ui/tenants/{tenant}", get(pages::tenant::page))
        .route("/ui/tenants/{tenant}/tier", post(pages::tenant::set_tier))
        .route("/ui/tenants/{tenant}/{action}", post(pages::tenant::action))
        .route("/ui/jobs", get(pages::jobs::page))
        .route("/ui/jobs/{job}", get(pages::job::page))
        .route("/ui/runners", get(pages::runners::page))
        .route("/ui/static/console.css", get(|| async { asset("text/css; charset=utf-8", CSS) }))
        .route("/ui/static/console.js", get(|| async { asset("text/javascript; charset=utf-8", JS) }))
        .layer(middleware::from_fn(security_headers))
        .with_state(console)
}

const CSS: &str = include_str!("static/console.css");
const JS: &str = include_str!("static/console.js");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    for (name, value) in SECURITY_HEADERS {
        response.headers_mut().insert(name, HeaderValue::from_static(value));
    }
    response
}

/// A page that could not be shown, rendered with its status and what to do about it.
#[derive(Debug)]
pub(crate) struct UiError {
    pub status: StatusCode,
    pub message: String,
}

impl UiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        (self.status, layout::error_page(self.status, &self.message)).into_response()
    }
}

/// A signed-in operator: the session and its CSRF token, for the forms of the page.
pub(crate) struct Operator {
    pub session: Session,
    pub csrf: String,
    key: SessionKey,
}

impl Operator {
    /// Check a POST: the request is same-origin and carries this session's CSRF token. Else 403, nothing done.
    pub fn check_post(&self, headers: &HeaderMap, csrf: &str) -> Result<(), UiError> {
        same_origin(headers)?;
        if self.key.csrf_matches(&self.session, csrf) {
            Ok(())
        } else {
            Err(UiError::forbidden(
                "the form's CSRF token is missing or wrong (the page may be from an earlier session): reload the \
                 page and submit again",
            ))
        }
    }
}

/// Refuse cross-site requests: an `Origin` that is not this host (`Host`, or `X-Forwarded-Host` behind a proxy),
/// or `Sec-Fetch-Site: cross-site`.
pub(crate) fn same_origin(headers: &HeaderMap) -> Result<(), UiError> {
    let cross = || UiError::forbidden("cross-site request refused: submit the console's forms from the console");
    if headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site")) {
        return Err(cross());
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, rest)| rest.trim_end_matches('/'))
            .unwrap_or("");
        // A reverse proxy may rewrite `Host` to the backend's address; it then names the public host in
        // `X-Forwarded-Host`.
        let own = [header::HOST.as_str(), "x-forwarded-host"]
            .into_iter()
            .filter_map(|name| headers.get(name).and_then(|h| h.to_str().ok()))
            .any(|host| !host.is_empty() && origin_host.eq_ignore_ascii_case(host.trim()));
        if !own {
            return Err(cross());
        }
    }
    Ok(())
}

/// Why a request has no operator: the console is off, or nobody signed in.
pub(crate) enum NoOperator {
    Disabled,
    SignIn {
        post: bool,
    },
    /// The store could not say whether the session was signed out.
    Unavailable,
}

/// Prefix of the store checkpoints that mark signed-out sessions (`<prefix><session id>`, the expiry as value).
pub(crate) const REVOKED_SESSION_PREFIX: &str = "console.signed_out.";

/// The checkpoint that marks `session` as signed out.
pub(crate) fn revoked_checkpoint(session: &Session) -> String {
    format!("{REVOKED_SESSION_PREFIX}{}", session.id)
}

impl IntoResponse for NoOperator {
    fn into_response(self) -> Response {
        match self {
            NoOperator::Disabled => disabled(),
            NoOperator::SignIn { post: false } => Redirect::to("/ui/login").into_response(),
            NoOperator::SignIn { post: true } => {
                UiError::forbidden("not signed in (or the session expired): sign in at /ui/login, then try again")
                    .into_response()
            }
            NoOperator::Unavailable => UiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store did not answer, so the session could not be checked: try again shortly",
            )
            .into_response(),
        }
    }
}

/// The answer to a path under `/ui` that is no console page.
pub fn not_found() -> Response {
    UiError::not_found("no such page in the console: start from the overview").into_response()
}

/// The answer of every console page when no admin token is configured.
pub(crate) fn disabled() -> Response {
    UiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the console is off because no admin token is configured: set GHR_ADMIN_TOKEN (or server.admin_token_env) \
         and restart ghr",
    )
    .into_response()
}

pub(crate) fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

impl FromRequestParts<Console> for Operator {
    type Rejection = NoOperator;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Self::Rejection> {
        let key = console.key().ok_or(NoOperator::Disabled)?;
        let post = parts.method != Method::GET && parts.method != Method::HEAD;
        let session = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(auth::session_cookie)
            .find_map(|value| key.verify(value, now_unix()))
            .ok_or(NoOperator::SignIn { post })?;
        // A signed-out session stays refused until it would have expired, on every replica (the store is shared).
        match console.app.store.checkpoint_get(&revoked_checkpoint(&session)).await {
            Ok(None) => Ok(Operator { csrf: key.csrf(&session), session, key }),
            Ok(Some(_)) => Err(NoOperator::SignIn { post }),
            Err(error) => {
                tracing::error!(error = %ghr_engine::error::ErrorChain(&error), "console: cannot check a session");
                Err(NoOperator::Unavailable)
            }
        }
    }
}

/// `Set-Cookie` for a session cookie value (`Secure` when the request came over https).
pub(crate) fn session_set_cookie(value: &str, max_age: u64, headers: &HeaderMap) -> String {
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
    format!(
        "{SESSION_COOKIE}={value}; Max-Age={max_age}; Path=/ui; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Whether the request asks for the live section alone (`?fragment=1`, what `console.js` fetches).
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct Fragment {
    #[serde(default)]
    pub fragment: Option<String>,
}

impl Fragment {
    pub fn wanted(&self) -> bool {
        self.fragment.as_deref() == Some("1")
    }
}

/// `Query` whose refusal (a repeated or malformed parameter) is a console error page, not the framework's
/// plain-text answer.
pub(crate) struct UiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for UiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(UiQuery(value)),
            Err(rejection) => Err(UiError::bad_request(format!(
                "{}: give each filter once, as the page's own links do",
                ghr_core::text::clip_to(&rejection.body_text(), 300)
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::same_origin;
    use axum::http::HeaderMap;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap())).collect()
    }

    #[test]
    fn same_origin_table() {
        let table: [(&[(&str, &str)], bool); 8] = [
            (&[], true),
            (&[("host", "ghr:8080")], true),
            (&[("host", "ghr:8080"), ("origin", "http://ghr:8080")], true),
            (&[("host", "GHR:8080"), ("origin", "http://ghr:8080")], true),
            (
                &[("host", "10.0.0.5:8080"), ("x-forwarded-host", "ghr.example"), ("origin", "https://ghr.example")],
                true,
            ),
            (&[("host", "ghr:8080"), ("origin", "https://evil.example")], false),
            (&[("origin", "http://ghr:8080")], false),
            (&[("host", "ghr:8080"), ("sec-fetch-site", "cross-site")], false),
        ];
        for (pairs, allowed) in table {
            assert_eq!(same_origin(&headers(pairs)).is_ok(), allowed, "{pairs:?}");
        }
    }
}
