//! A small store with something of everything, and a full read-back of a store's records through the `Store`
//! port: tests of `ghr store copy` fill one store, copy it, and compare what each end answers.
//!
//! Test support (like [`crate::conformance`]), compiled always so that the binary's tests can use it.

use crate::conformance::{at, new_tenant, queued, reserve_request};
use ghr_core::cost::UsageRow;
use ghr_core::ids::{DeliveryId, InstallationId, JobId, RunnerName};
use ghr_core::job::{Job, JobEvent, JobStatus};
use ghr_core::ports::{DeliveryRecord, JobFilter, Reservation, RunnerFilter, RunnerUpdate, Store, StoreError};
use ghr_core::reason::Reason;
use ghr_core::runner::{Runner, RunnerState};
use ghr_core::tenant::{Tenant, TenantStatus};
use std::collections::BTreeMap;

/// Tenants of the sample: (installation id, org, status).
pub const TENANTS: [(u64, &str, TenantStatus); 4] = [
    (1001, "acme", TenantStatus::Active),
    (1002, "globex", TenantStatus::Suspended),
    (1003, "initech", TenantStatus::Pending),
    (1004, "hooli", TenantStatus::Deleted),
];
/// Checkpoints of the sample: (name, value).
pub const CHECKPOINTS: [(&str, &str); 2] = [("redelivery_scan", "delivery-17"), ("queued_poll", "1001")];
/// Delivery ids the sample records.
pub const DELIVERIES: [&str; 3] = ["d-1", "d-2", "d-3"];
/// The end of the sample's activity: usage is read up to here.
pub const END_SECS: i64 = 10_000;

/// Fill an empty store: tenants of every status, jobs in every status with timelines (wait reasons set and
/// cleared), runners through every lifecycle path (terminated, failed, live), deliveries and checkpoints.
pub async fn populate(store: &dyn Store) -> Result<(), StoreError> {
    for (id, org, status) in TENANTS {
        store.tenant_create(new_tenant(id, org, status, "small", 3), at(0)).await?;
    }
    for (n, id) in DELIVERIES.iter().enumerate() {
        let record = DeliveryRecord {
            delivery_id: DeliveryId::from(*id),
            event: "workflow_job".into(),
            action: Some("queued".into()),
            installation_id: Some(InstallationId(1001)),
            received_at: at(n as i64),
        };
        store.delivery_record(&record).await?;
    }
    // Jobs 1-4 of acme queued; a job of an unknown installation with no tier; a job of the suspended tenant.
    for job in 1..=4 {
        store.job_observe(queued(job, 1001, "acme/app", Some("small"), job as i64)).await?;
    }
    store.job_observe(queued(90, 4242, "ghost/app", None, 5)).await?;
    store.job_observe(queued(91, 1002, "globex/app", Some("small"), 6)).await?;
    store.job_set_wait_reason(JobId(90), Some(Reason::UnknownTenant), at(7)).await?;
    store.job_set_wait_reason(JobId(91), Some(Reason::TenantSuspended), at(7)).await?;
    store.job_set_wait_reason(JobId(4), Some(Reason::TenantAtLimit), at(8)).await?;
    store.job_set_wait_reason(JobId(4), None, at(9)).await?;

    // Three runners of acme: one runs job 1 to the end, one fails to launch, one is idle.
    let mut runners = Vec::new();
    for secs in [10, 11, 12] {
        match store.runner_reserve(reserve_request(1001, "small", secs)).await? {
            Reservation::Reserved(runner) => runners.push(runner.name),
            other => panic!("the sample needs a reservation, got {other:?}"),
        }
    }
    let [done, failed, idle] = <[RunnerName; 3]>::try_from(runners).expect("three runners");
    step(store, &done, RunnerState::Launching, 20).await?;
    step(store, &done, RunnerState::Idle, 30).await?;
    let one = queued(1, 1001, "acme/app", Some("small"), 1);
    store
        .job_observe(ghr_core::job::JobObservation {
            status: JobStatus::InProgress,
            runner_name: Some(done.clone()),
            started_at: Some(at(40)),
            observed_at: at(40),
            ..one.clone()
        })
        .await?;
    step(store, &done, RunnerState::Busy, 40).await?;
    store
        .job_observe(ghr_core::job::JobObservation {
            status: JobStatus::Completed,
            conclusion: Some("success".into()),
            runner_name: Some(done.clone()),
            started_at: Some(at(40)),
            completed_at: Some(at(400)),
            observed_at: at(400),
            ..one
        })
        .await?;
    step(store, &done, RunnerState::Finished, 400).await?;
    step(store, &done, RunnerState::Terminated, 410).await?;
    step(store, &failed, RunnerState::Launching, 20).await?;
    let failure =
        RunnerUpdate { last_error: Some("capacity".into()), ..RunnerUpdate::state(RunnerState::Failed, at(25)) };
    store.runner_update(&failed, failure).await?;
    step(store, &idle, RunnerState::Launching, 20).await?;
    step(store, &idle, RunnerState::Idle, 60).await?;
    // Job 2 in progress on a runner ghr does not know (GitHub's choice), job 3 completed without one.
    let two = queued(2, 1001, "acme/app", Some("small"), 2);
    store
        .job_observe(ghr_core::job::JobObservation {
            status: JobStatus::InProgress,
            runner_name: Some(RunnerName::from("elsewhere")),
            started_at: Some(at(70)),
            observed_at: at(70),
            ..two
        })
        .await?;
    let three = queued(3, 1001, "acme/app", Some("small"), 3);
    store
        .job_observe(ghr_core::job::JobObservation {
            status: JobStatus::Completed,
            conclusion: Some("cancelled".into()),
            completed_at: Some(at(80)),
            observed_at: at(80),
            ..three
        })
        .await?;
    for (n, (name, value)) in CHECKPOINTS.iter().enumerate() {
        store.checkpoint_set(name, value, at(100 + n as i64)).await?;
    }
    Ok(())
}

