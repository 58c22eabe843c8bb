//! Emulator-only endpoints the emulated runner uses (connect with the JIT credential, long-poll
//! for a job, heartbeat, complete), GitHub's job assignment, and the reaper of lost runners.

use super::Shared;
use super::auth::random_secret;
use super::delivery;
use super::http::{ApiError, ApiResult};
use super::state::State;
use crate::protocol::{
    AcquireRequest, AssignedJob, CompleteRequest, CompleteResponse, ConnectRequest, ConnectResponse, HeartbeatRequest,
    Secret,
};
use axum::Json;
use axum::extract::State as AxumState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest a runner's poll is held open.
pub(crate) const MAX_ACQUIRE_WAIT: Duration = Duration::from_secs(30);
/// Conclusions a runner may report (GitHub's set).
const CONCLUSIONS: [&str; 7] =
    ["success", "failure", "cancelled", "skipped", "neutral", "timed_out", "action_required"];
/// The conclusion of a job whose runner stopped answering.
const LOST_RUNNER_CONCLUSION: &str = "failure";
/// Bounds of the reaper's check interval (a quarter of `runner_lost_after`).
const REAPER_MIN_INTERVAL: Duration = Duration::from_millis(10);
const REAPER_MAX_INTERVAL: Duration = Duration::from_secs(1);
const SESSION_CHARS: usize = 32;

fn gone() -> Response {
    ApiError::new(StatusCode::GONE, "The runner registration has been removed").into_response()
}

/// The runner of a session (it may have been removed since).
fn session_runner(state: &State, session: &Secret) -> ApiResult<u64> {
    state.sessions.get(session.expose()).copied().ok_or_else(|| ApiError::unauthorized("Unknown runner session"))
}

/// `POST /_emulator/runner/connect`: consume the one-time credential.
pub(crate) async fn connect(
    AxumState(shared): AxumState<Arc<Shared>>,
    Json(request): Json<ConnectRequest>,
) -> ApiResult<Json<ConnectResponse>> {
    let mut state = shared.lock();
    let session = random_secret("sess_", SESSION_CHARS);
    let runner = state
        .runners
        .get_mut(&request.runner_id)
        .ok_or_else(|| ApiError::unauthorized("Unknown runner or credential"))?;
    match &runner.credential {
        Some(credential) if credential == request.credential.expose() => {}
        None if runner.connected => {
            return Err(ApiError::conflict("This runner's JIT configuration has already been used"));
        }
        _ => return Err(ApiError::unauthorized("Unknown runner or credential")),
    }
    runner.credential = None;
    runner.connected = true;
    runner.last_seen = Some(Instant::now());
    let response = ConnectResponse {
        session: Secret::new(session.clone()),
        runner_id: runner.id,
        runner_name: runner.name.clone(),
    };
    state.sessions.insert(session, request.runner_id);
    tracing::debug!(runner = request.runner_id, "emulated runner connected");
    Ok(Json(response))
}

/// Marks a runner as polling while a long-poll is open.
struct PollGuard<'a> {
    shared: &'a Shared,
    runner_id: u64,
}

impl<'a> PollGuard<'a> {
    fn enter(shared: &'a Shared, runner_id: u64) -> Option<Self> {
        let mut state = shared.lock();
        let runner = state.runners.get_mut(&runner_id)?;
        runner.active_polls += 1;
        runner.last_seen = Some(Instant::now());
        Some(Self { shared, runner_id })
    }
}

impl Drop for PollGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        if let Some(runner) = state.runners.get_mut(&self.runner_id) {
            runner.active_polls = runner.active_polls.saturating_sub(1);
            runner.last_seen = Some(Instant::now());
        }
    }
}

fn assigned_job(state: &State, job_id: u64) -> Option<AssignedJob> {
    let job = state.jobs.get(&job_id)?;
    let repo = state.repos.get(&job.repo_id)?;
    Some(AssignedJob {
        job_id,
        run_id: job.run_id,
        repository: state.repo_full_name(repo),
        labels: job.labels.clone(),
        duration_ms: u64::try_from(job.duration.as_millis()).unwrap_or(u64::MAX),
        conclusion: job.planned_conclusion.clone(),
    })
}

