//! Installation endpoints for self-hosted runners (groups, JIT configs, list/get/delete at org and
//! repository scope) and workflow jobs.

use super::Shared;
use super::auth::{installation_from_token, org_account, random_secret, repo_of};
use super::http::{self, ApiError, ApiResult};
use super::state::{DEFAULT_RUNNER_GROUP_ID, DEFAULT_RUNNER_GROUP_NAME, RunnerRecord, Scope, State};
use crate::protocol::{JitConfigPayload, Secret};
use crate::webhook::workflow_job_json;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxumState};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// GitHub accepts at most this many labels in a JIT request.
const MAX_JIT_LABELS: usize = 100;
/// Length of the random one-time runner credential.
const CREDENTIAL_CHARS: usize = 40;

fn runner_json(runner: &RunnerRecord) -> Value {
    json!({
        "id": runner.id,
        "name": runner.name,
        "os": "linux",
        "status": if runner.online() { "online" } else { "offline" },
        "busy": runner.job_id.is_some(),
        "ephemeral": true,
        "runner_group_id": runner.group_id,
        "labels": runner.labels.iter().map(|(id, name)| json!({ "id": id, "name": name, "type": "custom" })).collect::<Vec<_>>(),
    })
}

fn org_scope(state: &State, headers: &HeaderMap, org: &str) -> ApiResult<Scope> {
    let installation_id = installation_from_token(state, headers)?;
    Ok(Scope::Org(org_account(state, installation_id, org)?))
}

fn repo_scope(state: &State, headers: &HeaderMap, owner: &str, repo: &str) -> ApiResult<Scope> {
    let installation_id = installation_from_token(state, headers)?;
    Ok(Scope::Repo(repo_of(state, installation_id, owner, repo)?))
}

fn parse_id(raw: &str) -> ApiResult<u64> {
    raw.parse().map_err(|_| ApiError::not_found())
}

/// `GET /orgs/{org}/actions/runner-groups`
pub(crate) async fn list_runner_groups(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    uri: Uri,
    Path(org): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let groups: Vec<Value> = {
        let state = shared.lock();
        let Scope::Org(account_id) = org_scope(&state, &headers, &org)? else {
            return Err(ApiError::not_found());
        };
        let groups = state.groups.get(&account_id).map(Vec::as_slice).unwrap_or_default();
        groups
            .iter()
            .map(|group| {
                json!({
                    "id": group.id,
                    "name": group.name,
                    "visibility": "all",
                    "default": group.id == DEFAULT_RUNNER_GROUP_ID,
                    "inherited": false,
                    "allows_public_repositories": false,
                    "restricted_to_workflows": false,
                    "selected_workflows": [],
                    "runners_url": format!("{}/orgs/{org}/actions/runner-groups/{}/runners", shared.base_url, group.id),
                })
            })
            .collect()
    };
    let (per_page, page) = http::page_params(&query);
    let (items, link) = http::paginate(&shared.base_url, uri.path(), &groups, per_page, page);
    Ok(http::with_link(StatusCode::OK, json!({ "total_count": groups.len(), "runner_groups": items }), link))
}

/// `GET /orgs/{org}/actions/runners`
pub(crate) async fn list_org_runners(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    uri: Uri,
    Path(org): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let scope = org_scope(&shared.lock(), &headers, &org)?;
    Ok(list_runners(&shared, scope, &uri, &query))
}

