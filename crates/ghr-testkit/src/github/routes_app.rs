//! The App's own endpoints (App JWT): the App, its installations, installation tokens, and the
//! webhook deliveries log with redelivery.

use super::Shared;
use super::auth::{issue_token, verify_app_jwt};
use super::delivery;
use super::http::{self, ApiError, ApiResult, DEFAULT_PER_PAGE, MAX_PER_PAGE};
use super::state::{DeliveryRecord, InstallationRecord, State};
use crate::webhook::github_time;
use axum::Json;
use axum::extract::{Path, Query, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use ghr_core::ports::DeliveryStatusFilter;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// The App's slug in URLs and payloads.
pub(crate) const APP_SLUG: &str = "ghr-test";

fn installation_json(state: &State, base_url: &str, app_id: u64, installation: &InstallationRecord) -> Value {
    let account = state.accounts.get(&installation.account_id);
    json!({
        "id": installation.id,
        "account": account.map(|account| json!({
            "login": account.login, "id": account.id, "type": account.kind.as_str(),
        })),
        "app_id": app_id,
        "app_slug": APP_SLUG,
        "target_id": installation.account_id,
        "target_type": account.map(|account| account.kind.as_str()),
        "repository_selection": "all",
        "access_tokens_url": format!("{base_url}/app/installations/{}/access_tokens", installation.id),
        "permissions": { "organization_self_hosted_runners": "write", "administration": "write", "actions": "read" },
        "events": ["workflow_job"],
        "created_at": github_time(installation.created_at),
        "suspended_at": installation.suspended_at.map(github_time),
    })
}

fn parse_id(raw: &str) -> ApiResult<u64> {
    raw.parse().map_err(|_| ApiError::not_found())
}

/// `GET /app`
pub(crate) async fn get_app(AxumState(shared): AxumState<Arc<Shared>>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    verify_app_jwt(&shared, &headers)?;
    let count = shared.lock().installations.len();
    Ok(Json(json!({
        "id": shared.config.app_id,
        "slug": APP_SLUG,
        "name": "ghr test app",
        "owner": { "login": "ghr", "id": 1, "type": "Organization" },
        "permissions": { "organization_self_hosted_runners": "write", "administration": "write", "actions": "read" },
        "events": ["workflow_job"],
        "installations_count": count,
    })))
}

/// `GET /app/installations?per_page&page`
pub(crate) async fn list_installations(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    verify_app_jwt(&shared, &headers)?;
    let all: Vec<Value> = {
        let state = shared.lock();
        state
            .installations
            .values()
            .map(|installation| installation_json(&state, &shared.base_url, shared.config.app_id, installation))
            .collect()
    };
    let (per_page, page) = http::page_params(&query);
    let (items, link) = http::paginate(&shared.base_url, uri.path(), &all, per_page, page);
    Ok(http::with_link(StatusCode::OK, Value::Array(items), link))
}

/// `GET /app/installations/{installation_id}`
pub(crate) async fn get_installation(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    Path(installation_id): Path<String>,
) -> ApiResult<Json<Value>> {
    verify_app_jwt(&shared, &headers)?;
    let installation_id = parse_id(&installation_id)?;
    let state = shared.lock();
    let installation = state.installations.get(&installation_id).ok_or_else(ApiError::not_found)?;
    Ok(Json(installation_json(&state, &shared.base_url, shared.config.app_id, installation)))
}

/// `GET /orgs/{org}/installation`
pub(crate) async fn get_org_installation(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    Path(org): Path<String>,
) -> ApiResult<Json<Value>> {
    verify_app_jwt(&shared, &headers)?;
    let state = shared.lock();
    let account = state.account_by_login(&org).ok_or_else(ApiError::not_found)?;
    let installation = state.installation_of_account(account.id).ok_or_else(ApiError::not_found)?;
    Ok(Json(installation_json(&state, &shared.base_url, shared.config.app_id, installation)))
}

/// `POST /app/installations/{installation_id}/access_tokens`
pub(crate) async fn create_access_token(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    Path(installation_id): Path<String>,
) -> ApiResult<Response> {
    shared.lock().counters.token_requests += 1;
    verify_app_jwt(&shared, &headers)?;
    let installation_id = parse_id(&installation_id)?;
    let mut state = shared.lock();
    let installation = state.installations.get(&installation_id).ok_or_else(ApiError::not_found)?;
    if installation.suspended_at.is_some() {
        return Err(ApiError::forbidden("This installation has been suspended"));
    }
    let (token, expires_at) = issue_token(&mut state, installation_id, shared.config.installation_token_ttl);
    state.counters.tokens_issued += 1;
    let body = json!({
        "token": token,
        // Whole seconds, rounded down: a client refreshing at this time is never late.
        "expires_at": github_time(expires_at),
        "permissions": { "organization_self_hosted_runners": "write", "administration": "write", "actions": "read" },
        "repository_selection": "all",
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Prefix of the emulator's opaque delivery cursors (GitHub's look like `v1_12077215967`).
const CURSOR_PREFIX: &str = "v1_";

/// A cursor that continues after (older than) delivery `id`.
fn cursor_after(id: u64) -> String {
    format!("{CURSOR_PREFIX}{id}")
}

fn parse_cursor(cursor: &str) -> ApiResult<u64> {
    cursor
        .strip_prefix(CURSOR_PREFIX)
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| ApiError::bad_request(format!("Invalid cursor: {cursor:?}")))
}

fn delivery_json(record: &DeliveryRecord) -> Value {
    json!({
        "id": record.id,
        "guid": record.guid,
        "delivered_at": github_time(record.delivered_at),
        "redelivery": record.redelivery,
        "duration": record.duration.as_secs_f64(),
        "status": record.status,
        "status_code": record.status_code,
        "event": record.event,
        "action": record.action,
        "installation_id": record.installation_id,
        "repository_id": record.repository_id,
        "throttled_at": Value::Null,
    })
}

/// `GET /app/hook/deliveries?per_page&cursor&status`: newest first, at most the configured delivery-log
/// limit in all. `status` keeps `success` (200-399) or `failure` (anything else) attempts; `cursor` is the
/// opaque position the previous page's `Link: <...>; rel="next"` named (the filter is carried along).
pub(crate) async fn list_deliveries(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    verify_app_jwt(&shared, &headers)?;
    let per_page = query
        .get("per_page")
        .and_then(|value| value.parse::<usize>().ok())
        .map_or(DEFAULT_PER_PAGE, |value| value.clamp(1, MAX_PER_PAGE));
    let status = match query.get("status").map(String::as_str) {
        None | Some("") => None,
        Some(text) => Some(DeliveryStatusFilter::parse(text).ok_or_else(|| {
            ApiError::unprocessable(format!("Invalid status {text:?}: must be one of success, failure"))
        })?),
    };
    let before = match query.get("cursor").map(String::as_str) {
        None | Some("") => u64::MAX,
        Some(cursor) => parse_cursor(cursor)?,
    };
    let (items, more) =
        {
            let state = shared.lock();
            let mut newest_first =
                state.deliveries.range(..before).rev().map(|(_, record)| record).filter(|record| {
                    status.is_none_or(|status| DeliveryStatusFilter::of(record.status_code) == status)
                });
            let items: Vec<(u64, Value)> =
                newest_first.by_ref().take(per_page).map(|record| (record.id, delivery_json(record))).collect();
            (items, newest_first.next().is_some())
        };
    let link = match (more, items.last()) {
        (true, Some((last_id, _))) => {
            let filter = status.map(|status| format!("&status={}", status.as_str())).unwrap_or_default();
            let cursor = cursor_after(*last_id);
            let next = format!(
                "<{}/app/hook/deliveries?per_page={per_page}{filter}&cursor={cursor}>; rel=\"next\"",
                shared.base_url
            );
            HeaderValue::from_str(&next).ok()
        }
        _ => None,
    };
    let body = Value::Array(items.into_iter().map(|(_, item)| item).collect());
    Ok(http::with_link(StatusCode::OK, body, link))
}

/// `POST /app/hook/deliveries/{delivery_id}/attempts`: 202, then the delivery is sent again.
pub(crate) async fn redeliver(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    Path(delivery_id): Path<String>,
) -> ApiResult<Response> {
    verify_app_jwt(&shared, &headers)?;
    let delivery_id = parse_id(&delivery_id)?;
    if delivery::redeliver(&shared, delivery_id).is_none() {
        return Err(ApiError::not_found());
    }
    Ok((StatusCode::ACCEPTED, Json(json!({}))).into_response())
}
