//! Contracts of `runner_reserve`: demand, the tenant limit across tiers, the global cap, tenant
//! status, repository scoping, and atomicity under concurrent callers.

use super::fixtures::{
    ENVIRONMENT, Found, active_tenant, at, expect_outcome, expect_reserved, new_tenant, ok, queue_jobs,
    reserve_request, set_state, walk,
};
use ghr_core::ids::{InstallationId, JobId, RunnerName, RunnerSeq, TierName};
use ghr_core::ports::{Reservation, ReserveRequest, RunnerFilter, Store};
use ghr_core::reason::Reason;
use ghr_core::runner::RunnerState;
use ghr_core::tenant::{OrgType, TenantStatus, TenantUpdate};
use std::collections::BTreeSet;
use std::sync::Arc;

/// An unknown installation is refused with `unknown_tenant`, even with queued jobs.
pub async fn reserve_refuses_unknown_tenant(store: Arc<dyn Store>) {
    let store = store.as_ref();
    queue_jobs(store, 900, "small", "ghost/repo", 1, 2).await;
    let request = reserve_request(900, "small", 10);
    expect_outcome(store, request, Reservation::Refused(Reason::UnknownTenant), "unknown tenant").await;
    assert!(ok(store.runner_list(RunnerFilter::default()).await, "runner_list").is_empty(), "nothing inserted");
}

/// One runner per queued job: unbound runners cover demand; a busy runner no longer does.
pub async fn reserve_covers_demand_once(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let tenant = active_tenant(store, 1, 10).await;
    expect_outcome(store, reserve_request(1, "small", 1), Reservation::NoDemand, "no queued job, no demand").await;
    queue_jobs(store, 1, "small", "org-1/app", 11, 2).await;

    let mut request = reserve_request(1, "small", 20);
    request.intended_job = Some(JobId(11));
    let first = expect_reserved(store, request).await;
    assert_eq!(first.state, RunnerState::Requested);
    assert_eq!(first.installation_id, InstallationId(1));
    assert_eq!(first.tier, TierName::from("small"));
    assert_eq!(first.tenant_tier, tenant.tier, "tenant_tier is the tenant's plan");
    assert_eq!(first.intended_job, Some(JobId(11)));
    assert_eq!(first.scope_repo, None);
    assert_eq!((first.created_at, first.updated_at), (at(20), at(20)));
    assert_eq!(first.name, RunnerName::derive(ENVIRONMENT, InstallationId(1), &first.tier, first.seq));
    assert_eq!((first.launched_at, first.terminated_at, first.instance_id.clone()), (None, None, None));
    assert_eq!(ok(store.runner_get(&first.name).await, "runner_get"), Some(first.clone()), "reserve persists");

    let second = expect_reserved(store, reserve_request(1, "small", 21)).await;
    assert!(second.seq > first.seq, "sequence numbers grow");
    assert_ne!(second.name, first.name, "names are unique");
    expect_outcome(store, reserve_request(1, "small", 22), Reservation::NoDemand, "2 jobs, 2 unbound runners").await;
    expect_outcome(store, reserve_request(1, "large", 22), Reservation::NoDemand, "no demand on another tier").await;

    // Launching and idle runners still cover demand; a busy one has taken a job (maybe not ours).
    walk(store, &first.name, &[(RunnerState::Launching, 30), (RunnerState::Idle, 31)]).await;
    expect_outcome(store, reserve_request(1, "small", 32), Reservation::NoDemand, "idle runners cover").await;
    set_state(store, &first.name, RunnerState::Busy, 33).await;
    let third = expect_reserved(store, reserve_request(1, "small", 34)).await;
    expect_outcome(store, reserve_request(1, "small", 35), Reservation::NoDemand, "covered again").await;

    // A failed runner frees its share of the demand.
    set_state(store, &third.name, RunnerState::Failed, 36).await;
    expect_reserved(store, reserve_request(1, "small", 37)).await;
}

