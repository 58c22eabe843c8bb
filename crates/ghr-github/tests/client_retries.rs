//! Bounded retries: rate limits wait for `Retry-After` (unless it exceeds the cap), 5xx back off
//! exponentially, transport failures are retried when that is safe, and after `max_retries` the classified
//! error reaches the caller.

mod support;

use ghr_core::ids::{InstallationId, OrgName, RunnerName};
use ghr_core::ports::{GitHubApi, GithubError, JitRequest, RunnerScope};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use support::{FakeGithub, Recorded, Reply, runners_json, token_for};

const INSTALLATION: InstallationId = InstallationId(3);

fn org() -> RunnerScope {
    RunnerScope::Org(OrgName::from("acme"))
}

/// Answers API calls with `failure` for the first `failures` calls, then an empty runner list.
async fn failing_first(failures: u32, failure: impl Fn() -> Reply + Send + Sync + 'static) -> FakeGithub {
    let seen = Arc::new(AtomicU32::new(0));
    FakeGithub::start(move |request: &Recorded| {
        if request.is_token_request() {
            return token_for(request);
        }
        if seen.fetch_add(1, Ordering::SeqCst) < failures { failure() } else { Reply::json(200, runners_json(1, 1)) }
    })
    .await
}

#[tokio::test]
async fn a_429_is_retried_after_retry_after() {
    let github = failing_first(1, || Reply::json(429, json!({"message": "slow down"})).header("retry-after", 1)).await;
    let client = github.client();
    let started = Instant::now();
    let runners = client.list_runners(INSTALLATION, &org()).await.unwrap();
    assert_eq!(runners.len(), 1);
    assert!(started.elapsed() >= Duration::from_secs(1), "waited {:?}", started.elapsed());
    assert_eq!(github.api_requests().len(), 2);
    let stats = client.stats();
    assert_eq!((stats.retries, stats.rate_limited), (1, 1));
}