/// `GET /repos/{owner}/{repo}/actions/runners`
pub(crate) async fn list_repo_runners(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    uri: Uri,
    Path((owner, repo)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let scope = repo_scope(&shared.lock(), &headers, &owner, &repo)?;
    Ok(list_runners(&shared, scope, &uri, &query))
}

fn list_runners(shared: &Shared, scope: Scope, uri: &Uri, query: &HashMap<String, String>) -> Response {
    let name = query.get("name");
    let runners: Vec<Value> = shared
        .lock()
        .runners
        .values()
        .filter(|runner| runner.scope == scope)
        .filter(|runner| name.is_none_or(|name| runner.name.eq_ignore_ascii_case(name)))
        .map(runner_json)
        .collect();
    let (per_page, page) = http::page_params(query);
    let (items, link) = http::paginate(&shared.base_url, uri.path(), &runners, per_page, page);
    http::with_link(StatusCode::OK, json!({ "total_count": runners.len(), "runners": items }), link)
}

/// `GET /orgs/{org}/actions/runners/{runner_id}`
pub(crate) async fn get_org_runner(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    Path((org, runner_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let state = shared.lock();
    let scope = org_scope(&state, &headers, &org)?;
    get_runner(&state, scope, &runner_id)
}

/// `GET /repos/{owner}/{repo}/actions/runners/{runner_id}`
pub(crate) async fn get_repo_runner(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    Path((owner, repo, runner_id)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let state = shared.lock();
    let scope = repo_scope(&state, &headers, &owner, &repo)?;
    get_runner(&state, scope, &runner_id)
}

fn get_runner(state: &State, scope: Scope, runner_id: &str) -> ApiResult<Json<Value>> {
    let runner_id = parse_id(runner_id)?;
    let runner =
        state.runners.get(&runner_id).filter(|runner| runner.scope == scope).ok_or_else(ApiError::not_found)?;
    Ok(Json(runner_json(runner)))
}

/// `DELETE /orgs/{org}/actions/runners/{runner_id}`
pub(crate) async fn delete_org_runner(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    Path((org, runner_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let scope = org_scope(&shared.lock(), &headers, &org)?;
    delete_runner(&shared, scope, &runner_id)
}

/// `DELETE /repos/{owner}/{repo}/actions/runners/{runner_id}`
pub(crate) async fn delete_repo_runner(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    Path((owner, repo, runner_id)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let scope = repo_scope(&shared.lock(), &headers, &owner, &repo)?;
    delete_runner(&shared, scope, &runner_id)
}

fn delete_runner(shared: &Shared, scope: Scope, runner_id: &str) -> ApiResult<StatusCode> {
    let runner_id = parse_id(runner_id)?;
    let mut state = shared.lock();
    let runner =
        state.runners.get(&runner_id).filter(|runner| runner.scope == scope).ok_or_else(ApiError::not_found)?;
    if runner.job_id.is_some() {
        return Err(ApiError::unprocessable(format!(
            "Bad request - Runner \"{}\" is still running a job\"",
            runner.name
        )));
    }
    state.remove_runner(runner_id);
    drop(state);
    // A runner waiting for a job learns at once that its registration is gone.
    shared.runners_wakeup.notify_waiters();
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /orgs/{org}/actions/runners/generate-jitconfig`
pub(crate) async fn org_jit_config(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    Path(org): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let mut state = shared.lock();
    let scope = org_scope(&state, &headers, &org)?;
    create_jit_config(&shared, &mut state, scope, &body)
}

/// `POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig`
pub(crate) async fn repo_jit_config(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    Path((owner, repo)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let mut state = shared.lock();
    let scope = repo_scope(&state, &headers, &owner, &repo)?;
    create_jit_config(&shared, &mut state, scope, &body)
}

/// The validated body of a JIT request.
struct JitRequest {
    name: String,
    runner_group_id: u64,
    labels: Vec<String>,
}

fn parse_jit_request(body: &[u8]) -> ApiResult<JitRequest> {
    let body: Value = serde_json::from_slice(body).map_err(|_| ApiError::bad_request("Problems parsing JSON"))?;
    let name = match body.get("name") {
        Some(Value::String(name)) if !name.trim().is_empty() => name.trim().to_owned(),
        _ => return Err(ApiError::unprocessable("Invalid request.\n\n\"name\" wasn't supplied.")),
    };
    let Some(runner_group_id) = body.get("runner_group_id").and_then(Value::as_u64) else {
        return Err(ApiError::unprocessable("Invalid request.\n\n\"runner_group_id\" wasn't supplied."));
    };
    let labels: Vec<String> = match body.get("labels") {
        Some(Value::Array(labels)) => labels.iter().filter_map(Value::as_str).map(str::to_owned).collect::<Vec<_>>(),
        _ => return Err(ApiError::unprocessable("Invalid request.\n\n\"labels\" wasn't supplied.")),
    };
    let label_count = body.get("labels").and_then(Value::as_array).map_or(0, Vec::len);
    if labels.len() != label_count || labels.iter().any(|label| label.trim().is_empty()) {
        return Err(ApiError::unprocessable("Invalid request.\n\nEvery label must be a non-empty string."));
    }
    if labels.is_empty() || labels.len() > MAX_JIT_LABELS {
        return Err(ApiError::unprocessable(format!(
            "Invalid request.\n\n\"labels\" must have between 1 and {MAX_JIT_LABELS} items."
        )));
    }
    if body.get("work_folder").is_some_and(|folder| !folder.is_string()) {
        return Err(ApiError::unprocessable("Invalid request.\n\n\"work_folder\" must be a string."));
    }
    Ok(JitRequest { name, runner_group_id, labels })
}

fn create_jit_config(shared: &Shared, state: &mut State, scope: Scope, body: &[u8]) -> ApiResult<Response> {
    let request = parse_jit_request(body)?;
    let group_name = match scope {
        Scope::Org(account_id) => state
            .groups
            .get(&account_id)
            .and_then(|groups| groups.iter().find(|group| group.id == request.runner_group_id))
            .map(|group| group.name.clone()),
        Scope::Repo(_) => {
            (request.runner_group_id == DEFAULT_RUNNER_GROUP_ID).then(|| DEFAULT_RUNNER_GROUP_NAME.to_owned())
        }
    };
    let Some(group_name) = group_name else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "Runner group not found"));
    };
    let duplicate =
        state.runners.values().any(|runner| runner.scope == scope && runner.name.eq_ignore_ascii_case(&request.name));
    if duplicate {
        return Err(ApiError::conflict(format!(
            "Already exists - A runner with the name {} already exists.",
            request.name
        )));
    }
    let id = state.next_id();
    let mut labels: Vec<(u64, String)> = Vec::with_capacity(request.labels.len());
    for label in &request.labels {
        let label = label.trim().to_lowercase();
        if !labels.iter().any(|(_, existing)| *existing == label) {
            labels.push((state.next_id(), label));
        }
    }
    let credential = random_secret("", CREDENTIAL_CHARS);
    let runner = RunnerRecord {
        id,
        name: request.name.clone(),
        scope,
        group_id: request.runner_group_id,
        group_name,
        labels,
        credential: Some(credential.clone()),
        connected: false,
        active_polls: 0,
        last_seen: None,
        job_id: None,
    };
    let body = json!({
        "runner": runner_json(&runner),
        "encoded_jit_config": JitConfigPayload {
            url: shared.base_url.clone(),
            runner_id: id,
            runner_name: request.name,
            credential: Secret::new(credential),
        }
        .encode(),
    });
    state.runners.insert(id, runner);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /repos/{owner}/{repo}/actions/jobs/{job_id}`
pub(crate) async fn get_job(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    Path((owner, repo, job_id)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let state = shared.lock();
    let Scope::Repo(repo_id) = repo_scope(&state, &headers, &owner, &repo)? else {
        return Err(ApiError::not_found());
    };
    let job_id = parse_id(&job_id)?;
    let job = state.jobs.get(&job_id).filter(|job| job.repo_id == repo_id).ok_or_else(ApiError::not_found)?;
    let (payload, repository) = state.job_view(job.id).ok_or_else(ApiError::not_found)?;
    Ok(Json(workflow_job_json(&payload, &repository)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jit_requests_are_validated_like_github() {
        let status = |body: &str| parse_jit_request(body.as_bytes()).err().map(|error| error.status);
        assert_eq!(status(r#"{"name":"r","runner_group_id":1,"labels":["a"]}"#), None);
        assert_eq!(status("{"), Some(StatusCode::BAD_REQUEST));
        assert_eq!(status(r#"{"runner_group_id":1,"labels":["a"]}"#), Some(StatusCode::UNPROCESSABLE_ENTITY));
        assert_eq!(
            status(r#"{"name":" ","runner_group_id":1,"labels":["a"]}"#),
            Some(StatusCode::UNPROCESSABLE_ENTITY)
        );
        assert_eq!(status(r#"{"name":"r","labels":["a"]}"#), Some(StatusCode::UNPROCESSABLE_ENTITY));
        assert_eq!(status(r#"{"name":"r","runner_group_id":1,"labels":[]}"#), Some(StatusCode::UNPROCESSABLE_ENTITY));
        assert_eq!(status(r#"{"name":"r","runner_group_id":1,"labels":[1]}"#), Some(StatusCode::UNPROCESSABLE_ENTITY));
        let many: Vec<String> = (0..101).map(|i| format!("\"l{i}\"")).collect();
        let body = format!(r#"{{"name":"r","runner_group_id":1,"labels":[{}]}}"#, many.join(","));
        assert_eq!(status(&body), Some(StatusCode::UNPROCESSABLE_ENTITY));
        let hundred = format!(r#"{{"name":"r","runner_group_id":1,"labels":[{}]}}"#, many[..100].join(","));
        assert_eq!(status(&hundred), None);
    }
}
