//! A stand-in for the Lambda Runtime API (version 2018-06-01) on `127.0.0.1`: the HTTP interface Lambda offers
//! a custom runtime's `bootstrap`, so the real `ghr-lambda` binary runs here exactly as it runs on Lambda.
//!
//! - `GET /2018-06-01/runtime/invocation/next` long-polls until an event is queued and answers it with the
//!   headers Lambda sends (`Lambda-Runtime-Aws-Request-Id`, `-Deadline-Ms`, `-Invoked-Function-Arn`,
//!   `-Trace-Id`);
//! - `POST /2018-06-01/runtime/invocation/{id}/response` and `.../{id}/error` complete that invocation;
//! - `POST /2018-06-01/runtime/init/error` records why the function could not start: every invocation, waiting
//!   or future, fails with it (as Lambda reports `Runtime.InitError` and the cause).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

/// The API version prefix every route carries.
const PREFIX: &str = "/2018-06-01/runtime";
/// The header naming the invocation.
pub const HEADER_REQUEST_ID: &str = "lambda-runtime-aws-request-id";
/// The header giving the invocation's deadline, in milliseconds since the epoch.
pub const HEADER_DEADLINE_MS: &str = "lambda-runtime-deadline-ms";
/// The header naming the function's ARN.
pub const HEADER_FUNCTION_ARN: &str = "lambda-runtime-invoked-function-arn";
/// The header carrying the X-Ray trace id.
pub const HEADER_TRACE_ID: &str = "lambda-runtime-trace-id";
/// The header a runtime names its error type in.
const HEADER_ERROR_TYPE: &str = "lambda-runtime-function-error-type";
/// The account of the stand-in's ARNs.
pub const ACCOUNT_ID: &str = "123456789012";
/// The error type Lambda gives an error whose body names none.
const UNKNOWN_ERROR_TYPE: &str = "Unhandled";

/// Why an invocation gave no result.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum InvokeError {
    /// The handler answered with an error (`.../invocation/{id}/error`).
    #[error("function error {error_type}: {message}")]
    Function { error_type: String, message: String },
    /// The function reported that it could not start (`/runtime/init/error`).
    #[error("init error {error_type}: {message}")]
    Init { error_type: String, message: String },
    /// No answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The function's process ended without answering (its exit status).
    #[error("the function's process exited ({0}) without answering")]
    Exited(String),
}

/// One queued invocation.
struct Pending {
    id: String,
    event: Value,
    deadline_ms: u128,
}

#[derive(Default)]
struct Inner {
    queue: VecDeque<Pending>,
    /// Invocations taken by the runtime (or queued), by request id.
    waiting: HashMap<String, oneshot::Sender<Result<Value, InvokeError>>>,
    /// Set once: the init error, or the process's exit. Every invocation fails with it from then on.
    ended: Option<InvokeError>,
    /// Every request id taken by `next`, in order.
    taken: Vec<String>,
}

struct Shared {
    function_name: String,
    inner: Mutex<Inner>,
    queued: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Fail every waiting invocation and every later one with `error` (the first ending wins).
    fn end(&self, error: InvokeError) {
        let mut inner = self.lock();
        let error = inner.ended.get_or_insert(error).clone();
        inner.queue.clear();
        for (_, sender) in inner.waiting.drain() {
            let _ = sender.send(Err(error.clone()));
        }
    }

    fn complete(&self, id: &str, result: Result<Value, InvokeError>) -> StatusCode {
        match self.lock().waiting.remove(id) {
            Some(sender) => {
                let _ = sender.send(result);
                StatusCode::ACCEPTED
            }
            None => StatusCode::BAD_REQUEST,
        }
    }
}

/// The runtime API of one function: its address goes into the function's `AWS_LAMBDA_RUNTIME_API`.
pub struct RuntimeApi {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RuntimeApi {
    /// Serve on a free port of `127.0.0.1` for the function `function_name` (it goes into the ARN header).
    pub async fn start(function_name: &str) -> RuntimeApi {
        let shared = Arc::new(Shared {
            function_name: function_name.to_owned(),
            inner: Mutex::new(Inner::default()),
            queued: Notify::new(),
        });
        let router = Router::new()
            .route(&format!("{PREFIX}/invocation/next"), get(next))
            .route(&format!("{PREFIX}/invocation/{{id}}/response"), post(response))
            .route(&format!("{PREFIX}/invocation/{{id}}/error"), post(error))
            .route(&format!("{PREFIX}/init/error"), post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("binding the runtime API");
        let addr = listener.local_addr().expect("the runtime API's address");
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("the runtime API serves");
        });
        RuntimeApi { addr, shared, server }
    }

