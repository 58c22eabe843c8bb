//! GitHub Actions reads as an installation: the installation's repositories, a repository's workflow
//! runs (derived from its jobs, filterable by status), and a run's jobs.

use super::Shared;
use super::auth::{installation_from_token, repo_of};
use super::http::{self, ApiError, ApiResult};
use super::state::{JobRecord, State};
use crate::webhook::{github_time, workflow_job_json};
use axum::extract::{Path, Query, State as AxumState};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use ghr_core::job::JobStatus;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// GitHub returns at most this many workflow runs when the list is filtered (by `status`, among others).
pub(crate) const MAX_FILTERED_RUNS: usize = 1000;
/// Run statuses GitHub accepts in `status` (the others it accepts are conclusions).
const RUN_STATUSES: [&str; 6] = ["queued", "in_progress", "completed", "requested", "waiting", "pending"];
/// Run conclusions GitHub accepts in `status`.
const RUN_CONCLUSIONS: [&str; 8] =
    ["success", "failure", "cancelled", "neutral", "skipped", "stale", "timed_out", "action_required"];
/// `filter` values of a run's job list.
const JOB_FILTERS: [&str; 2] = ["latest", "all"];

/// A workflow run as GitHub summarises it from its jobs.
struct RunView<'a> {
    id: u64,
    jobs: Vec<&'a JobRecord>,
}

impl RunView<'_> {
    /// `queued` until a job starts, `completed` once all have, `in_progress` in between (GitHub's rule:
    /// a run with a started or finished job and a queued one is in progress).
    fn status(&self) -> &'static str {
        if self.jobs.iter().all(|job| job.status == JobStatus::Completed) {
            "completed"
        } else if self.jobs.iter().all(|job| job.status == JobStatus::Queued) {
            "queued"
        } else {
            "in_progress"
        }
    }

    /// The worst conclusion of a completed run (`failure` over `cancelled` over `success`).
    fn conclusion(&self) -> Option<&'static str> {
        if self.status() != "completed" {
            return None;
        }
        let has = |wanted: &str| self.jobs.iter().any(|job| job.conclusion.as_deref() == Some(wanted));
        Some(if has("failure") {
            "failure"
        } else if has("cancelled") {
            "cancelled"
        } else {
            "success"
        })
    }

    fn matches(&self, filter: &str) -> bool {
        self.status() == filter || self.conclusion() == Some(filter)
    }
}

/// The runs of a repository, newest first.
fn runs_of(state: &State, repo_id: u64) -> Vec<RunView<'_>> {
    let mut runs: BTreeMap<u64, Vec<&JobRecord>> = BTreeMap::new();
    for job in state.jobs.values().filter(|job| job.repo_id == repo_id) {
        runs.entry(job.run_id).or_default().push(job);
    }
    runs.into_iter().rev().map(|(id, jobs)| RunView { id, jobs }).collect()
}

fn run_json(state: &State, base_url: &str, repo_id: u64, run: &RunView<'_>) -> Value {
    let repo = state.repos.get(&repo_id);
    let full_name = repo.map(|repo| state.repo_full_name(repo)).unwrap_or_default();
    let first = run.jobs.first();
    let created_at = run.jobs.iter().map(|job| job.created_at).min();
    json!({
        "id": run.id,
        "name": first.map(|job| job.workflow_name.clone()),
        "head_branch": first.map(|job| job.head_branch.clone()),
        "event": "push",
        "status": run.status(),
        "conclusion": run.conclusion(),
        "run_attempt": 1,
        "created_at": created_at.map(github_time),
        "updated_at": created_at.map(github_time),
        "jobs_url": format!("{base_url}/repos/{full_name}/actions/runs/{}/jobs", run.id),
        "repository": { "id": repo_id, "name": repo.map(|repo| repo.name.clone()), "full_name": full_name },
    })
}