async fn step(store: &dyn Store, name: &RunnerName, state: RunnerState, secs: i64) -> Result<(), StoreError> {
    store.runner_update(name, RunnerUpdate::state(state, at(secs))).await?;
    Ok(())
}

/// Everything a store answers about its records, for comparing two stores.
#[derive(Debug, Clone, PartialEq)]
pub struct Contents {
    pub tenants: Vec<Tenant>,
    pub tenant_counts: BTreeMap<TenantStatus, u64>,
    pub jobs: Vec<Job>,
    pub job_counts: BTreeMap<JobStatus, u64>,
    pub waiting: BTreeMap<Option<Reason>, u64>,
    pub timelines: BTreeMap<u64, Vec<JobEvent>>,
    pub runners: Vec<Runner>,
    pub live_runners: BTreeMap<InstallationId, u32>,
    pub usage: Vec<UsageRow>,
    pub deliveries_seen: Vec<bool>,
    pub checkpoints: Vec<Option<String>>,
}

/// Read back every record through the `Store` port (usage up to [`END_SECS`]).
pub async fn contents(store: &dyn Store) -> Result<Contents, StoreError> {
    let jobs = store.job_list(JobFilter { limit: Some(10_000), ..JobFilter::default() }).await?;
    let mut timelines = BTreeMap::new();
    for job in &jobs {
        timelines.insert(job.job_id.0, store.job_timeline(job.job_id).await?);
    }
    let mut deliveries_seen = Vec::new();
    for id in DELIVERIES.iter().chain(&["never-sent"]) {
        deliveries_seen.push(store.delivery_seen(&DeliveryId::from(*id)).await?);
    }
    let mut checkpoints = Vec::new();
    for (name, _) in CHECKPOINTS {
        checkpoints.push(store.checkpoint_get(name).await?);
    }
    let mut runners =
        store.runner_list(RunnerFilter { states: RunnerState::ALL.to_vec(), ..RunnerFilter::default() }).await?;
    runners.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Contents {
        tenants: store.tenant_list(None).await?,
        tenant_counts: store.tenant_counts().await?,
        jobs,
        job_counts: store.job_counts().await?,
        waiting: store.job_waiting_counts(None).await?,
        timelines,
        runners,
        live_runners: store.runner_live_counts().await?,
        usage: store.usage(at(0), at(END_SECS), at(END_SECS)).await?,
        deliveries_seen,
        checkpoints,
    })
}
