//! Contracts of the counts the gauges and `tenants show` read: whatever a store keeps to answer them cheaply
//! (count tables, indexes), the answers equal a full recount after any mix of changes, prune included.

use super::fixtures::{
    active_tenant, at, completed, expect_reserved, in_progress, new_tenant, ok, queue_jobs, queued, reserve_request,
    set_state, walk,
};
use ghr_core::ids::{InstallationId, JobId};
use ghr_core::job::JobStatus;
use ghr_core::ports::{DeliveryRecord, JobFilter, RunnerFilter, RunnerSeries, Store};
use ghr_core::reason::Reason;
use ghr_core::runner::RunnerState;
use ghr_core::tenant::{TenantStatus, TenantUpdate};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Compare every count with a recount from the listings.
async fn assert_counts_match_a_recount(store: &dyn Store, when: &str) {
    let jobs = ok(store.job_list(JobFilter::default()).await, "job_list");
    let mut by_status: BTreeMap<JobStatus, u64> = BTreeMap::new();
    for job in &jobs {
        *by_status.entry(job.status).or_default() += 1;
    }
    assert_eq!(ok(store.job_counts().await, "job_counts"), by_status, "jobs per status {when}");

    let tenants = ok(store.tenant_list(None).await, "tenant_list");
    let mut by_status: BTreeMap<TenantStatus, u64> = BTreeMap::new();
    for tenant in &tenants {
        *by_status.entry(tenant.status).or_default() += 1;
    }
    assert_eq!(ok(store.tenant_counts().await, "tenant_counts"), by_status, "tenants per status {when}");

    let live = RunnerFilter { states: RunnerState::LIVE.to_vec(), ..RunnerFilter::default() };
    let mut series = RunnerSeries::new();
    for runner in ok(store.runner_list(live).await, "runner_list") {
        *series.entry((runner.installation_id, runner.tier, runner.state)).or_default() += 1;
    }
    assert_eq!(ok(store.runner_live_series().await, "runner_live_series"), series, "live runner series {when}");

    let wanting = ok(store.job_list_wanting_runner().await, "job_list_wanting_runner");
    let installations: BTreeSet<InstallationId> = jobs.iter().map(|job| job.installation_id).collect();
    for installation in installations {
        let mut by_reason: BTreeMap<Option<Reason>, u64> = BTreeMap::new();
        for job in wanting.iter().filter(|job| job.installation_id == installation) {
            *by_reason.entry(job.wait_reason).or_default() += 1;
        }
        let counted = ok(store.job_waiting_counts(Some(installation)).await, "job_waiting_counts");
        assert_eq!(counted, by_reason, "waiting jobs of installation {installation} by reason {when}");
    }
    let mut totals: BTreeMap<Option<Reason>, u64> = BTreeMap::new();
    for job in &wanting {
        *totals.entry(job.wait_reason).or_default() += 1;
    }
    assert_eq!(
        ok(store.job_waiting_counts(None).await, "job_waiting_counts(None)"),
        totals,
        "waiting jobs by reason {when}"
    );
}

