//! Contracts of runner records (lifecycle, timestamps, lists, live counts) and of usage.

use super::fixtures::{Found, active_tenant, at, expect_reserved, ok, queue_jobs, reserve_request, set_state, walk};
use ghr_core::cost::UsageRow;
use ghr_core::ids::{GithubRunnerId, InstallationId, InstanceId, JobId, RunnerName, TierName};
use ghr_core::ports::{RunnerFilter, RunnerUpdate, Store};
use ghr_core::runner::{Runner, RunnerState};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Reserve one runner of a fresh active tenant with one queued job on `tier`.
async fn one_runner(store: &dyn Store, installation: u64, tier: &str) -> Runner {
    active_tenant(store, installation, 10).await;
    queue_jobs(store, installation, tier, "org/app", installation * 1_000, 1).await;
    expect_reserved(store, reserve_request(installation, tier, 0)).await
}

async fn stored(store: &dyn Store, name: &RunnerName) -> Runner {
    ok(store.runner_get(name).await, "runner_get").found("runner_get")
}

/// The happy path stamps each timestamp once; a forbidden state change keeps the state (the other fields
/// are still recorded: an instance or a registration exists whatever the state says).
pub async fn runner_update_follows_lifecycle(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let runner = one_runner(store, 1, "small").await;
    let name = runner.name.clone();

    let launch = RunnerUpdate {
        instance_id: Some(InstanceId::from("i-0abc")),
        ..RunnerUpdate::state(RunnerState::Launching, at(10))
    };
    let launching = ok(store.runner_update(&name, launch).await, "runner_update").found("runner_update");
    assert_eq!(launching.state, RunnerState::Launching);
    assert_eq!(launching.launched_at, Some(at(10)), "entering launching stamps launched_at");
    assert_eq!(launching.instance_id, Some(InstanceId::from("i-0abc")));
    assert_eq!(launching.updated_at, at(10));

    let register =
        RunnerUpdate { github_runner_id: Some(GithubRunnerId(77)), ..RunnerUpdate::state(RunnerState::Idle, at(20)) };
    let idle = ok(store.runner_update(&name, register).await, "runner_update").found("runner_update");
    assert_eq!((idle.registered_at, idle.github_runner_id), (Some(at(20)), Some(GithubRunnerId(77))));
    assert_eq!(idle.instance_id, Some(InstanceId::from("i-0abc")), "fields not given stay as they were");

    let take = RunnerUpdate { job_id: Some(JobId(1_000)), ..RunnerUpdate::state(RunnerState::Busy, at(30)) };
    let busy = ok(store.runner_update(&name, take).await, "runner_update").found("runner_update");
    assert_eq!((busy.job_started_at, busy.job_id), (Some(at(30)), Some(JobId(1_000))));

    let mut back = RunnerUpdate::state(RunnerState::Idle, at(35));
    back.last_error = Some("noted".to_owned());
    let back = ok(store.runner_update(&name, back).await, "").found("runner_update");
    assert_eq!(back.state, RunnerState::Busy, "busy -> idle is refused: the state stays");
    assert_eq!(back.last_error.as_deref(), Some("noted"), "the other fields of a refused change are recorded");
    assert_eq!(back.registered_at, Some(at(20)), "a refused state stamps nothing");

    let finished = set_state(store, &name, RunnerState::Finished, 40).await;
    assert_eq!(finished.finished_at, Some(at(40)));
    let terminated = set_state(store, &name, RunnerState::Terminated, 50).await;
    assert_eq!(terminated.terminated_at, Some(at(50)));
    let again = set_state(store, &name, RunnerState::Terminated, 60).await;
    assert_eq!(again.terminated_at, Some(at(50)), "terminated_at is stamped only once");
    let revived = ok(store.runner_update(&name, RunnerUpdate::state(RunnerState::Idle, at(70))).await, "");
    assert_eq!(revived.map(|r| r.state), Some(RunnerState::Terminated), "terminated is final");

    let last = stored(store, &name).await;
    let stamps = (last.launched_at, last.registered_at, last.job_started_at, last.finished_at, last.terminated_at);
    assert_eq!(stamps, (Some(at(10)), Some(at(20)), Some(at(30)), Some(at(40)), Some(at(50))), "stamps persist");
    assert_eq!(last.created_at, runner.created_at, "created_at never changes");

    let missing = RunnerName::from("ghr-nope-1-small-999");
    let none = ok(store.runner_update(&missing, RunnerUpdate::state(RunnerState::Launching, at(80))).await, "");
    assert_eq!(none, None, "runner_update of an unknown runner returns None");
    assert_eq!(ok(store.runner_get(&missing).await, "runner_get"), None);
}

