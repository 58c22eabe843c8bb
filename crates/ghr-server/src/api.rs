//! `/api/v1`: the admin REST API over [`Admin`], bearer-token protected. Documented in `openapi.json`.

use crate::AppState;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use ghr_api::{
    ApiError, ErrorBody, JobsQuery, NewTenantRequest, ReconcilerStatus, RunnersQuery, SetTierRequest, TenantAction,
    TenantsQuery, UsageQuery,
};
use ghr_core::ids::InstallationId;
use ghr_core::text::clip_to;
use secrecy::ExposeSecret;
use serde::Deserialize;
use subtle::ConstantTimeEq;

/// Every admin route as (method, path template); the OpenAPI test checks the spec against this list.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/tenants"),
    ("post", "/api/v1/tenants"),
    ("get", "/api/v1/tenants/{tenant}"),
    ("put", "/api/v1/tenants/{tenant}/tier"),
    ("post", "/api/v1/tenants/{tenant}/suspend"),
    ("post", "/api/v1/tenants/{tenant}/resume"),
    ("post", "/api/v1/tenants/{tenant}/approve"),
    ("get", "/api/v1/runners"),
    ("get", "/api/v1/jobs"),
    ("get", "/api/v1/jobs/{job}"),
    ("get", "/api/v1/usage"),
    ("get", "/api/v1/reconciler"),
];

/// The longest error message an answer carries: messages quote input (a tenant reference, an org name) and
/// must not echo a megabyte of it back.
const ANSWER_MESSAGE_MAX_CHARS: usize = 1024;

/// An [`ApiError`] as an HTTP answer: its status and the JSON [`ErrorBody`].
#[derive(Debug)]
pub struct ApiFailure(pub ApiError);

impl From<ApiError> for ApiFailure {
    fn from(error: ApiError) -> Self {
        ApiFailure(error)
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let error = self.0;
        let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        // Internal details stay in the logs.
        let message = match &error {
            ApiError::Internal(_) => "internal error; see the server logs".to_owned(),
            other => clip_to(&other.to_string(), ANSWER_MESSAGE_MAX_CHARS).into_owned(),
        };
        (status, Json(ErrorBody { error: error.code().to_owned(), message })).into_response()
    }
}

fn bad_query(rejection: QueryRejection) -> ApiError {
    ApiError::BadRequest(rejection.body_text())
}

fn bad_json(rejection: JsonRejection) -> ApiError {
    ApiError::BadRequest(rejection.body_text())
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/tenants", get(tenants_list).post(tenant_add))
        .route("/api/v1/tenants/{tenant}", get(tenant_show))
        .route("/api/v1/tenants/{tenant}/tier", put(tenant_set_tier))
        .route("/api/v1/tenants/{tenant}/suspend", post(tenant_suspend))
        .route("/api/v1/tenants/{tenant}/resume", post(tenant_resume))
        .route("/api/v1/tenants/{tenant}/approve", post(tenant_approve))
        .route("/api/v1/runners", get(runners_list))
        .route("/api/v1/jobs", get(jobs_list))
        .route("/api/v1/jobs/{job}", get(job_show))
        .route("/api/v1/usage", get(usage))
        .route("/api/v1/reconciler", get(reconciler))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

async fn require_token(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let authorised = match (&app.admin_token, presented) {
        (Some(expected), Some(given)) => bool::from(expected.expose_secret().as_bytes().ct_eq(given.as_bytes())),
        _ => false,
    };
    if authorised {
        next.run(request).await
    } else {
        let mut response = ApiFailure(ApiError::Unauthorized).into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"ghr\""));
        response
    }
}

async fn tenants_list(
    State(app): State<AppState>,
    query: Result<Query<TenantsQuery>, QueryRejection>,
) -> Result<Response, ApiFailure> {
    let Query(query) = query.map_err(bad_query)?;
    Ok(Json(app.admin.tenants_list(query).await?).into_response())
}

async fn tenant_add(
    State(app): State<AppState>,
    body: Result<Json<NewTenantRequest>, JsonRejection>,
) -> Result<Response, ApiFailure> {
    let Json(body) = body.map_err(bad_json)?;
    let tenant = app.admin.tenant_add(body).await?;
    // Jobs of the installation may already wait (`unknown_tenant`): plan for it now.
    app.dispatcher_wake.tenant(InstallationId(tenant.installation_id));
    Ok((StatusCode::CREATED, Json(tenant)).into_response())
}

