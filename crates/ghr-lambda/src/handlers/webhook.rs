//! `<prefix>-webhook`: `ghr serve`'s webhook endpoint (signature over the raw body, 401/413/415/400 as there,
//! deduplication on `X-GitHub-Delivery`, intake into the store) behind API Gateway's HTTP API or a Function URL.
//! After intake committed, what it asked of the other functions (a tenant's wake-up on its tier's queue, a
//! runner or tenant teardown) is sent to SQS, then GitHub gets its answer.
//!
//! A wake-up that cannot be sent does not fail the delivery: the job is durable in the store, and the scheduled
//! pass of `<prefix>-scale-down` starts it (within its schedule, a minute by default).

use crate::wiring::{Cold, WebhookParts};
use axum::Router;
use ghr_server::AppState;
use ghr_server::admin::LocalAdmin;
use lambda_http::{Body, Error, Request, Response};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// A Function URL invokes with the path `/`; API Gateway with the configured route (`/webhook`).
pub const FUNCTION_URL_PATH: &str = "/";

/// The webhook router of this function: `ghr serve`'s handler on the configured path and on `/`.
pub fn router(cold: &Cold, parts: &WebhookParts) -> Router {
    let config = &cold.env.config;
    let state = AppState {
        intake: parts.intake.clone(),
        webhook_secret: parts.webhook_secret.clone(),
        max_body_bytes: config.raw.server.max_body_bytes,
        admin_token: None,
        admin: Arc::new(LocalAdmin::new(parts.store.clone(), cold.settings.clone())),
        store: parts.store.clone(),
        dispatcher_wake: parts.wake.clone(),
        reconciler: None,
    };
    let path = config.raw.server.webhook_path.as_str();
    let paths: Vec<&str> = if path == FUNCTION_URL_PATH { vec![path] } else { vec![path, FUNCTION_URL_PATH] };
    ghr_server::webhook_router(state, &paths)
}

/// How long intake may take before the delivery is answered 503. GitHub gives up at 10 s and records the delivery
/// as failed; the failed-delivery scan redelivers it, and deduplication makes that safe whether or not this attempt
/// was recorded.
pub const INTAKE_DEADLINE: Duration = Duration::from_secs(6);
/// How long handing the outbox to SQS may take before the answer goes out anyway: the job is durable, and the
/// scheduled pass starts it.
pub const OUTBOX_DEADLINE: Duration = Duration::from_secs(2);

/// Answer one request, then hand the outbox over, within GitHub's 10 s.
pub async fn handle(
    cold: &Cold,
    parts: &WebhookParts,
    router: Router,
    request: Request,
) -> Result<Response<Body>, Error> {
    let (head, body) = request.into_parts();
    let request = axum::http::Request::from_parts(head, axum::body::Body::from(body.to_vec()));
    let response = match tokio::time::timeout(INTAKE_DEADLINE, router.oneshot(request)).await {
        Ok(response) => response?,
        Err(_) => return store_timeout(),
    };
    let work = parts.outbox.take().await;
    if !work.is_empty() {
        match tokio::time::timeout(OUTBOX_DEADLINE, cold.queue.send(work, Duration::ZERO)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::error!(error = %error, "wake-ups could not be queued; the scheduled pass starts those jobs")
            }
            Err(_) => tracing::error!(
                deadline = ?OUTBOX_DEADLINE,
                "SQS did not take the wake-ups in time; the scheduled pass starts those jobs"
            ),
        }
    }
    let (head, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await?;
    let body = match String::from_utf8(bytes.to_vec()) {
        Ok(text) => Body::Text(text),
        Err(binary) => Body::Binary(binary.into_bytes()),
    };
    Ok(Response::from_parts(head, body))
}

/// The answer to a delivery whose intake outlived [`INTAKE_DEADLINE`]: 503, for GitHub to record it as failed.
fn store_timeout() -> Result<Response<Body>, Error> {
    tracing::error!(deadline = ?INTAKE_DEADLINE, "the store did not answer in time: the delivery is answered 503, for redelivery");
    let body = serde_json::json!({
        "error": "store_timeout",
        "message": format!(
            "the store did not answer within {INTAKE_DEADLINE:?}; a redelivery is safe (deliveries are deduplicated)"
        ),
    });
    Ok(Response::builder().status(503).header("content-type", "application/json").body(Body::Text(body.to_string()))?)
}
