//! Contracts of the planner's snapshots: `demand_snapshot` (the dispatcher's read) and `fleet_records` (the
//! reconciler's read).

use super::fixtures::{
    active_tenant, at, expect_reserved, in_progress, new_tenant, ok, queue_jobs, queued, reserve_request, set_state,
};
use ghr_core::ids::{InstallationId, JobId, TierName};
use ghr_core::job::JobStatus;
use ghr_core::planner::DemandKey;
use ghr_core::planner::fleet::{JobCursor, StaleQuery};
use ghr_core::ports::{DemandQuery, Store};
use ghr_core::reason::Reason;
use ghr_core::runner::RunnerState;
use ghr_core::tenant::{OrgType, TenantStatus};
use std::collections::BTreeMap;
use std::sync::Arc;

fn key(installation: u64, tier: &str, repo: Option<&str>) -> DemandKey {
    DemandKey {
        installation_id: InstallationId(installation),
        tier: TierName::from(tier),
        scope_repo: repo.map(Into::into),
    }
}

fn job_ids(jobs: &[ghr_core::job::Job]) -> Vec<u64> {
    jobs.iter().map(|j| j.job_id.0).collect()
}

/// A snapshot of some tenants holds their tenants, live and unbound runners and queued jobs, oldest first;
/// a full snapshot holds every tenant with a queued job matched to a tier.
pub async fn demand_snapshot_reads_the_tenants_asked_for(store: Arc<dyn Store>) {
    let store = store.as_ref();
    active_tenant(store, 1, 10).await;
    active_tenant(store, 2, 10).await;
    queue_jobs(store, 2, "small", "org-2/app", 1, 1).await;
    queue_jobs(store, 1, "small", "org-1/app", 2, 2).await;
    queue_jobs(store, 1, "large", "org-1/app", 4, 1).await;
    ok(store.job_observe(queued(5, 1, "org-1/app", None, 5)).await, "job_observe");
    let runner = expect_reserved(store, reserve_request(1, "small", 10)).await;
    let busy = expect_reserved(store, reserve_request(1, "large", 11)).await;
    set_state(store, &busy.name, RunnerState::Busy, 12).await;

    let query = DemandQuery { tenants: Some(vec![InstallationId(1)]), global_cap: None };
    let snapshot = ok(store.demand_snapshot(query).await, "demand_snapshot");
    assert_eq!(snapshot.tenants.keys().copied().collect::<Vec<_>>(), vec![InstallationId(1)]);
    assert_eq!(snapshot.tenants[&InstallationId(1)].live, 2, "live runners of every tier");
    assert_eq!(job_ids(&snapshot.jobs), vec![2, 3, 4], "queued jobs matched to a tier, oldest first");
    assert_eq!(snapshot.unbound, BTreeMap::from([(key(1, "small", None), 1)]), "{} is unbound", runner.name);

    let full = ok(store.demand_snapshot(DemandQuery::default()).await, "demand_snapshot");
    assert_eq!(full.tenants.keys().copied().collect::<Vec<_>>(), vec![InstallationId(1), InstallationId(2)]);
    assert_eq!(job_ids(&full.jobs), vec![1, 2, 3, 4], "every tenant's queue, in one FIFO order");
    assert_eq!(full.global_live, 0, "the global count is read only for a cap");
    let capped =
        ok(store.demand_snapshot(DemandQuery { tenants: None, global_cap: Some(100) }).await, "demand_snapshot");
    assert_eq!(capped.global_live, 2);

    let none =
        ok(store.demand_snapshot(DemandQuery { tenants: Some(Vec::new()), global_cap: None }).await, "demand_snapshot");
    assert!(none.jobs.is_empty() && none.tenants.is_empty(), "no tenant asked, nothing read");
}