/// The tenant limit counts live runners of every tier; a finished runner holds its slot until terminated.
pub async fn reserve_limit_spans_tiers(store: Arc<dyn Store>) {
    let store = store.as_ref();
    active_tenant(store, 2, 3).await;
    queue_jobs(store, 2, "small", "org-2/app", 21, 3).await;
    queue_jobs(store, 2, "large", "org-2/app", 31, 3).await;
    let small_a = expect_reserved(store, reserve_request(2, "small", 10)).await;
    expect_reserved(store, reserve_request(2, "small", 11)).await;
    let large = expect_reserved(store, reserve_request(2, "large", 12)).await;
    let at_limit = Reservation::Refused(Reason::TenantAtLimit);
    expect_outcome(store, reserve_request(2, "large", 13), at_limit.clone(), "3 live runners on 2 tiers").await;
    expect_outcome(store, reserve_request(2, "small", 13), at_limit.clone(), "the limit spans tiers").await;

    // Busy and finished runners still hold slots.
    walk(store, &large.name, &[(RunnerState::Launching, 14), (RunnerState::Busy, 15), (RunnerState::Finished, 16)])
        .await;
    expect_outcome(store, reserve_request(2, "large", 17), at_limit.clone(), "finished holds its slot").await;
    set_state(store, &large.name, RunnerState::Terminated, 18).await;
    expect_reserved(store, reserve_request(2, "large", 19)).await;
    expect_outcome(store, reserve_request(2, "large", 20), at_limit.clone(), "back at the limit").await;
    set_state(store, &small_a.name, RunnerState::Failed, 21).await;
    expect_reserved(store, reserve_request(2, "large", 22)).await;

    // The limit is read at reservation time: raising it admits more.
    let raise = TenantUpdate { max_runners: Some(4), ..TenantUpdate::default() };
    ok(store.tenant_update(InstallationId(2), raise, at(23)).await, "tenant_update").found("tenant_update");
    expect_reserved(store, reserve_request(2, "large", 24)).await;
    expect_outcome(store, reserve_request(2, "large", 25), Reservation::NoDemand, "3 large jobs, 3 unbound").await;
    expect_outcome(store, reserve_request(2, "small", 25), at_limit, "at the raised limit").await;
    let counts = ok(store.runner_live_counts().await, "runner_live_counts");
    assert_eq!(counts.get(&InstallationId(2)), Some(&4));
}

/// The deployment-wide cap counts every tenant's live runners.
pub async fn reserve_respects_global_cap(store: Arc<dyn Store>) {
    let store = store.as_ref();
    for id in [3, 4] {
        active_tenant(store, id, 5).await;
        queue_jobs(store, id, "small", &format!("org-{id}/app"), id * 100, 3).await;
    }
    let capped = |id: u64, secs: i64| ReserveRequest { global_cap: Some(3), ..reserve_request(id, "small", secs) };
    expect_reserved(store, capped(3, 1)).await;
    expect_reserved(store, capped(3, 2)).await;
    expect_reserved(store, capped(4, 3)).await;
    let full = Reservation::Refused(Reason::GlobalCap);
    expect_outcome(store, capped(4, 4), full.clone(), "3 live runners across tenants reach a cap of 3").await;
    expect_outcome(store, capped(3, 4), full, "the cap applies to every tenant").await;
    expect_reserved(store, reserve_request(4, "small", 5)).await;
}

/// Pending, suspended and deleted tenants get no runner, each with its own reason.
pub async fn reserve_refuses_inactive_tenants(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let cases = [
        (5, TenantStatus::Pending, Reason::TenantPending),
        (6, TenantStatus::Suspended, Reason::TenantSuspended),
        (7, TenantStatus::Deleted, Reason::TenantDeleted),
    ];
    for (id, status, reason) in cases {
        ok(store.tenant_create(new_tenant(id, &format!("org-{id}"), status, "small", 5), at(0)).await, "");
        queue_jobs(store, id, "small", "r/r", id * 10, 1).await;
        let why = format!("a {status} tenant");
        expect_outcome(store, reserve_request(id, "small", 1), Reservation::Refused(reason), &why).await;
    }
    assert!(ok(store.runner_list(RunnerFilter::default()).await, "runner_list").is_empty(), "nothing inserted");
    let resume = TenantUpdate { status: Some(TenantStatus::Active), ..TenantUpdate::default() };
    ok(store.tenant_update(InstallationId(6), resume, at(2)).await, "tenant_update");
    expect_reserved(store, reserve_request(6, "small", 3)).await;
}

