//! Client authentication against a scripted server: headers, App JWT, installation-token caching,
//! refresh, one refresh for concurrent callers, and replacing a refused token.

mod support;

use chrono::TimeDelta;
use ghr_core::ids::{InstallationId, OrgName};
use ghr_core::ports::{GitHubApi, GithubError, RunnerScope};
use ghr_github::client::{ClientConfigError, GITHUB_API_VERSION};
use ghr_github::{AppCredentials, GithubClient};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use support::{APP_ID, FakeGithub, PUBLIC, Recorded, Reply, runners_json, token_for};

const INSTALLATION: InstallationId = InstallationId(77);

fn org() -> RunnerScope {
    RunnerScope::Org(OrgName::from("acme"))
}

/// Token requests get a token; everything else an empty runner list.
fn simple(request: &Recorded) -> Reply {
    if request.is_token_request() { token_for(request) } else { Reply::json(200, runners_json(1, 0)) }
}

#[derive(Debug, serde::Deserialize)]
struct Claims {
    iat: i64,
    exp: i64,
}

#[tokio::test]
async fn sends_githubs_headers_and_authenticates_as_app_then_installation() {
    let github = FakeGithub::start(simple).await;
    let client = github.client_with(|c| c.user_agent = "ghr-test/1".into());
    client.list_runners(INSTALLATION, &org()).await.unwrap();

    let requests = github.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let (token_request, list) = (&requests[0], &requests[1]);
    for request in &requests {
        assert_eq!(request.header("accept"), Some("application/vnd.github+json"));
        assert_eq!(request.header("x-github-api-version"), Some(GITHUB_API_VERSION));
        assert_eq!(request.header("user-agent"), Some("ghr-test/1"));
    }
    assert_eq!(token_request.path, "/app/installations/77/access_tokens");
    let jwt = token_request.bearer().expect("JWT");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[APP_ID.to_string()]);
    let claims =
        jsonwebtoken::decode::<Claims>(jwt, &DecodingKey::from_rsa_pem(PUBLIC.as_bytes()).unwrap(), &validation)
            .expect("JWT verifies with the App's public key")
            .claims;
    assert!(claims.exp - claims.iat <= 600, "{claims:?}");
    assert_eq!(list.path, "/orgs/acme/actions/runners");
    assert_eq!(list.bearer(), Some("ghs_token_77"));
}

#[tokio::test]
async fn one_token_serves_many_calls_and_each_installation_has_its_own() {
    let github = FakeGithub::start(simple).await;
    let client = github.client();
    for _ in 0..5 {
        client.list_runners(INSTALLATION, &org()).await.unwrap();
    }
    client.list_runners(InstallationId(78), &org()).await.unwrap();
    assert_eq!(github.token_requests(), 2);
    let stats = client.stats();
    assert_eq!(stats.token_requests, 2);
    assert_eq!(stats.calls, 8);
    assert_eq!(stats.retries, 0);
    let bearers: Vec<_> = github.api_requests().iter().map(|r| r.bearer().unwrap().to_owned()).collect();
    assert_eq!(bearers.iter().filter(|b| *b == "ghs_token_77").count(), 5);
    assert_eq!(bearers.last().map(String::as_str), Some("ghs_token_78"));
}

