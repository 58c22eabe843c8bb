//! `/agent/v1`: what pool machines' agents call (`ghr_api::agent` documents the protocol). Served on the main
//! listener only when a tier has a warm pool. Authentication is the machine's bootstrap secret, never the
//! admin token; answers carry no detail an agent with a wrong credential could use.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ghr_api::ErrorBody;
use ghr_api::agent::{
    AGENT_PREFIX, AgentEvent, AgentEventKind, AgentHello, AgentWelcome, Assignment, MAX_ASSIGNMENT_WAIT_SECONDS,
    parse_bearer,
};
use ghr_engine::error::ErrorChain;
use ghr_engine::pool::agent::{AgentError, AgentReport, AgentService};
use secrecy::ExposeSecret;
use serde::Deserialize;
use std::time::Duration;

/// Agent requests are small JSON documents.
const MAX_AGENT_BODY_BYTES: usize = 4 * 1024;
/// Seconds an agent is told to wait before retrying a machine not known yet.
const RETRY_AFTER_SECONDS: &str = "1";

/// The agent routes on `service`.
pub fn router(service: AgentService) -> Router {
    Router::new()
        .route(&format!("{AGENT_PREFIX}/hello"), post(hello))
        .route(&format!("{AGENT_PREFIX}/assignment"), get(assignment))
        .route(&format!("{AGENT_PREFIX}/events"), post(events))
        .layer(DefaultBodyLimit::max(MAX_AGENT_BODY_BYTES))
        .with_state(service)
}

/// A refused or failed agent request.
struct Refusal(StatusCode, &'static str, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let Refusal(status, code, message) = self;
        let mut response = (status, axum::Json(ErrorBody { error: code.to_owned(), message })).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<AgentError> for Refusal {
    fn from(error: AgentError) -> Self {
        match error {
            AgentError::Unauthorized => Refusal(StatusCode::UNAUTHORIZED, "unauthorized", error.to_string()),
            AgentError::Gone(_) => Refusal(StatusCode::GONE, "gone", error.to_string()),
            AgentError::NotYetKnown(_) => Refusal(StatusCode::SERVICE_UNAVAILABLE, "not_yet_known", error.to_string()),
            AgentError::Engine(error) => {
                tracing::error!(error = %ErrorChain(&error), "agent request failed");
                Refusal(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "ghr could not serve this request; retry".into(),
                )
            }
        }
    }
}

/// The (machine, secret) of `Authorization: Bearer <machine>:<secret>`.
fn credential(headers: &HeaderMap) -> Result<(String, String), Refusal> {
    let refused = || {
        Refusal(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send `Authorization: Bearer <machine id>:<bootstrap secret>`".into(),
        )
    };
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(refused)?;
    let (machine, secret) = parse_bearer(value).ok_or_else(refused)?;
    Ok((machine.to_owned(), secret.to_owned()))
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Refusal> {
    serde_json::from_slice(body)
        .map_err(|error| Refusal(StatusCode::BAD_REQUEST, "bad_request", format!("invalid JSON body: {error}")))
}

async fn hello(State(service): State<AgentService>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let result = async {
        let (machine, secret) = credential(&headers)?;
        let _hello: AgentHello = json_body(&body)?;
        let welcome = service.hello(&machine, &secret).await?;
        Ok::<_, Refusal>(axum::Json(AgentWelcome {
            machine_id: welcome.machine.id.to_string(),
            tier: welcome.machine.tier.to_string(),
            wait_seconds: welcome.wait.as_secs(),
        }))
    }
    .await;
    result.into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignmentQuery {
    wait_seconds: Option<u64>,
}

async fn assignment(
    State(service): State<AgentService>,
    headers: HeaderMap,
    query: Result<Query<AssignmentQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        let (machine, secret) = credential(&headers)?;
        let Query(query) = query.map_err(|error| Refusal(StatusCode::BAD_REQUEST, "bad_request", error.body_text()))?;
        let wait = query.wait_seconds.unwrap_or(MAX_ASSIGNMENT_WAIT_SECONDS).min(MAX_ASSIGNMENT_WAIT_SECONDS);
        match service.assignment(&machine, &secret, Duration::from_secs(wait)).await? {
            None => Ok(StatusCode::NO_CONTENT.into_response()),
            Some(grant) => {
                let body = Assignment {
                    runner_name: grant.runner_name.to_string(),
                    labels: grant.labels,
                    jit_config: grant.jit_config.expose_secret().to_owned(),
                };
                let mut response = axum::Json(body).into_response();
                response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                Ok::<_, Refusal>(response)
            }
        }
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn events(State(service): State<AgentService>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let result = async {
        let (machine, secret) = credential(&headers)?;
        let event: AgentEvent = json_body(&body)?;
        let report = match event.kind {
            AgentEventKind::RunnerStarted => AgentReport::RunnerStarted,
            AgentEventKind::RunnerExited => AgentReport::RunnerExited { exit_code: event.exit_code },
        };
        service.report(&machine, &secret, report).await?;
        Ok::<_, Refusal>(StatusCode::NO_CONTENT)
    }
    .await;
    result.into_response()
}
