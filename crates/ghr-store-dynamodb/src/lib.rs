//! DynamoDB store of ghr: the whole [`Store`] port on DynamoDB, with the seed's tenant table kept as it is.
//!
//! Selected by `store.url = "dynamodb://<table prefix>?region=...[&endpoint=...]"` (see [`DynamoUrl`]). The tables
//! ([`tables`]) are created by `ghr store init` ([`init_tables`]) or by the Terraform module; opening a store
//! checks that they exist and refuses to run without them.
//!
//! - `<prefix>-tenants` is the seed's registry, attribute for attribute, so the seed's `aws dynamodb scan /
//!   get-item / update-item` keep working. Admission reads `max_runners` from the item inside the same
//!   conditional write that takes the slot, so a limit changed by hand applies to the very next admission.
//! - `<prefix>-jobs`, `<prefix>-runners`, `<prefix>-deliveries` and `<prefix>-state` hold the rest.
//!
//! Every method is atomic on its own: single-item conditional writes, or `TransactWriteItems` where a change
//! spans items (a runner and its tenant's live count). Nothing is cached between calls.

pub mod capacity;
mod checkpoints;
mod counters;
mod deliveries;
mod error;
mod health;
mod intake;
pub mod item;
mod job_item;
mod jobs;
mod leases;
mod repair;
mod reserve;
mod retention;
mod runner_item;
mod runners;
mod snapshot;
pub mod tables;
mod tenants;
pub mod testing;
mod url;
mod usage;

pub use error::OpenError;
pub use tables::{InitOutcome, Tables, init_tables};
pub use url::{DynamoUrl, is_dynamodb_url};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use ghr_core::Timestamp;
use ghr_core::cost::UsageRow;
use ghr_core::ids::{DeliveryId, InstallationId, JobId, OrgName, RunnerName};
use ghr_core::intake::{JobIntake, JobIntakeOutcome};
use ghr_core::job::{Job, JobChange, JobEvent, JobObservation, JobStatus};
use ghr_core::planner::dispatch::DemandSnapshot;
use ghr_core::planner::fleet::{FleetRecords, StaleQuery};
use ghr_core::ports::{
    DeliveryRecord, DemandQuery, JobFilter, LeaseRequest, LeaseState, Pruned, Reservation, ReserveRequest,
    RunnerFilter, RunnerSeries, RunnerUpdate, Store, StoreError,
};
use ghr_core::reason::Reason;
use ghr_core::runner::Runner;
use ghr_core::tenant::{NewTenant, Tenant, TenantStatus, TenantUpdate};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a completed job or a delivery stays before DynamoDB's TTL may delete it, past the retention the
/// reconciler prunes at: TTL is the backstop for when no ghr runs, pruning keeps the counters exact.
pub const DEFAULT_TTL: Duration = Duration::from_secs(32 * 24 * 3600);

/// How a DynamoDB store is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoOptions {
    /// Written as the `expires_at` TTL attribute (epoch seconds) on completed jobs and deliveries.
    pub ttl: Duration,
}

impl Default for DynamoOptions {
    fn default() -> Self {
        Self { ttl: DEFAULT_TTL }
    }
}

/// The DynamoDB store. Cheap to clone (the SDK client is shared).
#[derive(Clone)]
pub struct DynamoStore {
    pub(crate) client: Client,
    pub(crate) tables: Tables,
    pub(crate) options: DynamoOptions,
}

impl std::fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStore").field("tables", &self.tables).finish_non_exhaustive()
    }
}

impl DynamoStore {
    /// Open the store `url` names: build a client for its region and endpoint, and check that every table
    /// exists (run `ghr store init` first).
    pub async fn open(url: &str, options: DynamoOptions) -> Result<Self, OpenError> {
        let url = DynamoUrl::parse(url)?;
        let client = url.client().await;
        let store = Self { client, tables: Tables::new(&url.prefix), options };
        tables::verify(&store.client, &store.tables).await?;
        Ok(store)
    }

    /// A store on `client` with the tables of `prefix`, without checking them (tests that create them first).
    pub fn with_client(client: Client, prefix: &str, options: DynamoOptions) -> Self {
        Self { client, tables: Tables::new(prefix), options }
    }

    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}

#[async_trait]
impl Store for DynamoStore {
    async fn check_writable(&self) -> Result<(), StoreError> {
        health::check_writable(self).await
    }

    async fn tenant_create(&self, tenant: NewTenant, now: Timestamp) -> Result<(Tenant, bool), StoreError> {
        tenants::create(self, tenant, now).await
    }

    async fn tenant_get(&self, id: InstallationId) -> Result<Option<Tenant>, StoreError> {
        tenants::get(self, id).await
    }

    async fn tenant_find_by_org(&self, org: &OrgName) -> Result<Option<Tenant>, StoreError> {
        tenants::find_by_org(self, org).await
    }

    async fn tenant_list(&self, status: Option<TenantStatus>) -> Result<Vec<Tenant>, StoreError> {
        tenants::list(self, status).await
    }

