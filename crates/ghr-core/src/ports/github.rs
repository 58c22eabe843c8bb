//! The GitHub port: the App's REST calls (JIT configs, runners, jobs, deliveries) and their errors.

use crate::Timestamp;
use crate::ids::{DeliveryId, GithubRunnerId, InstallationId, JobId, OrgName, RunnerName};
use crate::job::JobStatus;
use async_trait::async_trait;
use secrecy::SecretString;
use std::time::Duration;

/// Where a runner is registered.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RunnerScope {
    /// Organisation-level runner.
    Org(OrgName),
    /// Repository-level runner (personal accounts): `owner/name`.
    Repo(String),
}

/// A request for a single-use JIT runner configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JitRequest {
    pub installation_id: InstallationId,
    pub scope: RunnerScope,
    pub name: RunnerName,
    pub labels: Vec<String>,
    /// Runner group name (org scope only; repository runners use group 1).
    pub runner_group: String,
}

/// A minted JIT config. The encoded config is a credential: it reaches only the runner.
#[derive(Debug, Clone)]
pub struct JitConfig {
    pub runner_id: GithubRunnerId,
    pub encoded_jit_config: SecretString,
}

/// A self-hosted runner registration as GitHub reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubRunner {
    pub id: GithubRunnerId,
    pub name: String,
    /// `online` or `offline`.
    pub online: bool,
    pub busy: bool,
    pub labels: Vec<String>,
}

/// A workflow job as the REST API reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct GithubJob {
    pub id: JobId,
    pub status: JobStatus,
    pub conclusion: Option<String>,
    pub runner_name: Option<String>,
    /// The job's `runs-on` labels.
    pub labels: Vec<String>,
    /// When the job was queued.
    pub created_at: Option<Timestamp>,
    /// When a runner took it; GitHub reports `created_at` here for a job that has not started yet.
    pub started_at: Option<Timestamp>,
}

/// One attempt of the App's webhook deliveries (`GET /app/hook/deliveries`).
#[derive(Debug, Clone, PartialEq)]
pub struct HookDelivery {
    /// The numeric delivery id used to request a redelivery.
    pub id: u64,
    pub guid: DeliveryId,
    pub delivered_at: Timestamp,
    pub redelivery: bool,
    pub status_code: u16,
    pub event: String,
    pub action: Option<String>,
    pub installation_id: Option<InstallationId>,
}

/// GitHub's `status` filter of the deliveries list, by the receiver's answer (`status_code`).
///
/// GitHub documents `success` as a `status_code` of 200-399 and `failure` as 400-599. A receiver GitHub
/// could not reach is recorded as 502 (`failed to connect to host`), so undelivered attempts are failures
/// too. [`DeliveryStatusFilter::of`] puts any other code (a 0 has been seen in emulators) in `failure`, so
/// a delivery that did not clearly succeed is never classified as a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatusFilter {
    Success,
    Failure,
}

impl DeliveryStatusFilter {
    /// The query value (`success`, `failure`).
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatusFilter::Success => "success",
            DeliveryStatusFilter::Failure => "failure",
        }
    }

    /// Parse the query value; None for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "success" => Some(DeliveryStatusFilter::Success),
            "failure" => Some(DeliveryStatusFilter::Failure),
            _ => None,
        }
    }

    /// Which filter returns an attempt answered with `status_code`.
    pub fn of(status_code: u16) -> Self {
        if (200..400).contains(&status_code) { DeliveryStatusFilter::Success } else { DeliveryStatusFilter::Failure }
    }
}

/// A request for one page of the App's webhook deliveries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveriesRequest {
    /// Only successful or only failed attempts; None for all.
    pub status: Option<DeliveryStatusFilter>,
    /// Page size, 1..=100 (GitHub's bounds; out-of-range values are clamped).
    pub per_page: u32,
    /// Where to continue: the [`DeliveriesPage::next_cursor`] of the previous page; None for the newest.
    pub cursor: Option<String>,
}

/// One page of webhook deliveries, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveriesPage {
    pub deliveries: Vec<HookDelivery>,
    /// The opaque cursor of the next (older) page, from GitHub's `Link: <...>; rel="next"`; None on the last.
    pub next_cursor: Option<String>,
}

