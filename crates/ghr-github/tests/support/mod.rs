//! A tiny scripted GitHub for client tests: records every request and answers from a closure.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use ghr_github::{AppCredentials, GithubClient, GithubClientConfig};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const APP_ID: u64 = 4242;
pub const PKCS1: &str = include_str!("../data/test-only-app-key-pkcs1.pem");
pub const PUBLIC: &str = include_str!("../data/test-only-app-key-public.pem");

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    pub fn bearer(&self) -> Option<&str> {
        self.header("authorization")?.strip_prefix("Bearer ")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }

    pub fn is_token_request(&self) -> bool {
        self.method == Method::POST && self.path.ends_with("/access_tokens")
    }
}

/// The fake's answer to one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// Hold the answer back this long (to make concurrent callers overlap).
    pub delay: Duration,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Self { status, headers: Vec::new(), body: body.to_string(), delay: Duration::ZERO }
    }

    pub fn empty(status: u16) -> Self {
        Self { status, headers: Vec::new(), body: String::new(), delay: Duration::ZERO }
    }

    pub fn header(mut self, name: &'static str, value: impl ToString) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// An installation token answer that expires `lives` from now.
    pub fn token(token: &str, lives: chrono::TimeDelta) -> Self {
        Self::json(201, json!({"token": token, "expires_at": (Utc::now() + lives).to_rfc3339(), "permissions": {}}))
    }

    pub fn not_found() -> Self {
        Self::json(404, json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}))
    }
}

type Handler = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

struct Shared {
    handler: Handler,
    requests: Mutex<Vec<Recorded>>,
}

/// A running fake; the server task ends with the test's runtime.
pub struct FakeGithub {
    base_url: String,
    shared: Arc<Shared>,
}

impl FakeGithub {
    /// Serve on 127.0.0.1:0 under `prefix` (`""` for github.com-like roots, `/api/v3` for GHES).
    pub async fn start_at(prefix: &str, handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        let shared = Arc::new(Shared { handler: Arc::new(handler), requests: Mutex::new(Vec::new()) });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let router = Router::new().fallback(answer).with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { base_url: format!("http://{addr}{prefix}"), shared }
    }

    pub async fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_at("", handler).await
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Requests other than token requests.
    pub fn api_requests(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| !r.is_token_request()).collect()
    }

    pub fn token_requests(&self) -> usize {
        self.requests().iter().filter(|r| r.is_token_request()).count()
    }

    /// A client for this fake with fast retries.
    pub fn client(&self) -> GithubClient {
        self.client_with(|_| {})
    }

    pub fn client_with(&self, adjust: impl FnOnce(&mut GithubClientConfig)) -> GithubClient {
        let mut config = config(&self.base_url);
        adjust(&mut config);
        GithubClient::new(config).expect("client builds")
    }
}

pub fn credentials() -> AppCredentials {
    AppCredentials { app_id: APP_ID, private_key_pem: SecretString::from(PKCS1.to_owned()) }
}

pub fn config(base_url: &str) -> GithubClientConfig {
    let mut config = GithubClientConfig::new(credentials());
    config.api_base_url = base_url.to_owned();
    config.retry.base_delay = Duration::from_millis(5);
    config.retry.max_delay = Duration::from_secs(2);
    config.request_timeout = Duration::from_secs(5);
    config
}

async fn answer(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let recorded = Recorded {
        method,
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers,
        body: body.to_vec(),
    };
    shared.requests.lock().unwrap().push(recorded.clone());
    let reply = (shared.handler)(&recorded);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    response.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    for (name, value) in reply.headers {
        response.headers_mut().insert(HeaderName::from_static(name), HeaderValue::from_str(&value).unwrap());
    }
    response
}

/// The standard reply to a token request: a fresh one-hour token named after the installation.
pub fn token_for(request: &Recorded) -> Reply {
    let installation = request.path.split('/').nth(3).unwrap_or("unknown");
    Reply::token(&format!("ghs_token_{installation}"), chrono::TimeDelta::hours(1))
}

/// `count` runner objects starting at id `first`.
pub fn runners_json(first: u64, count: u64) -> Value {
    let runners: Vec<Value> = (first..first + count)
        .map(|id| {
            json!({"id": id, "name": format!("ghr-test-1-small-{id}"), "os": "linux", "status": "online",
                   "busy": false, "labels": [{"id": 1, "name": "self-hosted", "type": "read-only"}]})
        })
        .collect();
    json!({"total_count": count, "runners": runners})
}

/// A client for a GitHub emulator (its App id, the test key) with fast retries.
pub fn emulator_client(
    github: &ghr_testkit::github::GithubEmulator,
    adjust: impl FnOnce(&mut GithubClientConfig),
) -> GithubClient {
    let credentials = AppCredentials {
        app_id: github.app_id(),
        private_key_pem: SecretString::from(ghr_testkit::TEST_APP_PRIVATE_KEY_PEM.to_owned()),
    };
    let mut config = config(github.base_url());
    config.credentials = credentials;
    adjust(&mut config);
    GithubClient::new(config).expect("client builds")
}