    async fn tenant_ids_after(
        &self,
        status: TenantStatus,
        after: Option<InstallationId>,
        limit: u32,
    ) -> Result<Vec<InstallationId>, StoreError> {
        tenants::ids_after(self, status, after, limit).await
    }

    async fn tenant_counts(&self) -> Result<BTreeMap<TenantStatus, u64>, StoreError> {
        tenants::counts(self).await
    }

    async fn tenant_update(
        &self,
        id: InstallationId,
        update: TenantUpdate,
        now: Timestamp,
    ) -> Result<Option<Tenant>, StoreError> {
        tenants::update(self, id, update, now).await
    }

    async fn delivery_record(&self, delivery: &DeliveryRecord) -> Result<bool, StoreError> {
        deliveries::record(self, delivery).await
    }

    async fn delivery_seen(&self, id: &DeliveryId) -> Result<bool, StoreError> {
        deliveries::seen(self, id).await
    }

    async fn job_observe(&self, observation: JobObservation) -> Result<JobChange, StoreError> {
        jobs::observe(self, observation).await
    }

    async fn job_get(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        jobs::get(self, id).await
    }

    async fn job_list(&self, filter: JobFilter) -> Result<Vec<Job>, StoreError> {
        jobs::list(self, filter).await
    }

    async fn job_list_wanting_runner(&self) -> Result<Vec<Job>, StoreError> {
        jobs::list_wanting_runner(self).await
    }

    async fn job_counts(&self) -> Result<BTreeMap<JobStatus, u64>, StoreError> {
        counters::job_counts(self).await
    }

    async fn job_waiting_counts(
        &self,
        installation: Option<InstallationId>,
    ) -> Result<BTreeMap<Option<Reason>, u64>, StoreError> {
        jobs::waiting_counts(self, installation).await
    }

    async fn job_set_wait_reason(&self, id: JobId, reason: Option<Reason>, at: Timestamp) -> Result<(), StoreError> {
        jobs::set_wait_reason(self, id, reason, at).await
    }

    async fn job_event_append(&self, event: JobEvent) -> Result<(), StoreError> {
        jobs::event_append(self, event).await
    }

    async fn job_timeline(&self, id: JobId) -> Result<Vec<JobEvent>, StoreError> {
        jobs::timeline(self, id).await
    }

    async fn runner_reserve(&self, request: ReserveRequest) -> Result<Reservation, StoreError> {
        reserve::reserve(self, request).await
    }

    async fn runner_update(&self, name: &RunnerName, update: RunnerUpdate) -> Result<Option<Runner>, StoreError> {
        runners::update(self, name, update).await
    }

    async fn runner_get(&self, name: &RunnerName) -> Result<Option<Runner>, StoreError> {
        runners::get(self, name).await
    }

    async fn runner_list(&self, filter: RunnerFilter) -> Result<Vec<Runner>, StoreError> {
        runners::list(self, filter).await
    }

    async fn runner_live_counts(&self) -> Result<BTreeMap<InstallationId, u32>, StoreError> {
        runners::live_counts(self).await
    }

    async fn runner_live_series(&self) -> Result<RunnerSeries, StoreError> {
        runners::live_series(self).await
    }

    async fn prune(&self, before: Timestamp) -> Result<Pruned, StoreError> {
        retention::prune(self, before).await
    }

    async fn usage(&self, from: Timestamp, to: Timestamp, now: Timestamp) -> Result<Vec<UsageRow>, StoreError> {
        usage::usage(self, from, to, now).await
    }

    async fn checkpoint_get(&self, name: &str) -> Result<Option<String>, StoreError> {
        checkpoints::get(self, name).await
    }

    async fn checkpoint_set(&self, name: &str, value: &str, now: Timestamp) -> Result<(), StoreError> {
        checkpoints::set(self, name, value, now).await
    }

    async fn intake_jobs(&self, batch: Vec<JobIntake>) -> Vec<Result<JobIntakeOutcome, StoreError>> {
        intake::intake_jobs(self, batch).await
    }

    async fn demand_snapshot(&self, query: DemandQuery) -> Result<DemandSnapshot, StoreError> {
        snapshot::demand_snapshot(self, query).await
    }

    async fn fleet_records(&self, stale: StaleQuery) -> Result<FleetRecords, StoreError> {
        snapshot::fleet_records(self, stale).await
    }

    async fn job_set_wait_reasons(
        &self,
        reasons: Vec<(JobId, Option<Reason>)>,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        jobs::set_wait_reasons(self, reasons, at).await
    }

    async fn lease_acquire(&self, request: LeaseRequest) -> Result<LeaseState, StoreError> {
        leases::acquire(self, request).await
    }

    async fn lease_release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        leases::release(self, name, holder).await
    }

    async fn repair_counts(&self, now: Timestamp) -> Result<u64, StoreError> {
        repair::repair_counts(self, now).await
    }
}
