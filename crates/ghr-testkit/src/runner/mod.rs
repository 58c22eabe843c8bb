//! The emulated ephemeral runner: consume a JIT config, wait for one job, "run" it (sleep for its
//! planned duration while sending heartbeats), report completion.

pub mod process;

use crate::protocol::{
    ACQUIRE_PATH, AcquireRequest, AssignedJob, COMPLETE_PATH, CONNECT_PATH, CompleteRequest, CompleteResponse,
    ConnectRequest, ConnectResponse, HEARTBEAT_PATH, HeartbeatRequest, JitConfigError, JitConfigPayload, Secret,
};
use ghr_core::ids::GithubRunnerId;
use reqwest::StatusCode;
use serde::Serialize;
use std::time::{Duration, Instant};

/// How long one poll for a job is held open by default.
pub const DEFAULT_POLL_WAIT: Duration = Duration::from_secs(10);
/// How long the emulator may stay unreachable before the runner gives up, by default.
pub const DEFAULT_UNREACHABLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a running job reports that the runner is alive.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(500);
/// Extra time a request may take beyond the poll it asks for.
const REQUEST_SLACK: Duration = Duration::from_secs(5);
/// Timeout of requests that do not wait for anything.
const SHORT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const RETRY_INITIAL_BACKOFF: Duration = Duration::from_millis(50);
const RETRY_MAX_BACKOFF: Duration = Duration::from_secs(1);
const USER_AGENT: &str = "ghr-emulated-runner";

/// How the emulated runner behaves.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// Give up waiting for a job after this long; `None` waits until killed, like a real runner.
    pub idle_timeout: Option<Duration>,
    /// Length of one long-poll. Default [`DEFAULT_POLL_WAIT`].
    pub poll_wait: Duration,
    /// Give up when the emulator does not answer for this long. Default [`DEFAULT_UNREACHABLE_TIMEOUT`].
    pub unreachable_timeout: Duration,
    /// Report this conclusion instead of the job's planned one.
    pub conclusion: Option<String>,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self {
            idle_timeout: None,
            poll_wait: DEFAULT_POLL_WAIT,
            unreachable_timeout: DEFAULT_UNREACHABLE_TIMEOUT,
            conclusion: None,
        }
    }
}

/// How a runner's life ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// It ran the job; `conclusion` is the job's final one (`cancelled` if it was cancelled meanwhile).
    Completed { job: AssignedJob, conclusion: String },
    /// No job came within the idle timeout.
    IdleTimeout,
    /// The registration was removed (deleted through the API, or declared lost).
    Deregistered,
}

/// What [`run_emulated_runner`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub runner_id: GithubRunnerId,
    pub runner_name: String,
    pub end: RunEnd,
}

/// The emulated runner failed.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("reading the JIT config failed")]
    Config {
        #[source]
        source: JitConfigError,
    },
    #[error("building the HTTP client failed")]
    Client {
        #[source]
        source: reqwest::Error,
    },
    #[error("the emulator at {url} did not answer for {waited:?} while trying to {doing}")]
    Unreachable {
        url: String,
        doing: &'static str,
        waited: Duration,
        #[source]
        source: Option<reqwest::Error>,
    },
    #[error("the emulator refused to {doing} (HTTP {status}): {message}")]
    Refused { doing: &'static str, status: u16, message: String },
    #[error("the emulator's answer when trying to {doing} could not be read")]
    Decode {
        doing: &'static str,
        #[source]
        source: reqwest::Error,
    },
}

/// Run one emulated runner to its end: connect, take one job, run it, report it.
pub async fn run_emulated_runner(encoded_jit_config: &str, options: RunnerOptions) -> Result<Outcome, RunnerError> {
    EmulatedRunner::connect(encoded_jit_config, options).await?.run().await
}

/// How waiting for a job ended.
enum Waited {
    Job(AssignedJob),
    IdleTimeout,
    Deregistered,
}

/// A connected emulated runner (its JIT credential is consumed).
#[derive(Debug)]
pub struct EmulatedRunner {
    client: reqwest::Client,
    base_url: String,
    session: Secret,
    runner_id: GithubRunnerId,
    runner_name: String,
    options: RunnerOptions,
}

impl EmulatedRunner {
    /// Decode the JIT config and connect with its one-time credential.
    pub async fn connect(encoded_jit_config: &str, options: RunnerOptions) -> Result<Self, RunnerError> {
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .build()
            .map_err(|source| RunnerError::Client { source })?;
        Self::connect_with(client, encoded_jit_config, options).await
    }

    /// [`EmulatedRunner::connect`] on a given HTTP client (many runners in one process share one: building a
    /// client loads the TLS roots, which is slow).
    pub async fn connect_with(
        client: reqwest::Client,
        encoded_jit_config: &str,
        options: RunnerOptions,
    ) -> Result<Self, RunnerError> {
        let config = JitConfigPayload::decode(encoded_jit_config).map_err(|source| RunnerError::Config { source })?;
        let base_url = config.url.trim_end_matches('/').to_owned();
        let request = ConnectRequest { runner_id: config.runner_id, credential: config.credential };
        let doing = "connect";
        let response = post(&client, &base_url, &options, CONNECT_PATH, &request, SHORT_REQUEST_TIMEOUT, doing).await?;
        let response: ConnectResponse = read_json(expect_ok(response, doing).await?, doing).await?;
        Ok(Self {
            client,
            base_url,
            session: response.session,
            runner_id: GithubRunnerId(response.runner_id),
            runner_name: response.runner_name,
            options,
        })
    }

    pub fn runner_id(&self) -> GithubRunnerId {
        self.runner_id
    }

    pub fn runner_name(&self) -> &str {
        &self.runner_name
    }

