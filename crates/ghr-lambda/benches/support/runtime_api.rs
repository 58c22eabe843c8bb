//! A minimal stand-in for the Lambda Runtime API (`/2018-06-01/runtime/...`): it hands the function process the
//! events it is given, one at a time, and reports when and how each was answered.
//!
//! One stand-in serves one function process: a process killed while it waits on `invocation/next` leaves that
//! request hanging, so the next process gets a fresh stand-in instead of sharing a queue with a dead reader.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

/// The Runtime API's version prefix.
const API: &str = "/2018-06-01/runtime";
/// The deadline handed with each event (the function's timeout as Lambda would set it).
const INVOCATION_DEADLINE: Duration = Duration::from_secs(60);
/// The function ARN handed with each event.
const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:ghr-bench-webhook";

/// One event for the function.
struct Invocation {
    id: String,
    payload: Vec<u8>,
}

/// How the function answered an invocation (or failed its init), and when the answer arrived.
#[derive(Debug)]
pub struct Outcome {
    pub id: Option<String>,
    pub at: Instant,
    pub kind: OutcomeKind,
    pub body: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    /// `invocation/{id}/response`.
    Response,
    /// `invocation/{id}/error`: the handler failed.
    Error,
    /// `init/error`: the function could not start.
    InitError,
}

#[derive(Clone)]
struct Shared {
    events: Arc<Mutex<mpsc::UnboundedReceiver<Invocation>>>,
    outcomes: mpsc::UnboundedSender<Outcome>,
    /// When the function first asked for an event: the end of its init phase.
    first_poll: Arc<OnceLock<Instant>>,
}

/// A running stand-in on 127.0.0.1.
pub struct RuntimeApi {
    address: SocketAddr,
    events: mpsc::UnboundedSender<Invocation>,
    outcomes: mpsc::UnboundedReceiver<Outcome>,
    next_id: AtomicU64,
    first_poll: Arc<OnceLock<Instant>>,
    server: JoinHandle<()>,
}

impl RuntimeApi {
    /// Listen on a free port.
    pub async fn start() -> std::io::Result<RuntimeApi> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (events, events_rx) = mpsc::unbounded_channel();
        let (outcomes_tx, outcomes) = mpsc::unbounded_channel();
        let first_poll = Arc::new(OnceLock::new());
        let shared =
            Shared { events: Arc::new(Mutex::new(events_rx)), outcomes: outcomes_tx, first_poll: first_poll.clone() };
        let router = Router::new()
            .route(&format!("{API}/invocation/next"), get(next))
            .route(&format!("{API}/invocation/{{id}}/response"), post(response))
            .route(&format!("{API}/invocation/{{id}}/error"), post(error))
            .route(&format!("{API}/init/error"), post(init_error))
            .with_state(shared);
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                eprintln!("the Runtime API stand-in stopped: {error}");
            }
        });
        Ok(RuntimeApi { address, events, outcomes, next_id: AtomicU64::new(1), first_poll, server })
    }

    /// `AWS_LAMBDA_RUNTIME_API` for the function process: `host:port`.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Queue an event; the function takes it with its next `invocation/next`. Returns its request id.
    pub fn invoke(&self, payload: Vec<u8>) -> String {
        let id = format!("bench-{:08}", self.next_id.fetch_add(1, Ordering::Relaxed));
        // The receiver lives as long as the server task, which lives as long as `self`.
        let _ = self.events.send(Invocation { id: id.clone(), payload });
        id
    }

    /// When the function first called `invocation/next` (its init was over), if it did.
    pub fn first_poll(&self) -> Option<Instant> {
        self.first_poll.get().copied()
    }

    /// The next answer, or `None` after `timeout`.
    pub async fn outcome(&mut self, timeout: Duration) -> Option<Outcome> {
        tokio::time::timeout(timeout, self.outcomes.recv()).await.ok().flatten()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(shared): State<Shared>) -> Response {
    let _ = shared.first_poll.set(Instant::now());
    let invocation = shared.events.lock().await.recv().await;
    let Some(Invocation { id, payload }) = invocation else {
        return (StatusCode::GONE, "the bench has no more events").into_response();
    };
    let deadline = SystemTime::now() + INVOCATION_DEADLINE;
    let deadline_ms = deadline.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", id.clone());
    set("lambda-runtime-deadline-ms", deadline_ms.to_string());
    set("lambda-runtime-invoked-function-arn", FUNCTION_ARN.to_owned());
    set("lambda-runtime-trace-id", format!("Root=1-00000000-{id}"));
    set("content-type", "application/json".to_owned());
    (StatusCode::OK, headers, payload).into_response()
}

fn record(shared: &Shared, id: Option<String>, kind: OutcomeKind, body: &Bytes) -> StatusCode {
    let at = Instant::now();
    let body = serde_json::from_slice(body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(body).into_owned()));
    // The receiver is the bench; if it is gone there is nobody left to tell.
    let _ = shared.outcomes.send(Outcome { id, at, kind, body });
    StatusCode::ACCEPTED
}

async fn response(State(shared): State<Shared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    record(&shared, Some(id), OutcomeKind::Response, &body)
}

async fn error(State(shared): State<Shared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    record(&shared, Some(id), OutcomeKind::Error, &body)
}

async fn init_error(State(shared): State<Shared>, body: Bytes) -> StatusCode {
    record(&shared, None, OutcomeKind::InitError, &body)
}