/// Counts of jobs, tenants, live runners and waiting jobs follow creations, status changes, duplicates,
/// out-of-order deliveries, tenant deletion, runner lifecycles and prune.
pub async fn counts_match_a_recount_after_mixed_changes(store: Arc<dyn Store>) {
    let store = store.as_ref();
    assert_counts_match_a_recount(store, "on an empty store").await;
    assert!(ok(store.job_counts().await, "job_counts").is_empty(), "statuses with none are absent");

    active_tenant(store, 91, 10).await;
    active_tenant(store, 92, 10).await;
    ok(store.tenant_create(new_tenant(93, "org-93", TenantStatus::Pending, "small", 2), at(0)).await, "tenant_create");
    let again = new_tenant(91, "org-91", TenantStatus::Active, "small", 10);
    assert!(!ok(store.tenant_create(again, at(1)).await, "tenant_create").1, "a second create is not a new tenant");
    assert_counts_match_a_recount(store, "after tenants were created").await;

    queue_jobs(store, 91, "small", "org-91/app", 9100, 5).await;
    queue_jobs(store, 92, "large", "org-92/app", 9200, 3).await;
    ok(store.job_observe(queued(9300, 93, "org-93/app", None, 3)).await, "job_observe");
    ok(store.job_observe(queued(9100, 91, "org-91/app", Some("small"), 4)).await, "duplicate job_observe");
    ok(store.job_set_wait_reason(JobId(9101), Some(Reason::TenantAtLimit), at(5)).await, "job_set_wait_reason");
    ok(store.job_set_wait_reason(JobId(9102), Some(Reason::TenantAtLimit), at(5)).await, "job_set_wait_reason");
    ok(store.job_set_wait_reason(JobId(9200), Some(Reason::ProviderError), at(5)).await, "job_set_wait_reason");
    assert_counts_match_a_recount(store, "after jobs were queued and reasons set").await;

    let first = queued(9100, 91, "org-91/app", Some("small"), 9100);
    ok(store.job_observe(in_progress(&first, "runner-a", 10)).await, "job_observe");
    ok(store.job_observe(completed(&first, "success", 11)).await, "job_observe");
    let waiting = queued(9101, 91, "org-91/app", Some("small"), 9101);
    ok(store.job_observe(in_progress(&waiting, "runner-b", 12)).await, "job_observe");
    // Completed before GitHub's queued arrived: created completed, then the late queued changes nothing.
    let early = queued(9400, 92, "org-92/app", Some("large"), 13);
    ok(store.job_observe(completed(&early, "cancelled", 13)).await, "job_observe");
    ok(store.job_observe(early).await, "late job_observe");
    ok(store.job_set_wait_reason(JobId(9102), None, at(14)).await, "job_set_wait_reason");
    assert_counts_match_a_recount(store, "after jobs started and completed").await;

    let a = expect_reserved(store, reserve_request(91, "small", 20)).await;
    let b = expect_reserved(store, reserve_request(91, "small", 21)).await;
    let c = expect_reserved(store, reserve_request(92, "large", 22)).await;
    walk(store, &a.name, &[(RunnerState::Launching, 23), (RunnerState::Idle, 24), (RunnerState::Busy, 25)]).await;
    set_state(store, &b.name, RunnerState::Failed, 26).await;
    assert_counts_match_a_recount(store, "after runners were reserved and moved").await;

    let deleted = TenantUpdate { status: Some(TenantStatus::Deleted), ..TenantUpdate::default() };
    ok(store.tenant_update(InstallationId(92), deleted, at(30)).await, "tenant_update");
    set_state(store, &c.name, RunnerState::Terminated, 31).await;
    let approved = TenantUpdate { status: Some(TenantStatus::Active), ..TenantUpdate::default() };
    ok(store.tenant_update(InstallationId(93), approved, at(32)).await, "tenant_update");
    let unchanged = TenantUpdate { max_runners: Some(4), ..TenantUpdate::default() };
    ok(store.tenant_update(InstallationId(91), unchanged, at(33)).await, "tenant_update");
    assert_counts_match_a_recount(store, "after a tenant was deleted and another approved").await;

    let delivery = DeliveryRecord {
        delivery_id: "counted-delivery".into(),
        event: "workflow_job".to_owned(),
        action: Some("completed".to_owned()),
        installation_id: Some(InstallationId(91)),
        received_at: at(1),
    };
    ok(store.delivery_record(&delivery).await, "delivery_record");
    let pruned = ok(store.prune(at(12)).await, "prune");
    assert_eq!(pruned.jobs, 1, "the job completed at 11 goes, the one completed at 13 stays: {pruned:?}");
    assert_counts_match_a_recount(store, "after prune").await;
    let pruned = ok(store.prune(at(100)).await, "prune");
    assert_eq!(pruned.jobs, 1, "the other completed job goes too: {pruned:?}");
    assert_counts_match_a_recount(store, "after a second prune").await;
    let counts = ok(store.job_counts().await, "job_counts");
    assert!(!counts.contains_key(&JobStatus::Completed), "a status whose last job went is absent: {counts:?}");
}