    /// `host:port`, as Lambda sets `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Invoke the function with `event` and wait at most `timeout` for its answer.
    pub async fn invoke(&self, event: Value, timeout: Duration) -> Result<Value, InvokeError> {
        let (sender, receiver) = oneshot::channel();
        {
            let mut inner = self.shared.lock();
            if let Some(ended) = &inner.ended {
                return Err(ended.clone());
            }
            let id = request_id();
            let deadline = SystemTime::now() + timeout;
            let deadline_ms = deadline.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
            inner.waiting.insert(id.clone(), sender);
            inner.queue.push_back(Pending { id, event, deadline_ms });
        }
        // `next` registers before it looks at the queue, so waking the waiters is enough.
        self.shared.queued.notify_waiters();
        match tokio::time::timeout(timeout, receiver).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(self.shared.lock().ended.clone().unwrap_or(InvokeError::Timeout(timeout))),
            Err(_) => Err(InvokeError::Timeout(timeout)),
        }
    }

    /// The function's process ended (`status`): what waits fails, and so does every later invocation, unless
    /// an init error was reported first (that stays the reason).
    pub fn process_exited(&self, status: String) {
        self.shared.end(InvokeError::Exited(status));
        self.shared.queued.notify_waiters();
    }

    /// How many invocations the runtime has taken so far.
    pub fn taken(&self) -> usize {
        self.shared.lock().taken.len()
    }
}

/// A request id in the UUID shape Lambda uses, unique within the test process.
fn request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let sequence = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{:08x}-{:04x}-4000-8000-{sequence:012x}", std::process::id(), nanos & 0xffff)
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    loop {
        let notified = shared.queued.notified();
        {
            let mut inner = shared.lock();
            if let Some(pending) = inner.queue.pop_front() {
                inner.taken.push(pending.id.clone());
                return invocation(&shared.function_name, pending);
            }
            if inner.ended.is_some() {
                // Lambda would freeze or stop the sandbox; the process is gone or going anyway.
                return StatusCode::GONE.into_response();
            }
        }
        notified.await;
    }
}

fn invocation(function_name: &str, pending: Pending) -> Response {
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        headers.insert(name, HeaderValue::from_str(&value).expect("a valid header value"));
    };
    let arn = format!("arn:aws:lambda:{}:{ACCOUNT_ID}:function:{function_name}", super::REGION);
    let trace = format!("Root=1-{:08x}-{:024x};Parent={:016x};Sampled=0", pending.deadline_ms / 1000, 0, 0);
    set(HEADER_REQUEST_ID, pending.id);
    set(HEADER_DEADLINE_MS, pending.deadline_ms.to_string());
    set(HEADER_FUNCTION_ARN, arn);
    set(HEADER_TRACE_ID, trace);
    set("content-type", "application/json".to_owned());
    (StatusCode::OK, headers, pending.event.to_string()).into_response()
}

async fn response(State(shared): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> Response {
    let value = match serde_json::from_slice::<Value>(&body) {
        Ok(value) => Ok(value),
        Err(_) if body.is_empty() => Ok(Value::Null),
        Err(error) => Err(InvokeError::Function {
            error_type: "Runtime.InvalidResponse".into(),
            message: format!("the response is not JSON: {error}"),
        }),
    };
    accepted(shared.complete(&id, value))
}

async fn error(State(shared): State<Arc<Shared>>, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let (error_type, message) = error_of(&headers, &body);
    accepted(shared.complete(&id, Err(InvokeError::Function { error_type, message })))
}

async fn init_error(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let (error_type, message) = error_of(&headers, &body);
    shared.end(InvokeError::Init { error_type, message });
    shared.queued.notify_waiters();
    accepted(StatusCode::ACCEPTED)
}

/// The error type and message of an error body (`{"errorType", "errorMessage"}`), the header's type first.
fn error_of(headers: &HeaderMap, body: &[u8]) -> (String, String) {
    let parsed: Value = serde_json::from_slice(body).unwrap_or_else(|_| json!({}));
    let body_type = parsed.get("errorType").and_then(Value::as_str);
    let header_type = headers.get(HEADER_ERROR_TYPE).and_then(|v| v.to_str().ok());
    let error_type = header_type.or(body_type).unwrap_or(UNKNOWN_ERROR_TYPE).to_owned();
    let message = match parsed.get("errorMessage").and_then(Value::as_str) {
        Some(message) => message.to_owned(),
        None => String::from_utf8_lossy(body).into_owned(),
    };
    (error_type, message)
}

fn accepted(status: StatusCode) -> Response {
    let body = if status == StatusCode::ACCEPTED {
        json!({"status": "OK"})
    } else {
        json!({"errorMessage": "unknown request id", "errorType": "InvalidRequestID"})
    };
    (status, axum::Json(body)).into_response()
}