/// `POST /_emulator/runner/acquire`: 200 with a job, 204 when none came in time, 410 when the
/// registration was removed, 503 when the emulator shuts down.
pub(crate) async fn acquire(
    AxumState(shared): AxumState<Arc<Shared>>,
    Json(request): Json<AcquireRequest>,
) -> Response {
    let deadline = Instant::now() + Duration::from_millis(request.wait_ms).min(MAX_ACQUIRE_WAIT);
    let runner_id = match session_runner(&shared.lock(), &request.session) {
        Ok(runner_id) => runner_id,
        Err(error) => return error.into_response(),
    };
    let Some(_poll) = PollGuard::enter(&shared, runner_id) else {
        return gone();
    };
    let (job, event) = loop {
        let notified = shared.runners_wakeup.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut state = shared.lock();
            let Some(runner) = state.runners.get(&runner_id) else {
                return gone();
            };
            let earlier = runner.job_id;
            if let Some(job_id) = earlier.or_else(|| state.assign_job(runner_id, Utc::now())) {
                // The webhook goes out once, when GitHub assigns the job; a repeated poll gets the same job.
                let event = if earlier.is_none() { state.job_event(job_id, "in_progress") } else { None };
                match assigned_job(&state, job_id) {
                    Some(job) => break (job, event),
                    None => return ApiError::not_found().into_response(),
                }
            }
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return StatusCode::NO_CONTENT.into_response();
        }
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep(remaining) => return StatusCode::NO_CONTENT.into_response(),
            () = shared.shutting_down() => {
                return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "The emulator is shutting down").into_response();
            }
        }
    };
    tracing::debug!(runner = runner_id, job = job.job_id, "job assigned");
    if let Some(event) = event
        && let Err(error) = delivery::finish(delivery::dispatch(&shared, event)).await
    {
        tracing::warn!(error = %error, "in_progress webhook task failed");
    }
    Json(job).into_response()
}

/// `POST /_emulator/runner/heartbeat`: the runner is alive (while it runs a job).
pub(crate) async fn heartbeat(
    AxumState(shared): AxumState<Arc<Shared>>,
    Json(request): Json<HeartbeatRequest>,
) -> Response {
    let mut state = shared.lock();
    let runner_id = match session_runner(&state, &request.session) {
        Ok(runner_id) => runner_id,
        Err(error) => return error.into_response(),
    };
    match state.runners.get_mut(&runner_id) {
        Some(runner) => {
            runner.last_seen = Some(Instant::now());
            StatusCode::NO_CONTENT.into_response()
        }
        None => gone(),
    }
}

/// `POST /_emulator/runner/complete`: the job is done; the ephemeral registration goes away.
pub(crate) async fn complete(
    AxumState(shared): AxumState<Arc<Shared>>,
    Json(request): Json<CompleteRequest>,
) -> Response {
    if !CONCLUSIONS.contains(&request.conclusion.as_str()) {
        return ApiError::unprocessable(format!("Unknown conclusion {:?}", request.conclusion)).into_response();
    }
    let (conclusion, event) = {
        let mut state = shared.lock();
        let runner_id = match session_runner(&state, &request.session) {
            Ok(runner_id) => runner_id,
            Err(error) => return error.into_response(),
        };
        let Some(runner) = state.runners.get(&runner_id) else {
            return gone();
        };
        if runner.job_id != Some(request.job_id) {
            return ApiError::conflict("The job is not assigned to this runner").into_response();
        }
        let changed = state.complete_job(request.job_id, &request.conclusion, Utc::now());
        let conclusion = state.jobs.get(&request.job_id).and_then(|job| job.conclusion.clone());
        state.remove_runner(runner_id);
        let event = if changed { state.job_event(request.job_id, "completed") } else { None };
        (conclusion.unwrap_or(request.conclusion), event)
    };
    if let Some(event) = event
        && let Err(error) = delivery::finish(delivery::dispatch(&shared, event)).await
    {
        tracing::warn!(error = %error, "completed webhook task failed");
    }
    Json(CompleteResponse { conclusion }).into_response()
}

/// Fail the jobs of busy runners that stopped sending heartbeats and remove those registrations,
/// until the emulator shuts down.
pub(crate) async fn reap_lost_runners(shared: Arc<Shared>) {
    let lost_after = shared.config.runner_lost_after;
    let interval = (lost_after / 4).clamp(REAPER_MIN_INTERVAL, REAPER_MAX_INTERVAL);
    loop {
        tokio::select! {
            () = shared.shutting_down() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let events = {
            let mut state = shared.lock();
            let lost: Vec<(u64, u64)> = state
                .runners
                .values()
                .filter(|runner| runner.active_polls == 0)
                .filter(|runner| runner.last_seen.is_some_and(|seen| seen.elapsed() >= lost_after))
                .filter_map(|runner| runner.job_id.map(|job_id| (runner.id, job_id)))
                .collect();
            let now = Utc::now();
            let mut events = Vec::new();
            for (runner_id, job_id) in lost {
                tracing::debug!(runner = runner_id, job = job_id, "runner lost; failing its job");
                state.remove_runner(runner_id);
                if state.complete_job(job_id, LOST_RUNNER_CONCLUSION, now) {
                    events.extend(state.job_event(job_id, "completed"));
                }
            }
            events
        };
        for event in events {
            delivery::dispatch(&shared, event);
        }
    }
}
