//! Port traits: the narrow interfaces through which the engine reaches the store, GitHub and the cloud.
//!
//! Every adapter implements one of these; only the binary's wiring picks concrete adapters.

use crate::Timestamp;
use crate::cost::UsageRow;
use crate::ids::{DeliveryId, GithubRunnerId, InstallationId, InstanceId, JobId, OrgName, RunnerName, TierName};
use crate::intake::{JobIntake, JobIntakeOutcome};
use crate::job::{Job, JobChange, JobEvent, JobObservation, JobStatus};
pub use crate::planner::dispatch::DemandQuery;
use crate::planner::dispatch::DemandSnapshot;
use crate::planner::fleet::FleetRecords;
use crate::reason::Reason;
use crate::runner::{Runner, RunnerState};
use crate::tenant::{NewTenant, Tenant, TenantStatus, TenantUpdate};
use async_trait::async_trait;
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Store
// ---------------------------------------------------------------------------------------------

/// A store failure, with what the store was doing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store operation {op} failed")]
    Backend {
        op: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("stored data is invalid in {op}: {detail}")]
    Corrupt { op: &'static str, detail: String },
    /// The store cannot make writes durable until an operator acts; nothing was written.
    #[error("store operation {op} refused: the database {database} {reason}")]
    Unavailable { op: &'static str, database: String, reason: Unavailability },
}

/// Why a store refuses writes (see [`StoreError::Unavailable`]); each says what an operator does about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unavailability {
    #[error(
        "is read-only: make the database file and its directory writable by the user ghr runs as, then restart ghr"
    )]
    ReadOnly,
    #[error(
        "was removed while ghr was running, so writes would land in a deleted file and be lost: restore the \
         database file (and its directory) or point store.url at a writable location, then restart ghr"
    )]
    Removed,
    #[error(
        "was replaced by another file while ghr was running: restart ghr so that every process writes to the \
         same file"
    )]
    Replaced,
}

impl Unavailability {
    /// A short stable name for logs and health answers (`read_only`, `removed`, `replaced`).
    pub fn code(self) -> &'static str {
        match self {
            Unavailability::ReadOnly => "read_only",
            Unavailability::Removed => "removed",
            Unavailability::Replaced => "replaced",
        }
    }
}

/// One webhook delivery, recorded before it is acted on (deduplication on the delivery id).
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    pub delivery_id: DeliveryId,
    pub event: String,
    pub action: Option<String>,
    pub installation_id: Option<InstallationId>,
    pub received_at: Timestamp,
}

/// A request for one runner slot of a tenant on a tier.
#[derive(Debug, Clone, PartialEq)]
pub struct ReserveRequest {
    pub installation_id: InstallationId,
    pub tier: TierName,
    /// Repository scope for personal-account tenants (demand is counted per repository for them).
    pub scope_repo: Option<String>,
    /// The job the runner is started for (FIFO head); a hint only.
    pub intended_job: Option<JobId>,
    /// Deployment-wide cap on live runners.
    pub global_cap: Option<u32>,
    /// Deployment name, part of the runner name.
    pub environment: String,
    /// The caller's clock. The runner's `created_at` is the later of this and the store's clock once the
    /// reservation holds its lock, so reservation and release times are ordered as the store decided them.
    pub now: Timestamp,
}

/// The outcome of [`Store::runner_reserve`].
#[derive(Debug, Clone, PartialEq)]
pub enum Reservation {
    /// A slot is held by this new runner record (state `requested`).
    Reserved(Box<Runner>),
    /// Admission refused; the job waits with this reason.
    Refused(Reason),
    /// Queued jobs of this (tenant, tier, scope) are already covered by unbound runners.
    NoDemand,
}

/// A change to a runner record. `None` leaves a field as it is; timestamps are set by the store
/// from `at` when the state moves to the matching state.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerUpdate {
    pub state: Option<RunnerState>,
    pub instance_id: Option<InstanceId>,
    pub github_runner_id: Option<GithubRunnerId>,
    pub job_id: Option<JobId>,
    pub last_error: Option<String>,
    pub at: Timestamp,
}

impl RunnerUpdate {
    pub fn state(state: RunnerState, at: Timestamp) -> Self {
        Self { state: Some(state), instance_id: None, github_runner_id: None, job_id: None, last_error: None, at }
    }
}

/// Filter for listing runners; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunnerFilter {
    pub installation_id: Option<InstallationId>,
    pub tier: Option<TierName>,
    pub states: Vec<RunnerState>,
}