#[tokio::test]
async fn a_wait_longer_than_the_cap_goes_back_to_the_caller_at_once() {
    let github = failing_first(1, || Reply::json(429, json!({})).header("retry-after", 3600)).await;
    let client = github.client();
    let started = Instant::now();
    let err = client.list_runners(INSTALLATION, &org()).await.unwrap_err();
    assert!(
        matches!(err, GithubError::RateLimited { retry_after } if retry_after == Duration::from_secs(3600)),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(github.api_requests().len(), 1);
}

#[tokio::test]
async fn a_spent_primary_quota_403_is_a_rate_limit() {
    let github = failing_first(1, || {
        Reply::json(403, json!({"message": "API rate limit exceeded for installation ID 3."}))
            .header("x-ratelimit-remaining", 0)
            .header("x-ratelimit-limit", 5000)
            .header("x-ratelimit-reset", chrono::Utc::now().timestamp())
    })
    .await;
    let client = github.client();
    client.list_runners(INSTALLATION, &org()).await.unwrap();
    assert_eq!(github.api_requests().len(), 2, "retried once the (already passed) reset was reached");
    assert_eq!(client.stats().rate_limited, 1);
}

#[tokio::test]
async fn a_plain_403_is_forbidden_and_not_retried() {
    let github =
        failing_first(5, || Reply::json(403, json!({"message": "Resource not accessible by integration"}))).await;
    let err = github.client().list_runners(INSTALLATION, &org()).await.unwrap_err();
    assert!(matches!(&err, GithubError::Forbidden(m) if m.contains("not accessible")), "{err:?}");
    assert_eq!(github.api_requests().len(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let github = failing_first(2, || Reply::json(502, json!({"message": "Bad Gateway"}))).await;
    let client = github.client();
    assert_eq!(client.list_runners(INSTALLATION, &org()).await.unwrap().len(), 1);
    assert_eq!(github.api_requests().len(), 3);
    assert_eq!(client.stats().retries, 2);
}

#[tokio::test]
async fn server_errors_give_up_after_max_retries() {
    let github = failing_first(u32::MAX, || Reply::empty(503)).await;
    let client = github.client_with(|c| c.retry.max_retries = 2);
    let err = client.list_runners(INSTALLATION, &org()).await.unwrap_err();
    assert!(matches!(err, GithubError::Server { status: 503 }), "{err:?}");
    assert_eq!(github.api_requests().len(), 3, "one call plus two retries");

    let client = github.client_with(|c| c.retry.max_retries = 0);
    let before = github.api_requests().len();
    client.list_runners(INSTALLATION, &org()).await.unwrap_err();
    assert_eq!(github.api_requests().len(), before + 1, "no retries when disabled");
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let github = failing_first(5, || Reply::json(422, json!({"message": "Validation Failed"}))).await;
    let err = github.client().list_runners(INSTALLATION, &org()).await.unwrap_err();
    assert!(matches!(err, GithubError::Unprocessable(_)), "{err:?}");
    assert!(!err.is_transient());
    assert_eq!(github.api_requests().len(), 1);
}

/// A base URL whose port refuses connections (a listener bound, then dropped).
fn refusing_base_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port())
}

#[tokio::test]
async fn connection_failures_say_where_keep_their_cause_and_are_retried() {
    let base = refusing_base_url();
    let client = ghr_github::GithubClient::new(support::config(&base)).unwrap();
    let err = client.list_deliveries(10).await.unwrap_err();
    assert!(matches!(&err, GithubError::Transport { .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("could not connect to GitHub at {base} (GET /app/hook/deliveries)"));
    let chain = ghr_core::error::error_chain(&err);
    assert!(chain.to_ascii_lowercase().contains("connection refused"), "the OS cause is in the chain: {chain}");
    assert!(err.is_transient());
    let stats = client.stats();
    assert_eq!((stats.calls, stats.retries), (4, 3), "one call and the policy's three retries");

    // A POST that never reached GitHub is safe to repeat too (here: the installation token request).
    let client = ghr_github::GithubClient::new(support::config(&base)).unwrap();
    let scope = RunnerScope::Repo("acme/app".into());
    let err = client.list_runners(INSTALLATION, &scope).await.unwrap_err();
    assert!(err.to_string().starts_with("could not connect to GitHub at"), "{err}");
    assert_eq!(client.stats().calls, 4);
}

#[tokio::test]
async fn a_get_that_timed_out_is_retried() {
    let github = FakeGithub::start(|_| Reply::json(200, json!([])).delayed(Duration::from_secs(5))).await;
    let client = github.client_with(|c| {
        c.request_timeout = Duration::from_millis(200);
        c.retry.max_retries = 1;
    });
    let err = client.list_deliveries(10).await.unwrap_err();
    assert!(matches!(err, GithubError::Transport { .. }), "{err:?}");
    assert!(err.to_string().contains("did not answer GET /app/hook/deliveries in time"), "{err}");
    assert_eq!(github.api_requests().len(), 2);
}

#[tokio::test]
async fn a_post_that_timed_out_is_not_repeated() {
    // GitHub may have created the runner before the answer was lost: a second POST would be a 409.
    let github = FakeGithub::start(|request: &Recorded| {
        if request.is_token_request() {
            token_for(request)
        } else {
            Reply::json(201, json!({})).delayed(Duration::from_secs(5))
        }
    })
    .await;
    let client = github.client_with(|c| c.request_timeout = Duration::from_millis(200));
    let request = JitRequest {
        installation_id: INSTALLATION,
        scope: RunnerScope::Repo("acme/app".into()),
        name: RunnerName::from("ghr-test-1-small-1"),
        labels: vec!["self-hosted".into()],
        runner_group: "ghr".into(),
    };
    let err = client.create_jit_config(&request).await.unwrap_err();
    assert!(matches!(err, GithubError::Transport { .. }), "{err:?}");
    assert_eq!(github.api_requests().len(), 1);
    assert_eq!(client.stats().retries, 0);
}
