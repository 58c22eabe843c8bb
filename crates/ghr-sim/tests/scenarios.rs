//! Scripted runs of the simulated world: the orderings the races-and-outages report measured, each replayed
//! step by step against the real engine, store and GitHub client.

use ghr_core::ids::InstallationId;
use ghr_core::job::JobStatus;
use ghr_core::ports::RunnerFilter;
use ghr_core::runner::{Runner, RunnerState};
use ghr_sim::invariants;
use ghr_sim::receiver::NetworkFaults;
use ghr_sim::world::{Step, World};
use std::time::Duration;

const SMALL: [&str; 4] = ["self-hosted", "linux", "x64", "small"];
const HOSTED: [&str; 1] = ["ubuntu-latest"];
/// Drain rounds allowed before a scenario counts a job as lost.
const MAX_ROUNDS: u32 = 400;

async fn step(world: &mut World, step: Step) -> String {
    let text = world.run(step).await;
    if let Err(violation) = invariants::check_step(world).await {
        panic!("invariant violated after {step:?} ({text}): {violation}");
    }
    text
}

async fn runners(world: &World, installation: InstallationId) -> Vec<Runner> {
    let filter = RunnerFilter {
        installation_id: Some(installation),
        tier: None,
        states: RunnerState::ALL.to_vec(),
        ..RunnerFilter::default()
    };
    world.inner_store.runner_list(filter).await.expect("listing runners")
}

/// Drain until every job is served and nothing runs; the number of rounds it took.
async fn settle(world: &mut World, tick: Duration) -> u32 {
    for round in 1..=MAX_ROUNDS {
        world.drain_round(tick).await;
        if let Err(violation) = invariants::check_step(world).await {
            panic!("invariant violated in drain round {round}: {violation}");
        }
        if invariants::settled(world).await.is_ok() {
            return round;
        }
    }
    panic!("not settled after {MAX_ROUNDS} rounds: {:?}", invariants::settled(world).await);
}

/// The runner takes its job before the launch has recorded it: `in_progress` binds the still-`requested`
/// runner, recording the launch keeps it busy, and no later pass mistakes it for a surplus idle runner.
/// (Before the fix the binding was refused, the runner went idle and was terminated under its job.)
#[tokio::test]
async fn in_progress_before_the_launch_is_recorded_keeps_the_runner_busy() {
    let mut world = World::with_limits(11, &[("acme", 1)]).await.expect("world");
    let acme = world.tenants[0].installation;
    world.queue(acme, &SMALL).await.expect("queue");
    for s in [Step::Dispatch, Step::AdvanceLaunch, Step::AdvanceLaunch, Step::Boot, Step::Poll] {
        step(&mut world, s).await;
    }
    let bound = runners(&world, acme).await.remove(0);
    assert_eq!(bound.state, RunnerState::Busy, "GitHub's in_progress binds the runner at once: {bound:?}");
    assert!(bound.job_id.is_some() && bound.instance_id.is_none(), "{bound:?}");

    step(&mut world, Step::AdvanceLaunch).await;
    let recorded = runners(&world, acme).await.remove(0);
    assert_eq!(recorded.state, RunnerState::Busy, "recording the launch keeps the binding: {recorded:?}");
    assert!(recorded.instance_id.is_some(), "{recorded:?}");

    // Well past the orphan grace and the bootstrap timeout, with passes in between: the job keeps running.
    world.max_job_seconds = 0;
    for _ in 0..4 {
        world.clock.advance(Duration::from_secs(200));
        step(&mut world, Step::Reconcile).await;
        step(&mut world, Step::Dispatch).await;
    }
    assert_eq!(world.provider.alive().len(), 1, "the busy runner still runs");
    assert_eq!(world.provider.terminations(), 0, "nothing was terminated");
    assert_eq!(runners(&world, acme).await.len(), 1, "the running job got no second runner");
    settle(&mut world, Duration::from_secs(30)).await;
}