/// Filter for listing jobs; empty fields match everything. Newest first, at most `limit`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobFilter {
    pub installation_id: Option<InstallationId>,
    pub status: Option<JobStatus>,
    pub wait_reason: Option<Reason>,
    pub limit: Option<u32>,
}

/// Live runners per (tenant, tier, state): the series of the runners gauge.
pub type RunnerSeries = BTreeMap<(InstallationId, TierName, RunnerState), u32>;

/// What [`Store::prune`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub deliveries: u64,
    pub jobs: u64,
    pub job_events: u64,
}

/// Persistent state of ghr. Every method is atomic on its own.
#[async_trait]
pub trait Store: Send + Sync {
    // Health.
    /// Prove that a write commits durably right now (readiness and start-up checks): fails with
    /// [`StoreError::Unavailable`] on a read-only, removed or replaced database.
    async fn check_writable(&self) -> Result<(), StoreError>;

    // Tenants.
    /// Create a tenant; if one exists for the installation, return it unchanged with `false`.
    async fn tenant_create(&self, tenant: NewTenant, now: Timestamp) -> Result<(Tenant, bool), StoreError>;
    async fn tenant_get(&self, id: InstallationId) -> Result<Option<Tenant>, StoreError>;
    /// Find by login, case-insensitively (GitHub logins are case-insensitive).
    async fn tenant_find_by_org(&self, org: &OrgName) -> Result<Option<Tenant>, StoreError>;
    /// All tenants, or those with one status, ordered by installation id.
    async fn tenant_list(&self, status: Option<TenantStatus>) -> Result<Vec<Tenant>, StoreError>;
    /// How many tenants are in each status (statuses with none are absent).
    async fn tenant_counts(&self) -> Result<BTreeMap<TenantStatus, u64>, StoreError>;
    /// Apply an update and stamp `updated_at`; None when the tenant does not exist.
    /// The caller derives `max_runners` from a new tier (see the engine's tenant service).
    async fn tenant_update(
        &self,
        id: InstallationId,
        update: TenantUpdate,
        now: Timestamp,
    ) -> Result<Option<Tenant>, StoreError>;

    // Webhook deliveries.
    /// Record a delivery; `false` when this delivery id was seen before (a redelivery: change nothing).
    async fn delivery_record(&self, delivery: &DeliveryRecord) -> Result<bool, StoreError>;
    /// Whether a delivery id has been recorded.
    async fn delivery_seen(&self, id: &DeliveryId) -> Result<bool, StoreError>;

    // Jobs.
    /// Record an observation; status only moves forward. Appends timeline entries for changes.
    async fn job_observe(&self, observation: JobObservation) -> Result<JobChange, StoreError>;
    async fn job_get(&self, id: JobId) -> Result<Option<Job>, StoreError>;
    async fn job_list(&self, filter: JobFilter) -> Result<Vec<Job>, StoreError>;
    /// Jobs that want a runner (queued and matched to a tier), oldest first.
    async fn job_list_wanting_runner(&self) -> Result<Vec<Job>, StoreError>;
    /// How many jobs are in each status (statuses with none are absent).
    async fn job_counts(&self) -> Result<BTreeMap<JobStatus, u64>, StoreError>;
    /// One tenant's jobs that want a runner (queued and matched to a tier), counted by wait reason
    /// (`None`: no reason recorded, a runner is starting for it). Statuses with none are absent. Costs in
    /// proportion to that tenant's waiting jobs, not to the whole queue.
    async fn job_waiting_counts(
        &self,
        installation: InstallationId,
    ) -> Result<BTreeMap<Option<Reason>, u64>, StoreError>;
    /// Set or clear the wait reason; appends a timeline entry only when it changes.
    async fn job_set_wait_reason(&self, id: JobId, reason: Option<Reason>, at: Timestamp) -> Result<(), StoreError>;
    /// Append a timeline entry.
    async fn job_event_append(&self, event: JobEvent) -> Result<(), StoreError>;
    async fn job_timeline(&self, id: JobId) -> Result<Vec<JobEvent>, StoreError>;

