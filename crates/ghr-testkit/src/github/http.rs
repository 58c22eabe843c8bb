//! HTTP plumbing: the router, GitHub-style error bodies, and the REST middleware that counts
//! calls, applies rate limits, latency and injected faults, and adds the `x-ratelimit-*` headers.

use super::Shared;
use super::faults::Injected;
use super::state::{RateBucket, RateWindow};
use super::{auth, routes_actions, routes_app, routes_runner_protocol, routes_runners};
use crate::protocol;
use axum::Json;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{LINK, RETRY_AFTER, USER_AGENT};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

/// Where GitHub's error bodies point.
const DOCUMENTATION_URL: &str = "https://docs.github.com/rest";
/// Length of a primary rate-limit window.
const RATE_WINDOW_SECS: i64 = 3600;
/// Unauthenticated callers get GitHub's anonymous limit.
const ANONYMOUS_RATE_LIMIT: u32 = 60;
/// Pagination defaults and bounds (GitHub's).
pub(crate) const DEFAULT_PER_PAGE: usize = 30;
pub(crate) const MAX_PER_PAGE: usize = 100;
const SECONDARY_RATE_LIMIT_MESSAGE: &str = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID.";

/// An error answer with GitHub's body shape `{"message", "documentation_url"}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }
    pub(crate) fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not Found")
    }
    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    pub(crate) fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "message": self.message, "documentation_url": DOCUMENTATION_URL }))).into_response()
    }
}

/// The whole emulator: GitHub's REST routes behind the middleware, then the emulator-only routes.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let rest = Router::new()
        .route("/app", get(routes_app::get_app))
        .route("/app/installations", get(routes_app::list_installations))
        .route("/app/installations/{installation_id}", get(routes_app::get_installation))
        .route("/app/installations/{installation_id}/access_tokens", post(routes_app::create_access_token))
        .route("/orgs/{org}/installation", get(routes_app::get_org_installation))
        .route("/app/hook/deliveries", get(routes_app::list_deliveries))
        .route("/app/hook/deliveries/{delivery_id}/attempts", post(routes_app::redeliver))
        .route("/orgs/{org}/actions/runner-groups", get(routes_runners::list_runner_groups))
        .route("/orgs/{org}/actions/runners", get(routes_runners::list_org_runners))
        .route("/orgs/{org}/actions/runners/generate-jitconfig", post(routes_runners::org_jit_config))
        .route(
            "/orgs/{org}/actions/runners/{runner_id}",
            get(routes_runners::get_org_runner).delete(routes_runners::delete_org_runner),
        )
        .route("/repos/{owner}/{repo}/actions/runners", get(routes_runners::list_repo_runners))
        .route("/repos/{owner}/{repo}/actions/runners/generate-jitconfig", post(routes_runners::repo_jit_config))
        .route(
            "/repos/{owner}/{repo}/actions/runners/{runner_id}",
            get(routes_runners::get_repo_runner).delete(routes_runners::delete_repo_runner),
        )
        .route("/repos/{owner}/{repo}/actions/jobs/{job_id}", get(routes_runners::get_job))
        .route("/installation/repositories", get(routes_actions::installation_repositories))
        .route("/repos/{owner}/{repo}/actions/runs", get(routes_actions::list_runs))
        .route("/repos/{owner}/{repo}/actions/runs/{run_id}/jobs", get(routes_actions::list_run_jobs))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), rest_middleware));
    let emulator = Router::new()
        .route(protocol::CONNECT_PATH, post(routes_runner_protocol::connect))
        .route(protocol::ACQUIRE_PATH, post(routes_runner_protocol::acquire))
        .route(protocol::HEARTBEAT_PATH, post(routes_runner_protocol::heartbeat))
        .route(protocol::COMPLETE_PATH, post(routes_runner_protocol::complete));
    rest.merge(emulator).with_state(shared)
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

/// What the middleware decided before running the handler.
enum Gate {
    Pass,
    NoUserAgent,
    Exhausted(RateBucket),
    Injected(Injected),
}

