//! App JWT and installation token checks, rate-limit headers and injected REST faults.

use crate::common::*;
use ghr_testkit::TEST_APP_PRIVATE_KEY_PEM;
use ghr_testkit::github::{EmulatorConfig, GithubEmulator, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

async fn token_status(emulator: &GithubEmulator, installation: u64, jwt: &str) -> (StatusCode, Value) {
    let response = client()
        .post(format!("{}/app/installations/{installation}/access_tokens", emulator.base_url()))
        .bearer_auth(jwt)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn valid_jwts_get_tokens_with_an_expiry() {
    let emulator = start().await;
    let installation = emulator.install_org("acme").await.unwrap();
    // The documented shape (iat backdated 60 s, exp 10 min ahead), with `iss` as string and as number.
    let as_string = jwt(TEST_APP_PRIVATE_KEY_PEM, json!(emulator.app_id().to_string()), now() - 60, now() + 600);
    let as_number = jwt(TEST_APP_PRIVATE_KEY_PEM, json!(emulator.app_id()), now() - 30, now() + 540);
    for token in [as_string, as_number] {
        let (status, body) = token_status(&emulator, installation.0, &token).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert!(body["token"].as_str().unwrap().starts_with("ghs_"));
        let expires_at = chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap()).unwrap();
        let ttl = expires_at.timestamp() - now();
        assert!((3590..=3600).contains(&ttl), "one hour by default, got {ttl}s");
    }
    let counters = emulator.counters();
    assert_eq!((counters.token_requests, counters.tokens_issued), (2, 2));
}

#[tokio::test]
async fn bad_jwts_are_refused_with_401() {
    let emulator = start().await;
    let installation = emulator.install_org("acme").await.unwrap();
    let app = json!(emulator.app_id());
    let cases = [
        ("wrong key", jwt(UNRELATED_PRIVATE_KEY_PEM, app.clone(), now() - 60, now() + 540)),
        ("expired", jwt(TEST_APP_PRIVATE_KEY_PEM, app.clone(), now() - 700, now() - 100)),
        ("lives too long", jwt(TEST_APP_PRIVATE_KEY_PEM, app.clone(), now() - 60, now() + 1200)),
        ("exp too far ahead", jwt(TEST_APP_PRIVATE_KEY_PEM, app.clone(), now() + 300, now() + 900)),
        ("wrong issuer", jwt(TEST_APP_PRIVATE_KEY_PEM, json!(emulator.app_id() + 1), now() - 60, now() + 540)),
        ("issuer not a number", jwt(TEST_APP_PRIVATE_KEY_PEM, json!("acme"), now() - 60, now() + 540)),
        ("not a JWT", "ghs_notajwt".to_owned()),
    ];
    for (case, token) in cases {
        let (status, body) = token_status(&emulator, installation.0, &token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {body}");
        assert!(body["message"].as_str().is_some_and(|message| !message.is_empty()), "{case}: {body}");
    }
    let response = client()
        .post(format!("{}/app/installations/{installation}/access_tokens", emulator.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "no Authorization header");
    assert_eq!(emulator.counters().tokens_issued, 0);
}

#[tokio::test]
async fn unknown_installations_404_and_suspended_ones_403() {
    let emulator = start().await;
    let installation = emulator.install_org("acme").await.unwrap();
    let (status, _) = token_status(&emulator, installation.0 + 999, &app_jwt(&emulator)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let token = installation_token(&emulator, installation).await;
    emulator.suspend(installation).await.unwrap();
    let (status, body) = token_status(&emulator, installation.0, &app_jwt(&emulator)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _, _) = get(&emulator, &token, "/orgs/acme/actions/runners").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a suspended installation's token stops working");
    emulator.unsuspend(installation).await.unwrap();
    let (status, _, _) = get(&emulator, &token, "/orgs/acme/actions/runners").await;
    assert_eq!(status, StatusCode::OK);
    emulator.uninstall(installation).await.unwrap();
    let (status, _, _) = get(&emulator, &token, "/orgs/acme/actions/runners").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "an uninstalled installation's token is revoked");
}

#[tokio::test]
async fn tokens_are_scoped_to_their_installation() {
    let emulator = start().await;
    let acme = emulator.install_org("acme").await.unwrap();
    emulator.install_org("globex").await.unwrap();
    let token = installation_token(&emulator, acme).await;
    let (status, _, _) = get(&emulator, &token, "/orgs/acme/actions/runners").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = get(&emulator, &token, "/orgs/ACME/actions/runners").await;
    assert_eq!(status, StatusCode::OK, "logins are case-insensitive");
    let (status, _, _) = get(&emulator, &token, "/orgs/globex/actions/runners").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another installation's org is hidden");
    let (status, _, body) = get(&emulator, &token, "/orgs/nobody/actions/runners").await;
    assert_eq!((status, body["message"].as_str()), (StatusCode::NOT_FOUND, Some("Not Found")));
    // `Bearer` works as well as `token`.
    let (status, _, _) =
        post_json(&emulator, &token, "/orgs/acme/actions/runners/generate-jitconfig", &json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _, _) = get(&emulator, "ghs_madeup", "/orgs/acme/actions/runners").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = get(&emulator, &app_jwt(&emulator), "/orgs/acme/actions/runners").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the App JWT is not an installation token");
}

#[tokio::test]
async fn tokens_expire_after_their_ttl() {
    let config = EmulatorConfig { installation_token_ttl: Duration::from_millis(1500), ..EmulatorConfig::default() };
    let emulator = GithubEmulator::start(config).await.unwrap();
    let acme = emulator.install_org("acme").await.unwrap();
    let token = installation_token(&emulator, acme).await;
    let (status, _, _) = get(&emulator, &token, "/orgs/acme/actions/runners").await;
    assert_eq!(status, StatusCode::OK);
    // Poll until the token expires (bounded by a deadline).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (status, _, _) = get(&emulator, &token, "/orgs/acme/actions/runners").await;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(std::time::Instant::now() < deadline, "the token never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fresh = installation_token(&emulator, acme).await;
    let (status, _, _) = get(&emulator, &fresh, "/orgs/acme/actions/runners").await;
    assert_eq!(status, StatusCode::OK, "a new token works again");
}

#[tokio::test]
async fn app_endpoints_need_the_jwt_not_a_token() {
    let emulator = start().await;
    let installation = emulator.install_org("acme").await.unwrap();
    let token = installation_token(&emulator, installation).await;
    let (status, _, _) = get(&emulator, &token, "/app/hook/deliveries").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, body) = get(&emulator, &app_jwt(&emulator), "/app/installations").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body[0]["account"]["login"], "acme");
    let (status, _, body) = get(&emulator, &app_jwt(&emulator), "/orgs/ACME/installation").await;
    assert_eq!((status, body["id"].as_u64()), (StatusCode::OK, Some(installation.0)));
}

#[tokio::test]
async fn rate_limit_headers_count_down_per_installation() {
    let emulator = start().await;
    let acme = emulator.install_org("acme").await.unwrap();
    let globex = emulator.install_org("globex").await.unwrap();
    let acme_token = installation_token(&emulator, acme).await;
    let globex_token = installation_token(&emulator, globex).await;
    let remaining = |headers: &axum::http::HeaderMap| -> u32 {
        headers["x-ratelimit-remaining"].to_str().unwrap().parse().unwrap()
    };
    let (_, first, _) = get(&emulator, &acme_token, "/orgs/acme/actions/runners").await;
    let (_, second, _) = get(&emulator, &acme_token, "/orgs/acme/actions/runners").await;
    let (_, other, _) = get(&emulator, &globex_token, "/orgs/globex/actions/runners").await;
    assert_eq!(first["x-ratelimit-limit"], "5000");
    assert_eq!(remaining(&first), 4999);
    assert_eq!(remaining(&second), 4998);
    assert_eq!(remaining(&other), 4999, "each installation has its own budget");
    assert!(first["x-ratelimit-reset"].to_str().unwrap().parse::<i64>().unwrap() > now());
    assert_eq!(emulator.counters().calls("GET /orgs/{org}/actions/runners"), 3);
}

#[tokio::test]
async fn exhausted_primary_limit_answers_403() {
    let config = EmulatorConfig { rate_limit_per_hour: 2, ..EmulatorConfig::default() };
    let emulator = GithubEmulator::start(config).await.unwrap();
    let installation = emulator.install_org("acme").await.unwrap();
    let token = installation_token(&emulator, installation).await;
    for _ in 0..2 {
        let (status, _, _) = get(&emulator, &token, "/orgs/acme/actions/runners").await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, headers, body) = get(&emulator, &token, "/orgs/acme/actions/runners").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    assert!(body["message"].as_str().unwrap().contains("rate limit exceeded"), "{body}");
}

#[tokio::test]
async fn injected_rate_limits_and_failures_are_served_in_order() {
    let emulator = start().await;
    let installation = emulator.install_org("acme").await.unwrap();
    let token = installation_token(&emulator, installation).await;
    emulator.rate_limit_next(1, 17);
    emulator.fail_next(2, StatusCode::BAD_GATEWAY);
    let (status, headers, body) = get(&emulator, &token, "/orgs/acme/actions/runners").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "17");
    assert!(body["message"].as_str().unwrap().contains("secondary rate limit"), "{body}");
    assert!(headers.contains_key("x-ratelimit-remaining"));
    for _ in 0..2 {
        let (status, _, _) = get(&emulator, &token, "/orgs/acme/actions/runners").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
    }
    let (status, _, _) = get(&emulator, &token, "/orgs/acme/actions/runners").await;
    assert_eq!(status, StatusCode::OK);
    let counters = emulator.counters();
    assert_eq!((counters.injected_rate_limits, counters.injected_failures), (1, 2));
}

#[tokio::test]
async fn latency_delays_answers_and_a_missing_user_agent_is_refused() {
    let emulator = start().await;
    let installation = emulator.install_org("acme").await.unwrap();
    let token = installation_token(&emulator, installation).await;
    emulator.set_latency(Duration::from_millis(200));
    let started = std::time::Instant::now();
    let (status, _, _) = get(&emulator, &token, "/orgs/acme/actions/runners").await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(200));
    emulator.set_latency(Duration::ZERO);
    let bare = reqwest::Client::new();
    let response = bare
        .get(format!("{}/orgs/acme/actions/runners", emulator.base_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "GitHub requires a User-Agent");
}