    // Runners.
    /// Atomically: check remaining demand for (tenant, tier, scope), the tenant's status and its
    /// live runners across all tiers against `max_runners`, and the global cap; on success insert
    /// a runner in state `requested`. Concurrent callers never exceed a limit.
    async fn runner_reserve(&self, request: ReserveRequest) -> Result<Reservation, StoreError>;
    /// Update a runner. A state change the lifecycle forbids keeps the state ([`RunnerState::merge`]); the
    /// other fields are recorded all the same. `launched_at` is stamped when an instance is first recorded
    /// (or the runner enters `launching`). None when the runner does not exist.
    async fn runner_update(&self, name: &RunnerName, update: RunnerUpdate) -> Result<Option<Runner>, StoreError>;
    async fn runner_get(&self, name: &RunnerName) -> Result<Option<Runner>, StoreError>;
    async fn runner_list(&self, filter: RunnerFilter) -> Result<Vec<Runner>, StoreError>;
    /// Live runner counts per installation (for metrics and the demo's invariant checks).
    async fn runner_live_counts(&self) -> Result<BTreeMap<InstallationId, u32>, StoreError>;
    /// Live runners per (tenant, tier, state); only series with at least one runner are present. Costs in
    /// proportion to the live runners, however many tenants or terminated runners there are.
    async fn runner_live_series(&self) -> Result<RunnerSeries, StoreError>;

    // Retention.
    /// Forget webhook deliveries received before `before`, and completed jobs (with their timelines) last
    /// updated before it. Runners are kept: they are the usage and billing record. A store deletes in bounded
    /// batches (each atomic on its own), so a large pass never blocks writers for long.
    async fn prune(&self, before: Timestamp) -> Result<Pruned, StoreError>;

    // Usage.
    /// Runner-seconds per tenant and tier of runners overlapping `[from, to)`, clipped to it;
    /// live runners count up to `now`.
    async fn usage(&self, from: Timestamp, to: Timestamp, now: Timestamp) -> Result<Vec<UsageRow>, StoreError>;

    // Checkpoints.
    /// A named progress marker of one of ghr's loops (None when never written).
    async fn checkpoint_get(&self, name: &str) -> Result<Option<String>, StoreError>;
    /// Write a progress marker whole (last write wins).
    async fn checkpoint_set(&self, name: &str, value: &str, now: Timestamp) -> Result<(), StoreError>;

    // Intake
    /// Apply webhook deliveries in one write transaction (group commit); one outcome per item, in order.
    /// Per item, atomically: deduplicate on the delivery id, record the job observation (forward-only, with
    /// its timeline entries and initial wait reason), bind the runner it names, record the delivery. Items
    /// apply in order, so a later duplicate in the same batch sees the earlier one. An item that fails leaves
    /// nothing behind and does not fail the others; an `Ok` outcome is durable when this returns.
    async fn intake_jobs(&self, batch: Vec<JobIntake>) -> Vec<Result<JobIntakeOutcome, StoreError>>;

    // Planner snapshot
    /// Demand and supply for one dispatch plan, read at one instant: the tenants asked for, their live
    /// runners (all tiers), their unbound runners per key, the live runners of every tenant (when a global cap
    /// is given) and their queued jobs matched to a tier, oldest first. Of a tenant without headroom
    /// (admission refuses it: inactive, at its limit, or the global cap reached; or no tenant record at all)
    /// only the jobs whose wait reason is not that refusal are read (new ones, covered ones, ones waiting for
    /// something else): the others keep their reason and cost nothing; a full snapshot counts them by reason.
    async fn demand_snapshot(&self, query: DemandQuery) -> Result<DemandSnapshot, StoreError>;
    /// The fleet for one reconciler plan, read at one instant: every live runner, the tenants of the live
    /// runners and of the stale jobs, queued jobs matched to a tier per key of the tenants that have unbound
    /// runners, and the jobs queued (matched to a tier) since `stale_before` or earlier, or in progress (matched
    /// to a tier) since then.
    async fn fleet_records(&self, stale_before: Timestamp) -> Result<FleetRecords, StoreError>;
    /// [`Store::job_set_wait_reason`] for many jobs in one transaction (a plan's reason changes).
    async fn job_set_wait_reasons(
        &self,
        reasons: Vec<(JobId, Option<Reason>)>,
        at: Timestamp,
    ) -> Result<(), StoreError>;
}

// ---------------------------------------------------------------------------------------------
// GitHub
// ---------------------------------------------------------------------------------------------

/// Where a runner is registered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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

// ---------------------------------------------------------------------------------------------
// Provider (where runners run)
// ---------------------------------------------------------------------------------------------