/// The job completes before the launch has recorded its instance: the teardown cannot stop an instance it
/// does not know, so the slot stays held (`finished`) while the machine still runs; recording the launch
/// then terminates it and frees the slot. (Before the fix the slot was freed at once.)
#[tokio::test]
async fn completed_before_the_launch_is_recorded_holds_the_slot_until_the_machine_is_gone() {
    let mut world = World::with_limits(12, &[("acme", 1)]).await.expect("world");
    let acme = world.tenants[0].installation;
    world.max_job_seconds = 0;
    world.queue(acme, &SMALL).await.expect("queue");
    for s in [Step::Dispatch, Step::AdvanceLaunch, Step::AdvanceLaunch, Step::Boot, Step::Poll, Step::Finish] {
        step(&mut world, s).await;
    }
    let finished = runners(&world, acme).await.remove(0);
    assert_eq!(finished.state, RunnerState::Finished, "{finished:?}");
    step(&mut world, Step::Teardown).await;
    let held = runners(&world, acme).await.remove(0);
    assert_eq!(held.state, RunnerState::Finished, "the slot is held while the machine runs: {held:?}");
    assert_eq!(world.provider.alive().len(), 1, "the machine is still powering off");

    step(&mut world, Step::AdvanceLaunch).await;
    let gone = runners(&world, acme).await.remove(0);
    assert_eq!(gone.state, RunnerState::Terminated, "recording the launch tears it down: {gone:?}");
    assert!(world.provider.alive().is_empty(), "the machine is gone");
    settle(&mut world, Duration::from_secs(30)).await;
}

/// 60 s of ghr down while three tenants queue 20 jobs/s (every fourth one GitHub-hosted, which the App
/// hears of too): GitHub marks every delivery failed. After the restart the failed-delivery scan reads
/// back past the newest hundred and every self-hosted job is served; none is lost.
#[tokio::test]
async fn an_outage_under_a_steady_load_loses_no_job() {
    const JOBS_PER_SECOND: u64 = 20;
    const OUTAGE_SECONDS: u64 = 60;
    let mut world = World::with_limits(13, &[("acme", 20), ("globex", 20), ("initech", 20)]).await.expect("world");
    world.max_job_seconds = 60;
    // The failed-delivery scan alone must recover them (the queued-jobs poll is the next test's subject).
    world.configure(|settings| settings.queued_poll = None);
    let tenants: Vec<_> = world.tenants.iter().map(|t| t.installation).collect();
    world.stop_ghr();
    let total = JOBS_PER_SECOND * OUTAGE_SECONDS;
    for n in 0..total {
        let labels: &[&str] = if n % 4 == 3 { &HOSTED } else { &SMALL };
        world.queue(tenants[(n % 3) as usize], labels).await.expect("queue");
        world.clock.advance(Duration::from_millis(1000 / JOBS_PER_SECOND));
    }
    assert_eq!(world.receiver.dropped(), total, "every delivery failed while ghr was down");
    world.start_ghr();
    let rounds = settle(&mut world, Duration::from_secs(30)).await;
    let jobs = world.emulator.jobs();
    let served = jobs.iter().filter(|j| j.labels.iter().any(|l| l == "self-hosted")).count();
    assert_eq!(served as u64, total - total / 4);
    assert!(
        jobs.iter().filter(|j| j.labels.iter().any(|l| l == "self-hosted")).all(|j| j.status == JobStatus::Completed),
        "every self-hosted job completed"
    );
    assert_eq!(world.provider.terminations(), 0, "no runner was killed; every one exited after its job");
    assert!(world.receiver.redeliveries() >= served as u64, "the scan redelivered every failed job delivery");
    println!(
        "outage: {total} jobs queued during {OUTAGE_SECONDS}s down, {served} self-hosted served, 0 lost, {} redeliveries, \
         settled in {rounds} rounds of 30s",
        world.receiver.redeliveries()
    );
}

