//! A `Store` wrapper that fails operations on demand: the simulation's disk-full and I/O errors.
//!
//! An armed fault fails the next operations before they reach the real store, the way a failed transaction
//! leaves nothing behind: callers see a `StoreError`, the data stays as it was.

use async_trait::async_trait;
use ghr_core::Timestamp;
use ghr_core::cost::UsageRow;
use ghr_core::ids::{DeliveryId, InstallationId, JobId, OrgName, RunnerName};
use ghr_core::intake::{JobIntake, JobIntakeOutcome};
use ghr_core::job::{Job, JobChange, JobEvent, JobObservation, JobStatus};
use ghr_core::planner::dispatch::DemandSnapshot;
use ghr_core::planner::fleet::{FleetRecords, StaleQuery};
use ghr_core::ports::{
    DeliveryRecord, DemandQuery, JobFilter, LeaseRequest, LeaseState, Pruned, Reservation, ReserveRequest,
    RunnerFilter, RunnerSeries, RunnerUpdate, Store, StoreError, WakeFeed,
};
use ghr_core::reason::Reason;
use ghr_core::runner::Runner;
use ghr_core::tenant::{NewTenant, Tenant, TenantStatus, TenantUpdate};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// The error an injected fault returns.
#[derive(Debug, thiserror::Error)]
#[error("injected store fault (simulated disk full)")]
pub struct InjectedFault;

/// Wraps a store; [`FaultyStore::fail_next`] arms faults.
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    armed: AtomicU32,
    injected: AtomicU32,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self { inner, armed: AtomicU32::new(0), injected: AtomicU32::new(0) }
    }

    /// Fail the next `count` operations.
    pub fn fail_next(&self, count: u32) {
        self.armed.store(count, Ordering::SeqCst);
    }

    /// Disarm every pending fault.
    pub fn heal(&self) {
        self.armed.store(0, Ordering::SeqCst);
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u32 {
        self.injected.load(Ordering::SeqCst)
    }

    fn check(&self, op: &'static str) -> Result<(), StoreError> {
        let armed = self.armed.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if armed.is_ok() {
            self.injected.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Backend { op, source: Box::new(InjectedFault) });
        }
        Ok(())
    }
}