/// Of a tenant without headroom (at its limit, inactive, unknown, or under a reached global cap), only the
/// jobs whose wait reason is not the tenant's refusal are read (new, covered, or waiting for another reason).
pub async fn demand_snapshot_skips_reasoned_jobs_of_tenants_without_headroom(store: Arc<dyn Store>) {
    let store = store.as_ref();
    active_tenant(store, 1, 1).await;
    active_tenant(store, 2, 5).await;
    let suspended = new_tenant(3, "org-3", TenantStatus::Suspended, "small", 5);
    ok(store.tenant_create(suspended, at(0)).await, "tenant_create");
    queue_jobs(store, 1, "small", "org-1/app", 1, 3).await;
    queue_jobs(store, 2, "small", "org-2/app", 11, 2).await;
    queue_jobs(store, 3, "small", "org-3/app", 21, 2).await;
    queue_jobs(store, 4, "small", "org-4/app", 31, 2).await;
    expect_reserved(store, reserve_request(1, "small", 40)).await;
    for (job, reason) in [
        (2, Reason::TenantAtLimit),
        (12, Reason::ProviderError),
        (21, Reason::TenantSuspended),
        (31, Reason::UnknownTenant),
    ] {
        ok(store.job_set_wait_reason(JobId(job), Some(reason), at(41)).await, "job_set_wait_reason");
    }

    let snapshot = ok(store.demand_snapshot(DemandQuery::default()).await, "demand_snapshot");
    assert_eq!(job_ids(&snapshot.jobs), vec![1, 3, 11, 12, 22, 32], "tenant 2 has room: all of its queue");
    assert!(!snapshot.tenants.contains_key(&InstallationId(4)), "no tenant record for installation 4");
    let kept = BTreeMap::from([(Reason::TenantAtLimit, 1), (Reason::TenantSuspended, 1), (Reason::UnknownTenant, 1)]);
    assert_eq!(snapshot.kept_reasons, kept, "a full snapshot counts the jobs it did not read");
    let scoped = DemandQuery { tenants: Some(vec![InstallationId(1)]), global_cap: None };
    let scoped = ok(store.demand_snapshot(scoped).await, "demand_snapshot");
    assert_eq!(job_ids(&scoped.jobs), vec![1, 3]);
    assert!(scoped.kept_reasons.is_empty(), "a scoped snapshot does not count them");

    let capped = ok(store.demand_snapshot(DemandQuery { tenants: None, global_cap: Some(1) }).await, "demand_snapshot");
    assert_eq!(job_ids(&capped.jobs), vec![1, 3, 11, 12, 22, 32], "a reached global cap leaves no tenant room");
    assert_eq!(capped.kept_reasons.get(&Reason::GlobalCap), None, "no job waited for the cap yet");
}

/// Reasons set in one batch behave like one `job_set_wait_reason` each: a timeline entry only on change,
/// nothing for an unknown job, and a job that left the queue takes no reason.
pub async fn job_set_wait_reasons_applies_each_change_once(store: Arc<dyn Store>) {
    let store = store.as_ref();
    active_tenant(store, 1, 10).await;
    queue_jobs(store, 1, "small", "org-1/app", 1, 2).await;
    let running = queued(3, 1, "org-1/app", Some("small"), 3);
    ok(store.job_observe(running.clone()).await, "job_observe");
    ok(store.job_observe(in_progress(&running, "someone", 4)).await, "job_observe");
    let timeline_len = |entries: Vec<ghr_core::job::JobEvent>| entries.len();
    let before = timeline_len(ok(store.job_timeline(JobId(1)).await, "job_timeline"));
    let batch = vec![
        (JobId(1), Some(Reason::TenantAtLimit)),
        (JobId(2), None),
        (JobId(3), Some(Reason::TenantAtLimit)),
        (JobId(99), Some(Reason::TenantAtLimit)),
    ];
    ok(store.job_set_wait_reasons(batch.clone(), at(10)).await, "job_set_wait_reasons");
    ok(store.job_set_wait_reasons(batch, at(11)).await, "job_set_wait_reasons");
    ok(store.job_set_wait_reasons(Vec::new(), at(12)).await, "job_set_wait_reasons");
    let job = |id| async move { ok(store.job_get(JobId(id)).await, "job_get").expect("a recorded job") };
    assert_eq!(job(1).await.wait_reason, Some(Reason::TenantAtLimit));
    assert_eq!(job(2).await.wait_reason, None);
    assert_eq!(job(3).await.wait_reason, None, "a running job waits for nothing");
    assert_eq!(ok(store.job_get(JobId(99)).await, "job_get"), None, "an unknown job is left alone");
    let after = timeline_len(ok(store.job_timeline(JobId(1)).await, "job_timeline"));
    assert_eq!(after, before + 1, "one entry for one change, however often it is set");
}