/// GitHub's events can overtake the launch: `in_progress` binds a still-`requested` runner, and the
/// launch recorded afterwards keeps it busy while recording its instance (billing starts then).
pub async fn runner_bound_before_its_launch_is_recorded(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let runner = one_runner(store, 6, "small").await;
    let name = runner.name.clone();
    let take = RunnerUpdate { job_id: Some(JobId(6_000)), ..RunnerUpdate::state(RunnerState::Busy, at(5)) };
    let busy = ok(store.runner_update(&name, take).await, "runner_update").found("runner_update");
    assert_eq!((busy.state, busy.job_id), (RunnerState::Busy, Some(JobId(6_000))), "requested -> busy");
    assert_eq!(busy.launched_at, None, "no instance yet: nothing to bill");

    let launch = RunnerUpdate {
        instance_id: Some(InstanceId::from("i-late")),
        github_runner_id: Some(GithubRunnerId(66)),
        ..RunnerUpdate::state(RunnerState::Launching, at(7))
    };
    let recorded = ok(store.runner_update(&name, launch).await, "runner_update").found("runner_update");
    assert_eq!(recorded.state, RunnerState::Busy, "recording the launch does not undo the binding");
    assert_eq!(recorded.instance_id, Some(InstanceId::from("i-late")));
    assert_eq!(recorded.github_runner_id, Some(GithubRunnerId(66)));
    assert_eq!(recorded.launched_at, Some(at(7)), "the instance's first record stamps launched_at");

    // A job completed before its launch was recorded: the slot stays held (finished) until the instance
    // is known gone; a launch that then fails ends the runner as failed.
    let other = expect_reserved(store, {
        queue_jobs(store, 6, "small", "org/app", 6_100, 1).await;
        reserve_request(6, "small", 1)
    })
    .await;
    let done = set_state(store, &other.name, RunnerState::Finished, 10).await;
    assert_eq!(done.state, RunnerState::Finished);
    let failed = set_state(store, &other.name, RunnerState::Failed, 11).await;
    assert_eq!((failed.state, failed.terminated_at), (RunnerState::Failed, Some(at(11))), "finished -> failed");
}

/// A launch failure stamps terminated_at and keeps the error; an update without a state writes fields only.
pub async fn runner_update_failure_and_field_updates(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let runner = one_runner(store, 2, "small").await;
    let note = RunnerUpdate {
        last_error: Some("JIT config refused".to_owned()),
        state: None,
        ..RunnerUpdate::state(RunnerState::Requested, at(5))
    };
    let noted = ok(store.runner_update(&runner.name, note).await, "runner_update").found("runner_update");
    assert_eq!(noted.state, RunnerState::Requested, "no state given: the state stays");
    assert_eq!(noted.last_error.as_deref(), Some("JIT config refused"));
    assert_eq!(noted.updated_at, at(5));

    let fail =
        RunnerUpdate { last_error: Some("no capacity".to_owned()), ..RunnerUpdate::state(RunnerState::Failed, at(10)) };
    let failed = ok(store.runner_update(&runner.name, fail).await, "runner_update").found("runner_update");
    assert_eq!(failed.state, RunnerState::Failed);
    assert_eq!(failed.terminated_at, Some(at(10)), "failed stamps terminated_at");
    assert_eq!(failed.launched_at, None, "a runner that never launched has no launched_at");
    assert_eq!(failed.last_error.as_deref(), Some("no capacity"));
    let relaunch = ok(store.runner_update(&runner.name, RunnerUpdate::state(RunnerState::Launching, at(20))).await, "")
        .found("runner_update");
    assert_eq!(relaunch.state, RunnerState::Failed, "failed is final");
    assert_eq!((relaunch.launched_at, relaunch.terminated_at), (None, failed.terminated_at), "nothing is stamped");
}