#[async_trait]
impl Store for FaultyStore {
    async fn check_writable(&self) -> Result<(), StoreError> {
        self.check("check_writable")?;
        self.inner.check_writable().await
    }
    async fn tenant_create(&self, tenant: NewTenant, now: Timestamp) -> Result<(Tenant, bool), StoreError> {
        self.check("tenant_create")?;
        self.inner.tenant_create(tenant, now).await
    }
    async fn tenant_get(&self, id: InstallationId) -> Result<Option<Tenant>, StoreError> {
        self.check("tenant_get")?;
        self.inner.tenant_get(id).await
    }
    async fn tenant_find_by_org(&self, org: &OrgName) -> Result<Option<Tenant>, StoreError> {
        self.check("tenant_find_by_org")?;
        self.inner.tenant_find_by_org(org).await
    }
    async fn tenant_list(&self, status: Option<TenantStatus>) -> Result<Vec<Tenant>, StoreError> {
        self.check("tenant_list")?;
        self.inner.tenant_list(status).await
    }
    async fn tenant_ids_after(
        &self,
        status: TenantStatus,
        after: Option<InstallationId>,
        limit: u32,
    ) -> Result<Vec<InstallationId>, StoreError> {
        self.check("tenant_ids_after")?;
        self.inner.tenant_ids_after(status, after, limit).await
    }
    async fn tenant_counts(&self) -> Result<BTreeMap<TenantStatus, u64>, StoreError> {
        self.check("tenant_counts")?;
        self.inner.tenant_counts().await
    }
    async fn tenant_update(
        &self,
        id: InstallationId,
        update: TenantUpdate,
        now: Timestamp,
    ) -> Result<Option<Tenant>, StoreError> {
        self.check("tenant_update")?;
        self.inner.tenant_update(id, update, now).await
    }
    async fn delivery_record(&self, delivery: &DeliveryRecord) -> Result<bool, StoreError> {
        self.check("delivery_record")?;
        self.inner.delivery_record(delivery).await
    }
    async fn delivery_seen(&self, id: &DeliveryId) -> Result<bool, StoreError> {
        self.check("delivery_seen")?;
        self.inner.delivery_seen(id).await
    }
    async fn job_observe(&self, observation: JobObservation) -> Result<JobChange, StoreError> {
        self.check("job_observe")?;
        self.inner.job_observe(observation).await
    }
    async fn job_get(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.check("job_get")?;
        self.inner.job_get(id).await
    }
    async fn job_list(&self, filter: JobFilter) -> Result<Vec<Job>, StoreError> {
        self.check("job_list")?;
        self.inner.job_list(filter).await
    }
    async fn job_list_wanting_runner(&self) -> Result<Vec<Job>, StoreError> {
        self.check("job_list_wanting_runner")?;
        self.inner.job_list_wanting_runner().await
    }
    async fn job_counts(&self) -> Result<BTreeMap<JobStatus, u64>, StoreError> {
        self.check("job_counts")?;
        self.inner.job_counts().await
    }
    async fn job_waiting_counts(
        &self,
        installation: Option<InstallationId>,
    ) -> Result<BTreeMap<Option<Reason>, u64>, StoreError> {
        self.check("job_waiting_counts")?;
        self.inner.job_waiting_counts(installation).await
    }
    async fn job_set_wait_reason(&self, id: JobId, reason: Option<Reason>, at: Timestamp) -> Result<(), StoreError> {
        self.check("job_set_wait_reason")?;
        self.inner.job_set_wait_reason(id, reason, at).await
    }
    async fn job_event_append(&self, event: JobEvent) -> Result<(), StoreError> {
        self.check("job_event_append")?;
        self.inner.job_event_append(event).await
    }
    async fn job_timeline(&self, id: JobId) -> Result<Vec<JobEvent>, StoreError> {
        self.check("job_timeline")?;
        self.inner.job_timeline(id).await
    }
    async fn runner_reserve(&self, request: ReserveRequest) -> Result<Reservation, StoreError> {
        self.check("runner_reserve")?;
        self.inner.runner_reserve(request).await
    }
    async fn runner_update(&self, name: &RunnerName, update: RunnerUpdate) -> Result<Option<Runner>, StoreError> {
        self.check("runner_update")?;
        self.inner.runner_update(name, update).await
    }
    async fn runner_get(&self, name: &RunnerName) -> Result<Option<Runner>, StoreError> {
        self.check("runner_get")?;
        self.inner.runner_get(name).await
    }
    async fn runner_list(&self, filter: RunnerFilter) -> Result<Vec<Runner>, StoreError> {
        self.check("runner_list")?;
        self.inner.runner_list(filter).await
    }
    async fn runner_live_counts(&self) -> Result<BTreeMap<InstallationId, u32>, StoreError> {
        self.check("runner_live_counts")?;
        self.inner.runner_live_counts().await
    }
    async fn runner_live_series(&self) -> Result<RunnerSeries, StoreError> {
        self.check("runner_live_series")?;
        self.inner.runner_live_series().await
    }
    async fn prune(&self, before: Timestamp) -> Result<Pruned, StoreError> {
        self.check("prune")?;
        self.inner.prune(before).await
    }
    async fn usage(&self, from: Timestamp, to: Timestamp, now: Timestamp) -> Result<Vec<UsageRow>, StoreError> {
        self.check("usage")?;
        self.inner.usage(from, to, now).await
    }
    async fn checkpoint_get(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.check("checkpoint_get")?;
        self.inner.checkpoint_get(name).await
    }
    async fn checkpoint_set(&self, name: &str, value: &str, now: Timestamp) -> Result<(), StoreError> {
        self.check("checkpoint_set")?;
        self.inner.checkpoint_set(name, value, now).await
    }
    async fn intake_jobs(&self, batch: Vec<JobIntake>) -> Vec<Result<JobIntakeOutcome, StoreError>> {
        // A failed transaction fails every delivery of its batch, the way a full disk would.
        if self.check("intake_jobs").is_err() {
            return batch
                .iter()
                .map(|_| Err(StoreError::Backend { op: "intake_jobs", source: Box::new(InjectedFault) }))
                .collect();
        }
        self.inner.intake_jobs(batch).await
    }
    async fn demand_snapshot(&self, query: DemandQuery) -> Result<DemandSnapshot, StoreError> {
        self.check("demand_snapshot")?;
        self.inner.demand_snapshot(query).await
    }
    async fn fleet_records(&self, stale: StaleQuery) -> Result<FleetRecords, StoreError> {
        self.check("fleet_records")?;
        self.inner.fleet_records(stale).await
    }
    async fn job_set_wait_reasons(
        &self,
        reasons: Vec<(JobId, Option<Reason>)>,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.check("job_set_wait_reasons")?;
        self.inner.job_set_wait_reasons(reasons, at).await
    }
    async fn lease_acquire(&self, request: LeaseRequest) -> Result<LeaseState, StoreError> {
        self.check("lease_acquire")?;
        self.inner.lease_acquire(request).await
    }
    async fn lease_release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.check("lease_release")?;
        self.inner.lease_release(name, holder).await
    }
    async fn wake_feed(&self) -> Result<Option<Box<dyn WakeFeed>>, StoreError> {
        self.check("wake_feed")?;
        self.inner.wake_feed().await
    }
}
