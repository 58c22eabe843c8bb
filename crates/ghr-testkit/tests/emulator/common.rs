//! Shared helpers: our own JWT minting and REST calls (plain reqwest + jsonwebtoken, not ghr's
//! client), and a tiny webhook receiver.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use ghr_core::ids::InstallationId;
use ghr_testkit::TEST_APP_PRIVATE_KEY_PEM;
use ghr_testkit::github::{EmulatorConfig, GithubEmulator};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

pub const UNRELATED_PRIVATE_KEY_PEM: &str = include_str!("../data/unrelated-private-key.pem");
pub const WEBHOOK_SECRET: &str = "webhook-test-secret";

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// An App JWT with explicit claims, signed with `key_pem`.
pub fn jwt(key_pem: &str, iss: Value, iat: i64, exp: i64) -> String {
    let key = EncodingKey::from_rsa_pem(key_pem.as_bytes()).unwrap();
    encode(&Header::new(Algorithm::RS256), &json!({ "iss": iss, "iat": iat, "exp": exp }), &key).unwrap()
}

/// A valid App JWT the way GitHub's documentation makes one (iat 60 s back, exp 10 min ahead).
pub fn app_jwt(emulator: &GithubEmulator) -> String {
    jwt(TEST_APP_PRIVATE_KEY_PEM, json!(emulator.app_id().to_string()), now() - 60, now() + 600)
}

thread_local! {
    // Building a client costs tens of milliseconds (TLS set-up); each test (one thread, one
    // current-thread runtime) builds one and reuses it.
    static CLIENT: reqwest::Client = reqwest::Client::builder().user_agent("ghr-testkit-tests").build().unwrap();
}

pub fn client() -> reqwest::Client {
    CLIENT.with(Clone::clone)
}

pub async fn start() -> GithubEmulator {
    GithubEmulator::start(EmulatorConfig::default()).await.unwrap()
}

/// An emulator whose webhooks go to a fresh receiver.
pub async fn start_with_receiver() -> (GithubEmulator, Receiver) {
    let receiver = Receiver::start().await;
    let emulator = start().await;
    emulator.set_webhook_target(receiver.url.clone(), WEBHOOK_SECRET);
    (emulator, receiver)
}

/// `POST /app/installations/{id}/access_tokens` with a valid JWT; returns the token.
pub async fn installation_token(emulator: &GithubEmulator, installation: InstallationId) -> String {
    let response = client()
        .post(format!("{}/app/installations/{installation}/access_tokens", emulator.base_url()))
        .bearer_auth(app_jwt(emulator))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

/// GET with `Authorization: token <token>`; returns status, headers and JSON body (Null if none).
pub async fn get(emulator: &GithubEmulator, token: &str, path: &str) -> (StatusCode, HeaderMap, Value) {
    let response = client()
        .get(format!("{}{path}", emulator.base_url()))
        .header("authorization", format!("token {token}"))
        .send()
        .await
        .unwrap();
    split(response).await
}

pub async fn post_json(
    emulator: &GithubEmulator,
    token: &str,
    path: &str,
    body: &Value,
) -> (StatusCode, HeaderMap, Value) {
    let response =
        client().post(format!("{}{path}", emulator.base_url())).bearer_auth(token).json(body).send().await.unwrap();
    split(response).await
}

pub async fn delete(emulator: &GithubEmulator, token: &str, path: &str) -> StatusCode {
    client().delete(format!("{}{path}", emulator.base_url())).bearer_auth(token).send().await.unwrap().status()
}

async fn split(response: reqwest::Response) -> (StatusCode, HeaderMap, Value) {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
    (status, headers, body)
}

/// Mint a JIT config for an org runner; returns (runner id, encoded config).
pub async fn org_jit(emulator: &GithubEmulator, token: &str, org: &str, name: &str, labels: &[&str]) -> (u64, String) {
    let body = json!({ "name": name, "runner_group_id": 1, "labels": labels });
    let (status, _, body) =
        post_json(emulator, token, &format!("/orgs/{org}/actions/runners/generate-jitconfig"), &body).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (body["runner"]["id"].as_u64().unwrap(), body["encoded_jit_config"].as_str().unwrap().to_owned())
}

/// One delivery as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or("")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// `event.action`, e.g. `workflow_job.queued`.
    pub fn kind(&self) -> String {
        format!("{}.{}", self.header("x-github-event"), self.json()["action"].as_str().unwrap_or(""))
    }
}

#[derive(Clone)]
struct ReceiverState {
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
}

/// A webhook receiver on 127.0.0.1 that records every POST and answers with a settable status.
pub struct Receiver {
    pub url: String,
    state: ReceiverState,
}

impl Receiver {
    pub async fn start() -> Self {
        let state = ReceiverState { received: Arc::default(), status: Arc::new(AtomicU16::new(200)) };
        let router = Router::new().route("/webhook", post(receive)).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/webhook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { url, state }
    }

    pub fn set_status(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    pub fn kinds(&self) -> Vec<String> {
        self.received().iter().map(Received::kind).collect()
    }
}

async fn receive(State(state): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    state.received.lock().unwrap().push(Received { headers, body });
    StatusCode::from_u16(state.status.load(Ordering::SeqCst)).unwrap()
}