#[tokio::test]
async fn tokens_inside_the_refresh_margin_are_replaced_before_use() {
    let issued = Arc::new(AtomicU32::new(0));
    let counter = issued.clone();
    let github = FakeGithub::start(move |request| {
        if request.is_token_request() {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            // Lives 2 minutes: inside a 5-minute margin, so every use needs a new one.
            Reply::token(&format!("short-{n}"), TimeDelta::minutes(2))
        } else {
            Reply::json(200, runners_json(1, 0))
        }
    })
    .await;
    let client = github.client_with(|c| c.token_refresh_margin = Duration::from_secs(300));
    for _ in 0..3 {
        client.list_runners(INSTALLATION, &org()).await.unwrap();
    }
    assert_eq!(issued.load(Ordering::SeqCst), 3);
    let bearers: Vec<_> = github.api_requests().iter().map(|r| r.bearer().unwrap().to_owned()).collect();
    assert_eq!(bearers, ["short-0", "short-1", "short-2"]);

    // With a margin shorter than the remaining life the same token is kept.
    let client = github.client_with(|c| c.token_refresh_margin = Duration::from_secs(60));
    for _ in 0..3 {
        client.list_runners(INSTALLATION, &org()).await.unwrap();
    }
    assert_eq!(issued.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn concurrent_callers_wait_for_a_single_token_request() {
    let github = FakeGithub::start(|request| {
        if request.is_token_request() {
            token_for(request).delayed(Duration::from_millis(200))
        } else {
            Reply::json(200, runners_json(1, 0))
        }
    })
    .await;
    let client = github.client();
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.list_runners(INSTALLATION, &org()).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(github.token_requests(), 1);
    assert_eq!(github.api_requests().len(), 10);
}

#[tokio::test]
async fn a_refused_cached_token_is_replaced_once() {
    let issued = Arc::new(AtomicU32::new(0));
    let counter = issued.clone();
    let github = FakeGithub::start(move |request| {
        if request.is_token_request() {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            Reply::token(&format!("tok-{n}"), TimeDelta::hours(1))
        } else if request.bearer() == Some("tok-0") {
            Reply::json(401, json!({"message": "Bad credentials"}))
        } else {
            Reply::json(200, runners_json(1, 2))
        }
    })
    .await;
    let client = github.client();
    let runners = client.list_runners(INSTALLATION, &org()).await.unwrap();
    assert_eq!(runners.len(), 2);
    assert_eq!(issued.load(Ordering::SeqCst), 2);
    let bearers: Vec<_> = github.api_requests().iter().map(|r| r.bearer().unwrap().to_owned()).collect();
    assert_eq!(bearers, ["tok-0", "tok-1"]);
    assert_eq!(client.stats().retries, 1);
}

#[tokio::test]
async fn a_token_refused_twice_is_unauthorized() {
    let github = FakeGithub::start(|request| {
        if request.is_token_request() {
            token_for(request)
        } else {
            Reply::json(401, json!({"message": "Bad credentials"}))
        }
    })
    .await;
    let client = github.client();
    let err = client.list_runners(INSTALLATION, &org()).await.unwrap_err();
    assert!(matches!(err, GithubError::Unauthorized), "{err:?}");
    assert_eq!(github.api_requests().len(), 2, "exactly one retry with a fresh token");
    assert_eq!(github.token_requests(), 2);
}

#[tokio::test]
async fn token_request_failures_are_classified() {
    let github = FakeGithub::start(|request| {
        if request.path.contains("/installations/404/") {
            Reply::not_found()
        } else {
            Reply::json(401, json!({"message": "A JSON web token could not be decoded"}))
        }
    })
    .await;
    let client = github.client();
    let err = client.list_runners(InstallationId(404), &org()).await.unwrap_err();
    assert!(matches!(&err, GithubError::NotFound(what) if what.contains("installation 404")), "{err:?}");
    let err = client.installation_token(InstallationId(5)).await.unwrap_err();
    assert!(matches!(err, GithubError::Unauthorized), "{err:?}");
}

#[tokio::test]
async fn installation_token_is_exposed_for_callers_that_need_it() {
    let github = FakeGithub::start(simple).await;
    let client = github.client();
    let token = client.installation_token(INSTALLATION).await.unwrap();
    assert_eq!(token.token.expose_secret(), "ghs_token_77");
    assert!(!format!("{token:?}").contains("ghs_token_77"), "Debug redacts the token");
    client.installation_token(INSTALLATION).await.unwrap();
    assert_eq!(github.token_requests(), 1);
    client.forget_installation(INSTALLATION);
    client.installation_token(INSTALLATION).await.unwrap();
    assert_eq!(github.token_requests(), 2);
}

#[tokio::test]
async fn rate_limit_windows_are_tracked_per_identity() {
    let github = FakeGithub::start(|request| {
        let remaining = if request.is_token_request() { "4999" } else { "4321" };
        let reply = if request.is_token_request() { token_for(request) } else { Reply::json(200, runners_json(1, 0)) };
        reply
            .header("x-ratelimit-limit", 5000)
            .header("x-ratelimit-remaining", remaining)
            .header("x-ratelimit-reset", 1_900_000_000)
    })
    .await;
    let client = github.client();
    assert_eq!(client.rate_limit(INSTALLATION), None);
    client.list_runners(INSTALLATION, &org()).await.unwrap();
    let window = client.rate_limit(INSTALLATION).expect("installation window");
    assert_eq!((window.limit, window.remaining, window.reset_at.timestamp()), (5000, 4321, 1_900_000_000));
    assert_eq!(client.app_rate_limit().map(|w| w.remaining), Some(4999));
    assert_eq!(client.rate_limit(InstallationId(1)), None);
}

#[test]
fn bad_configuration_is_refused_with_typed_errors() {
    let mut config = support::config("not a url");
    assert!(matches!(GithubClient::new(config.clone()), Err(ClientConfigError::BaseUrl { .. })));
    config.api_base_url = "ftp://example.com".into();
    assert!(matches!(GithubClient::new(config.clone()), Err(ClientConfigError::BaseUrlScheme(_))));
    config.api_base_url = "https://github.example.com/api/v3".into();
    config.user_agent = "bad\nagent".into();
    assert!(matches!(GithubClient::new(config.clone()), Err(ClientConfigError::UserAgent(_))));
    config.user_agent = "ok".into();
    config.credentials = AppCredentials {
        app_id: APP_ID,
        private_key_pem: SecretString::from("-----BEGIN RSA PRIVATE KEY-----".to_owned()),
    };
    let err = GithubClient::new(config).unwrap_err();
    assert!(matches!(err, ClientConfigError::Credentials(_)), "{err:?}");
}

#[test]
fn debug_output_carries_no_secrets() {
    let config = support::config("https://api.github.com");
    let text = format!("{config:?} {:?}", GithubClient::new(config.clone()).unwrap());
    assert!(!text.contains("PRIVATE KEY") && !text.contains("MII"), "{text}");
    assert!(text.contains("4242"));
}
