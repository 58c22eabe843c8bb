//! The store port: persistent state of ghr (tenants, jobs, deliveries, runners, usage, checkpoints).

use crate::Timestamp;
use crate::cost::UsageRow;
use crate::ids::{
    DeliveryId, GithubRunnerId, InstallationId, InstanceId, JobId, OrgName, RunnerName, RunnerSeq, TierName,
};
use crate::intake::{JobIntake, JobIntakeOutcome};
use crate::job::{Job, JobChange, JobEvent, JobObservation, JobStatus};
pub use crate::planner::dispatch::DemandQuery;
use crate::planner::dispatch::DemandSnapshot;
use crate::planner::fleet::{FleetRecords, StaleQuery};
use crate::reason::Reason;
use crate::runner::{Runner, RunnerState};
use crate::tenant::{NewTenant, Tenant, TenantStatus, TenantUpdate};
use async_trait::async_trait;
use std::collections::BTreeMap;

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
    /// Only runners created after this one (a page's cursor): listings are in `seq` order.
    pub after_seq: Option<RunnerSeq>,
    /// At most this many.
    pub limit: Option<u32>,
}

/// Filter for listing jobs; empty fields match everything. Newest first, at most `limit`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobFilter {
    pub installation_id: Option<InstallationId>,
    pub status: Option<JobStatus>,
    pub wait_reason: Option<Reason>,
    /// Only jobs after this (received_at, job_id) in the newest-first order, i.e. strictly older (a page's
    /// cursor).
    pub before: Option<(Timestamp, JobId)>,
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

/// A named lease on singleton work (the reconciler's pass and what runs in it), held by one replica at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRequest {
    /// Which lease ([`RECONCILER_LEASE`] for the reconciler).
    pub name: String,
    /// Who asks: a replica's id, unique among the processes sharing the store.
    pub holder: String,
    /// How long the lease lasts from now unless renewed: the longest a dead holder keeps the work from others.
    pub ttl: std::time::Duration,
    /// The caller's clock. A store shared by processes on several hosts uses its own clock instead, so that
    /// clock skew between hosts cannot make two holders at once.
    pub now: Timestamp,
}

/// The lease under which one replica runs the reconciler (missed-webhook scan, recovery poll, retention).
pub const RECONCILER_LEASE: &str = "reconciler";

/// What [`Store::lease_acquire`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseState {
    /// The current holder after the call (the caller when it got or kept the lease).
    pub holder: String,
    /// When the holder's lease runs out unless renewed.
    pub expires_at: Timestamp,
}

impl LeaseState {
    /// Whether `holder` holds the lease.
    pub fn held_by(&self, holder: &str) -> bool {
        self.holder == holder
    }
}

/// A change other processes sharing the store made that may let waiting jobs start: see [`Store::wake_feed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreWake {
    /// These tenants changed (a job queued, a slot freed, a limit or status changed).
    Tenants(Vec<InstallationId>),
    /// Changes may have been missed (the feed reconnected): look at every tenant.
    All,
}

/// Wake-ups from other processes sharing the store, in the order they committed.
#[async_trait]
pub trait WakeFeed: Send {
    /// The next wake-up; waits until there is one. An error means the feed is broken for good (the store
    /// was closed): the caller stops listening and relies on its periodic passes.
    async fn next(&mut self) -> Result<StoreWake, StoreError>;
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
    /// Ids of the tenants with `status`, in installation order, after `after` (from the first when `None`), at
    /// most `limit`: a page of a walk over many tenants that reads what it returns, not the whole table.
    async fn tenant_ids_after(
        &self,
        status: TenantStatus,
        after: Option<InstallationId>,
        limit: u32,
    ) -> Result<Vec<InstallationId>, StoreError>;
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
    /// Jobs that want a runner (queued and matched to a tier) of one tenant, or of every tenant (`None`: the
    /// waiting-jobs gauge), counted by wait reason (`None`: no reason recorded, a runner is starting for it).
    /// Reasons with none are absent. Costs one index entry per counted job, never a table scan.
    async fn job_waiting_counts(
        &self,
        installation: Option<InstallationId>,
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
    async fn fleet_records(&self, stale: StaleQuery) -> Result<FleetRecords, StoreError>;
    /// [`Store::job_set_wait_reason`] for many jobs in one transaction (a plan's reason changes).
    async fn job_set_wait_reasons(
        &self,
        reasons: Vec<(JobId, Option<Reason>)>,
        at: Timestamp,
    ) -> Result<(), StoreError>;

    // Replicas
    /// Take, keep or look at a lease: the requester holds it after the call when it held it already
    /// (renewed until `now + ttl`) or when it was free or expired (taken). Otherwise nothing changes and the
    /// answer names the current holder. Atomic across every process sharing the store.
    async fn lease_acquire(&self, request: LeaseRequest) -> Result<LeaseState, StoreError>;
    /// Give a lease up (a replica shutting down), so another takes it at once; a no-op unless `holder` holds it.
    async fn lease_release(&self, name: &str, holder: &str) -> Result<(), StoreError>;
    /// Wake-ups committed by other processes sharing this store (`None`: the store is not shared, or cannot
    /// tell; callers rely on their own wake-ups and periodic passes).
    async fn wake_feed(&self) -> Result<Option<Box<dyn WakeFeed>>, StoreError> {
        Ok(None)
    }

    // Repair
    /// Recount the running counters the store keeps beside its records (a tenant's live runners, the
    /// deployment's) from the records themselves, and fix those that drifted; answers how many were fixed. The
    /// reconciler's leader calls it every pass. Stores whose counters cannot drift (kept by the database in the
    /// same transaction as the records) do nothing.
    async fn repair_counts(&self, now: Timestamp) -> Result<u64, StoreError> {
        let _ = now;
        Ok(0)
    }
}