/// Lists filter on installation, tier and states; live counts cover live states only.
pub async fn runner_list_and_live_counts(store: Arc<dyn Store>) {
    let store = store.as_ref();
    active_tenant(store, 3, 10).await;
    active_tenant(store, 4, 10).await;
    active_tenant(store, 5, 10).await;
    queue_jobs(store, 3, "small", "org-3/app", 300, 3).await;
    queue_jobs(store, 3, "large", "org-3/app", 310, 1).await;
    queue_jobs(store, 4, "small", "org-4/app", 400, 1).await;
    queue_jobs(store, 5, "small", "org-5/app", 500, 1).await;
    let a = expect_reserved(store, reserve_request(3, "small", 1)).await;
    let b = expect_reserved(store, reserve_request(3, "small", 2)).await;
    let c = expect_reserved(store, reserve_request(3, "large", 3)).await;
    let d = expect_reserved(store, reserve_request(4, "small", 4)).await;
    let e = expect_reserved(store, reserve_request(5, "small", 5)).await;
    walk(store, &b.name, &[(RunnerState::Launching, 6), (RunnerState::Busy, 7), (RunnerState::Finished, 8)]).await;
    set_state(store, &c.name, RunnerState::Failed, 9).await;
    set_state(store, &e.name, RunnerState::Terminated, 10).await;

    let names = |runners: Vec<Runner>| runners.into_iter().map(|r| r.name).collect::<Vec<_>>();
    let all = ok(store.runner_list(RunnerFilter::default()).await, "runner_list");
    let seqs: Vec<_> = all.iter().map(|r| r.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "runner_list is in creation order");
    assert_eq!(names(all), vec![a.name.clone(), b.name.clone(), c.name.clone(), d.name.clone(), e.name.clone()]);
    let of_3 = RunnerFilter { installation_id: Some(InstallationId(3)), ..RunnerFilter::default() };
    assert_eq!(
        names(ok(store.runner_list(of_3.clone()).await, "")),
        vec![a.name.clone(), b.name.clone(), c.name.clone()]
    );
    let small_3 = RunnerFilter { tier: Some(TierName::from("small")), ..of_3.clone() };
    assert_eq!(names(ok(store.runner_list(small_3).await, "")), vec![a.name.clone(), b.name.clone()]);
    let live_3 = RunnerFilter { states: RunnerState::LIVE.to_vec(), ..of_3 };
    assert_eq!(names(ok(store.runner_list(live_3).await, "")), vec![a.name.clone(), b.name.clone()]);
    let requested = RunnerFilter { states: vec![RunnerState::Requested], ..RunnerFilter::default() };
    assert_eq!(names(ok(store.runner_list(requested).await, "")), vec![a.name.clone(), d.name.clone()]);

    // Pages: `limit` from the start, then `after_seq` of the last one seen, filters kept.
    let first = RunnerFilter { limit: Some(2), ..RunnerFilter::default() };
    let page_1 = ok(store.runner_list(first.clone()).await, "runner_list");
    assert_eq!(names(page_1.clone()), vec![a.name.clone(), b.name.clone()], "a page is the first `limit`");
    let next = RunnerFilter { after_seq: page_1.last().map(|r| r.seq), ..first };
    let page_2 = ok(store.runner_list(next.clone()).await, "runner_list");
    assert_eq!(names(page_2.clone()), vec![c.name.clone(), d.name.clone()], "the next page starts after the cursor");
    let last = RunnerFilter { after_seq: page_2.last().map(|r| r.seq), ..next };
    assert_eq!(names(ok(store.runner_list(last).await, "")), vec![e.name.clone()]);
    let after_a_of_3 = RunnerFilter {
        installation_id: Some(InstallationId(3)),
        states: RunnerState::LIVE.to_vec(),
        after_seq: Some(a.seq),
        ..RunnerFilter::default()
    };
    assert_eq!(names(ok(store.runner_list(after_a_of_3).await, "")), vec![b.name], "a cursor keeps the filters");
    let past_the_end = RunnerFilter { after_seq: Some(e.seq), ..RunnerFilter::default() };
    assert!(ok(store.runner_list(past_the_end).await, "").is_empty());

    let counts = ok(store.runner_live_counts().await, "runner_live_counts");
    let expected = BTreeMap::from([(InstallationId(3), 2), (InstallationId(4), 1)]);
    assert_eq!(counts, expected, "live = requested..finished; tenants without live runners are absent");
}