/// Everything a provider needs to start one runner.
#[derive(Debug, Clone)]
pub struct LaunchRequest {
    pub runner_name: RunnerName,
    pub installation_id: InstallationId,
    pub org_name: OrgName,
    /// The tenant's plan (tag `ghr:tenant_tier`).
    pub tenant_tier: TierName,
    /// The runner's size (tag `ghr:tier`).
    pub tier: TierName,
    pub instance_types: Vec<String>,
    pub labels: Vec<String>,
    /// The single-use runner credential. Never logged, never persisted by ghr.
    pub jit_config: SecretString,
}

/// Lifecycle state of an instance as the provider sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    Pending,
    Running,
    /// Stopping or stopped: not serving but still costing or holding resources.
    Stopping,
    /// Gone (exited process, terminated instance).
    Terminated,
}

/// An instance ghr launched, as the provider lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub id: InstanceId,
    pub runner_name: Option<RunnerName>,
    pub installation_id: Option<InstallationId>,
    pub tier: Option<TierName>,
    pub state: InstanceState,
    pub launched_at: Option<Timestamp>,
    /// For EC2: the instance type that was actually launched.
    pub instance_type: Option<String>,
}

/// The cause of a [`ProviderError`], kept so that logs show the whole chain.
pub type ProviderCause = Box<dyn std::error::Error + Send + Sync>;

/// A provider failure: what the provider was doing, and the cause when there is one. The message
/// never repeats the cause (render the chain with [`crate::error::ErrorChain`]).
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// No capacity for any configured instance type / purchase option.
    #[error("no capacity: {message}")]
    Capacity {
        message: String,
        #[source]
        source: Option<ProviderCause>,
    },
    /// Account limit or throttling; retry later.
    #[error("provider throttled or over quota: {message}")]
    Throttled {
        message: String,
        #[source]
        source: Option<ProviderCause>,
    },
    /// The configuration cannot work (bad AMI, missing command, ...): retried, but an operator must act.
    #[error("provider configuration error: {message}")]
    Config {
        message: String,
        #[source]
        source: Option<ProviderCause>,
    },
    #[error("provider call failed: {message}")]
    Failed {
        message: String,
        #[source]
        source: Option<ProviderCause>,
    },
}

impl ProviderError {
    /// [`ProviderError::Capacity`] without a cause (add one with [`ProviderError::caused_by`]).
    pub fn capacity(message: impl Into<String>) -> Self {
        ProviderError::Capacity { message: message.into(), source: None }
    }

    /// [`ProviderError::Throttled`] without a cause.
    pub fn throttled(message: impl Into<String>) -> Self {
        ProviderError::Throttled { message: message.into(), source: None }
    }

    /// [`ProviderError::Config`] without a cause.
    pub fn config(message: impl Into<String>) -> Self {
        ProviderError::Config { message: message.into(), source: None }
    }

    /// [`ProviderError::Failed`] without a cause.
    pub fn failed(message: impl Into<String>) -> Self {
        ProviderError::Failed { message: message.into(), source: None }
    }

    /// The same error with `cause` as its source.
    pub fn caused_by(self, cause: impl Into<ProviderCause>) -> Self {
        let cause = Some(cause.into());
        match self {
            ProviderError::Capacity { message, .. } => ProviderError::Capacity { message, source: cause },
            ProviderError::Throttled { message, .. } => ProviderError::Throttled { message, source: cause },
            ProviderError::Config { message, .. } => ProviderError::Config { message, source: cause },
            ProviderError::Failed { message, .. } => ProviderError::Failed { message, source: cause },
        }
    }

    /// What the provider was doing, without the cause.
    pub fn message(&self) -> &str {
        match self {
            ProviderError::Capacity { message, .. }
            | ProviderError::Throttled { message, .. }
            | ProviderError::Config { message, .. }
            | ProviderError::Failed { message, .. } => message,
        }
    }
}

/// A place that runs runners: local processes, EC2, ...
#[async_trait]
pub trait Provider: Send + Sync {
    /// Short name for logs and metrics (`process`, `ec2`).
    fn name(&self) -> &'static str;
    /// Start one runner. On error nothing is left running.
    async fn launch(&self, request: LaunchRequest) -> Result<Instance, ProviderError>;
    /// Terminate an instance. Idempotent: an unknown or already-gone instance is not an error.
    async fn terminate(&self, id: &InstanceId) -> Result<(), ProviderError>;
    /// Every non-terminated instance of this deployment.
    async fn list(&self) -> Result<Vec<Instance>, ProviderError>;
}