/// `GET /installation/repositories?per_page&page`
pub(crate) async fn installation_repositories(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let all: Vec<Value> = {
        let state = shared.lock();
        let installation_id = installation_from_token(&state, &headers)?;
        let account_id = state
            .installations
            .get(&installation_id)
            .map(|record| record.account_id)
            .ok_or_else(ApiError::not_found)?;
        let owner = state.account_view(account_id);
        state
            .repos
            .values()
            .filter(|repo| repo.owner_id == account_id)
            .map(|repo| {
                json!({
                    "id": repo.id,
                    "name": repo.name,
                    "full_name": state.repo_full_name(repo),
                    "private": true,
                    "owner": owner.as_ref().map(|owner| json!({
                        "login": owner.login.as_str(), "id": owner.id.0, "type": owner.kind.as_str(),
                    })),
                })
            })
            .collect()
    };
    let (per_page, page) = http::page_params(&query);
    let (items, link) = http::paginate(&shared.base_url, uri.path(), &all, per_page, page);
    let body = json!({ "total_count": all.len(), "repository_selection": "all", "repositories": items });
    Ok(http::with_link(StatusCode::OK, body, link))
}

/// `GET /repos/{owner}/{repo}/actions/runs?status&per_page&page`: newest first; with `status` (a run status
/// or conclusion) at most [`MAX_FILTERED_RUNS`].
pub(crate) async fn list_runs(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    uri: Uri,
    Path((owner, repo)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let filter = query.get("status").filter(|status| !status.is_empty());
    if let Some(filter) = filter
        && !RUN_STATUSES.contains(&filter.as_str())
        && !RUN_CONCLUSIONS.contains(&filter.as_str())
    {
        return Err(ApiError::unprocessable(format!("Invalid status {filter:?}")));
    }
    let all: Vec<Value> = {
        let state = shared.lock();
        let installation_id = installation_from_token(&state, &headers)?;
        let repo_id = repo_of(&state, installation_id, &owner, &repo)?;
        let runs = runs_of(&state, repo_id);
        let kept = runs.iter().filter(|run| filter.is_none_or(|filter| run.matches(filter)));
        let limit = if filter.is_some() { MAX_FILTERED_RUNS } else { usize::MAX };
        kept.take(limit).map(|run| run_json(&state, &shared.base_url, repo_id, run)).collect()
    };
    let (per_page, page) = http::page_params(&query);
    let extra = filter.map(|filter| format!("status={filter}")).unwrap_or_default();
    let (items, link) = http::paginate_query(&shared.base_url, uri.path(), &extra, &all, per_page, page);
    Ok(http::with_link(StatusCode::OK, json!({ "total_count": all.len(), "workflow_runs": items }), link))
}

/// `GET /repos/{owner}/{repo}/actions/runs/{run_id}/jobs?filter&per_page&page` (one attempt per run here,
/// so `latest` and `all` agree).
pub(crate) async fn list_run_jobs(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    uri: Uri,
    Path((owner, repo, run_id)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let filter = query.get("filter").map(String::as_str).unwrap_or("latest");
    if !JOB_FILTERS.contains(&filter) {
        return Err(ApiError::unprocessable(format!("Invalid filter {filter:?}")));
    }
    let all: Vec<Value> = {
        let state = shared.lock();
        let installation_id = installation_from_token(&state, &headers)?;
        let repo_id = repo_of(&state, installation_id, &owner, &repo)?;
        let run_id: u64 = run_id.parse().map_err(|_| ApiError::not_found())?;
        let jobs: Vec<Value> = state
            .jobs
            .values()
            .filter(|job| job.repo_id == repo_id && job.run_id == run_id)
            .filter_map(|job| state.job_view(job.id))
            .map(|(payload, repository)| workflow_job_json(&payload, &repository))
            .collect();
        if jobs.is_empty() {
            return Err(ApiError::not_found());
        }
        jobs
    };
    let (per_page, page) = http::page_params(&query);
    let extra = format!("filter={filter}");
    let (items, link) = http::paginate_query(&shared.base_url, uri.path(), &extra, &all, per_page, page);
    Ok(http::with_link(StatusCode::OK, json!({ "total_count": all.len(), "jobs": items }), link))
}
