//! Table tests of the snapshots' pure parts: the headroom selection, unbound counts, stale walks and demand.

use super::*;
use ghr_core::ids::{JobId, RunnerName, RunnerSeq, TierName};
use ghr_core::runner::RunnerState;
use ghr_core::tenant::{OrgType, TenantMetadata, TenantStatus};

fn at(secs: i64) -> Timestamp {
    Timestamp::UNIX_EPOCH + chrono::Duration::seconds(secs)
}

fn tenant(id: u64, org_type: OrgType) -> Tenant {
    Tenant {
        installation_id: InstallationId(id),
        org_name: format!("org{id}").as_str().into(),
        org_type,
        status: TenantStatus::Active,
        tier: "small".into(),
        max_runners: 5,
        created_at: at(0),
        updated_at: at(0),
        metadata: TenantMetadata::default(),
    }
}

fn job(id: u64, installation: u64, repository: &str, received: i64) -> Job {
    Job {
        job_id: JobId(id),
        installation_id: InstallationId(installation),
        repository: repository.to_owned(),
        labels: vec!["self-hosted".into(), "small".into()],
        tier: Some("small".into()),
        status: JobStatus::Queued,
        conclusion: None,
        runner_name: None,
        wait_reason: None,
        received_at: at(received),
        queued_at: None,
        started_at: None,
        completed_at: None,
        updated_at: at(received),
    }
}

fn waiting(mut job: Job, reason: Reason) -> Job {
    job.wait_reason = Some(reason);
    job
}

fn running(mut job: Job, started: Option<i64>, updated: i64) -> Job {
    job.status = JobStatus::InProgress;
    job.started_at = started.map(at);
    job.updated_at = at(updated);
    job
}

fn runner(seq: u64, installation: u64, state: RunnerState, scope: Option<&str>) -> Runner {
    let tier = TierName::from("small");
    Runner {
        seq: RunnerSeq(seq),
        name: RunnerName::derive("test", InstallationId(installation), &tier, RunnerSeq(seq)),
        installation_id: InstallationId(installation),
        tier: tier.clone(),
        tenant_tier: tier,
        scope_repo: scope.map(str::to_owned),
        state,
        instance_id: None,
        github_runner_id: None,
        intended_job: None,
        job_id: None,
        created_at: at(0),
        launched_at: None,
        registered_at: None,
        job_started_at: None,
        finished_at: None,
        terminated_at: None,
        last_error: None,
        updated_at: at(0),
    }
}

fn ids(jobs: &[Job]) -> Vec<u64> {
    jobs.iter().map(|j| j.job_id.0).collect()
}

fn key(installation: u64, scope: Option<&str>) -> DemandKey {
    DemandKey { installation_id: InstallationId(installation), tier: "small".into(), scope_repo: scope.map(Into::into) }
}

#[test]
fn select_jobs_leaves_out_only_the_jobs_waiting_with_their_tenants_refusal() {
    let split = Headroom {
        open: BTreeSet::from([InstallationId(2)]),
        closed: BTreeMap::from([
            (Reason::TenantAtLimit, BTreeSet::from([InstallationId(1)])),
            (Reason::UnknownTenant, BTreeSet::from([InstallationId(4)])),
        ]),
    };
    let mut unmatched = job(9, 2, "org2/app", 0);
    unmatched.tier = None;
    let queued = vec![
        job(3, 1, "org1/app", 3),
        waiting(job(2, 1, "org1/app", 2), Reason::TenantAtLimit),
        waiting(job(1, 1, "org1/app", 1), Reason::ProviderError),
        waiting(job(12, 2, "org2/app", 1), Reason::TenantAtLimit),
        waiting(job(31, 4, "org4/app", 0), Reason::UnknownTenant),
        job(32, 4, "org4/app", 5),
        unmatched,
    ];
    let (jobs, kept) = select_jobs(queued.clone(), &split, true);
    assert_eq!(ids(&jobs), vec![1, 12, 3, 32], "oldest first, (received, id); a tenant with room keeps all");
    assert_eq!(kept, BTreeMap::from([(Reason::TenantAtLimit, 1), (Reason::UnknownTenant, 1)]));
    let (scoped, kept) = select_jobs(queued, &split, false);
    assert_eq!(ids(&scoped), ids(&jobs));
    assert!(kept.is_empty(), "a scoped snapshot does not count what it left out");
}