/// Usage sums runner-seconds clipped to `[from, to)`, counting live runners up to `now`.
pub async fn usage_clips_to_the_period(store: Arc<dyn Store>) {
    let store = store.as_ref();
    active_tenant(store, 6, 10).await;
    active_tenant(store, 7, 10).await;
    queue_jobs(store, 6, "small", "org-6/app", 600, 3).await;
    queue_jobs(store, 6, "large", "org-6/app", 610, 1).await;
    queue_jobs(store, 7, "small", "org-7/app", 700, 3).await;
    let mut runners = Vec::new();
    for (installation, tier) in [(6, "small"), (6, "small"), (6, "small"), (6, "large"), (7, "small"), (7, "small")] {
        runners.push(expect_reserved(store, reserve_request(installation, tier, 0)).await.name);
    }
    runners.push(expect_reserved(store, reserve_request(7, "small", 0)).await.name);
    use RunnerState::{Failed, Launching, Terminated};
    let lives: [&[(RunnerState, i64)]; 7] = [
        &[(Launching, 100), (Terminated, 400)], // 6 small: 300 s inside [100, 600)
        &[(Launching, 50), (Terminated, 150)],  // 6 small: clipped at the start, 50 s
        &[(Failed, 120)],                       // 6 small: never launched
        &[(Launching, 300)],                    // 6 large: live, clipped at `to` (300 s) or `now`
        &[(Launching, 0), (Terminated, 90)],    // 7 small: entirely before the period
        &[(Launching, 900)],                    // 7 small: live, starts after the period
        &[(Launching, 200), (Terminated, 250)], // 7 small: 50 s
    ];
    for (name, steps) in runners.iter().zip(lives) {
        walk(store, name, steps).await;
    }

    let row = |installation: u64, tier: &str, runner_seconds: u32, runners: u64| UsageRow {
        installation_id: InstallationId(installation),
        tier: TierName::from(tier),
        runner_seconds: f64::from(runner_seconds),
        runners,
    };
    let usage = ok(store.usage(at(100), at(600), at(1_000)).await, "usage");
    assert_eq!(
        usage,
        vec![row(6, "large", 300, 1), row(6, "small", 350, 2), row(7, "small", 50, 1)],
        "usage in [100, 600) with now = 1000, ordered by installation then tier"
    );
    let open_period = ok(store.usage(at(0), at(2_000), at(1_000)).await, "usage");
    assert_eq!(
        open_period,
        vec![row(6, "large", 700, 1), row(6, "small", 400, 2), row(7, "small", 90 + 100 + 50, 3)],
        "live runners count up to now"
    );
    assert!(ok(store.usage(at(5_000), at(6_000), at(1_000)).await, "usage").is_empty(), "a period with no runner");
}
