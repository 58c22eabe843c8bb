//! Public snapshots of the emulator's state for test assertions, the job spec of the driver API,
//! and the request counters.

use chrono::{DateTime, Utc};
use ghr_core::ids::{AccountId, GithubRunnerId, InstallationId, JobId};
use ghr_core::job::JobStatus;
use ghr_core::ports::DeliveryStatusFilter;
use ghr_core::tenant::OrgType;
use std::collections::BTreeMap;
use std::time::Duration;

/// The conclusion a job reports when its spec does not say otherwise.
pub const DEFAULT_JOB_CONCLUSION: &str = "success";

/// A job to queue with [`GithubEmulator::queue_job`](super::GithubEmulator::queue_job).
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    pub installation: InstallationId,
    /// Repository name without the owner; created on first use.
    pub repo: String,
    /// The job's `runs-on` labels.
    pub labels: Vec<String>,
    /// How long the job runs once a runner takes it.
    pub duration: Duration,
    /// The conclusion the runner reports (default `success`).
    pub conclusion: String,
    pub name: String,
    pub workflow_name: String,
    /// Queue the job into this existing workflow run (of the same repository) instead of a new one.
    pub run_id: Option<u64>,
}

impl JobSpec {
    /// A job of `repo` in `installation` asking for `labels`, running for no time, succeeding.
    pub fn new(installation: InstallationId, repo: &str, labels: &[&str]) -> Self {
        Self {
            installation,
            repo: repo.to_owned(),
            labels: labels.iter().map(|label| (*label).to_owned()).collect(),
            duration: Duration::ZERO,
            conclusion: DEFAULT_JOB_CONCLUSION.to_owned(),
            name: "build".to_owned(),
            workflow_name: "CI".to_owned(),
            run_id: None,
        }
    }

    /// Another job of workflow run `run_id` (a matrix or a later job of one run).
    pub fn in_run(mut self, run_id: u64) -> Self {
        self.run_id = Some(run_id);
        self
    }

    pub fn duration(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self
    }

    pub fn conclusion(mut self, conclusion: &str) -> Self {
        self.conclusion = conclusion.to_owned();
        self
    }
}

/// An installation of the App.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallationInfo {
    pub id: InstallationId,
    pub account_login: String,
    pub account_id: AccountId,
    pub account_kind: OrgType,
    pub suspended: bool,
}

/// Where a runner is registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunnerScopeInfo {
    /// The organisation's login.
    Org(String),
    /// `owner/name`.
    Repo(String),
}

/// A runner registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerInfo {
    pub id: GithubRunnerId,
    pub name: String,
    pub scope: RunnerScopeInfo,
    pub group_id: u64,
    /// Lower-cased.
    pub labels: Vec<String>,
    /// Whether its JIT credential has been used.
    pub connected: bool,
    pub online: bool,
    pub busy: bool,
    pub job_id: Option<JobId>,
}

/// A workflow job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobInfo {
    pub id: JobId,
    pub run_id: u64,
    pub installation_id: InstallationId,
    /// `owner/name`.
    pub repository: String,
    pub labels: Vec<String>,
    pub status: JobStatus,
    pub conclusion: Option<String>,
    pub runner_id: Option<GithubRunnerId>,
    pub runner_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub duration: Duration,
    /// How many times a runner was given this job (GitHub: at most once).
    pub assignments: u32,
}

/// One attempt of a webhook delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryInfo {
    /// The numeric id (`/app/hook/deliveries/{id}/attempts` redelivers it).
    pub id: u64,
    pub guid: String,
    pub event: String,
    pub action: Option<String>,
    pub installation_id: Option<InstallationId>,
    pub repository_id: Option<u64>,
    pub delivered_at: DateTime<Utc>,
    /// The receiver's HTTP status; 502 when nothing answered (unreachable, timed out, dropped), as GitHub
    /// records it.
    pub status_code: u16,
    pub redelivery: bool,
    /// Withheld on purpose by fault injection (or because no webhook target was set).
    pub dropped: bool,
}

impl DeliveryInfo {
    /// Whether the receiver answered with a 2xx.
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status_code)
    }

    /// Which `status` filter of `GET /app/hook/deliveries` returns this attempt.
    pub fn status_filter(&self) -> DeliveryStatusFilter {
        DeliveryStatusFilter::of(self.status_code)
    }
}

/// Request and delivery counters since the start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Calls of `POST /app/installations/{id}/access_tokens`, whatever their answer.
    pub token_requests: u64,
    /// Installation tokens handed out.
    pub tokens_issued: u64,
    /// REST calls per route, keyed `"METHOD /route/{pattern}"`.
    pub api_calls: BTreeMap<String, u64>,
    /// Webhook POSTs made (whatever the answer).
    pub webhooks_sent: u64,
    /// Webhook POSTs that got no 2xx (including unreachable receivers).
    pub webhooks_failed: u64,
    /// Deliveries recorded but never sent (fault injection, or no target).
    pub webhooks_dropped: u64,
    /// Answers replaced by `fail_next`.
    pub injected_failures: u64,
    /// Answers replaced by `rate_limit_next`.
    pub injected_rate_limits: u64,
    /// App JWTs refused by `refuse_next_app_jwts`.
    pub refused_jwts: u64,
}

impl Counters {
    /// Calls of one route, e.g. `"POST /orgs/{org}/actions/runners/generate-jitconfig"`.
    pub fn calls(&self, route: &str) -> u64 {
        self.api_calls.get(route).copied().unwrap_or(0)
    }

    /// Every REST call.
    pub fn total_calls(&self) -> u64 {
        self.api_calls.values().sum()
    }
}