async fn tenant_show(State(app): State<AppState>, Path(tenant): Path<String>) -> Result<Response, ApiFailure> {
    Ok(Json(app.admin.tenant_show(&tenant).await?).into_response())
}

async fn tenant_set_tier(
    State(app): State<AppState>,
    Path(tenant): Path<String>,
    body: Result<Json<SetTierRequest>, JsonRejection>,
) -> Result<Response, ApiFailure> {
    let Json(body) = body.map_err(bad_json)?;
    let tenant = app.admin.tenant_set_tier(&tenant, body).await?;
    // A new plan or limit changes what the tenant's waiting jobs may start: plan for it now.
    app.dispatcher_wake.tenant(InstallationId(tenant.installation_id));
    Ok(Json(tenant).into_response())
}

async fn tenant_action(app: &AppState, tenant: &str, action: TenantAction) -> Result<Response, ApiFailure> {
    let tenant = app.admin.tenant_action(tenant, action).await?;
    app.dispatcher_wake.tenant(InstallationId(tenant.installation_id));
    Ok(Json(tenant).into_response())
}

async fn tenant_suspend(State(app): State<AppState>, Path(tenant): Path<String>) -> Result<Response, ApiFailure> {
    tenant_action(&app, &tenant, TenantAction::Suspend).await
}

async fn tenant_resume(State(app): State<AppState>, Path(tenant): Path<String>) -> Result<Response, ApiFailure> {
    tenant_action(&app, &tenant, TenantAction::Resume).await
}

async fn tenant_approve(State(app): State<AppState>, Path(tenant): Path<String>) -> Result<Response, ApiFailure> {
    tenant_action(&app, &tenant, TenantAction::Approve).await
}

async fn runners_list(
    State(app): State<AppState>,
    query: Result<Query<RunnersQuery>, QueryRejection>,
) -> Result<Response, ApiFailure> {
    let Query(query) = query.map_err(bad_query)?;
    Ok(Json(app.admin.runners_list(query).await?).into_response())
}

async fn jobs_list(
    State(app): State<AppState>,
    query: Result<Query<JobsQuery>, QueryRejection>,
) -> Result<Response, ApiFailure> {
    let Query(query) = query.map_err(bad_query)?;
    Ok(Json(app.admin.jobs_list(query).await?).into_response())
}

async fn job_show(State(app): State<AppState>, Path(job): Path<String>) -> Result<Response, ApiFailure> {
    let id = job.trim().parse::<u64>().map_err(|_| ApiError::BadRequest(format!("job id {job:?} is not a number")))?;
    Ok(Json(app.admin.job_show(id).await?).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageParams {
    from: Option<String>,
    to: Option<String>,
    tenant: Option<String>,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

fn instant(name: &str, value: Option<String>) -> Result<Option<ghr_core::Timestamp>, ApiError> {
    ghr_api::model::parse_instant(name, value.as_deref()).map_err(ApiError::BadRequest)
}

async fn usage(
    State(app): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<UsageParams>, QueryRejection>,
) -> Result<Response, ApiFailure> {
    let Query(params) = query.map_err(bad_query)?;
    let csv = match params.format.as_deref() {
        Some("csv") => true,
        Some("json") => false,
        Some(other) => return Err(ApiError::BadRequest(format!("unknown format {other:?}: use json or csv")).into()),
        None => headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/csv")),
    };
    let query =
        UsageQuery { from: instant("from", params.from)?, to: instant("to", params.to)?, tenant: params.tenant };
    let report = app.admin.usage(query).await?;
    if csv {
        Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], report.to_csv()).into_response())
    } else {
        Ok(Json(report).into_response())
    }
}

async fn reconciler(State(app): State<AppState>) -> Result<Response, ApiFailure> {
    let last = app.reconciler.as_ref().and_then(|r| r.last_report());
    let status = ReconcilerStatus {
        last_pass_at: last.as_ref().map(|(at, _)| *at),
        report: last
            .map(|(_, report)| serde_json::to_value(report))
            .transpose()
            .map_err(|e| ApiError::Internal(format!("cannot encode the reconciler report: {e}")))?,
    };
    Ok(Json(status).into_response())
}
