//! `POST /webhook`: verify the signature over the raw body *before* anything else, parse, apply, answer.
//!
//! 401 for a missing or wrong signature, 413 for an oversize body, 415 for a body that is not JSON by its
//! content type (a hook configured as `application/x-www-form-urlencoded`: refused from the first `ping`, so
//! the misconfiguration shows at once), 400 for a malformed known event or a missing GitHub header, 2xx for
//! everything accepted (including unknown events, enterprise installations, `ping` and redeliveries), 500
//! when the store fails (the delivery stays unrecorded, so a redelivery can apply it). Text from the request
//! is clipped before it reaches a log line or an answer.

use crate::AppState;
use crate::metrics as m;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use ghr_core::event::{IGNORED_EVENT_TYPE, WebhookEvent};
use ghr_core::ids::DeliveryId;
use ghr_core::ports::DeliveryRecord;
use ghr_core::text::{Clipped, clip};
use ghr_engine::intake::IntakeOutcome;
use ghr_github::webhook::{ParsedDelivery, parse_delivery, verify_signature};
use serde_json::json;
use std::time::Instant;
use tracing::Instrument;

pub const HEADER_SIGNATURE: &str = "x-hub-signature-256";
pub const HEADER_EVENT: &str = "x-github-event";
pub const HEADER_DELIVERY: &str = "x-github-delivery";
/// The only body format ghr reads (the GitHub webhook setting "Content type").
pub const JSON_MEDIA_TYPE: &str = "application/json";
/// How a form-encoded delivery starts: GitHub's `application/x-www-form-urlencoded` hooks send `payload=...`.
const FORM_PAYLOAD_PREFIX: &[u8] = b"payload=";

fn reject(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Response {
    metrics::counter!(m::WEBHOOKS_REJECTED, "reason" => reason).increment(1);
    let message = clip(&message.into()).into_owned();
    tracing::warn!(reason, %message, "webhook rejected");
    (status, Json(json!({ "error": reason, "message": message }))).into_response()
}

pub async fn receive(State(app): State<AppState>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    let started = Instant::now();
    let response = handle(&app, &headers, body).await;
    metrics::histogram!(m::WEBHOOK_ACK).record(started.elapsed().as_secs_f64());
    response
}

async fn handle(app: &AppState, headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return reject(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("body over {} bytes (server.max_body_bytes)", app.max_body_bytes),
            );
        }
        Err(rejection) => return reject(StatusCode::BAD_REQUEST, "unreadable_body", rejection.body_text()),
    };
    let signature = headers.get(HEADER_SIGNATURE).and_then(|v| v.to_str().ok());
    if let Err(error) = verify_signature(&app.webhook_secret, &body, signature) {
        let reason = if signature.is_none() { "signature_missing" } else { "signature_invalid" };
        return reject(StatusCode::UNAUTHORIZED, reason, error.to_string());
    }
    if let Err(received) = check_content_type(headers, &body) {
        return reject(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "content type {received:?} is not supported: set the webhook content type to {JSON_MEDIA_TYPE} \
                 (GitHub App settings → Webhook)"
            ),
        );
    }
    let Some(event) = header_value(headers, HEADER_EVENT) else {
        return reject(StatusCode::BAD_REQUEST, "missing_event", "X-GitHub-Event header missing");
    };
    let Some(delivery) = header_value(headers, HEADER_DELIVERY) else {
        return reject(StatusCode::BAD_REQUEST, "missing_delivery", "X-GitHub-Delivery header missing");
    };
    metrics::counter!(m::WEBHOOKS_RECEIVED, "event" => event.clone()).increment(1);
    // One decode of the body gives the event and everything the delivery record needs.
    let ParsedDelivery { event: parsed, action } = match parse_delivery(&event, &body) {
        Ok(parsed) => parsed,
        Err(error) => return reject(StatusCode::BAD_REQUEST, "malformed", error.to_string()),
    };
    let record = DeliveryRecord {
        delivery_id: DeliveryId::new(delivery.clone()),
        event: event.clone(),
        action,
        installation_id: parsed.installation_id(),
        received_at: Utc::now(),
    };
    let job_id = match &parsed {
        WebhookEvent::WorkflowJob { job, .. } => Some(job.id),
        _ => None,
    };
    // Why the parser itself set the delivery aside (an enterprise installation, a rename without a name).
    let parsed_ignore = match &parsed {
        WebhookEvent::Ignored { reason, .. } if *reason != IGNORED_EVENT_TYPE => Some(*reason),
        _ => None,
    };
    let span = tracing::info_span!(
        "webhook",
        delivery = %Clipped(&delivery),
        event = %Clipped(&event),
        installation_id = ?record.installation_id,
        job_id = ?job_id,
    );
    match app.intake.handle(record, parsed).instrument(span).await {
        Ok(IntakeOutcome::Duplicate) => (StatusCode::OK, Json(json!({ "status": "duplicate" }))).into_response(),
        Ok(IntakeOutcome::Applied(what)) => {
            tracing::debug!(what, "webhook applied");
            (StatusCode::ACCEPTED, Json(json!({ "status": "applied", "detail": what }))).into_response()
        }
        Ok(IntakeOutcome::Ignored(why)) => {
            let detail = parsed_ignore.unwrap_or(why);
            if parsed_ignore.is_some() {
                tracing::info!(delivery = %Clipped(&delivery), event = %Clipped(&event), detail, "webhook ignored");
            }
            (StatusCode::OK, Json(json!({ "status": "ignored", "detail": detail }))).into_response()
        }
        Err(error) => {
            let message = ghr_engine::error::ErrorChain(&error).to_string();
            tracing::error!(error = %message, "webhook could not be applied");
            metrics::counter!(m::WEBHOOKS_REJECTED, "reason" => "internal").increment(1);
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({ "error": "internal", "message": "could not record the delivery; it can be redelivered" })),
            )
                .into_response()
        }
    }
}

/// Whether the body is JSON by its `Content-Type` (parameters such as `charset` aside). A missing header is
/// accepted unless the body is visibly form-encoded. `Err` carries the content type received, clipped.
fn check_content_type(headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return if body.starts_with(FORM_PAYLOAD_PREFIX) {
            Err("none (the body is form-encoded)".to_owned())
        } else {
            Ok(())
        };
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    let media_type = text.split(';').next().unwrap_or_default().trim();
    if media_type.eq_ignore_ascii_case(JSON_MEDIA_TYPE) { Ok(()) } else { Err(clip(&text).into_owned()) }
}

/// A header's value, trimmed; absent, unreadable and empty values all count as missing (an empty delivery id
/// would otherwise be recorded once and make every later delivery without an id a "duplicate").
fn header_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
}