/// The reconciler's read: live runners, their tenants, demand per key of tenants with unbound runners
/// (per repository for personal accounts) and the stale jobs.
pub async fn fleet_records_hold_what_the_reconciler_plans_from(store: Arc<dyn Store>) {
    let store = store.as_ref();
    active_tenant(store, 1, 10).await;
    let mut personal = new_tenant(2, "me", TenantStatus::Active, "small", 10);
    personal.org_type = OrgType::User;
    ok(store.tenant_create(personal, at(0)).await, "tenant_create");
    active_tenant(store, 3, 10).await;
    queue_jobs(store, 1, "small", "org-1/app", 1, 3).await;
    queue_jobs(store, 2, "small", "me/a", 11, 2).await;
    queue_jobs(store, 2, "small", "me/b", 13, 1).await;
    queue_jobs(store, 3, "small", "org-3/app", 21, 1).await;
    let idle = expect_reserved(store, reserve_request(1, "small", 30)).await;
    let mut scoped = reserve_request(2, "small", 31);
    scoped.scope_repo = Some("me/a".into());
    expect_reserved(store, scoped).await;
    let done = expect_reserved(store, reserve_request(3, "small", 32)).await;
    set_state(store, &done.name, RunnerState::Failed, 33).await;
    let base = queued(40, 1, "org-1/app", Some("small"), 40);
    ok(store.job_observe(base.clone()).await, "job_observe");
    ok(store.job_observe(in_progress(&base, idle.name.as_str(), 100)).await, "job_observe");

    let records = ok(store.fleet_records(StaleQuery::all(at(12))).await, "fleet_records");
    let live: Vec<String> = records.live.iter().map(|r| r.name.to_string()).collect();
    assert_eq!(live.len(), 2, "live runners only: {live:?}");
    assert_eq!(records.tenants.keys().copied().collect::<Vec<_>>(), vec![InstallationId(1), InstallationId(2)]);
    let expected = BTreeMap::from([
        (key(1, "small", None), 3),
        (key(2, "small", Some("me/a")), 2),
        (key(2, "small", Some("me/b")), 1),
    ]);
    assert_eq!(records.demand, expected, "tenant 3 has no unbound runner: its demand is not read");
    assert_eq!(job_ids(&records.stale_jobs), vec![1, 2, 3, 11, 12], "queued at or before the threshold");

    let later = ok(store.fleet_records(StaleQuery::all(at(100))).await, "fleet_records");
    assert_eq!(job_ids(&later.stale_jobs), vec![1, 2, 3, 11, 12, 13, 21, 40], "then in progress since then");
    assert_eq!(later.tenants.len(), 3, "the stale jobs' tenants too");

    // The walks: a page of each (queued, in progress) after its cursor, in (received_at, job_id) order.
    let page =
        |queued_after, in_progress_after| StaleQuery { before: at(100), queued_after, in_progress_after, limit: 2 };
    let first = ok(store.fleet_records(page(None, None)).await, "fleet_records");
    assert_eq!(job_ids(&first.stale_jobs), vec![1, 2, 40], "two queued, then the running one");
    let cursor = first.stale_jobs.iter().rfind(|j| j.status == JobStatus::Queued).map(JobCursor::of);
    let second = ok(store.fleet_records(page(cursor, first.stale_jobs.last().map(JobCursor::of))).await, "");
    assert_eq!(job_ids(&second.stale_jobs), vec![3, 11], "each walk continues after its cursor");
    let cursor = second.stale_jobs.last().map(JobCursor::of);
    let third = ok(store.fleet_records(page(cursor, None)).await, "");
    assert_eq!(job_ids(&third.stale_jobs), vec![12, 13, 40], "a walk started over reads from the oldest");
    assert_eq!(third.live.len(), 2, "live runners are read whole whatever the walks");
}