/// A GitHub API failure, classified so the engine can decide to retry, wait or give up.
#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    #[error("GitHub rejected the credentials (401)")]
    Unauthorized,
    #[error("GitHub refused the request (403): {0}")]
    Forbidden(String),
    #[error("GitHub has no such resource (404): {0}")]
    NotFound(String),
    #[error("GitHub reports a conflict (409): {0}")]
    Conflict(String),
    #[error("GitHub could not process the request (422): {0}")]
    Unprocessable(String),
    #[error("GitHub rate limit hit; retry after {retry_after:?}")]
    RateLimited { retry_after: Duration },
    #[error("GitHub failed with status {status}")]
    Server { status: u16 },
    /// No answer: the connection could not be made or broke, or GitHub did not answer in time.
    /// `message` says which and where (e.g. `could not connect to GitHub at https://api.github.com`).
    #[error("{message}")]
    Transport {
        message: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An answer arrived but could not be read (or a request body could not be written).
    #[error("GitHub's answer could not be read: {message}")]
    Decode {
        message: String,
        /// Absent when the cause could reveal a credential carried by the answer, or there is none.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    #[error("GitHub App setup is invalid: {0}")]
    Config(String),
}

impl GithubError {
    /// Whether retrying later can succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, GithubError::RateLimited { .. } | GithubError::Server { .. } | GithubError::Transport { .. })
    }

    /// A decode failure with its cause.
    pub fn decode(message: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        GithubError::Decode { message: message.into(), source: Some(Box::new(source)) }
    }

    /// A decode failure without a cause to chain (unexpected shape, or a cause that must not be shown).
    pub fn decode_message(message: impl Into<String>) -> Self {
        GithubError::Decode { message: message.into(), source: None }
    }
}

/// What a GitHub client has spent so far, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GithubUsage {
    /// HTTP requests sent (including token requests and retries).
    pub calls: u64,
    pub token_requests: u64,
    pub retries: u64,
    pub rate_limited: u64,
    /// Remaining requests of the current rate-limit window, per installation (as GitHub last reported).
    pub remaining: Vec<(InstallationId, u64)>,
    /// Remaining requests of the App's own (JWT) window.
    pub app_remaining: Option<u64>,
}

/// The GitHub REST calls the engine needs, as the App (JWT) or as an installation (token).
#[async_trait]
pub trait GitHubApi: Send + Sync {
    /// Calls made and rate limit left, for metrics. Clients that do not count report nothing.
    fn usage(&self) -> GithubUsage {
        GithubUsage::default()
    }

    /// `POST /orgs/{org}/actions/runners/generate-jitconfig` (or the repository variant).
    async fn create_jit_config(&self, request: &JitRequest) -> Result<JitConfig, GithubError>;
    /// A registration by id; None when GitHub has none (404).
    async fn get_runner(
        &self,
        installation: InstallationId,
        scope: &RunnerScope,
        id: GithubRunnerId,
    ) -> Result<Option<GithubRunner>, GithubError>;
    /// Every registration of the scope (all pages).
    async fn list_runners(
        &self,
        installation: InstallationId,
        scope: &RunnerScope,
    ) -> Result<Vec<GithubRunner>, GithubError>;
    /// Delete a registration; a missing one is not an error.
    async fn delete_runner(
        &self,
        installation: InstallationId,
        scope: &RunnerScope,
        id: GithubRunnerId,
    ) -> Result<(), GithubError>;
    /// `GET /repos/{owner}/{repo}/actions/jobs/{id}`; None when GitHub has no such job.
    async fn get_job(
        &self,
        installation: InstallationId,
        repository: &str,
        id: JobId,
    ) -> Result<Option<GithubJob>, GithubError>;
    /// Repositories the installation can access (`GET /installation/repositories`, all pages), as `owner/name`.
    async fn list_installation_repositories(&self, installation: InstallationId) -> Result<Vec<String>, GithubError>;
    /// Jobs still queued in a repository: workflow runs with `status=queued` (all pages), then each run's jobs
    /// (`GET /repos/{owner}/{repo}/actions/runs/{run_id}/jobs`), keeping the queued ones.
    ///
    /// A run's status summarises its jobs: it is `queued` only while none has started, and `in_progress`
    /// as soon as one has, even if others still wait for a runner (a matrix wider than the tenant's runner
    /// limit). Implementations therefore list runs with `status=queued` *and* `status=in_progress`, and keep
    /// jobs whose own status is `queued` (not `waiting`/`pending`: those wait for approval or concurrency,
    /// not for a runner). GitHub returns at most 1 000 runs per status filter.
    async fn list_queued_jobs(
        &self,
        installation: InstallationId,
        repository: &str,
    ) -> Result<Vec<GithubJob>, GithubError>;
    /// One page of the App's webhook deliveries, newest first (App JWT).
    async fn list_deliveries_page(&self, request: &DeliveriesRequest) -> Result<DeliveriesPage, GithubError>;
    /// Recent deliveries of the App's webhook, newest first (App JWT): the first page of at most
    /// `limit` (1..=100) attempts. Superseded by [`GitHubApi::list_deliveries_page`].
    async fn list_deliveries(&self, limit: u32) -> Result<Vec<HookDelivery>, GithubError> {
        let request = DeliveriesRequest { status: None, per_page: limit, cursor: None };
        Ok(self.list_deliveries_page(&request).await?.deliveries)
    }
    /// Ask GitHub to deliver a past delivery again (App JWT).
    async fn redeliver(&self, delivery: u64) -> Result<(), GithubError>;
}