    /// Wait for a job, run it, report it.
    pub async fn run(self) -> Result<Outcome, RunnerError> {
        let end = match self.wait_for_job().await? {
            Waited::Job(job) => self.run_job(job).await?,
            Waited::IdleTimeout => RunEnd::IdleTimeout,
            Waited::Deregistered => RunEnd::Deregistered,
        };
        Ok(Outcome { runner_id: self.runner_id, runner_name: self.runner_name, end })
    }

    async fn wait_for_job(&self) -> Result<Waited, RunnerError> {
        let idle_deadline = self.options.idle_timeout.map(|timeout| Instant::now() + timeout);
        loop {
            let wait = match idle_deadline {
                Some(deadline) => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    if remaining.is_zero() {
                        return Ok(Waited::IdleTimeout);
                    }
                    remaining.min(self.options.poll_wait)
                }
                None => self.options.poll_wait,
            };
            match self.acquire(wait).await? {
                Polled::Job(job) => return Ok(Waited::Job(job)),
                Polled::Nothing => {}
                Polled::Deregistered => return Ok(Waited::Deregistered),
            }
        }
    }

    /// One poll, held open for at most `wait`.
    async fn acquire(&self, wait: Duration) -> Result<Polled, RunnerError> {
        let doing = "wait for a job";
        let request = AcquireRequest {
            session: self.session.clone(),
            wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        };
        let response = self.post(ACQUIRE_PATH, &request, wait + REQUEST_SLACK, doing).await?;
        match response.status() {
            StatusCode::OK => read_json(response, doing).await.map(Polled::Job),
            StatusCode::NO_CONTENT => Ok(Polled::Nothing),
            StatusCode::GONE => Ok(Polled::Deregistered),
            _ => Err(refused(response, doing).await),
        }
    }

    async fn run_job(&self, job: AssignedJob) -> Result<RunEnd, RunnerError> {
        let finish_at = Instant::now() + Duration::from_millis(job.duration_ms);
        loop {
            let remaining = finish_at.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            tokio::time::sleep(remaining.min(HEARTBEAT_INTERVAL)).await;
            if Instant::now() < finish_at {
                let request = HeartbeatRequest { session: self.session.clone() };
                let response = self.post(HEARTBEAT_PATH, &request, SHORT_REQUEST_TIMEOUT, "send a heartbeat").await?;
                if response.status() == StatusCode::GONE {
                    return Ok(RunEnd::Deregistered);
                }
            }
        }
        self.finish(&job).await
    }

    async fn post<T: Serialize>(
        &self,
        path: &str,
        body: &T,
        timeout: Duration,
        doing: &'static str,
    ) -> Result<reqwest::Response, RunnerError> {
        post(&self.client, &self.base_url, &self.options, path, body, timeout, doing).await
    }

    /// One poll that does not wait: a job if GitHub assigns one now (step-wise use, e.g. a simulation that
    /// decides when each runner acts).
    pub async fn poll_once(&self) -> Result<Polled, RunnerError> {
        self.acquire(Duration::ZERO).await
    }

    /// Report a job as done (at once, when taken with [`EmulatedRunner::poll_once`]).
    pub async fn finish(&self, job: &AssignedJob) -> Result<RunEnd, RunnerError> {
        let conclusion = self.options.conclusion.clone().unwrap_or_else(|| job.conclusion.clone());
        let request = CompleteRequest { session: self.session.clone(), job_id: job.job_id, conclusion };
        let doing = "report the job's completion";
        let response = self.post(COMPLETE_PATH, &request, SHORT_REQUEST_TIMEOUT, doing).await?;
        if response.status() == StatusCode::GONE {
            return Ok(RunEnd::Deregistered);
        }
        let answer: CompleteResponse = read_json(expect_ok(response, doing).await?, doing).await?;
        Ok(RunEnd::Completed { job: job.clone(), conclusion: answer.conclusion })
    }
}

/// What one [`EmulatedRunner::poll_once`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Polled {
    Job(AssignedJob),
    Nothing,
    /// The registration was removed.
    Deregistered,
}

/// POST with retries while the emulator is unreachable or shutting down (503), for at most
/// `unreachable_timeout` since the first failure.
async fn post<T: Serialize>(
    client: &reqwest::Client,
    base_url: &str,
    options: &RunnerOptions,
    path: &str,
    body: &T,
    timeout: Duration,
    doing: &'static str,
) -> Result<reqwest::Response, RunnerError> {
    let url = format!("{base_url}{path}");
    let mut first_failure: Option<Instant> = None;
    let mut backoff = RETRY_INITIAL_BACKOFF;
    loop {
        let last_error = match client.post(&url).json(body).timeout(timeout).send().await {
            Ok(response) if response.status() != StatusCode::SERVICE_UNAVAILABLE => return Ok(response),
            Ok(_unavailable) => None,
            Err(error) => Some(error),
        };
        let since = *first_failure.get_or_insert_with(Instant::now);
        if since.elapsed() >= options.unreachable_timeout {
            return Err(RunnerError::Unreachable {
                url: base_url.to_owned(),
                doing,
                waited: since.elapsed(),
                source: last_error,
            });
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RETRY_MAX_BACKOFF);
    }
}

async fn expect_ok(response: reqwest::Response, doing: &'static str) -> Result<reqwest::Response, RunnerError> {
    if response.status().is_success() { Ok(response) } else { Err(refused(response, doing).await) }
}

async fn refused(response: reqwest::Response, doing: &'static str) -> RunnerError {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|body| body.get("message").and_then(|message| message.as_str()).map(str::to_owned))
        .unwrap_or(text);
    RunnerError::Refused { doing, status, message }
}

async fn read_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    doing: &'static str,
) -> Result<T, RunnerError> {
    response.json().await.map_err(|source| RunnerError::Decode { doing, source })
}