#[test]
fn unbound_counts_per_key_of_the_tenants_asked_for() {
    let runners = [
        runner(1, 1, RunnerState::Requested, None),
        runner(2, 1, RunnerState::Idle, None),
        runner(3, 1, RunnerState::Busy, None),
        runner(4, 2, RunnerState::Launching, Some("me/a")),
        runner(5, 3, RunnerState::Idle, None),
    ];
    let asked = BTreeSet::from([InstallationId(1), InstallationId(2)]);
    let expected = BTreeMap::from([(key(1, None), 2), (key(2, Some("me/a")), 1)]);
    assert_eq!(unbound_of(&runners, &asked), expected);
}

#[test]
fn stale_walks_page_in_received_order_after_their_cursor() {
    let queued = [job(3, 1, "a", 3), job(1, 1, "a", 1), job(2, 2, "a", 1), job(4, 1, "a", 20)];
    let all = stale_page(&queued, JobStatus::Queued, at(12), None, u32::MAX);
    assert_eq!(ids(&all), vec![1, 2, 3], "queued at or before the threshold, by (received, id)");
    let first = stale_page(&queued, JobStatus::Queued, at(12), None, 2);
    assert_eq!(ids(&first), vec![1, 2]);
    let cursor = first.last().map(JobCursor::of);
    assert_eq!(ids(&stale_page(&queued, JobStatus::Queued, at(12), cursor, 2)), vec![3]);
    let at_threshold = stale_page(&queued, JobStatus::Queued, at(20), cursor, 2);
    assert_eq!(ids(&at_threshold), vec![3, 4], "at the threshold is stale");

    let in_progress = [
        running(job(5, 1, "a", 1), Some(10), 30),
        running(job(6, 1, "a", 2), None, 11),
        running(job(7, 1, "a", 0), Some(15), 15),
    ];
    let stale = stale_page(&in_progress, JobStatus::InProgress, at(12), None, 10);
    assert_eq!(ids(&stale), vec![5, 6], "started (else last updated) at or before the threshold");
    assert!(stale_page(&in_progress, JobStatus::Queued, at(100), None, 10).is_empty(), "a walk keeps its status");
}

#[test]
fn demand_counts_queued_jobs_of_tenants_with_unbound_runners_per_key() {
    let tenants = BTreeMap::from([
        (InstallationId(1), tenant(1, OrgType::Organization)),
        (InstallationId(2), tenant(2, OrgType::User)),
    ]);
    let live = [
        runner(1, 1, RunnerState::Idle, None),
        runner(2, 2, RunnerState::Requested, Some("me/a")),
        runner(3, 3, RunnerState::Busy, None),
        runner(4, 4, RunnerState::Idle, None),
    ];
    let queued = [
        job(1, 1, "org1/app", 1),
        job(2, 1, "org1/other", 2),
        job(11, 2, "me/a", 1),
        job(12, 2, "me/a", 2),
        job(13, 2, "me/b", 3),
        job(21, 3, "org3/app", 1),
        job(31, 4, "org4/app", 1),
    ];
    let expected =
        BTreeMap::from([(key(1, None), 2), (key(2, Some("me/a")), 2), (key(2, Some("me/b")), 1), (key(4, None), 1)]);
    assert_eq!(
        demand_of_unbound_tenants(&queued, &live, &tenants),
        expected,
        "tenant 3 has no unbound runner; tenant 4 has no record and is keyed as an organisation"
    );
}

/// Tenants are read in 100-key `BatchGetItem`s: more than one call's worth come back whole, missing ones are
/// absent, a seed-made item (without ghr's counters) included.
#[tokio::test]
async fn tenant_items_batches_past_one_calls_limit() {
    let store = crate::testing::fresh_store().await;
    for id in 1..=150u64 {
        store
            .client
            .put_item()
            .table_name(&store.tables.tenants)
            .item(tenant::INSTALLATION_ID, n(id))
            .item(tenant::ORG_NAME, crate::item::s(format!("org{id}")))
            .item(tenant::STATUS, crate::item::s("active"))
            .send()
            .await
            .expect("put a seed-made tenant");
    }
    let asked: BTreeSet<InstallationId> = (1..=160).map(InstallationId).collect();
    let items = tenant_items(&store, OP_DEMAND, &asked).await.expect("batch get");
    let mut found: Vec<u64> =
        items.iter().map(|item| Reader::new(OP_DEMAND, item).u64(tenant::INSTALLATION_ID).expect("key")).collect();
    found.sort_unstable();
    assert_eq!(found, (1..=150).collect::<Vec<_>>(), "every existing tenant once, the 10 unknown ones absent");
    let none = tenant_items(&store, OP_DEMAND, &BTreeSet::new()).await.expect("no keys");
    assert!(none.is_empty(), "no tenant asked, no call");
}
