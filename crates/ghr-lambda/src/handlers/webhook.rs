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

/// Answer one request, then hand the outbox over.
pub async fn handle(
    cold: &Cold,
    parts: &WebhookParts,
    router: Router,
    request: Request,
) -> Result<Response<Body>, Error> {
    let (head, body) = request.into_parts();
    let request = axum::http::Request::from_parts(head, axum::body::Body::from(body.to_vec()));
    let response = router.oneshot(request).await?;
    let work = parts.outbox.take().await;
    if !work.is_empty()
        && let Err(error) = cold.queue.send(work, Duration::ZERO).await
    {
        tracing::error!(error = %error, "wake-ups could not be queued; the scheduled pass starts those jobs");
    }
    let (head, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await?;
    let body = match String::from_utf8(bytes.to_vec()) {
        Ok(text) => Body::Text(text),
        Err(binary) => Body::Binary(binary.into_bytes()),
    };
    Ok(Response::from_parts(head, body))
}