async fn rest_middleware(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("(unmatched)", |path| path.as_str()).to_owned();
    let key = format!("{} {route}", request.method());
    let now = Utc::now().timestamp();
    let (latency, gate, bucket) = {
        let mut state = shared.lock();
        *state.counters.api_calls.entry(key).or_insert(0) += 1;
        let bucket = auth::rate_bucket(&state, request.headers());
        let limit = match bucket {
            RateBucket::Anonymous => ANONYMOUS_RATE_LIMIT,
            RateBucket::App | RateBucket::Installation(_) => shared.config.rate_limit_per_hour,
        };
        let window = state.rate_windows.entry(bucket).or_insert(RateWindow { limit, used: 0, reset: now });
        if now >= window.reset {
            window.used = 0;
            window.reset = now + RATE_WINDOW_SECS;
        }
        let gate = if !request.headers().contains_key(USER_AGENT) {
            Gate::NoUserAgent
        } else if window.used >= window.limit {
            Gate::Exhausted(bucket)
        } else {
            window.used += 1;
            match state.faults.take_rest_fault() {
                Some(injected @ Injected::Fail(_)) => {
                    state.counters.injected_failures += 1;
                    Gate::Injected(injected)
                }
                Some(injected @ Injected::RateLimited { .. }) => {
                    state.counters.injected_rate_limits += 1;
                    Gate::Injected(injected)
                }
                None => Gate::Pass,
            }
        };
        (state.faults.latency, gate, bucket)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut response = match gate {
        Gate::Pass => next.run(request).await,
        Gate::NoUserAgent => ApiError::forbidden(
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header.",
        )
        .into_response(),
        Gate::Exhausted(bucket) => rate_exhausted(bucket),
        Gate::Injected(Injected::Fail(status)) => {
            ApiError::new(status, status.canonical_reason().unwrap_or("Server Error")).into_response()
        }
        Gate::Injected(Injected::RateLimited { retry_after_secs }) => {
            let mut response =
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, SECONDARY_RATE_LIMIT_MESSAGE).into_response();
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
    };
    add_rate_headers(&shared, bucket, response.headers_mut());
    response
}

fn rate_exhausted(bucket: RateBucket) -> Response {
    let message = match bucket {
        RateBucket::Installation(id) => format!("API rate limit exceeded for installation ID {id}."),
        RateBucket::App => "API rate limit exceeded for the App.".to_owned(),
        RateBucket::Anonymous => "API rate limit exceeded. Authenticated requests get a higher rate limit.".to_owned(),
    };
    ApiError::forbidden(message).into_response()
}

fn add_rate_headers(shared: &Shared, bucket: RateBucket, headers: &mut HeaderMap) {
    let state = shared.lock();
    let Some(window) = state.rate_windows.get(&bucket) else {
        return;
    };
    let remaining = window.limit.saturating_sub(window.used);
    headers.insert("x-ratelimit-limit", HeaderValue::from(window.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    headers.insert("x-ratelimit-used", HeaderValue::from(window.used));
    headers.insert("x-ratelimit-reset", HeaderValue::from(window.reset));
    headers.insert("x-ratelimit-resource", HeaderValue::from_static("core"));
}

/// `per_page` (1..=100, default 30) and `page` (from 1) of a query string; junk means the default.
pub(crate) fn page_params(query: &HashMap<String, String>) -> (usize, usize) {
    let per_page = query
        .get("per_page")
        .and_then(|value| value.parse::<usize>().ok())
        .map_or(DEFAULT_PER_PAGE, |value| value.clamp(1, MAX_PER_PAGE));
    let page = query.get("page").and_then(|value| value.parse::<usize>().ok()).unwrap_or(1).max(1);
    (per_page, page)
}

/// One page of `items` and GitHub's `Link` header (`next`, `last`, `prev`, `first`) for it.
pub(crate) fn paginate<T: Clone>(
    base_url: &str,
    path: &str,
    items: &[T],
    per_page: usize,
    page: usize,
) -> (Vec<T>, Option<HeaderValue>) {
    paginate_query(base_url, path, "", items, per_page, page)
}

/// [`paginate`] for a list whose links keep other query parameters (`query`: `status=queued&...`, or empty).
pub(crate) fn paginate_query<T: Clone>(
    base_url: &str,
    path: &str,
    query: &str,
    items: &[T],
    per_page: usize,
    page: usize,
) -> (Vec<T>, Option<HeaderValue>) {
    let query = if query.is_empty() { String::new() } else { format!("{query}&") };
    let start = per_page.saturating_mul(page - 1);
    let slice: Vec<T> = items.iter().skip(start).take(per_page).cloned().collect();
    let last = items.len().div_ceil(per_page).max(1);
    let link_to = |target: usize, rel: &str| {
        format!("<{base_url}{path}?{query}per_page={per_page}&page={target}>; rel=\"{rel}\"")
    };
    let mut links = Vec::new();
    if page < last {
        links.push(link_to(page + 1, "next"));
        links.push(link_to(last, "last"));
    }
    if page > 1 {
        links.push(link_to(1, "first"));
        links.push(link_to((page - 1).min(last), "prev"));
    }
    let header = (!links.is_empty()).then(|| links.join(", ")).and_then(|value| HeaderValue::from_str(&value).ok());
    (slice, header)
}

/// A JSON answer with an optional `Link` header.
pub(crate) fn with_link(status: StatusCode, body: serde_json::Value, link: Option<HeaderValue>) -> Response {
    let mut response = (status, Json(body)).into_response();
    if let Some(link) = link {
        response.headers_mut().insert(LINK, link);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_links_follow_githubs_scheme() {
        let items: Vec<u32> = (0..5).collect();
        let (page, link) = paginate("http://h", "/x", &items, 2, 1);
        assert_eq!(page, vec![0, 1]);
        let link = link.unwrap();
        let link = link.to_str().unwrap();
        assert!(link.contains("<http://h/x?per_page=2&page=2>; rel=\"next\""), "{link}");
        assert!(link.contains("<http://h/x?per_page=2&page=3>; rel=\"last\""), "{link}");
        let (page, link) = paginate("http://h", "/x", &items, 2, 3);
        assert_eq!(page, vec![4]);
        assert!(!link.unwrap().to_str().unwrap().contains("next"));
        let (page, link) = paginate("http://h", "/x", &items, 10, 1);
        assert_eq!(page.len(), 5);
        assert!(link.is_none());
        let (page, _) = paginate("http://h", "/x", &items, 2, 9);
        assert!(page.is_empty());
    }

    #[test]
    fn page_params_clamp_and_default() {
        let query = |pairs: &[(&str, &str)]| {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<HashMap<_, _>>()
        };
        assert_eq!(page_params(&query(&[])), (30, 1));
        assert_eq!(page_params(&query(&[("per_page", "500"), ("page", "0")])), (100, 1));
        assert_eq!(page_params(&query(&[("per_page", "x"), ("page", "3")])), (30, 3));
    }
}