/// Personal-account tenants: demand and supply are counted per repository.
pub async fn reserve_scopes_user_tenants_by_repository(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let mut tenant = new_tenant(8, "octocat", TenantStatus::Active, "small", 10);
    tenant.org_type = OrgType::User;
    ok(store.tenant_create(tenant, at(0)).await, "tenant_create");
    queue_jobs(store, 8, "small", "octocat/alpha", 81, 2).await;
    queue_jobs(store, 8, "small", "octocat/beta", 83, 1).await;
    let scoped = |repo: &str, secs: i64| ReserveRequest {
        scope_repo: Some(repo.to_owned()),
        ..reserve_request(8, "small", secs)
    };
    let alpha = expect_reserved(store, scoped("octocat/alpha", 1)).await;
    assert_eq!(alpha.scope_repo.as_deref(), Some("octocat/alpha"), "the runner records its repository");
    expect_reserved(store, scoped("octocat/alpha", 2)).await;
    expect_outcome(store, scoped("octocat/alpha", 3), Reservation::NoDemand, "alpha's 2 jobs are covered").await;
    let beta = expect_reserved(store, scoped("octocat/beta", 4)).await;
    assert_eq!(beta.scope_repo.as_deref(), Some("octocat/beta"));
    expect_outcome(store, scoped("octocat/beta", 5), Reservation::NoDemand, "beta's job is covered").await;
    expect_outcome(store, scoped("octocat/gamma", 6), Reservation::NoDemand, "no jobs in gamma").await;
}

/// A reservation is never dated before a release that committed before it, even when the caller read
/// its clock earlier (it waited for the store): runner records never show more live runners than admitted.
pub async fn reserve_is_dated_after_earlier_releases(store: Arc<dyn Store>) {
    let store = store.as_ref();
    active_tenant(store, 10, 1).await;
    queue_jobs(store, 10, "small", "org-10/app", 1_001, 2).await;
    let first = expect_reserved(store, reserve_request(10, "small", 10)).await;
    assert_eq!(first.created_at, at(10), "with no later release, created_at is the request's `now`");
    let released = set_state(store, &first.name, RunnerState::Terminated, 50).await;
    let second = expect_reserved(store, reserve_request(10, "small", 40)).await;
    let terminated_at = released.terminated_at.found("terminated_at of a terminated runner");
    assert!(
        second.created_at >= terminated_at,
        "a runner admitted after a release is dated {} but the release was at {terminated_at}",
        second.created_at
    );
    assert_eq!(ok(store.runner_get(&second.name).await, "runner_get").map(|r| r.created_at), Some(second.created_at));
}

/// Many concurrent reservations never exceed the tenant limit, and each gets a distinct runner.
pub async fn reserve_is_atomic_under_concurrency(store: Arc<dyn Store>) {
    const TASKS: usize = 24;
    const LIMIT: u32 = 3;
    active_tenant(store.as_ref(), 9, LIMIT).await;
    queue_jobs(store.as_ref(), 9, "small", "org-9/app", 901, 20).await;
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.spawn(async move { store.runner_reserve(reserve_request(9, "small", task as i64)).await });
    }
    let mut reserved = BTreeSet::new();
    while let Some(joined) = tasks.join_next().await {
        let outcome = ok(ok(joined, "reservation task"), "runner_reserve");
        match outcome {
            Reservation::Reserved(runner) => assert!(reserved.insert(runner.seq), "seq {} issued twice", runner.seq),
            Reservation::Refused(Reason::TenantAtLimit) => {}
            other => panic!("concurrent reservation: unexpected outcome {other:?}"),
        }
    }
    assert_eq!(reserved.len(), LIMIT as usize, "exactly max_runners reservations succeed");
    let live = ok(store.runner_live_counts().await, "runner_live_counts");
    assert_eq!(live.get(&InstallationId(9)), Some(&LIMIT));
    let stored: BTreeSet<RunnerSeq> =
        ok(store.runner_list(RunnerFilter::default()).await, "runner_list").iter().map(|r| r.seq).collect();
    assert_eq!(stored, reserved, "the store holds exactly the reserved runners");
}
