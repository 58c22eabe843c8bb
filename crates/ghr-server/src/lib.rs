//! ghr's HTTP surfaces and process runtime: the webhook endpoint, the admin REST API, health checks,
//! Prometheus metrics on their own listener, and the engine's loops, started and stopped together.

pub mod admin;
pub mod agent;
pub mod api;
pub mod metrics;
mod runtime;
pub mod ui;
pub mod wake_feed;
pub mod webhook;

pub use runtime::{RunningServer, ServerConfig, ServerError};

use admin::Admin;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ghr_core::ports::{Store, StoreError};
use ghr_engine::intake::Intake;
use ghr_engine::reconciler::Reconciler;
use secrecy::SecretString;
use serde_json::json;
use std::sync::Arc;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub intake: Intake,
    pub webhook_secret: SecretString,
    pub max_body_bytes: usize,
    pub admin_token: Option<SecretString>,
    pub admin: Arc<dyn Admin>,
    pub store: Arc<dyn Store>,
    pub dispatcher_wake: Arc<ghr_engine::wake::DispatchWake>,
    pub reconciler: Option<Arc<Reconciler>>,
}

/// The main listener's routes: webhook, health, admin API.
pub fn router(state: AppState, webhook_path: &str) -> Router {
    let webhook = webhook_router(state.clone(), &[webhook_path]);
    let health = Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).with_state(state.clone());
    Router::new().merge(webhook).merge(health).merge(api::router(state)).fallback(not_found)
}

/// [`router`] plus the operator console under `/ui`.
pub fn router_with_console(state: AppState, webhook_path: &str, console: ui::ConsoleConfig) -> Router {
    router(state.clone(), webhook_path).merge(ui::router(state, console))
}

/// The webhook endpoint alone, at each of `paths` (the serverless webhook function serves only this).
pub fn webhook_router(state: AppState, paths: &[&str]) -> Router {
    let max_body_bytes = state.max_body_bytes;
    paths
        .iter()
        .fold(Router::new(), |router, path| router.route(path, post(webhook::receive)))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// The metrics listener's routes.
pub fn metrics_router(handle: metrics_exporter_prometheus::PrometheusHandle) -> Router {
    Router::new().route("/metrics", get(move || std::future::ready(handle.render())))
}

async fn healthz() -> Response {
    (StatusCode::OK, axum::Json(json!({ "status": "ok" }))).into_response()
}

/// Ready when a write to the store commits: a store that answers reads but cannot make a delivery
/// durable (read-only, removed or replaced database, full disk) is not ready. The answer names the
/// kind of failure, never the database path (this listener is public); the log has the whole chain.
///
/// It also names this replica and its part in the singleton work (`leader` runs the reconciler, `standby` waits
/// for the lease); readiness does not depend on it: a standby takes webhooks like the leader.
async fn readyz(State(app): State<AppState>) -> Response {
    let check = tokio::time::timeout(READINESS_TIMEOUT, app.store.check_writable()).await;
    let (status, mut body) = match check {
        Ok(Ok(())) => (StatusCode::OK, json!({ "status": "ready" })),
        Err(_elapsed) => {
            tracing::warn!(timeout = ?READINESS_TIMEOUT, "readiness check: the store did not answer in time");
            let detail = format!("the store did not answer a test write within {READINESS_TIMEOUT:?}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "status": "store unavailable", "reason": STORE_TIMEOUT, "detail": detail }),
            )
        }
        Ok(Err(error)) => {
            tracing::warn!(error = %ghr_engine::error::ErrorChain(&error), "readiness check failed");
            let (reason, detail) = match &error {
                StoreError::Unavailable { reason, .. } => (reason.code(), format!("the database {reason}")),
                _ => (STORE_WRITE_FAILED, "a test write to the store failed; the server log has the cause".to_owned()),
            };
            (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "status": "store unavailable", "reason": reason, "detail": detail }),
            )
        }
    };
    if let Some(lease) = app.reconciler.as_ref().map(|reconciler| reconciler.lease())
        && let Some(fields) = body.as_object_mut()
    {
        fields.insert("replica".into(), lease.replica_id().into());
        fields.insert("role".into(), lease.role().as_str().into());
    }
    (status, axum::Json(body)).into_response()
}

/// `/readyz` reason when the test write failed for another reason than [`StoreError::Unavailable`].
const STORE_WRITE_FAILED: &str = "write_failed";
/// `/readyz` reason when the test write did not finish within [`READINESS_TIMEOUT`].
const STORE_TIMEOUT: &str = "timeout";
/// How long readiness waits for the store's test write: a load balancer's health check gives up after a few
/// seconds, and a replica whose database does not answer (down, unreachable, pool exhausted) must say 503 before
/// that, not hang.
pub const READINESS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

async fn not_found(uri: axum::http::Uri) -> Response {
    if uri.path() == "/ui" || uri.path().starts_with("/ui/") {
        return ui::not_found();
    }
    (StatusCode::NOT_FOUND, axum::Json(json!({ "error": "not_found", "message": "no such route" }))).into_response()
}