/// Deliveries GitHub no longer has (its log forgot them) cannot be redelivered: the queued-jobs poll finds
/// the jobs in the tenant's repositories and serves them.
#[tokio::test]
async fn jobs_whose_deliveries_are_gone_are_found_by_the_poll() {
    let mut world = World::build(14, &[("acme", 3)], |github| github.delivery_log_limit = 4).await.expect("world");
    let acme = world.tenants[0].installation;
    world.max_job_seconds = 0;
    world.stop_ghr();
    for _ in 0..12 {
        world.queue(acme, &SMALL).await.expect("queue");
    }
    world.start_ghr();
    let rounds = settle(&mut world, Duration::from_secs(60)).await;
    assert!(rounds >= 1);
    let store_jobs = world.inner_store.job_list(ghr_core::ports::JobFilter::default()).await.expect("jobs");
    assert_eq!(store_jobs.len(), 12, "every job is known to ghr");
    let timeline = world.inner_store.job_timeline(store_jobs[store_jobs.len() - 1].job_id).await.expect("timeline");
    assert!(
        timeline.iter().any(|e| e.kind == ghr_core::job::event_kind::FOUND_BY_POLL),
        "the oldest job was found by the poll: {timeline:?}"
    );
}

/// The `completed` delivery of a running job is lost for good (the failed-delivery scan is off here): ghr
/// asks GitHub about jobs running longer than `stale_job_seconds` and records the completion. (Before the
/// fix only queued jobs were checked, and the job stayed `in_progress` in ghr forever.)
#[tokio::test]
async fn a_job_whose_completed_delivery_is_lost_is_closed_from_the_api() {
    let mut world = World::with_limits(15, &[("acme", 1)]).await.expect("world");
    world.configure(|settings| settings.redelivery_scan = 0);
    let acme = world.tenants[0].installation;
    world.max_job_seconds = 0;
    let job_id = world.queue(acme, &SMALL).await.expect("queue");
    for s in [Step::Dispatch, Step::AdvanceLaunch, Step::AdvanceLaunch, Step::AdvanceLaunch, Step::Boot, Step::Poll] {
        step(&mut world, s).await;
    }
    world.set_network(NetworkFaults { drop_percent: 100, ..NetworkFaults::NONE });
    step(&mut world, Step::Finish).await;
    step(&mut world, Step::PowerOff).await;
    world.set_network(NetworkFaults::NONE);
    let running = world.inner_store.job_get(job_id).await.expect("job").expect("recorded");
    assert_eq!(running.status, JobStatus::InProgress, "ghr never heard of the completion");

    world.clock.advance(world.settings.stale_job_after + Duration::from_secs(1));
    step(&mut world, Step::Reconcile).await;
    let closed = world.inner_store.job_get(job_id).await.expect("job").expect("recorded");
    assert_eq!(closed.status, JobStatus::Completed, "{closed:?}");
    let timeline = world.inner_store.job_timeline(job_id).await.expect("timeline");
    assert!(timeline.iter().any(|e| e.kind == ghr_core::job::event_kind::STATUS_FROM_API), "{timeline:?}");
    settle(&mut world, Duration::from_secs(30)).await;
}

