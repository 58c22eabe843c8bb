//! Classifies a non-success GitHub answer into a [`GithubError`], including rate-limit waits.

use chrono::{TimeZone, Utc};
use ghr_core::Timestamp;
use ghr_core::ports::GithubError;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::Deserialize;
use std::time::Duration;

/// Header with the number of requests left in the current window.
pub const HEADER_RATELIMIT_REMAINING: &str = "x-ratelimit-remaining";
/// Header with the size of the window.
pub const HEADER_RATELIMIT_LIMIT: &str = "x-ratelimit-limit";
/// Header with the end of the window, in epoch seconds.
pub const HEADER_RATELIMIT_RESET: &str = "x-ratelimit-reset";
/// GitHub's advice when a rate limit answer names no wait: at least one minute.
pub const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);
/// Longest error message kept from a body that is not GitHub's JSON error shape.
const MAX_RAW_MESSAGE_CHARS: usize = 200;

#[derive(Deserialize)]
struct ErrorBody {
    message: Option<String>,
    #[serde(default)]
    errors: Vec<serde_json::Value>,
}

/// The error for a non-2xx answer to the call described by `what` (e.g. `GET /orgs/acme/actions/runners`).
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8], what: &str, now: Timestamp) -> GithubError {
    let message = error_message(body);
    let context = if message.is_empty() { what.to_owned() } else { format!("{what}: {message}") };
    match status.as_u16() {
        401 => GithubError::Unauthorized,
        403 if is_rate_limited(headers, &message) => {
            GithubError::RateLimited { retry_after: retry_after(headers, now) }
        }
        403 => GithubError::Forbidden(context),
        404 => GithubError::NotFound(context),
        409 => GithubError::Conflict(context),
        422 => GithubError::Unprocessable(context),
        429 => GithubError::RateLimited { retry_after: retry_after(headers, now) },
        code @ 400..=499 => GithubError::Unprocessable(format!("status {code}: {context}")),
        code @ 500..=599 => GithubError::Server { status: code },
        code => GithubError::decode_message(format!("{what}: unexpected status {code}")),
    }
}

/// A 403 is a rate limit when the primary quota is spent or GitHub names its secondary limit.
fn is_rate_limited(headers: &HeaderMap, message: &str) -> bool {
    header_u64(headers, HEADER_RATELIMIT_REMAINING) == Some(0)
        || message.to_ascii_lowercase().contains("secondary rate limit")
        || headers.contains_key(RETRY_AFTER)
}

/// How long to wait: `Retry-After` (seconds) first, then `x-ratelimit-reset` (epoch seconds), else a minute.
pub fn retry_after(headers: &HeaderMap, now: Timestamp) -> Duration {
    if let Some(seconds) = header_u64(headers, RETRY_AFTER.as_str()) {
        return Duration::from_secs(seconds);
    }
    if let Some(reset) = header_u64(headers, HEADER_RATELIMIT_RESET).and_then(epoch) {
        return (reset - now).to_std().unwrap_or(Duration::ZERO);
    }
    DEFAULT_RATE_LIMIT_WAIT
}

pub(crate) fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

pub(crate) fn epoch(seconds: u64) -> Option<Timestamp> {
    Utc.timestamp_opt(i64::try_from(seconds).ok()?, 0).single()
}

/// GitHub's `message` (plus the `errors` details of a 422), or the start of a non-JSON body.
fn error_message(body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(parsed) => {
            let mut message = parsed.message.unwrap_or_default();
            let details: Vec<String> = parsed.errors.iter().map(error_detail).collect();
            if !details.is_empty() {
                message = format!("{message} ({})", details.join("; "));
            }
            message
        }
        Err(_) => String::from_utf8_lossy(body).trim().chars().take(MAX_RAW_MESSAGE_CHARS).collect(),
    }
}

fn error_detail(detail: &serde_json::Value) -> String {
    match detail {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Object(fields) => match fields.get("message").and_then(|m| m.as_str()) {
            Some(message) => message.to_owned(),
            None => detail.to_string(),
        },
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn statuses_map_to_error_kinds() {
        let now = epoch(1_000_000).unwrap();
        let body = br#"{"message":"Not Found","documentation_url":"https://docs.github.com"}"#;
        let none = HeaderMap::new();
        let cases: Vec<(u16, HeaderMap, &[u8], &str)> = vec![
            (401, none.clone(), b"{}", "GitHub rejected the credentials (401)"),
            (
                403,
                none.clone(),
                br#"{"message":"Resource not accessible by integration"}"#,
                "GitHub refused the request (403): GET /x: Resource not accessible by integration",
            ),
            (
                403,
                headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1000030")]),
                b"{}",
                "GitHub rate limit hit; retry after 30s",
            ),
            (
                403,
                none.clone(),
                br#"{"message":"You have exceeded a secondary rate limit. Please wait."}"#,
                "GitHub rate limit hit; retry after 60s",
            ),
            (404, none.clone(), body, "GitHub has no such resource (404): GET /x: Not Found"),
            (
                409,
                none.clone(),
                br#"{"message":"Already exists - A runner with the name already exists."}"#,
                "GitHub reports a conflict (409): GET /x: Already exists - A runner with the name already exists.",
            ),
            (
                422,
                none.clone(),
                br#"{"message":"Validation Failed","errors":[{"message":"labels: too many"},"bad"]}"#,
                "GitHub could not process the request (422): GET /x: Validation Failed (labels: too many; bad)",
            ),
            (
                400,
                none.clone(),
                b"Problems parsing JSON",
                "GitHub could not process the request (422): status 400: GET /x: Problems parsing JSON",
            ),
            (429, headers(&[("retry-after", "7")]), b"", "GitHub rate limit hit; retry after 7s"),
            (429, headers(&[("x-ratelimit-reset", "999990")]), b"", "GitHub rate limit hit; retry after 0ns"),
            (429, none.clone(), b"", "GitHub rate limit hit; retry after 60s"),
            (500, none.clone(), b"oops", "GitHub failed with status 500"),
            (503, none.clone(), b"", "GitHub failed with status 503"),
            (302, none.clone(), b"", "GitHub's answer could not be read: GET /x: unexpected status 302"),
        ];
        for (status, headers, body, want) in cases {
            let err = classify(StatusCode::from_u16(status).unwrap(), &headers, body, "GET /x", now);
            assert_eq!(err.to_string(), want, "status {status}");
        }
    }

    #[test]
    fn retry_after_prefers_the_retry_after_header() {
        let now = epoch(1_000_000).unwrap();
        let both = headers(&[("retry-after", "3"), ("x-ratelimit-reset", "1000100")]);
        assert_eq!(retry_after(&both, now), Duration::from_secs(3));
        let reset = headers(&[("x-ratelimit-reset", "1000100")]);
        assert_eq!(retry_after(&reset, now), Duration::from_secs(100));
        let junk = headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]);
        assert_eq!(retry_after(&junk, now), DEFAULT_RATE_LIMIT_WAIT);
    }

    #[test]
    fn long_raw_bodies_are_truncated() {
        let body = "x".repeat(5000);
        let err = classify(StatusCode::FORBIDDEN, &HeaderMap::new(), body.as_bytes(), "GET /x", epoch(0).unwrap());
        assert!(err.to_string().len() < 300);
    }
}