/// A runner ghr believes idle is running a job whose webhooks were all lost: when the surplus-idle rule
/// wants it gone, GitHub refuses to delete its registration (422, still running a job), and ghr keeps the
/// runner and marks it busy. (Before the fix the 422 was ignored and the instance terminated under the job.)
#[tokio::test]
async fn a_runner_github_reports_busy_is_not_terminated_as_surplus() {
    let mut world = World::with_limits(16, &[("acme", 2)]).await.expect("world");
    world.configure(|settings| {
        settings.redelivery_scan = 0;
        settings.queued_poll = None;
    });
    let acme = world.tenants[0].installation;
    world.max_job_seconds = 3600;
    let first = world.queue(acme, &SMALL).await.expect("queue");
    let cancelled = world.queue(acme, &SMALL).await.expect("queue");
    step(&mut world, Step::Dispatch).await;
    for _ in 0..6 {
        step(&mut world, Step::AdvanceLaunch).await;
    }
    for s in [Step::Boot, Step::Boot, Step::Reconcile] {
        step(&mut world, s).await;
    }
    assert!(runners(&world, acme).await.iter().all(|r| r.state == RunnerState::Idle), "both registered");

    // A third job whose webhooks never reach ghr; the second is cancelled (ghr hears of that).
    world.set_network(NetworkFaults { drop_percent: 100, ..NetworkFaults::NONE });
    world.queue(acme, &SMALL).await.expect("queue");
    world.set_network(NetworkFaults::NONE);
    world.emulator.cancel_job(cancelled).await.expect("cancel");
    step(&mut world, Step::Poll).await;
    assert!(world.emulator.job(first).is_some_and(|j| j.runner_name.is_some()), "the oldest job is taken first");
    world.set_network(NetworkFaults { drop_percent: 100, ..NetworkFaults::NONE });
    step(&mut world, Step::Poll).await;
    world.set_network(NetworkFaults::NONE);

    let idle: Vec<_> = runners(&world, acme).await.into_iter().filter(|r| r.state == RunnerState::Idle).collect();
    assert_eq!(idle.len(), 1, "ghr believes one runner idle");
    world.clock.advance(world.settings.orphan_grace + Duration::from_secs(1));
    step(&mut world, Step::Reconcile).await;
    let kept = runners(&world, acme).await.into_iter().find(|r| r.name == idle[0].name).expect("runner");
    assert_eq!(kept.state, RunnerState::Busy, "GitHub's 422 marks it busy: {kept:?}");
    assert_eq!(world.provider.alive().len(), 2, "both runners still run their jobs");
    assert_eq!(world.provider.terminations(), 0);
}

/// ghr restarts after a launch started its instance but before it recorded it; the runner connects late and
/// takes its job while GitHub's `in_progress` is lost. The reconciler adopts the instance by its name tag
/// and finds its registration by name: the runner is registered and busy, so neither the bootstrap timeout
/// nor the surplus rule removes it. (Before the fix the adopted runner, with no registration id, was judged
/// never registered and terminated under its job: simulation seed 30081 at 1,000 steps.)
#[tokio::test]
async fn an_adopted_runner_that_took_its_job_is_not_terminated() {
    let mut world = World::with_limits(17, &[("acme", 1)]).await.expect("world");
    world.configure(|settings| settings.redelivery_scan = 0);
    let acme = world.tenants[0].installation;
    world.max_job_seconds = 3600;
    world.queue(acme, &SMALL).await.expect("queue");
    for s in [Step::Dispatch, Step::AdvanceLaunch, Step::AdvanceLaunch, Step::Restart, Step::Boot] {
        step(&mut world, s).await;
    }
    world.set_network(NetworkFaults { drop_percent: 100, ..NetworkFaults::NONE });
    step(&mut world, Step::Poll).await;
    world.set_network(NetworkFaults::NONE);
    let unrecorded = runners(&world, acme).await.remove(0);
    assert!(unrecorded.instance_id.is_none() && unrecorded.github_runner_id.is_none(), "{unrecorded:?}");

    world.clock.advance(world.settings.orphan_grace + Duration::from_secs(1));
    step(&mut world, Step::Reconcile).await;
    world.clock.advance(world.settings.bootstrap_timeout + Duration::from_secs(1));
    step(&mut world, Step::Reconcile).await;
    let kept = runners(&world, acme).await.remove(0);
    assert!(kept.instance_id.is_some() && kept.github_runner_id.is_some(), "adopted and found by name: {kept:?}");
    assert!(kept.state.is_live(), "{kept:?}");
    assert_eq!(world.provider.alive().len(), 1, "the runner still runs its job");
    assert_eq!(world.provider.terminations(), 0);
}
